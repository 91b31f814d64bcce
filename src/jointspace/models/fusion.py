r"""Parallel representations for classification: early fusion, late fusion, and attention over
modalities.

Each modality keeps its own representation and a classifier combines them (the chapter's
parallel representations):

- ``early``: the standardised features of every modality concatenated into one MLP;
- late fusion, one logistic regression per modality (its strength chosen by internal
  cross-validation) combined by ``mean`` (average of the probabilities), ``product`` (the
  normalised product, i.e. summed log-probabilities), ``weighted`` (a softmax weight per
  modality fitted on held-out rows by likelihood) or ``stacking`` (a logistic regression on the
  out-of-fold probabilities of every modality);
- ``attention``: each modality's encoding :math:`h_m` gets a learnt score
  :math:`s_m = v^\top \tanh(U h_m)`, the per-sample weights are
  :math:`\alpha_m = \mathrm{softmax}_m(s_m)` over the modalities present and the classifier
  reads :math:`\sum_m \alpha_m h_m`; modality dropout while training teaches it to lean on the
  modalities that remain;
- ``transformer``: a small multimodal Transformer (2 layers, 4 heads) over the tokens of
  every modality (each feature vector cut into :data:`TOKENS_PER_MODALITY` pieces, each
  projected, with a modality and a position embedding) and a class token; a missing
  modality's tokens are masked out.  Its weights are the share of the tokens each modality
  contributes (not learnt);
- ``gated``: the weights come from all encodings at once,
  :math:`\alpha = \mathrm{softmax}(G[h_1; \dots; h_M])` (a gated multimodal unit, Arevalo et
  al. 2017, with a softmax over M modalities).

Every prediction can return the per-sample modality weights (:meth:`FusionClassifier.predict`
with ``return_weights=True``), so they can be shown and audited.  A modality missing at
prediction time is refused by ``early`` fusion and left out of the others (its weight is 0),
except ``stacking``: its meta-classifier reads the class prior (the share of each class among
the training labels) in place of the missing modality's probabilities, and its weights are NaN
(the meta-classifier has no per-sample weights).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from .._validation import (check_bool, check_choice, check_float, check_int, check_lr, check_matrix,
                           check_modality_names)
from ..data.pairs import Pairs
from ..errors import InputError, NotFittedError
from ._late_fusion import (LOGISTIC_CS, _fit_weights, _Folds, _neg_log_loss_all_classes,  # noqa: F401
                           _rare_classes_expected, late_member)
from ._standardise import feature_scale

FUSIONS = ("early", "mean", "product", "weighted", "stacking", "attention", "gated", "transformer")
LATE = ("mean", "product", "weighted", "stacking")
LEARNT = ("early", "attention", "gated", "transformer")
#: tokens each modality's feature vector is cut into for the multimodal Transformer
TOKENS_PER_MODALITY = 4


class FusionNet(nn.Module):
    """Standardisation and an encoder per modality, then early, attention or gated fusion.

    ``forward({m: (n, d_m)}, present (n, M) bool) -> (logits (n, C), weights (n, M))``.
    """

    def __init__(self, in_dims: dict, n_classes: int, fusion: str, hidden: int, dropout: float):
        super().__init__()
        self.names = list(in_dims)
        self.fusion = fusion
        for m, d in in_dims.items():
            self.register_buffer(f"mean_{m}", torch.zeros(d))
            self.register_buffer(f"inv_std_{m}", torch.ones(d))
        if fusion == "early":
            self.head = nn.Sequential(nn.Linear(sum(in_dims.values()), hidden), nn.GELU(), nn.Dropout(dropout),
                                      nn.Linear(hidden, n_classes))
            return
        if fusion == "transformer":
            k = TOKENS_PER_MODALITY
            self.splits = {m: [len(c) for c in np.array_split(np.arange(d), min(k, d))] for m, d in in_dims.items()}
            self.tokenizers = nn.ModuleDict({m: nn.ModuleList([nn.Linear(w, hidden) for w in widths])
                                             for m, widths in self.splits.items()})
            n_tok = sum(len(w) for w in self.splits.values())
            self.position = nn.Parameter(0.02 * torch.randn(n_tok + 1, hidden))
            self.cls = nn.Parameter(0.02 * torch.randn(hidden))
            layer = nn.TransformerEncoderLayer(hidden, nhead=4, dim_feedforward=2 * hidden, dropout=dropout,
                                               batch_first=True, norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, n_classes))
            return
        self.encoders = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout))
                                       for m, d in in_dims.items()})
        if fusion == "attention":
            self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
        else:
            self.gate = nn.Linear(hidden * len(in_dims), len(in_dims))
        self.head = nn.Linear(hidden, n_classes)

    def standardise(self, m: str, x: torch.Tensor) -> torch.Tensor:
        return (x - getattr(self, f"mean_{m}")) * getattr(self, f"inv_std_{m}")

    def noise(self, m: str, z: torch.Tensor) -> torch.Tensor:
        """Standard normal draws ``z`` (n, d_m) as inputs of modality ``m``: its training mean
        and standard deviation (what ``modality_noise`` puts in place of a modality)."""
        return getattr(self, f"mean_{m}") + z / getattr(self, f"inv_std_{m}")

    def forward(self, x: dict, present: torch.Tensor):
        n = present.shape[0]
        if self.fusion == "early":
            z = torch.cat([self.standardise(m, x[m]) for m in self.names], dim=1)
            return self.head(z), torch.full((n, len(self.names)), 1.0 / len(self.names), device=z.device)
        if self.fusion == "transformer":
            return self._transformer(x, present)
        h = torch.stack([self.encoders[m](self.standardise(m, x[m])) * present[:, i:i + 1]
                         for i, m in enumerate(self.names)], dim=1)                   # (n, M, H)
        if self.fusion == "attention":
            logits = self.score(h).squeeze(-1)                                       # (n, M)
        else:
            logits = self.gate(h.reshape(n, -1))
        weights = torch.softmax(logits.masked_fill(~present, float("-inf")), dim=1)
        return self.head((weights.unsqueeze(-1) * h).sum(dim=1)), weights


    def _transformer(self, x: dict, present: torch.Tensor):
        n = present.shape[0]
        tokens, keep, counts = [self.cls.expand(n, 1, -1)], [torch.ones(n, 1, dtype=torch.bool, device=present.device)], []
        for i, m in enumerate(self.names):
            parts = torch.split(self.standardise(m, x[m]), self.splits[m], dim=1)
            tokens += [proj(p).unsqueeze(1) for proj, p in zip(self.tokenizers[m], parts)]
            keep += [present[:, i:i + 1]] * len(parts)
            counts.append(len(parts))
        z = torch.cat(tokens, dim=1) + self.position
        z = self.transformer(z, src_key_padding_mask=~torch.cat(keep, dim=1))
        share = present.float() * torch.tensor(counts, dtype=torch.float32, device=present.device)
        return self.head(z[:, 0]), share / share.sum(dim=1, keepdim=True)


class FusionClassifier:
    """Multimodal classification by early fusion, late fusion or attention over modalities.

    Parameters
    ----------
    fusion : {"early", "mean", "product", "weighted", "stacking", "attention", "gated", "transformer"}
    hidden : int
        Width of each modality's encoder (learnt fusions).
    dropout : float
        Dropout after each encoder.
    modality_dropout : float
        Attention, gated and transformer fusion (early fusion reads every modality and ignores
        it): the chance, per training sample, that one modality (drawn at random) is hidden (the
        transformer's tokens of it masked out), so the fusion learns to lean on the modalities
        that remain.
    modality_noise : float
        Learnt fusions (early, attention, gated, transformer): the chance, per training sample,
        that one modality (drawn at random) is replaced by Gaussian noise with that modality's
        training mean and standard deviation while still counted present, so a fusion can learn
        to recognise a corrupted input (hiding teaches only to cope with an absent one); the
        epoch is then chosen on validation rows mixed the same way (clean, and each modality
        replaced by fixed noise), since a clean-only choice stops before the robustness is
        learnt.  0 (default) trains on clean inputs only.
    epochs, batch_size, lr, weight_decay, patience :
        Training of the learnt fusions (:class:`jointspace.train.generic.FitConfig`); the epoch
        with the lowest validation loss is kept.
    val_fraction : float
        Share of the training rows held out (stratified) to pick that epoch, and for
        ``weighted`` the rows its weights are fitted on.
    modalities : list of str, optional
        The modalities of the pairs to use, each once (default: all).
    seed : int
    """

    def __init__(self, fusion: str = "attention", hidden: int = 256, dropout: float = 0.2,
                 modality_dropout: float = 0.3, modality_noise: float = 0.0, epochs: int = 100,
                 batch_size: int = 128, lr: float = 1e-3,
                 weight_decay: float = 1e-4, patience: int | None = 15, val_fraction: float = 0.15,
                 modalities=None, seed: int = 0):
        self.fusion = fusion
        self.hidden = hidden
        self.dropout = dropout
        self.modality_dropout = modality_dropout
        self.modality_noise = modality_noise
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.modalities = modalities
        self.seed = seed

    # -- input -----------------------------------------------------------------------------------
    def _features(self, items: dict, arg: str, *, fitted: bool) -> tuple[dict, int]:
        if not isinstance(items, dict) or not items:
            raise InputError(f"{arg}: expected a dict of modality -> feature array (n, d) with at least one entry, "
                             f"got {type(items).__name__ if not isinstance(items, dict) else 'an empty dict'}")
        names = self.modalities_ if fitted else list(items)
        unknown = [m for m in items if m not in names]
        if unknown:
            raise InputError(f"{arg}: this classifier was trained with {', '.join(names)}; it knows no "
                             f"{', '.join(map(repr, unknown))}")
        out = {m: check_matrix(v, f"{arg} ({m})", dtype=np.float32) for m, v in items.items()}
        counts = {m: len(v) for m, v in out.items()}
        if len(set(counts.values())) != 1:
            raise InputError(f"{arg}: every modality needs the same number of rows, got {counts}")
        if fitted:
            for m, v in out.items():
                if v.shape[1] != self.in_dims_[m]:
                    raise InputError(f"{arg} ({m}): expected {self.in_dims_[m]} features, got {v.shape[1]}")
        return out, next(iter(counts.values()))

    def _modality_names(self, pairs: Pairs) -> list:
        return list(pairs.modalities) if self.modalities is None else list(check_modality_names(self.modalities))

    def _check_settings(self) -> None:
        check_choice(self.fusion, "fusion", FUSIONS)
        check_int(self.hidden, "hidden", low=1, high=16384)
        if self.fusion == "transformer" and self.hidden % 4:
            raise InputError(f"hidden: the transformer fusion splits it over 4 heads, so it must be a multiple of 4; "
                             f"got {self.hidden}")
        check_float(self.dropout, "dropout", low=0.0, high=0.99)
        check_float(self.modality_dropout, "modality_dropout", low=0.0, high=1.0)
        check_float(self.modality_noise, "modality_noise", low=0.0, high=1.0)
        check_int(self.epochs, "epochs", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        check_lr(self.lr)
        check_float(self.weight_decay, "weight_decay", low=0.0)
        if self.patience is not None:
            check_int(self.patience, "patience", low=1)
        check_float(self.val_fraction, "val_fraction", low=0.0, high=0.5)
        check_int(self.seed, "seed", low=0, high=2**32 - 1)

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, pairs: Pairs) -> "FusionClassifier":
        """Train on labelled ``pairs`` whose modalities are feature arrays (n, d_m); a fit that
        fails leaves the classifier as it was (unfitted, or fitted before)."""
        before = dict(self.__dict__)
        try:
            return self._fit(pairs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, pairs: Pairs) -> "FusionClassifier":
        from sklearn.model_selection import train_test_split

        if not isinstance(pairs, Pairs):
            raise InputError(f"pairs: expected a jointspace Pairs, got {type(pairs).__name__}")
        if pairs.labels is None or np.asarray(pairs.labels).ndim != 1:
            raise InputError("pairs: fusion classifies; expected one label per pair (Pairs(..., labels=...))")
        self._check_settings()
        names = self._modality_names(pairs)
        unknown = [m for m in names if m not in pairs.modalities]
        if unknown:
            raise InputError(f"modalities: expected modalities of the pairs ({', '.join(pairs.modalities)}), got "
                             f"{', '.join(map(repr, unknown))}")
        if len(names) < 2:
            raise InputError(f"modalities: fusion needs at least two modalities, got {names}")
        x, n = self._features({m: pairs[m] for m in names}, "pairs", fitted=False)
        self.classes_, y = np.unique(np.asarray(pairs.labels), return_inverse=True)
        if len(self.classes_) < 2:
            raise InputError(f"pairs: expected at least two classes, got {list(self.classes_)}")
        self.modalities_ = names
        self.in_dims_ = {m: int(v.shape[1]) for m, v in x.items()}
        idx = np.arange(n)
        counts = np.bincount(y)
        n_val = int(np.ceil(self.val_fraction * n))
        # stratified when every class can be on both sides; otherwise (few rows, many classes) plain
        stratify = y if counts.min() >= 2 and min(n_val, n - n_val) >= len(counts) else None
        tr, va = (idx, None) if not self.val_fraction else train_test_split(
            idx, test_size=self.val_fraction, random_state=self.seed, stratify=stratify)
        if self.fusion in LATE:
            self._fit_late(x, y, tr, va)
        else:
            self._fit_learnt(x, y, tr, va)
        return self

    def _fit_late(self, x: dict, y: np.ndarray, tr, va) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict

        member = functools.partial(late_member, len(self.classes_))
        fit_rows = tr if self.fusion == "weighted" else np.arange(len(y))
        self._check_late_rows(y, fit_rows)
        with _rare_classes_expected():
            self.members_ = {m: member().fit(x[m][fit_rows], y[fit_rows]) for m in self.modalities_}
        self.prior_ = np.bincount(y, minlength=len(self.classes_)) / len(y)
        self.weights_ = np.full(len(self.modalities_), 1.0 / len(self.modalities_))
        self.stacker_ = None
        if self.fusion == "weighted":
            if va is None:
                raise InputError("val_fraction: weighted fusion fits its weights on held-out rows; give a value > 0")
            self.weights_ = _fit_weights([self._member_log_proba(m, x[m][va]) for m in self.modalities_], y[va])
        elif self.fusion == "stacking":
            cv = _Folds(5, shuffle=True, seed=self.seed)
            with _rare_classes_expected():
                oof = np.hstack([cross_val_predict(member(), x[m], y, cv=cv, method="predict_proba")
                                 for m in self.modalities_])
            self.stacker_ = LogisticRegression(max_iter=3000).fit(oof, y)

    def _check_late_rows(self, y: np.ndarray, fit_rows: np.ndarray) -> None:
        """Refuse, before any fitting, pairs too few for the late fusion's cross-validations."""
        kept = " left for training by val_fraction" if self.fusion == "weighted" else ""
        if len(fit_rows) < 3:
            raise InputError(f"pairs: {self.fusion} fusion chooses each modality's logistic regression by 3-fold "
                             f"cross-validation; expected at least 3 labelled pairs{kept}, got {len(fit_rows)}")
        if len(np.unique(y[fit_rows])) < 2:
            only = self.classes_[y[fit_rows][0]].item()
            raise InputError(f"pairs: {self.fusion} fusion fits each modality's classifier on the pairs{kept}; "
                             f"expected at least two classes among them, got only {only!r} (give more pairs of "
                             f"each class)")
        if self.fusion != "stacking":
            return
        if len(y) < 5:
            raise InputError(f"pairs: stacking fusion learns from 5-fold out-of-fold probabilities; expected at least "
                             f"5 labelled pairs, got {len(y)}")
        with _rare_classes_expected():
            folds = list(_Folds(5, shuffle=True, seed=self.seed).split(np.zeros((len(y), 1)), y))
        for rows, _ in folds:
            if len(np.unique(y[rows])) < 2:
                counts = dict(zip(self.classes_.tolist(), np.bincount(y).tolist()))
                raise InputError(f"pairs: stacking fusion fits each modality on 5 folds of the pairs, and one fold "
                                 f"leaves only class {self.classes_[y[rows][0]].item()!r} to learn from; expected more "
                                 f"pairs of the other classes, got {counts} pairs per class")

    def _member_log_proba(self, m: str, xm: np.ndarray) -> np.ndarray:
        """Log-probabilities (n, C) of one member over every class: a class the member never saw
        (``weighted`` fits on the training part, which a rare class can miss) gets probability 0
        (clipped to 1e-12) in its column."""
        member = self.members_[m]
        proba = np.zeros((len(xm), len(self.classes_)))
        proba[:, np.asarray(member.classes_, dtype=int)] = member.predict_proba(xm)
        return np.log(np.clip(proba, 1e-12, 1.0))

    def _fit_learnt(self, x: dict, y: np.ndarray, tr, va) -> None:
        from ..train.generic import FitConfig, fit_module

        torch.manual_seed(int(self.seed))
        net = FusionNet(self.in_dims_, len(self.classes_), self.fusion, int(self.hidden), float(self.dropout))
        with torch.no_grad():
            for m in self.modalities_:
                getattr(net, f"mean_{m}").copy_(torch.from_numpy(x[m][tr].mean(0)))
                getattr(net, f"inv_std_{m}").copy_(torch.from_numpy(1.0 / feature_scale(x[m][tr])))
        data = lambda rows: {**{m: torch.from_numpy(x[m][rows]) for m in self.modalities_},  # noqa: E731
                             "__label__": torch.from_numpy(y[rows].astype(np.int64))}
        drop = float(self.modality_dropout) if self.fusion != "early" else 0.0
        noise = float(self.modality_noise)
        names = self.modalities_

        def loss_fn(net, batch, step, epoch):
            n = len(batch["__label__"])
            present = torch.ones((n, len(names)), dtype=torch.bool, device=batch["__label__"].device)
            if drop:
                hide = torch.rand(n, device=present.device) < drop
                which = torch.randint(len(names), (n,), device=present.device)
                present[hide, which[hide]] = False
            inputs = {m: batch[m] for m in names}
            if noise:
                corrupt = torch.rand(n, device=present.device) < noise
                which = torch.randint(len(names), (n,), device=present.device)
                for i, m in enumerate(names):
                    rows = (corrupt & (which == i)).unsqueeze(1)
                    inputs[m] = torch.where(rows, net.noise(m, torch.randn_like(inputs[m])), inputs[m])
            logits, _ = net(inputs, present)
            return nn.functional.cross_entropy(logits, batch["__label__"]), {}

        # the validation noise is drawn once: every epoch meets the same corrupted rows
        val_draws = {} if va is None or not noise else {
            m: torch.randn((len(va), self.in_dims_[m]), generator=torch.Generator().manual_seed(int(self.seed) + i))
            for i, m in enumerate(names)}

        def val_fn(net, val):
            n = len(val["__label__"])
            present = torch.ones((n, len(names)), dtype=torch.bool)
            logits, _ = net({m: val[m] for m in names}, present)
            loss = float(nn.functional.cross_entropy(logits, val["__label__"]))
            out = {"val_accuracy": float((logits.argmax(1) == val["__label__"]).float().mean())}
            if noise:
                # the epoch is chosen on the distribution trained for: clean inputs with weight
                # 1 - noise, each modality replaced by the same fixed noise with weight noise / M
                noisy = []
                for m in names:
                    lg, _ = net({**{k: val[k] for k in names}, m: net.noise(m, val_draws[m])}, present)
                    noisy.append(float(nn.functional.cross_entropy(lg, val["__label__"])))
                out["val_loss_clean"] = loss
                loss = (1 - noise) * loss + noise * float(np.mean(noisy))
            return {"val_loss": loss, **out}

        config = FitConfig(epochs=int(self.epochs), batch_size=int(self.batch_size), lr=float(self.lr),
                           weight_decay=float(self.weight_decay), seed=int(self.seed),
                           patience=self.patience if va is not None else None)   # the default stops on val
        self.train_result_ = fit_module(net, loss_fn, data(tr), config, val=None if va is None else data(va),
                                        val_fn=None if va is None else val_fn)
        self.net_ = net.cpu().eval()

    # -- prediction ------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "modalities_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def predict_proba(self, items: dict, return_weights: bool = False):
        """Class probabilities (n, C) (columns in ``classes_`` order) from the modalities given.

        Parameters
        ----------
        items : dict of str to array (n, d_m)
            Any non-empty subset of the modalities (all of them for early fusion).
        return_weights : bool
            Also return the modality weights (n, M), columns in ``modalities_`` order, 0 for a
            modality not given: learnt per sample by ``attention`` and ``gated``; the share of
            the tokens for ``transformer``; the fitted weights for ``weighted`` and equal ones for
            ``mean`` and ``product``, renormalised over the modalities given; 1 / M for
            ``early``, which has none of its own (``stacking``: NaN, its meta-classifier has no
            per-sample weights).
        """
        self._check_fitted()
        return_weights = check_bool(return_weights, "return_weights")
        x, n = self._features(items, "items", fitted=True)
        present = np.array([[m in x for m in self.modalities_]] * n, dtype=bool).reshape(n, len(self.modalities_))
        if self.fusion == "early" and not present.all():
            missing = [m for m in self.modalities_ if m not in x]
            raise InputError(f"items: early fusion reads every modality at once; no {', '.join(missing)} "
                             "(late or attention fusion can leave a modality out)")
        if self.fusion in LATE:
            proba, weights = self._late_proba(x, n, present)
        else:
            full = {m: torch.from_numpy(x[m]) if m in x else torch.zeros((n, self.in_dims_[m]))
                    for m in self.modalities_}
            with torch.no_grad():
                logits, w = self.net_(full, torch.from_numpy(present))
            proba, weights = torch.softmax(logits, 1).numpy(), w.numpy()
        return (proba, weights) if return_weights else proba

    def _late_proba(self, x: dict, n: int, present: np.ndarray):
        names = self.modalities_
        if self.fusion == "stacking":
            cols = [self.members_[m].predict_proba(x[m]) if m in x else np.tile(self.prior_, (n, 1)) for m in names]
            return self.stacker_.predict_proba(np.hstack(cols)), np.full((n, len(names)), np.nan)
        w = self.weights_ * present[0]
        w = w / w.sum()
        logs = [self._member_log_proba(m, x[m]) for m in names if m in x]
        ws = [wi for wi, m in zip(w, names) if m in x]
        if self.fusion == "mean":
            proba = sum(wi * np.exp(lp) for wi, lp in zip(ws, logs))
        else:  # product: the plain product; weighted: the weighted geometric mean; renormalised
            s = sum((1.0 if self.fusion == "product" else wi) * lp for wi, lp in zip(ws, logs))
            s = s - s.max(axis=1, keepdims=True)
            proba = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
        return proba, np.tile(w, (n, 1))

    def predict(self, items: dict, return_weights: bool = False):
        """Predicted labels (n,) (and the modality weights, see :meth:`predict_proba`)."""
        return_weights = check_bool(return_weights, "return_weights")
        proba, weights = self.predict_proba(items, return_weights=True)
        labels = self.classes_[np.argmax(proba, axis=1)]
        return (labels, weights) if return_weights else labels

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path):
        """Write the fitted classifier to the folder ``path`` atomically (``config.json`` and
        ``state.safetensors``, no pickle); ``path`` must be missing, an empty folder or a saved
        fusion classifier.  Returns the path."""
        from ._fusion_io import save_fusion

        return save_fusion(self, path)

    @classmethod
    def load(cls, path) -> "FusionClassifier":
        """A classifier saved with :meth:`save`; it predicts exactly as the saved one did."""
        from ._fusion_io import load_fusion

        return load_fusion(cls, path)

    def score(self, items: dict, labels) -> float:
        """Accuracy of :meth:`predict` against ``labels``."""
        labels = np.asarray(labels)
        pred = self.predict(items)
        if labels.shape != pred.shape:
            raise InputError(f"labels: expected {len(pred)} labels, got shape {labels.shape}")
        return float(np.mean(pred == labels))


__all__ = ["FusionClassifier", "FusionNet", "FUSIONS"]
