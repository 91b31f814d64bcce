"""A joint model over frozen towers: raw items -> tower features -> a feature-level joint model.

``ToweredModel`` embeds each modality through its tower (cached on disk, so a dataset goes
through a pretrained network once), then fits a closed-form head such as CCA
(:mod:`jointspace.models.cca`) on the tower features.  Saved, it keeps only the towers'
names and settings (their pretrained weights are reloaded by name) and the head's state.

:func:`fit_with_towers` chooses the head's settings (PCA size before CCA, ridge, number of
components, correlation weighting) on a validation split.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._validation import check_int
from ..data.pairs import Pairs
from ..errors import InputError, NotFittedError
from .base import JointModel, create_model, l2_normalize, list_models, register_model

_HEAD_PREFIX = "head."


@register_model("towers", "frozen towers per modality + a feature-level head (CCA, regularised CCA, ...)")
class ToweredModel(JointModel):
    """Frozen towers per modality feeding a feature-level joint model.

    Parameters
    ----------
    towers : dict of str to str
        Modality -> tower name, e.g. ``{"image": "efficientnet-lite0", "text": "minilm"}``.
    head : str
        Registered feature-level model fitted on the tower outputs (``"cca"``, ``"rcca"``, ...).
    head_params : dict, optional
        Its parameters, e.g. ``{"n_components": 64, "preprocess": "pca:128"}``.
    tower_params : dict of str to dict, optional
        Settings per modality's tower, e.g. ``{"image": {"fit": "pad"}}``.
    cache : bool or str
        Embedding cache for ``fit`` and for ``encode`` of at least ``cache_min_items`` (64)
        items: True (default folder), a folder, or False.
    batch_size : int, optional
        Tower batch size (default: each tower's own).

    Attributes
    ----------
    head_ : JointModel
        The fitted head.
    modalities_ : tuple of str
    """

    @property
    def display_name(self) -> str:
        """The head and its towers, e.g. ``"cca over efficientnet-lite0 + minilm"``."""
        return f"{self.head} over {' + '.join(self.towers.values())}" if self.towers else str(self.head)

    def __init__(self, towers=None, head: str = "cca", head_params=None, tower_params=None, cache=True,
                 batch_size: int | None = None):
        _check_dict(towers, "towers", 'a mapping modality -> tower name, e.g. {"image": "efficientnet-lite0", '
                    '"text": "minilm"}')
        _check_dict(head_params, "head_params", f"parameters of the head {head!r}, e.g. {{\"n_components\": 10}}")
        _check_dict(tower_params, "tower_params", "a dict of tower settings per modality")
        for m, p in (tower_params or {}).items():
            _check_dict(p, f"tower_params[{m!r}]", f"the settings of the {m!r} tower, e.g. {{\"batch_size\": 32}}")
        self.towers = dict(towers or {})
        self.head = head
        self.head_params = dict(head_params or {})
        self.tower_params = {m: dict(p or {}) for m, p in (tower_params or {}).items()}
        self.cache = cache
        self.batch_size = batch_size
        self._tower_objs = {}
        self._check_towers()

    def _check_towers(self) -> None:
        from ..towers import create_tower

        if not isinstance(self.towers, dict) or not self.towers:
            raise InputError(f"towers: expected a mapping modality -> tower name, got {self.towers!r}")
        for mod in self.tower_params:
            if mod not in self.towers:
                raise InputError(f"tower_params: modality {mod!r} has no tower; towers: {', '.join(self.towers)}")
        for mod, name in self.towers.items():
            kind = mod if mod in ("image", "text", "audio") else None
            tower = create_tower(name, modality=kind, **self.tower_params.get(mod, {}))
            self._tower_objs[mod] = tower

    def raw_kind(self, modality: str, *, match_dims: bool = True) -> str | None:
        """The input kind of the modality's tower (see :meth:`JointModel.raw_kind`)."""
        tower = self._tower_objs.get(modality)
        return tower.modality if tower is not None and modality in getattr(self, "modalities_", ()) else None

    def tower(self, modality: str):
        """The :class:`~jointspace.towers.Tower` of one modality."""
        if modality not in self._tower_objs:
            raise InputError(f"modality: this model has towers for {', '.join(self._tower_objs)}; got {modality!r}")
        return self._tower_objs[modality]

    # -- features --------------------------------------------------------------------------
    def embed(self, modality: str, items, cache=None, progress: bool = True) -> np.ndarray:
        """Tower features of raw items, shape (n, tower.out_dim), float32 (no projection)."""
        from ..towers import embed_cached

        cache = self.cache if cache is None else cache
        return embed_cached(self.tower(modality), items, cache=cache, batch_size=self.batch_size, progress=progress)

    def embed_pairs(self, pairs: Pairs, progress: bool = True) -> Pairs:
        """The same samples with each towered modality replaced by its tower features."""
        if not isinstance(pairs, Pairs):
            raise InputError(f"pairs: expected a Pairs, got {type(pairs).__name__}")
        data = {m: self.embed(m, pairs[m], progress=progress) for m in self.towers if m in pairs}
        if len(data) < 2:
            raise InputError(f"pairs: need at least two of the towered modalities ({', '.join(self.towers)}); "
                             f"these pairs hold {', '.join(pairs.modalities)}")
        return Pairs(data, labels=pairs.labels, ids=pairs.ids, metadata=pairs.metadata,
                     label_names=pairs.label_names, name=pairs.name)

    # -- JointModel ------------------------------------------------------------------------
    def fit(self, pairs: Pairs, features: Pairs | None = None, progress: bool = True) -> "ToweredModel":
        """Embed each modality through its tower (cached) and fit the head on the features.

        Parameters
        ----------
        pairs : Pairs
            Raw items per modality (file paths, strings, arrays).
        features : Pairs, optional
            The tower features of ``pairs`` when already computed (from :meth:`embed_pairs`).
        """
        head = self._new_head()   # a head refused before the towers run over every item
        feats = features if features is not None else self.embed_pairs(pairs, progress=progress)
        head.fit(feats)
        self.head_ = head
        self.modalities_ = tuple(head.modalities_)
        return self

    def _new_head(self) -> JointModel:
        """The unfitted head; InputError naming ``head`` when no model of that name is registered."""
        known = list_models()
        if not isinstance(self.head, str) or self.head not in known:
            raise InputError(f"head: expected a registered model ({', '.join(known)}), got {self.head!r}")
        return create_model(self.head, **self.head_params)

    def project(self, modality: str, features, normalize: bool = True) -> np.ndarray:
        """Map tower features (n, tower.out_dim) into the joint space, (n, d) float32."""
        self._check_fitted()
        return self.head_.encode(modality, features, normalize=normalize)

    #: below this many items ``encode`` skips the embedding cache (search queries)
    cache_min_items = 64

    def _encode(self, modality, items):
        n = len(items)
        cache = self.cache if n >= self.cache_min_items else False
        feats = self.embed(modality, items, cache=cache, progress=n >= self.cache_min_items)
        return self.head_.encode(modality, feats, normalize=False)

    def get_config(self) -> dict:
        return {"towers": dict(self.towers), "head": self.head, "head_params": dict(self.head_params),
                "tower_params": {m: t.config() for m, t in self._tower_objs.items()},
                "cache": self.cache if isinstance(self.cache, bool) else str(self.cache),
                "batch_size": self.batch_size}

    def _get_extra(self) -> dict:
        return {"head_model": self.head_.model_name, "head_config": self.head_.get_config(),
                "head_extra": self.head_._get_extra(), "head_modalities": list(self.head_.modalities_)}

    def _set_extra(self, extra: dict) -> None:
        self._extra = extra

    def _get_state(self) -> dict:
        return {_HEAD_PREFIX + k: v for k, v in self.head_._get_state().items()}

    def _set_state(self, state) -> None:
        extra = self._extra
        head = create_model(extra["head_model"], **extra["head_config"])
        head._set_extra(extra["head_extra"])
        head._set_state({k[len(_HEAD_PREFIX):]: v for k, v in state.items() if k.startswith(_HEAD_PREFIX)})
        head.modalities_ = tuple(extra["head_modalities"])
        self.head_ = head

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")


def _check_dict(value, name: str, expected: str) -> None:
    """InputError naming ``name`` unless ``value`` is a dict or None."""
    if not isinstance(value, (dict, type(None))):
        raise InputError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")


# -- choosing settings on a validation split --------------------------------------------------

def recall_at_k(queries: np.ndarray, gallery: np.ndarray, query_keys, gallery_keys, k: int = 10) -> float:
    """Fraction of queries with a relevant gallery item (equal key) among the top ``k`` by cosine.

    Parameters
    ----------
    queries : ndarray, shape (nq, d)
    gallery : ndarray, shape (ng, d)
    query_keys : array, shape (nq,)
    gallery_keys : array, shape (ng,)
    """
    from ..eval.metrics import top_k_recall

    q = l2_normalize(np.asarray(queries, dtype=np.float32))
    g = l2_normalize(np.asarray(gallery, dtype=np.float32))
    return top_k_recall(q, g, query_keys, gallery_keys, k)


def _rank(x: np.ndarray) -> int:
    """Rank of the covariance of ``x`` with the tolerance the CCA solver uses."""
    xc = np.asarray(x, dtype=np.float64) - x.mean(0)
    ev = np.linalg.svd(xc, compute_uv=False) ** 2
    if not ev.size or ev[0] <= 0:
        return 0
    return int((ev > ev[0] * xc.shape[1] * np.finfo(np.float64).eps * 100).sum())


def _head_grid(head: str, p: int, q: int, n: int, grid: dict | None, fixed: dict):
    """The searched values; a setting the caller fixed in ``fixed`` (head parameters) is not searched."""
    from ..eval.search_spaces import HEAD_COMPONENTS, HEAD_PCA, HEAD_REGS, HEAD_WEIGHTS

    grid = dict(grid or {})
    pcas = grid.get("pca", list(HEAD_PCA))
    regs = grid.get("reg", [0.0] if head == "cca" else list(HEAD_REGS))
    comps = grid.get("n_components", list(HEAD_COMPONENTS))
    weights = grid.get("weight", list(HEAD_WEIGHTS))
    if "preprocess" in fixed:
        pcas = [None]
    if head == "cca":
        regs = [0.0]  # plain CCA has no ridge: other values would only repeat the same fit
    elif "reg" in fixed:
        regs = [fixed["reg"]]
    if "n_components" in fixed:
        comps = [check_int(fixed["n_components"], "n_components", low=1)]
    if "weight" in fixed:
        weights = [fixed["weight"]]
    from .cca import check_weight

    return pcas, regs, comps, [check_weight(w) for w in weights]


def fit_with_towers(train: Pairs, towers: dict, head: str = "cca", head_params: dict | None = None,
                    val_pairs: Pairs | None = None, *, tower_params: dict | None = None, relevance: str = "auto",
                    directions=None, grid: dict | None = None, cache=True, batch_size: int | None = None,
                    progress: bool = True, k: int = 10, n_folds: int | None = None):
    """Fit a :class:`ToweredModel`, choosing the head's settings on ``val_pairs`` or by
    ``n_folds``-fold cross-validation on the training features.

    For a CCA-family head (``"cca"``, ``"rcca"``, ``"pls"``) and a validation split, every
    combination of PCA size before CCA (per view, capped by the feature size), ridge ``reg``,
    number of components and correlation weight (component k scaled by rho_k ** weight) is
    scored by the mean Recall@``k`` over ``directions`` on ``val_pairs``; the best is refitted
    on ``train``.  One CCA fit serves every number of components (its leading components do
    not depend on how many are kept).  Another closed-form head with a search space (kernel
    CCA, multiset CCA, SM, supervised CCA, SCM: :mod:`jointspace.eval.search_spaces`) has its
    settings chosen on ``val_pairs`` over that space by the same Recall@``k``
    (:func:`jointspace.eval.selection.choose_settings`); other heads are fitted as given.

    With ``n_folds`` and no ``val_pairs``, every head with a search space (the CCA heads
    included, over the same PCA sizes, ridges, components and weights) is chosen by
    ``n_folds``-fold cross-validated Recall@``k`` on the training features instead
    (:func:`~jointspace.eval.selection.choose_settings`): the choice then rests on every
    training pair rather than on a small validation split, which is what ``jointspace fit``
    does.

    Parameters
    ----------
    train : Pairs
        Raw training items for the towered modalities.
    towers : dict of str to str
        Modality -> tower name.
    head : str
        The head model (``"cca"`` searches PCA, components and weight; ``"rcca"`` also the
        ridge).
    head_params : dict, optional
        Fixed head parameters, used as given: ``n_components``, ``reg``, ``weight`` or
        ``preprocess`` named here are not searched on ``val_pairs`` (the others still are).
    val_pairs : Pairs, optional
        Validation items (same modalities).
    relevance : str
        How validation relevance is decided (``Pairs.relevance_keys``), e.g. ``"title_key"``.
    directions : list of (query, target), optional
        Default: both directions between the first two towered modalities.
    grid : dict, optional
        Overrides of the searched values: keys ``pca``, ``reg``, ``n_components``, ``weight``
        (validation-split search only).
    n_folds : int, optional
        Choose by cross-validation on ``train`` with this many folds (when ``val_pairs`` is None).

    Returns
    -------
    model : ToweredModel
        Fitted on ``train``.
    report : dict
        ``"best"`` (chosen head parameters, validation score) and ``"trials"`` (every
        combination tried with its score); after cross-validation also ``"selection"``
        (:meth:`~jointspace.eval.selection.SelectionResult.summary`).
    """
    head_params = dict(head_params or {})
    model = ToweredModel(towers=towers, head=head, head_params=head_params, tower_params=tower_params,
                         cache=cache, batch_size=batch_size)
    model._new_head()   # an unknown head or parameter refused before the towers run
    feats = model.embed_pairs(train, progress=progress)
    from ..eval.search_spaces import has_search_space

    if not has_search_space(head) or (val_pairs is None and n_folds is None):
        model.fit(train, features=feats)
        return model, {"best": {"head_params": head_params}, "trials": []}
    mods = [m for m in towers if m in feats.modalities][:2]
    if val_pairs is None:
        return _fit_searched_head(model, feats, None, head_params, relevance=relevance, k=k, n_folds=n_folds,
                                  directions=directions or [(mods[1], mods[0]), (mods[0], mods[1])])
    vfeats = model.embed_pairs(val_pairs, progress=progress)
    if head not in ("cca", "rcca", "pls"):
        return _fit_searched_head(model, feats, vfeats, head_params, relevance=relevance,
                                  directions=directions, k=k)
    head_params.setdefault("modalities", mods)
    directions = directions or [(mods[1], mods[0]), (mods[0], mods[1])]
    vkeys = val_pairs.relevance_keys(relevance)
    x, y = feats[mods[0]], feats[mods[1]]
    pcas, regs, comps, weights = _head_grid(head, x.shape[1], y.shape[1], len(feats), grid, head_params)
    # canonical pairs are bounded by the ranks (e.g. a text view of 20 distinct sentences)
    rank = min(_rank(x), _rank(y))
    trials = []
    seen = set()
    for pca, reg in itertools.product(pcas, regs):
        # PCA keeps at most min(n_samples, n_features) components
        px = None if pca is None or pca >= x.shape[1] else min(int(pca), len(feats) - 1)
        py = None if pca is None or pca >= y.shape[1] else min(int(pca), len(feats) - 1)
        sig = (px, py, reg)
        if sig in seen:
            continue
        seen.add(sig)
        pre = head_params["preprocess"] if "preprocess" in head_params else \
            {mods[0]: f"pca:{px}" if px else None, mods[1]: f"pca:{py}" if py else None}
        dims = min(px or x.shape[1], py or y.shape[1], len(feats) - 1, rank if head == "cca" else len(feats))
        kmax = min(max(comps), dims)
        params = {**head_params, "preprocess": pre, "n_components": kmax, "weight": 0.0}
        if head != "cca":
            params["reg"] = reg
        try:
            fitted = create_model(head, **params).fit(feats)
        except (InputError, np.linalg.LinAlgError) as exc:
            trials.append({"pca": pca, "reg": reg, "error": str(exc)})
            continue
        z = {m: fitted.encode(m, vfeats[m], normalize=False) for m in mods}
        rho = np.clip(fitted.canonical_correlations_, 0, None)
        for kk, w in itertools.product(sorted({min(c, kmax) for c in comps}), weights):
            scale = rho[:kk] ** w
            score = float(np.mean([recall_at_k(z[a][:, :kk] * scale, z[b][:, :kk] * scale, vkeys, vkeys, k)
                                   for a, b in directions]))
            trials.append({"pca": pca, "reg": reg if head != "cca" else 0.0, "n_components": kk, "weight": w,
                           "score": score, "preprocess": pre})
    scored = [t for t in trials if "score" in t]
    if not scored:
        raise InputError(f"head: no setting of {head!r} could be fitted on these features: {trials[0]['error']}")
    best = max(scored, key=lambda t: (t["score"], -t["n_components"]))
    chosen = {**head_params, "preprocess": best["preprocess"], "n_components": best["n_components"],
              "weight": best["weight"]}
    if "n_components" in head_params:  # as given: the head refuses a size the features cannot hold
        chosen["n_components"] = head_params["n_components"]
    if head != "cca":
        chosen["reg"] = best["reg"]
    model = ToweredModel(towers=towers, head=head, head_params=chosen, tower_params=tower_params, cache=cache,
                         batch_size=batch_size)
    model.fit(train, features=feats)
    return model, {"best": {"head_params": chosen, "score": best["score"], "metric": f"R@{k}",
                            "directions": [f"{a}->{b}" for a, b in directions]}, "trials": trials}


def _fit_searched_head(model: ToweredModel, feats: Pairs, vfeats: Pairs | None, head_params: dict, *,
                       relevance: str, directions, k: int, n_folds: int = 5):
    """A closed-form head with a search space: its settings chosen on the validation features
    ``vfeats``, or by ``n_folds``-fold CV on ``feats`` when there are none, over its search
    space (:mod:`jointspace.eval.search_spaces`), scored by Recall@``k`` averaged over
    ``directions``; the given ``head_params`` are kept.  Where the held-out items number at
    most ``2 k`` (a small collection's folds), Recall@``k`` is near 1 for every setting and
    cannot choose: mAP scores them instead."""
    from ..eval.selection import choose_settings

    held_out = len(vfeats) if vfeats is not None else len(feats) // n_folds
    score_key = f"R@{k}" if held_out > 2 * k else "mAP"
    res = choose_settings(model.head, feats, given=head_params, val=vfeats, relevance=relevance,
                          score_key=score_key, directions=directions, n_folds=n_folds)
    fitted = ToweredModel(towers=model.towers, head=model.head, head_params=dict(res.settings),
                          tower_params=model.tower_params, cache=model.cache, batch_size=model.batch_size)
    fitted.head_ = res.model  # refitted on all of ``feats`` by choose_settings
    fitted.modalities_ = tuple(res.model.modalities_)
    trials = [{kk: v for kk, v in row.items() if kk != "fold_scores"} for row in res.table]
    return fitted, {"best": {"head_params": dict(res.settings), "score": res.best_score, "metric": score_key,
                             "protocol": res.protocol, "seconds": res.seconds}, "trials": trials,
                    "selection": res.summary()}
