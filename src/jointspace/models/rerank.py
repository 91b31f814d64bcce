r"""A cross-modal attention matcher over frozen towers, and two-stage search with it.

:class:`CrossAttentionMatcher` reads image regions (the cells of EfficientNet-Lite0's last
7 x 7 feature map, 1280-d each) and text word pieces (MiniLM's contextual token vectors, 384-d),
and learns the projections, :math:`W_a` and the temperatures of
:class:`~jointspace.models.cross_attention.CrossAttentionNet` with the contrastive objective over
the matching scores of every image-text pair of a batch.

Two-stage search: a dual encoder's index retrieves the top ``N`` candidates, the matcher scores
the query against each and the candidates are re-ordered by

.. math::  s = (1 - w)\, z(s_{\text{first}}) + w\, z(s_{\text{cross}}),

with :math:`w` = ``rerank_weight`` (0: the first stage's order, 1: the cross-attention score
alone) and :math:`z` the
standardisation of a query's N scores (mean 0, standard deviation 1): the two scores live on
different scales (cosines of the dual encoder spread over tenths, the matcher's over
hundredths), so a raw blend would be decided by whichever spreads more, whatever :math:`w`.  Re-ranking only
re-orders: the same candidates come back, none dropped and none added.

How much the matcher should count depends on the first stage it corrects, so :math:`w` is
chosen on validation pairs against that first stage (:meth:`CrossAttentionMatcher.choose_weight`,
``jointspace fit-matcher --model``) from :data:`RERANK_WEIGHTS`, by Recall@1 with each relevance
key (e.g. each title) counted once; 0 is among the choices, for a first stage the matcher does
not improve (OpenClipart with the bench's dual encoder, see docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_dir, read_json_object, set_default_mode
from .._validation import check_bool, check_float, check_int, check_lr, short_json
from ..errors import InputError, NotFittedError
from ..towers.inputs import check_items
from ._matcher_parts import _check_parts, _check_val_parts, _key_codes, region_parts, word_parts
from .base import MATCHER_KIND
from .cross_attention import CrossAttentionNet, pad_parts
from .rerank_blend import (RERANK_WEIGHTS, choose_rerank_weight, per_key_mean,  # noqa: F401  (public names)
                           rerank_candidates, standardize_rows)

KIND = MATCHER_KIND
CONFIG_FILE, STATE_FILE = "config.json", "state.safetensors"


class CrossAttentionMatcher:
    """Image-text matching by cross-modal attention over frozen towers.

    Parameters
    ----------
    dim : int
        Common size of the projected regions and tokens.
    max_tokens : int
        Word pieces kept per text (longer texts are cut, with a warning).
    epochs, batch_size, lr, weight_decay, patience, seed
        Training (AdamW, cosine schedule; ``patience`` epochs without a better validation MRR
        stop the run, and the best epoch's weights are kept).
    rerank_weight : float in [0, 1] or None
        Weight of the cross-attention score against the first stage's when re-ranking; None
        (the default) until :meth:`choose_weight` chooses it on validation pairs against the
        first stage, and :meth:`rerank` refuses to guess it.  A weight :meth:`choose_weight`
        chose is dropped by the next fit (it was chosen for the weights that fit replaces).
    image_tower, text_tower : str
        The frozen towers the regions and word pieces come from.
    progress : bool
    """

    def __init__(self, dim: int = 256, max_tokens: int = 32, epochs: int = 30, batch_size: int = 64,
                 lr: float = 1e-3, weight_decay: float = 1e-4, patience: int = 5, seed: int = 0,
                 rerank_weight: float | None = None, image_tower: str = "efficientnet-lite0", text_tower: str = "minilm",
                 progress: bool = True):
        self.dim = check_int(dim, "dim", low=1, high=4096)
        self.max_tokens = check_int(max_tokens, "max_tokens", low=1, high=510)
        self.epochs = check_int(epochs, "epochs", low=1)
        self.batch_size = check_int(batch_size, "batch_size", low=2)
        self.lr = check_lr(lr)
        self.weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
        self.patience = check_int(patience, "patience", low=1)
        self.seed = check_int(seed, "seed", low=0, high=2**32 - 1)
        self.rerank_weight = (None if rerank_weight is None
                              else check_float(rerank_weight, "rerank_weight", low=0.0, high=1.0))
        self.image_tower = _check_tower(image_tower, "image_tower", "feature_map", "a feature map of image regions")
        self.text_tower = _check_tower(text_tower, "text_tower", "word_pieces", "word pieces and their vectors")
        self.progress = check_bool(progress, "progress")
        self.net_: CrossAttentionNet | None = None
        self.weight_choice_: dict | None = None

    def get_config(self) -> dict:
        return {"dim": self.dim, "max_tokens": self.max_tokens, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "patience": self.patience, "seed": self.seed, "rerank_weight": self.rerank_weight,
                "image_tower": self.image_tower, "text_tower": self.text_tower}

    # -- the parts the towers give ------------------------------------------------------------
    def _towers(self):
        from ..towers import create_tower

        return create_tower(self.image_tower), create_tower(self.text_tower)

    def image_parts(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Region vectors of each image: (n, R, d_i) float32 and a bool mask (n, R)."""
        images = check_items("image", images, "images")
        regions = region_parts(self._towers()[0], images, progress=self.progress)
        return regions, np.ones(regions.shape[:2], bool)

    def text_parts(self, texts) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
        """Word pieces of each text, their vectors (n, T, d_t) float32 and a bool mask (n, T)."""
        texts = check_items("text", texts, "texts")
        pieces = word_parts(self._towers()[1], texts, self.max_tokens, progress=self.progress)
        tokens, mask = pad_parts([v for _, v in pieces], self.max_tokens, "texts", warn=False)
        return [p for p, _ in pieces], tokens, mask

    # -- training -------------------------------------------------------------------------------
    def fit(self, pairs, val=None, *, relevance: str = "auto", run_dir=None) -> "CrossAttentionMatcher":
        """Train on the image-text pairs of ``pairs`` (a :class:`~jointspace.data.Pairs` with
        ``image`` and ``text``), choosing the epoch on ``val`` when given.  Pairs with the same
        relevance key (e.g. the same title) are not negatives of each other."""
        _check_image_text_pairs(pairs, "pairs")
        if val is not None:
            _check_image_text_pairs(val, "val")
            val.relevance_keys(relevance)   # refused before the training pairs' parts are read
            check_items("text", list(val["text"]), "val texts")
            check_items("image", val["image"], "val images")
        train = self._parts_of(pairs, relevance)
        return self.fit_parts(*train, val=None if val is None else self._parts_of(val, relevance), run_dir=run_dir)

    def _parts_of(self, pairs, relevance):
        keys = _key_codes(pairs.relevance_keys(relevance))   # a bad relevance or text, before the towers' work
        texts = check_items("text", list(pairs["text"]), "texts")
        regions, rmask = self.image_parts(pairs["image"])
        _, tokens, tmask = self.text_parts(texts)
        return regions, rmask, tokens, tmask, keys

    def fit_parts(self, regions, region_mask, tokens, token_mask, keys, *, val=None,
                  run_dir=None) -> "CrossAttentionMatcher":
        """Train from parts already computed (:meth:`image_parts`, :meth:`text_parts`).

        Parameters
        ----------
        regions : (N, R, d_i); region_mask : bool (N, R)
        tokens : (N, T, d_t); token_mask : bool (N, T)
        keys : (N,)
            Relevance keys (numbers or strings): rows with equal keys are positives of each other.
        val : tuple of the same five arrays for the validation rows, optional
        """
        from ..objectives.contrastive import soft_target_info_nce
        from ..train.generic import FitConfig, fit_module

        regions, region_mask, tokens, token_mask, keys = _check_parts(regions, region_mask, tokens, token_mask,
                                                                      keys, "")
        torch.manual_seed(self.seed)
        net = CrossAttentionNet(regions.shape[-1], tokens.shape[-1], self.dim)

        def loss_fn(net, batch, step, epoch):
            scale = net.log_scale.exp().clamp(max=100.0)
            s = net.pair_scores(batch["regions"], batch["region_mask"], batch["tokens"], batch["token_mask"])
            k = batch["keys"]
            loss = soft_target_info_nce(scale * s.T, k[:, None] == k[None, :])  # rows: texts
            return loss, {"scale": float(scale.detach())}

        val_fn, val_data = None, None
        if val is not None:
            val = _check_val_parts(val, regions, tokens)
            val_data = _as_tensors(dict(zip(("regions", "region_mask", "tokens", "token_mask", "keys"), val)))

            def val_fn(net, v):
                s = _pair_scores_chunked(net, v["regions"], v["region_mask"], v["tokens"], v["token_mask"])
                mrr = _text_to_image_mrr(s.T.cpu().numpy(), v["keys"].cpu().numpy())
                return {"val_loss": -mrr, "val_mrr": mrr}

        cfg = FitConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                        weight_decay=self.weight_decay, seed=self.seed, warmup=0.05,
                        patience=self.patience if val is not None else None, progress=self.progress,
                        grad_clip=5.0)
        data = _as_tensors({"regions": regions, "region_mask": region_mask, "tokens": tokens,
                            "token_mask": token_mask, "keys": keys})
        # a weight choose_weight chose fits the weights it was chosen for, not the new ones
        chosen = self.weight_choice_ is not None
        config = {**self.get_config(), **({"rerank_weight": None} if chosen else {})}
        self.train_result_ = fit_module(net, loss_fn, data, cfg, val=val_data, val_fn=val_fn, run_dir=run_dir,
                                        model_config={"kind": KIND, **config})
        self.net_ = net.eval()
        self.dims_ = (int(regions.shape[-1]), int(tokens.shape[-1]))
        if chosen:
            self.rerank_weight, self.weight_choice_ = None, None
        return self

    # -- scoring ---------------------------------------------------------------------------------
    def _check_fitted(self):
        if self.net_ is None:
            raise NotFittedError("this CrossAttentionMatcher is not fitted yet; call fit first")

    def score_parts(self, regions, region_mask, tokens, token_mask) -> np.ndarray:
        """Matching scores of every image with every text, (n_images, n_texts) float32 in [-1, 1]."""
        self._check_fitted()
        regions, region_mask, tokens, token_mask = _check_parts(regions, region_mask, tokens, token_mask, None, "")
        for name, arr, want in (("regions", regions, self.dims_[0]), ("tokens", tokens, self.dims_[1])):
            if arr.shape[0] == 0:
                raise InputError(f"{name}: expected at least one item to score, got shape {arr.shape}")
            if arr.shape[-1] != want:
                raise InputError(f"{name}: expected vectors of size {want} (what this matcher was trained on), "
                                 f"got {arr.shape[-1]}")
        with torch.no_grad():
            return _pair_scores_chunked(self.net_, torch.as_tensor(regions), torch.as_tensor(region_mask),
                                        torch.as_tensor(tokens), torch.as_tensor(token_mask)).numpy()

    def score_candidates(self, candidates, regions, region_mask, tokens, token_mask) -> np.ndarray:
        """The score of each text query against its own candidate images.

        Parameters
        ----------
        candidates : (q, N) int
            Row ``i``: the images (indices into ``regions``) text ``i`` is scored against.
        regions : (n, R, d_i); region_mask : bool (n, R)
        tokens : (q, T, d_t); token_mask : bool (q, T)

        Returns
        -------
        (q, N) float32
        """
        try:
            candidates = np.asarray(candidates)
        except ValueError:   # rows of unequal length
            candidates = np.asarray(candidates, dtype=object)
        regions, region_mask, tokens, token_mask = _check_parts(regions, region_mask, tokens, token_mask, None, "")
        n = len(regions)
        if candidates.ndim != 2 or candidates.shape[0] != len(tokens) or candidates.shape[1] == 0 \
                or not np.issubdtype(candidates.dtype, np.integer):
            raise InputError(f"candidates: expected (q, N) integer ids, one row per text ({len(tokens)}) and N >= 1, "
                             f"got shape {candidates.shape} of {candidates.dtype}")
        if candidates.size and (candidates.min() < 0 or candidates.max() >= n):
            raise InputError(f"candidates: expected ids of the {n} images (0 to {n - 1}), got "
                             f"{candidates.min()} to {candidates.max()}")
        return np.stack([self.score_parts(regions[c], region_mask[c], tokens[q:q + 1], token_mask[q:q + 1])[:, 0]
                         for q, c in enumerate(candidates)])

    def score(self, images, texts) -> np.ndarray:
        """Matching scores of every image with every text, (n_images, n_texts)."""
        texts = check_items("text", texts, "texts")   # before the image tower's work
        regions, rmask = self.image_parts(images)
        _, tokens, tmask = self.text_parts(texts)
        return self.score_parts(regions, rmask, tokens, tmask)

    def rerank(self, first_ids, first_scores, cross_scores) -> tuple[np.ndarray, np.ndarray]:
        """Re-order each query's candidates by the blended score.

        Parameters
        ----------
        first_ids : (q, N) array
            Candidate ids from the first stage, best first.
        first_scores, cross_scores : (q, N) float
            The first stage's similarity and the matcher's score of each candidate.

        Returns
        -------
        ids, scores : (q, N)
            The same candidates per query, ordered by :math:`(1-w)z(s_{first}) + w z(s_{cross})`
            with :math:`z` standardising each query's N scores (ties keep the first stage's order).
        """
        if self.rerank_weight is None:
            raise InputError("rerank_weight: not chosen yet; choose it on validation pairs against the first stage "
                             "(choose_weight, or 'jointspace fit-matcher --model') or set it (0 to 1)")
        return rerank_candidates(first_ids, first_scores, cross_scores, self.rerank_weight)

    def choose_weight(self, first_stage, val, *, relevance: str = "auto", candidates: int = 50) -> dict:
        """Choose :attr:`rerank_weight` on validation pairs against the first stage it corrects.

        Every text of ``val`` queries its images: ``first_stage`` retrieves the top
        ``candidates`` by cosine, the matcher re-orders them with each weight of
        :data:`RERANK_WEIGHTS`, and the weight with the best Recall@1 counted once per
        relevance key wins (ties: the better plain Recall@1, then the smaller weight).

        Parameters
        ----------
        first_stage : JointModel
            A fitted model that encodes ``val["text"]`` and ``val["image"]`` (e.g. a model fitted
            on the towers, or one on the same features as ``val``).
        val : Pairs
            Validation pairs with ``image`` (what the matcher reads: files or pictures) and ``text``;
            for a first stage on precomputed features, pass ``first_scores`` via
            :func:`choose_rerank_weight` instead.
        relevance : str
            Which pairs count as relevant to each other (:meth:`Pairs.relevance_keys`).
        candidates : int
            Candidates per query, as ``search --rerank N`` will fetch.

        Returns
        -------
        dict
            ``weight``, ``candidates``, ``recall@1`` and ``recall@1 per key`` (weight -> value).
        """
        self._check_fitted()
        candidates = check_int(candidates, "candidates", low=2)
        _check_image_text_pairs(val, "val")
        known = getattr(first_stage, "modalities_", None)
        if not callable(getattr(first_stage, "encode", None)) or not isinstance(known, (list, tuple)) \
                or not {"image", "text"} <= set(known):
            got = (f"one of {', '.join(map(str, known))}" if isinstance(known, (list, tuple))
                   else type(first_stage).__name__)
            raise InputError(f"first_stage: expected a fitted model of images and texts (e.g. load_model(...)), "
                             f"got {got}")
        val.relevance_keys(relevance)   # refused before the first stage encodes val
        first = first_stage.encode("text", val["text"]) @ first_stage.encode("image", val["image"]).T
        regions, rmask, tokens, tmask, keys = self._parts_of(val, relevance)
        top = np.argsort(-first, axis=1, kind="stable")[:, :candidates]
        cross = self.score_candidates(top, regions, rmask, tokens, tmask)
        choice = choose_rerank_weight(top, np.take_along_axis(first, top, 1), cross, keys)
        self.rerank_weight = choice["weight"]
        self.weight_choice_ = {**choice, "candidates": int(top.shape[1])}
        return self.weight_choice_

    def explain(self, image, text) -> dict:
        """Where each word of ``text`` looks in ``image``.

        Returns
        -------
        dict
            ``pieces`` (T word pieces), ``maps`` (T, H, W) float32: word ``j``'s attention over
            the regions (:math:`\\beta_{\\cdot j}`, sums to one), ``score`` (the matching score).
        """
        self._check_fitted()
        tower, _ = self._towers()
        with _one_item("image"):
            fmap = tower.feature_map([image])
        h, w = fmap.shape[2:]
        regions = torch.as_tensor(fmap.reshape(1, fmap.shape[1], -1).transpose(0, 2, 1).copy())
        with _one_item("text", "texts[0]"):
            pieces, tokens, tmask = self.text_parts([text])
        tokens, tmask = torch.as_tensor(tokens), torch.as_tensor(tmask)
        rmask = torch.ones(regions.shape[:2], dtype=torch.bool)
        with torch.no_grad():
            att = self.net_.attention(regions, tokens, rmask, tmask)
            score = float(self.net_.pair_scores(regions, rmask, tokens, tmask)[0, 0])
        n = int(tmask.sum())
        maps = att.beta[0, :, :n].T.reshape(n, h, w).numpy().astype(np.float32)
        return {"pieces": pieces[0], "maps": maps, "score": score}

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the fitted matcher to the folder ``path`` atomically (safetensors + JSON)."""
        from safetensors.torch import save_file

        self._check_fitted()
        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        config = {"kind": KIND, "params": self.get_config(), "dims": list(self.dims_)}
        if self.weight_choice_ is not None:
            config["weight_choice"] = self.weight_choice_
        with atomic_dir(path, "cross-attention matcher", is_kind=is_saved_matcher, arg="path",
                        keep_others=True) as tmp:
            save_file(state, str(tmp / STATE_FILE))
            set_default_mode(tmp / STATE_FILE)
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        return Path(path)

    @classmethod
    def load(cls, path) -> "CrossAttentionMatcher":
        """Load a matcher written by :meth:`save` (read again if a save replaces it meanwhile)."""
        from .._folder_reads import read_whole

        return read_whole(path, lambda: cls._load(Path(path)), "saved cross-attention matcher", "path")

    @classmethod
    def _load(cls, path: Path) -> "CrossAttentionMatcher":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not is_saved_matcher(path):
            raise InputError(f"path: {path} is not a saved cross-attention matcher (expected {CONFIG_FILE} with "
                             f"kind {KIND!r} and {STATE_FILE})")
        config = read_json_object(path / CONFIG_FILE)
        try:
            params = dict(config["params"])
            params.pop("progress", None)
            matcher = cls(**params, progress=False)
            dims = config["dims"]
            if not (isinstance(dims, list) and len(dims) == 2
                    and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)):
                raise ValueError(f"dims: expected the sizes [region, token] of its vectors, two integers >= 1; "
                                 f"got {short_json(dims)}")
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"path: {path / CONFIG_FILE} is malformed: {exc}") from None
        try:
            state = load_file(str(path / STATE_FILE))
            # the projections' shapes, before a network of the recorded sizes is built
            for key, d in (("proj_region.weight", dims[0]), ("proj_token.weight", dims[1])):
                got = tuple(state[key].shape) if key in state else None
                if got != (matcher.dim, d):
                    raise RuntimeError(f"expected {key} of shape {(matcher.dim, d)} (dim and dims of "
                                       f"{CONFIG_FILE}), got {got}")
            net = CrossAttentionNet(dims[0], dims[1], matcher.dim)
            net.load_state_dict(state)
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise InputError(f"path: {path / STATE_FILE} does not hold this matcher's weights: {exc}") from None
        matcher.net_, matcher.dims_ = net.eval(), tuple(dims)
        matcher.weight_choice_ = config.get("weight_choice")
        return matcher


@contextlib.contextmanager
def _one_item(name: str, given: str = "items[0]"):
    """Within the block, a complaint about ``given`` (the one item given) names ``name``."""
    try:
        yield
    except InputError as exc:
        if not str(exc).startswith(given):
            raise
        raise InputError(name + str(exc)[len(given):]) from None


def _check_tower(name, arg: str, method: str, gives: str) -> str:
    """``name`` as a registered tower with ``method`` (what the matcher reads through it), or an
    InputError naming ``arg`` and the towers that have it."""
    from ..towers.base import TOWERS, _import_builtin

    _import_builtin()
    able = [n for n in TOWERS.names() if callable(getattr(TOWERS.get(n), method, None))]
    if not isinstance(name, str) or name not in able:
        got = f"{name!r}" if isinstance(name, str) else type(name).__name__
        raise InputError(f"{arg}: expected a tower that gives {gives} ({', '.join(able)}), got {got}")
    return name


def _check_image_text_pairs(pairs, name: str) -> None:
    from ..data.pairs import Pairs

    if not isinstance(pairs, Pairs):
        raise InputError(f"{name}: expected a jointspace Pairs with 'image' and 'text', got {type(pairs).__name__}")
    if not {"image", "text"} <= set(pairs.modalities):
        raise InputError(f"{name}: expected pairs with 'image' and 'text', got {', '.join(pairs.modalities)}")


def is_saved_matcher(path) -> bool:
    """Whether ``path`` is a folder written by :meth:`CrossAttentionMatcher.save`."""
    config = read_json_object(Path(path) / CONFIG_FILE)
    return config is not None and config.get("kind") == KIND and (Path(path) / STATE_FILE).is_file()


def _as_tensors(data: dict) -> dict:
    """Tensors for the trainer (which keeps tensors of any dtype, so masks stay boolean)."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}


def _pair_scores_chunked(net, regions, region_mask, tokens, token_mask, chunk: int = 64) -> torch.Tensor:
    """(n_images, n_texts) scores, computed in blocks so memory stays bounded."""
    rows = []
    for a in range(0, regions.shape[0], chunk):
        r, t = net.project(regions[a:a + chunk], tokens[:1])
        cols = []
        for b in range(0, tokens.shape[0], chunk):
            _, t = net.project(regions[:1], tokens[b:b + chunk])
            cols.append(net.pair_scores(r, region_mask[a:a + chunk], t, token_mask[b:b + chunk], projected=True))
        rows.append(torch.cat(cols, dim=1))
    return torch.cat(rows, dim=0).float()


def _text_to_image_mrr(scores: np.ndarray, keys: np.ndarray) -> float:
    """Mean reciprocal rank of the first relevant image (same key) for each text query;
    ``scores`` (n_texts, n_images).  Ties are broken against the query, as in the reports
    (:func:`jointspace.eval.metrics.first_relevant_rank`)."""
    from ..eval.metrics import first_relevant_rank

    rank = first_relevant_rank(scores, keys[:, None] == keys[None, :])
    return float(np.mean(1.0 / rank))


__all__ = ["RERANK_WEIGHTS", "CrossAttentionMatcher", "choose_rerank_weight", "is_saved_matcher", "per_key_mean",
           "rerank_candidates", "standardize_rows"]
