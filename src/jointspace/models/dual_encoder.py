r"""CLIP-style dual (or multi) encoder: a tower per modality plus a projection head into one
shared d-dimensional space, trained with the chapter's contrastive loss.

The chapter's case study embeds texts :math:`E_t` and images :math:`E_a` into one space and
trains on :math:`C = E_t E_a^\top / \tau` with :math:`\mathcal{L} = \tfrac12(\ell_{text} +
\ell_{image})` (:mod:`jointspace.objectives.contrastive`).  Here each modality's items go
through a frozen pretrained tower (EfficientNet-Lite0 for images, MiniLM for texts, read from
the embedding cache) or arrive as feature vectors, then through a trainable head
(standardisation, then linear or a two-layer MLP), and are L2-normalised.  Training is
:func:`jointspace.train.fit_dual_encoder`.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from .._validation import check_choice, check_float, check_int, check_matrix, check_modality_names
from ..data.pairs import Pairs
from ..errors import InputError
from ..objectives.contrastive import MAX_LOGIT_SCALE
from ._dual_encoder_nets import DualEncoderNet, ProjectionHead  # noqa: F401  (ProjectionHead: public name)
from ._dual_encoder_checks import MAX_WIDTH, _check_params, _check_private
from ._standardise import feature_scale
from .base import JointModel, fit_or_keep, register_model

#: the tower used for a modality whose items are not feature vectors
DEFAULT_TOWERS = {"image": "efficientnet-lite0", "text": "minilm", "audio": "logmel"}
HEADS = ("linear", "mlp")


def _is_feature_array(items) -> bool:
    return isinstance(items, np.ndarray) and items.ndim == 2 and np.issubdtype(items.dtype, np.number)


@register_model("clip", "CLIP-style dual encoder: projection heads over towers, contrastive loss (chapter)")
class DualEncoder(JointModel):
    """Projection heads over frozen towers (or feature vectors), trained contrastively.

    Parameters
    ----------
    dim : int
        Size of the joint space.
    head : {"linear", "mlp"}
    hidden : int
        Hidden width of the MLP head.
    loss : {"clip", "siglip", "supervised"}
        The chapter's symmetric InfoNCE; sigmoid pairwise; or label-aware InfoNCE where pairs
        with the same relevance key (label, or a metadata column such as a normalised title)
        are not negatives.
    tau : float
        Initial temperature, in [0.01, 1] (learnt unless ``learn_tau`` is False), of the
        ``clip`` and ``supervised`` losses.  The ``siglip`` loss does not read it: it starts
        at scale 10 (temperature 0.1) and bias -10, as SigLIP does (Zhai et al. 2023).
    learn_tau : bool
    towers : dict of str to str, optional
        Tower name per modality for items that are not feature vectors (default:
        efficientnet-lite0 for images, minilm for texts).  A trainable tower (``cnn``,
        ``transformer``, ...) or a pretrained one with its top blocks unfrozen
        (``efficientnet-lite0-tunable``, ``minilm-tunable``) trains end to end with its head.
    tower_params : dict of str to dict, optional
        Settings of each trainable tower, e.g. ``{"image": {"trainable_blocks": 2}}``.
    modalities : sequence of str, optional
        Which modalities of the ``Pairs`` to use (default: all).
    relevance : str
        Relevance key for validation and the supervised loss (see ``Pairs.relevance_keys``).
    val_fraction : float
        Share of the training pairs held out for best-weight selection (and early stopping,
        with ``patience``), grouped by the relevance key when it is a metadata column; 0 trains
        on everything.
    cache : bool or path
        Embedding cache for tower features.
    epochs, batch_size, lr, weight_decay, warmup, grad_clip, accum_steps, precision, device,
    patience, recall_k, val_average, seed :
        Training settings, see :class:`jointspace.train.TrainConfig`.
    dropout : float
        Dropout between the two layers of an MLP head.
    input_dropout : float
        Dropout on the standardised tower features entering each head.
    tower_lr_scale : float
        Learning-rate multiplier of trainable tower parameters, e.g. 0.03 for the unfrozen
        blocks of ``efficientnet-lite0-tunable`` / ``minilm-tunable`` (:mod:`jointspace.towers.tunable`).
    init : {"random", "cca"}
        "cca" starts two linear heads at the regularised-CCA directions (canonical ridge 0.1)
        of the standardised features; contrastive training then refines them.
    private_dim : int
        0: each modality has only its shared part.  > 0: each head also yields a private part
        of this size, kept for rebuilding the head's input (the shared part stays the joint
        space that ``encode`` returns and search uses); see :meth:`encode_parts`.
    regularizers : list of str, optional
        With private parts: regularisers between the private parts of different modalities and
        between each modality's shared and private parts, as ``"NAME"`` or ``"NAME:VALUE"``
        (``frobenius``, ``abs_dot``, ``weight``, ``lagrange``, ``auglag``, ``hsic``, ``club``,
        ``adversarial``; :mod:`jointspace.objectives.regularizers`).
    recon_weight : float
        Weight of the reconstruction error of the standardised head inputs (private parts).
    run_dir : path, optional
        Checkpoints and metrics of the training run.
    progress : bool
        Show a progress bar while training.
    """

    def __init__(self, dim: int = 256, head: str = "linear", hidden: int = 1024, loss: str = "clip",
                 tau: float = 0.07, learn_tau: bool = True, towers: dict | None = None,
                 tower_params: dict | None = None, modalities=None,
                 relevance: str = "auto", val_fraction: float = 0.1, cache=True, epochs: int = 30,
                 batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.1, warmup: float = 0.05,
                 grad_clip: float | None = 1.0, accum_steps: int = 1, precision: str = "fp32",
                 patience: int | None = None, recall_k: int = 10, seed: int = 0, dropout: float = 0.0,
                 init: str = "random", run_dir=None, progress: bool = False, input_dropout: float = 0.0,
                 val_average: str = "query", tower_lr_scale: float = 1.0, device: str = "cpu",
                 private_dim: int = 0, regularizers=None, recon_weight: float = 1.0):
        self.dim = dim
        self.head = head
        self.hidden = hidden
        self.loss = loss
        self.tau = tau
        self.learn_tau = learn_tau
        self.towers = towers
        self.tower_params = tower_params
        self.modalities = modalities
        self.relevance = relevance
        self.val_fraction = val_fraction
        self.cache = cache
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup = warmup
        self.grad_clip = grad_clip
        self.accum_steps = accum_steps
        self.precision = precision
        self.device = device
        self.patience = patience
        self.recall_k = recall_k
        self.seed = seed
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.val_average = val_average
        self.tower_lr_scale = tower_lr_scale
        self.init = init
        self.run_dir = run_dir
        self.progress = progress
        self.private_dim = private_dim
        self.regularizers = regularizers
        self.recon_weight = recon_weight

    # -- features ----------------------------------------------------------------------------
    def _tower_name(self, modality: str) -> str:
        towers = dict(DEFAULT_TOWERS, **(self.towers or {}))
        if modality not in towers:
            raise InputError(f"towers: modality {modality!r} holds raw items but no tower is named for it; "
                             f"pass towers={{{modality!r}: NAME}}")
        return towers[modality]

    def raw_kind(self, modality: str, *, match_dims: bool = True) -> str | None:
        """The input kind of the tower that reads raw items of ``modality`` (see
        :meth:`JointModel.raw_kind`).

        A modality without a tower named in ``towers`` falls back to the default tower
        (MiniLM for text, EfficientNet-Lite0 for images); with ``match_dims`` that counts only
        when the model was trained on features of that tower's size.
        """
        from ..towers.base import create_tower

        if modality not in tuple(getattr(self, "modalities_", ()) or ()):
            return None
        trainable = getattr(self, "_trainable", {})
        if modality in trainable:
            return trainable[modality].modality
        try:
            tower = create_tower(self._tower_name(modality))
        except InputError:
            return None
        if modality in (self.towers or {}) or not match_dims:
            return tower.modality
        return tower.modality if int(tower.out_dim) == int(self.in_dims_.get(modality, -1)) else None

    def _trainable_tower(self, modality: str):
        """The trainable tower named for ``modality`` (a new one, from its settings), or None."""
        name = (self.towers or {}).get(modality)
        if name is None:
            return None
        from ..towers.base import TOWERS, _import_builtin, create_tower

        _import_builtin()
        if not getattr(TOWERS.get(name), "trainable", False):
            return None
        return create_tower(name, **(self.tower_params or {}).get(modality, {}))

    def features(self, modality: str, items, name: str = "items"):
        """Tower features of ``items`` (feature arrays pass through), shape (n, in_dim); for a
        trainable tower, the checked raw items (the tower runs inside the network)."""
        if modality in getattr(self, "_trainable", {}):
            from ..towers.inputs import check_items

            tower = self._trainable[modality]
            return items if tower.modality == "features" and _is_feature_array(items) \
                else check_items(tower.modality, items, name=f"{name} ({modality})")
        if _is_feature_array(items):
            # row-major: the matmuls of a column-major copy round differently
            return np.ascontiguousarray(check_matrix(items, f"{name} ({modality})", dtype=np.float32))
        from ..towers.base import create_tower
        from ..towers.cache import embed_cached

        tower = create_tower(self._tower_name(modality), modality=modality)
        return embed_cached(tower, items, cache=self.cache, progress=self.progress)

    def _query_features(self, modality: str, items):
        """:meth:`features` of items to encode.  A modality the fitted model reads only as feature
        vectors (no tower applies to it, see :meth:`raw_kind`) takes any 2-D array-like of numbers,
        shape (n, in_dim): a DataFrame or nested lists as well as an ndarray, each encoded as the
        same numbers in a row-major ndarray are; anything else is refused as not such an array
        rather than handed to a tower."""
        if modality not in self._trainable and not _is_feature_array(items) and self.raw_kind(modality) is None:
            return np.ascontiguousarray(check_matrix(items, f"items ({modality})", dtype=np.float32))
        return self.features(modality, items)

    def _train_config(self):
        from ..train import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, warmup=self.warmup, grad_clip=self.grad_clip,
                           accum_steps=self.accum_steps, precision=self.precision, device=self.device,
                           loss=self.loss, seed=self.seed, patience=self.patience, recall_k=self.recall_k,
                           val_average=self.val_average, tower_lr_scale=self.tower_lr_scale,
                           progress=self.progress, tensorboard=self.run_dir is not None)

    def _net_config(self) -> dict:
        towers = {m: {"name": t.name, "config": t.config()} for m, t in getattr(self, "_trainable", {}).items()}
        return {"in_dims": dict(self.in_dims_), "dim": int(self.dim), "head": self.head, "hidden": int(self.hidden),
                "tau": float(self.tau), "learn_tau": bool(self.learn_tau), "siglip": self.loss == "siglip",
                "dropout": float(self.dropout), "towers": json_roundtrip(towers),
                "input_dropout": float(self.input_dropout), "private_dim": int(self.private_dim),
                "regularizers": [list(r) for r in self._regularizer_specs()],
                "recon_weight": float(self.recon_weight)}

    def _regularizer_specs(self) -> list:
        from ..objectives.regularizers import parse_regularizers

        return parse_regularizers(self.regularizers)

    def _build_net(self) -> DualEncoderNet:
        return DualEncoderNet(**self._net_config())

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, pairs: Pairs, val: Pairs | None = None, resume=None) -> "DualEncoder":
        """Train the heads on ``pairs``.

        Parameters
        ----------
        pairs : Pairs
            Aligned training samples; each modality is an array (n, d) of features or raw
            items for a tower.
        val : Pairs, optional
            Validation pairs that choose the best epoch (and stop early, with ``patience``); by
            default ``val_fraction`` of ``pairs``.
        resume : path, optional
            Continue the run in this run folder / checkpoint.

        Returns
        -------
        self
        """
        return fit_or_keep(self, self._fit, pairs, val, resume)

    def _fit(self, pairs, val, resume):
        """What :meth:`fit` runs (restoring the model if it raises)."""
        from ..train import fit_dual_encoder

        if not isinstance(pairs, Pairs):
            raise InputError(f"pairs: expected a jointspace Pairs, got {type(pairs).__name__}")
        if val is not None and not isinstance(val, Pairs):
            raise InputError(f"val: expected a jointspace Pairs (or None), got {type(val).__name__}")
        check_int(self.dim, "dim", low=1, high=MAX_WIDTH)
        check_choice(self.head, "head", HEADS)
        check_int(self.hidden, "hidden", low=1, high=MAX_WIDTH)
        check_int(self.seed, "seed", low=0, high=2**32 - 1)
        _check_params(self)
        tau = check_float(self.tau, "tau", low=0.0, low_open=True)
        if not 1.0 / MAX_LOGIT_SCALE <= tau <= 1.0:   # outside, training would move it there at the first step
            raise InputError(f"tau: expected a temperature in [{1.0 / MAX_LOGIT_SCALE:g}, 1] (the logit scale 1/tau "
                             f"is kept in [1, {MAX_LOGIT_SCALE:g}], as CLIP does), got {tau:g}")
        check_float(self.dropout, "dropout", low=0.0, high=0.99)
        check_float(self.input_dropout, "input_dropout", low=0.0, high=0.99)
        _check_private(self)
        vf = check_float(self.val_fraction, "val_fraction", low=0.0, high=0.9)
        names = check_modality_names(self.modalities) if self.modalities is not None else pairs.modalities
        if len(names) < 2:
            raise InputError(f"modalities: a joint space needs at least two modalities, got {names}")
        for m in names:
            pairs[m]
        if self.loss == "supervised" and self.relevance in ("auto", "label") and pairs.labels is None:
            raise InputError("loss: 'supervised' takes the pairs that share a label as positives; these pairs have "
                             "no labels (give Pairs(..., labels=...), a relevance column, or loss='clip')")
        keys = pairs.relevance_keys(self.relevance) if self.relevance != "auto" or pairs.labels is not None \
            else pairs.relevance_keys("id")
        if val is None and vf > 0 and len(pairs) >= 20:
            # Items sharing a metadata key (e.g. a normalised title) stay on one side; class
            # labels are not groups (holding out whole classes would starve training).
            groups = keys if (self.relevance not in ("auto", "label", "id") and keys.ndim == 1) else None
            train_idx, val_idx = _group_split(len(pairs), vf, self.seed, groups)
            pairs, val = pairs.subset(train_idx), pairs.subset(val_idx)
            keys = keys[train_idx]
        self._trainable = {m: t for m in names if (t := self._trainable_tower(m)) is not None}
        if self.private_dim and self._trainable:
            raise InputError(f"private_dim: private parts rebuild the head inputs, so they need feature inputs or "
                             f"frozen towers; {', '.join(self._trainable)} trains its tower")
        feats = {m: self.features(m, pairs[m], "pairs") for m in names}
        self.in_dims_ = {m: int(self._trainable[m].out_dim if m in self._trainable else f.shape[1])
                         for m, f in feats.items()}
        torch.manual_seed(self.seed)
        net = self._build_net()
        with torch.no_grad():
            for m, f in feats.items():
                if m in self._trainable:
                    # an unfrozen pretrained tower starts as its frozen twin: standardise the
                    # head input with the twin's (cached) features, as for a frozen tower
                    twin = getattr(self._trainable[m], "frozen_twin", None)
                    if twin is None:
                        continue
                    from ..towers.cache import embed_cached

                    f = embed_cached(twin(), f, cache=self.cache, progress=self.progress)
                h = net.heads[m]
                h.mean.copy_(torch.from_numpy(f.mean(0)))
                h.inv_std.copy_(torch.from_numpy(1.0 / feature_scale(f)))
        if check_choice(self.init, "init", ("random", "cca")) == "cca":
            _init_from_cca(net, feats, names, self.dim)
        val_feats = val_keys = None
        if val is not None:
            val_feats = {m: self.features(m, val[m], "val") for m in names[:2]}
            for m, f in val_feats.items():
                if m not in self._trainable and f.shape[1] != feats[m].shape[1]:
                    raise InputError(f"val ({m}): expected {feats[m].shape[1]} features, as the training pairs have, "
                                     f"got {f.shape[1]}")
            if self.relevance != "auto" or val.labels is not None:
                vk = val.relevance_keys(self.relevance)
                val_keys = vk if vk.ndim == 1 else None
        labels = keys if self.loss == "supervised" else None
        self.train_result_ = fit_dual_encoder(net, feats, self._train_config(), val=val_feats, val_keys=val_keys,
                                              labels=labels, run_dir=self.run_dir, resume=resume,
                                              model_config=self._net_config())
        self.net_ = net.to("cpu")  # encoding, saving and search run on the CPU
        self.modalities_ = names
        return self

    # -- JointModel --------------------------------------------------------------------------
    @torch.no_grad()
    def _encode(self, modality, items) -> np.ndarray:
        x = self._query_features(modality, items)
        step = 4096
        if modality in self._trainable:
            step = self._trainable[modality].default_batch_size
        elif x.shape[1] != self.in_dims_[modality]:
            raise InputError(f"items ({modality}): expected {self.in_dims_[modality]} features, got {x.shape[1]}")
        else:
            x = torch.from_numpy(x)
        self.net_.eval()
        out = [self.net_.project(modality, x[s:s + step]).float().numpy() for s in range(0, len(x), step)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @torch.no_grad()
    def encode_parts(self, modality: str, items) -> dict:
        """The shared and private parts of ``items``, each L2-normalised.

        Returns
        -------
        dict with ``"shared"`` (n, dim) and ``"private"`` (n, private_dim) float32 arrays
        (``"private"`` has 0 columns without private parts).
        """
        from ..eval.similarity import l2_normalize

        self._check_fitted()
        if modality not in self.modalities_:
            raise InputError(f"modality: this model knows {', '.join(self.modalities_)}; got {modality!r}")
        x = self._query_features(modality, items)
        if modality in self._trainable:
            step = self._trainable[modality].default_batch_size
        else:
            if x.shape[1] != self.in_dims_[modality]:
                raise InputError(f"items ({modality}): expected {self.in_dims_[modality]} features, got {x.shape[1]}")
            x, step = torch.from_numpy(x), 4096
        self.net_.eval()
        out = [self.net_.head_output(modality, x[s:s + step]).float().numpy() for s in range(0, len(x), step)]
        z = np.concatenate(out) if out else np.zeros((0, self.dim + int(self.private_dim)), np.float32)
        return {"shared": l2_normalize(z[:, :self.dim]), "private": l2_normalize(z[:, self.dim:])}

    @property
    def temperature_(self) -> float:
        """The learnt temperature tau."""
        self._check_fitted()
        return float(1.0 / self.net_.log_scale.detach().clamp(max=np.log(100.0)).exp())

    def get_config(self) -> dict:
        cfg = {k: getattr(self, k) for k in ("dim", "head", "hidden", "loss", "tau", "learn_tau", "towers", "tower_params",
                                             "modalities", "relevance", "val_fraction", "epochs", "batch_size",
                                             "lr", "weight_decay", "warmup", "grad_clip", "accum_steps",
                                             "precision", "patience", "recall_k", "seed", "dropout", "init",
                                             "input_dropout", "val_average", "tower_lr_scale", "device",
                                             "private_dim", "recon_weight")}
        cfg["regularizers"] = [f"{n}:{v!r}" for n, v in self._regularizer_specs()] or None
        if cfg["modalities"] is not None:
            cfg["modalities"] = list(cfg["modalities"])
        cfg["cache"] = self.cache if isinstance(self.cache, bool) else str(self.cache)
        return cfg

    def _get_extra(self) -> dict:
        return {"in_dims": dict(self.in_dims_), "net": self._net_config()}

    def _set_extra(self, extra: dict) -> None:
        try:   # the sizes of an edited config.json, checked as fit does before the network is allocated
            check_int(self.dim, "dim", low=1, high=MAX_WIDTH)
            check_int(self.hidden, "hidden", low=1, high=MAX_WIDTH)
        except InputError as exc:   # load_model names config.json for it
            raise ValueError(str(exc)) from None
        self.in_dims_ = {m: int(d) for m, d in extra["in_dims"].items()}
        from ..towers.base import create_tower

        towers = extra.get("net", {}).get("towers", {})
        self._trainable = {m: create_tower(t["name"], **t["config"]) for m, t in towers.items()}

    def _get_state(self) -> dict:
        return {k: v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _set_state(self, state: dict) -> None:
        net = self._build_net()
        sd = net.state_dict()
        missing = sorted(set(sd) - set(state))
        if missing:
            raise KeyError(missing[0])
        unused = sorted(set(state) - set(sd))
        if unused:   # e.g. the heads of a modality an edited in_dims no longer lists: encoding it would fail
            raise ValueError(f"array(s) {', '.join(map(repr, unused[:3]))} belong to no part of the network "
                             f"built for in_dims {self.in_dims_}")
        net.load_state_dict({k: torch.from_numpy(np.asarray(state[k])) for k in sd})
        net.eval()
        self.net_ = net


@torch.no_grad()
def _init_from_cca(net: DualEncoderNet, feats: dict, names, dim: int) -> None:
    """Set two linear heads to the canonical directions of the standardised features."""
    from .cca import CCA

    if len(names) != 2 or any(not isinstance(net.heads[m].net, nn.Linear) for m in names):
        raise InputError("init: 'cca' needs exactly two modalities with linear heads")
    a, b = names
    za = [((torch.from_numpy(np.asarray(feats[m])) - net.heads[m].mean) * net.heads[m].inv_std).numpy()
          for m in (a, b)]
    limit = min(za[0].shape[1], za[1].shape[1], za[0].shape[0] - 1)
    if dim > limit:
        raise InputError(f"init: 'cca' needs dim <= {limit} (the smaller feature size), got {dim}")
    cca = CCA(n_components=dim, reg=0.1).fit(za[0], za[1])
    for m, w, mu in ((a, cca.x_weights_, cca.x_mean_), (b, cca.y_weights_, cca.y_mean_)):
        lin = net.heads[m].net
        lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)).float())
        lin.bias.copy_(torch.from_numpy(-(mu @ w)).float())


def json_roundtrip(obj):
    """``obj`` as JSON would give it back (tuples become lists), so configs compare equal."""
    import json

    return json.loads(json.dumps(obj))


def _group_split(n: int, fraction: float, seed: int, groups=None):
    """Indices (train, val) with ``fraction`` of the samples (whole groups) in val."""
    from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit

    dummy = np.zeros(n)
    if groups is not None and len(np.unique(groups)) >= 2:
        tr, va = next(GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(dummy, groups=groups))
    else:
        tr, va = next(ShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(dummy))
    return np.sort(tr), np.sort(va)
