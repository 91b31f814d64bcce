"""Search spaces of the closed-form models: what ``fit`` chooses among when no settings are given.

Every value here is one a benchmark of :mod:`jointspace.bench` cross-validates (or searches on
its validation split), and the benches import them from here, so a user's ``fit`` with no
settings and a bench row search the same values (one direction of imports: the library never
imports a bench).  Two kinds of data gave them:

* **small views** (each at most :data:`WIDE_DIM` features), from the Wikipedia bench
  (128-d SIFT histograms, 10-d topic proportions; 2,173 training pairs): 5-fold CV on the
  training split for CCA, regularised CCA and PLS, 3-fold for kernel CCA, SM, SCM and
  supervised CCA.  The values its CV chose are noted beside each space.
* **wide views** (tower features, e.g. EfficientNet-Lite0 1280-d and MiniLM 384-d), from the
  OpenClipart bench: the head grid of :func:`jointspace.models.towered.fit_with_towers` and the
  kernel-CCA row, both chosen on OpenClipart's validation split.

A space is a template: :func:`resolve_space` fits it to one training set and to the settings a
caller gave.  The number of components is capped by what the data holds (e.g. the 10-d topic
view has rank 9, so plain CCA tries 3, 5, 7, 9; regularised CCA also 10) and extended by
:data:`MORE_COMPONENTS` where a larger data set holds more; Hellinger (square-root) maps are
offered for non-negative views; PCA sizes at or above a view's width are dropped.
:func:`jointspace.eval.selection.choose_settings` runs the search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

#: a view with more features than this is "wide" (tower features): the OpenClipart spaces apply
WIDE_DIM = 256

#: component counts tried beyond a space's own list, where the data holds that many
MORE_COMPONENTS = (16, 32, 64, 128, 256)

SMALL, WIDE = "small", "wide"


@dataclass(frozen=True)
class SearchSpace:
    """Settings tried for one model on one kind of data (a template; see :func:`resolve_space`).

    Attributes
    ----------
    grid : dict
        Name -> candidate values; every combination is fitted.
    derive : dict
        Name -> candidates read off each fit through ``model.derive`` (no refit).
    fixed : dict
        Settings shared by every candidate.
    components : tuple of int
        ``n_components`` tried (capped by the data, extended by :data:`MORE_COMPONENTS`).
    derive_components : bool
        ``n_components`` read off one fit at the largest count (nested canonical pairs).
    preprocess : {None, "hellinger", "pca"}
        Data-dependent ``preprocess`` candidates: none; no map or a square root on each
        non-negative view (and on all of them); or PCA to each size of ``pca`` on the views
        wider than it.
    pca : tuple
        PCA sizes (None: no PCA) for ``preprocess="pca"``.
    n_folds : int
        Folds of the cross-validation the bench ran (a user's ``choose_settings`` runs 5).
    source : str
        Where the values come from, and what the bench's CV chose.
    """

    grid: dict = field(default_factory=dict)
    derive: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    components: tuple = ()
    derive_components: bool = False
    preprocess: str | None = None
    pca: tuple = ()
    n_folds: int = 5
    source: str = ""


# -- the Wikipedia bench (small views) -------------------------------------------------------
#: CCA, regularised CCA, PLS (5-fold CV; bench/wikipedia.py rows).  Chosen: CCA n_components=9,
#: weight=1; regularised CCA n_components=9, reg=0.5, preprocess=standard, weight=1; PLS 10,
#: standard, weight=0.
LINEAR_COMPONENTS = (3, 5, 7, 9)
LINEAR_WEIGHTS = (0.0, 1.0)
RCCA_REGS = (1e-3, 1e-2, 0.1, 0.3, 0.5, 0.7, 0.9)
#: kernel CCA (3-fold; bench/_wikipedia_family.py).  Chosen: kernel=(rbf, poly), n_components=7,
#: reg=0.003, with the Hellinger map on the image histograms.
KCCA_COMPONENTS = (7, 9, 15)
KCCA_REGS = (0.001, 0.003, 0.01)
KCCA_KERNELS = ("rbf", ("rbf", "poly"))
#: Nystroem landmarks: exact kernel CCA at n = 2,173 is possible, but CV over a grid is slow on 2 cores
KCCA_FIXED = {"method": "nystroem", "n_features": 600, "weight": 1.0}
#: semantic matching (3-fold).  Chosen: C=10 (image histograms under the Hellinger map).
SM_C = (1.0, 10.0, 100.0)
#: supervised (three-view) CCA (3-fold).  Chosen: n_components=9, weight=4.
SCCA_COMPONENTS = (9, 15)
SCCA_WEIGHTS = (1.0, 4.0)
#: semantic correlation matching (3-fold): each base's own settings chosen first, then C and
#: the base's size.  Chosen: the kernel-CCA base, n_components=15, C=1.
SCM_C = (1.0, 10.0)
SCM_BASES = ("cca", "kcca", "scca")
SCM_COMPONENTS = {"cca": (7, 9), "kcca": (9, 15, 20), "scca": (9, 15, 20)}
#: the linear-CCA base of SCM, chosen by its own 3-fold CV.  Chosen: n_components=9, weight=1, no map.
SCM_CCA_COMPONENTS = (5, 7, 9)

# -- the OpenClipart bench (wide views: tower features) ----------------------------------------
#: the CCA heads over frozen towers (fit_with_towers, chosen on the validation split)
HEAD_PCA = (None, 64, 128, 256)
HEAD_REGS = (1e-3, 1e-2, 0.1, 0.3, 0.5, 0.7)
HEAD_COMPONENTS = (16, 32, 64, 128, 256)
HEAD_WEIGHTS = (0.0, 1.0, 2.0)
#: kernel CCA over tower features (bench/openclipart.py kernel row, chosen on val Recall@10)
KCCA_WIDE_GRID = {"reg": [0.01, 0.1], "n_components": [64, 128]}
KCCA_WIDE_FIXED = {"kernel": "rbf", "method": "nystroem", "n_features": 1500, "weight": 1.0}
KCCA_WIDE_PCA = 256


def _linear(grid=None, source=""):
    return {
        SMALL: SearchSpace(grid=dict(grid or {}), derive={"weight": list(LINEAR_WEIGHTS)},
                           components=LINEAR_COMPONENTS, derive_components=True, n_folds=5, source=source),
        WIDE: SearchSpace(grid={"reg": list(HEAD_REGS)} if grid and "reg" in grid else {},
                          derive={"weight": list(HEAD_WEIGHTS)}, components=HEAD_COMPONENTS,
                          derive_components=True, preprocess="pca", pca=HEAD_PCA, n_folds=5,
                          source="OpenClipart bench: the CCA-head grid of fit_with_towers"),
    }


_MULTISET = SearchSpace(grid={"reg": [0.0, 1e-3, 1e-2, 0.1, 0.3, 0.5]}, derive={"weight": list(LINEAR_WEIGHTS)},
                        components=LINEAR_COMPONENTS, derive_components=True, n_folds=5,
                        source="no bench cross-validates multiset CCA (fashion-3view fixes reg=0.1): "
                               "no ridge (CCA's row) and the ridge values and weights of the regularised-CCA row")

#: model name -> {SMALL: space, WIDE: space}; a model with one space uses it for all data
SPACES = {
    "cca": _linear(source="Wikipedia bench, CCA row (5-fold CV): chose n_components=9, weight=1"),
    "rcca": _linear({"reg": list(RCCA_REGS), "preprocess": ["standard"]},
                    source="Wikipedia bench, regularised CCA row (5-fold CV): chose n_components=9, reg=0.5, "
                           "preprocess=standard, weight=1"),
    "pls": _linear({"preprocess": ["standard"]},
                   source="Wikipedia bench, PLS row (5-fold CV): chose n_components=10, preprocess=standard, weight=0"),
    "kcca": {
        SMALL: SearchSpace(grid={"reg": list(KCCA_REGS), "kernel": list(KCCA_KERNELS)}, fixed=dict(KCCA_FIXED),
                           components=KCCA_COMPONENTS, derive_components=True, preprocess="hellinger", n_folds=3,
                           source="Wikipedia bench, kernel CCA row (3-fold CV): chose kernel=(rbf, poly), "
                                  "n_components=7, reg=0.003, Hellinger map on the image view"),
        WIDE: SearchSpace(grid={"reg": list(KCCA_WIDE_GRID["reg"])}, fixed=dict(KCCA_WIDE_FIXED),
                          components=tuple(KCCA_WIDE_GRID["n_components"]), derive_components=True,
                          preprocess="pca", pca=(KCCA_WIDE_PCA,), n_folds=3,
                          source="OpenClipart bench, kernel CCA row (validation split)"),
    },
    "sm": {SMALL: SearchSpace(grid={"C": list(SM_C)}, preprocess="hellinger", n_folds=3,
                              source="Wikipedia bench, SM row (3-fold CV): chose C=10, "
                                     "Hellinger map on the image view")},
    "scca": {SMALL: SearchSpace(grid={"weight": list(SCCA_WEIGHTS)}, components=SCCA_COMPONENTS,
                                preprocess="hellinger", n_folds=3,
                                source="Wikipedia bench, supervised CCA row (3-fold CV): chose n_components=9, "
                                       "weight=4, Hellinger map on the image view")},
    "mcca": {SMALL: _MULTISET},
    "gcca": {SMALL: _MULTISET},
}

#: the linear-CCA base of SCM (its own CV, before SCM's)
SCM_CCA_SPACE = SearchSpace(derive={"weight": list(LINEAR_WEIGHTS)}, components=SCM_CCA_COMPONENTS,
                            derive_components=True, preprocess="hellinger", n_folds=3,
                            source="Wikipedia bench, the linear base of SCM on CCA (3-fold CV)")

#: models whose settings are searched (``scm`` through its bases)
SEARCHED = tuple(SPACES) + ("scm",)


def has_search_space(model: str) -> bool:
    """Whether :func:`~jointspace.eval.selection.choose_settings` searches settings of ``model``."""
    return model in SEARCHED


@dataclass
class ResolvedSpace:
    """A :class:`SearchSpace` fitted to one training set and to the given settings.

    ``grid`` (a list of ParameterGrid dicts), ``derive`` and ``fixed`` go straight to
    :func:`~jointspace.eval.selection.select_by_cv`.
    """

    grid: list
    derive: dict
    fixed: dict
    n_folds: int
    source: str
    kind: str

    @property
    def n_settings(self) -> int:
        """Fitted settings per fold (the progress-bar length)."""
        from .selection import param_grid

        return len(param_grid(self.grid))


def view_names(model: str, pairs, given: dict) -> tuple[str, ...]:
    """The array modalities ``model`` fits: ``given["modalities"]``, else (two-view models)
    the first two, else every array modality."""
    if given.get("modalities") is not None:
        return tuple(given["modalities"])
    names = tuple(m for m in pairs.modalities if isinstance(pairs[m], np.ndarray))
    return names[:2] if model in ("cca", "rcca", "pls", "kcca") else names


def _pca_candidates(sizes, views, dims, n_fit: int):
    """``preprocess`` per PCA size: PCA on each view wider than it (at most n_fit - 1 directions)."""
    out = []
    for size in sizes:
        spec = None
        if size is not None:
            size = min(size, n_fit - 1)
            spec = {m: f"pca:{size}" for m in views if size < dims[m]} or None
        if spec not in out:
            out.append(spec)
    return out


def _hellinger_candidates(views, pairs):
    nonneg = [m for m in views if np.asarray(pairs[m]).size and float(np.min(pairs[m])) >= 0]
    out = [None] + [{m: "sqrt"} for m in nonneg]
    if len(nonneg) > 1:
        out.append({m: "sqrt" for m in nonneg})
    return out


def _view_size(x: np.ndarray, spec, ridged: bool) -> int:
    """Canonical variables a view can give after preprocessing ``spec``: its width under ridge,
    else its rank.  Element-wise and scaling steps are applied; a reducing step (``pca:k``,
    ``ica:k``) keeps at most k dimensions of what the view had, so it is not fitted."""
    from ..models.preprocess import build_preprocessor

    steps = [t.strip() for t in str(spec).split(",")] if spec is not None and str(spec).strip() else []
    cheap = [t for t in steps if t.split(":")[0].lower() in ("sqrt", "standard", "l2")]
    caps = [int(t.split(":")[1]) for t in steps
            if t.split(":")[0].lower() in ("pca", "ica") and len(t.split(":")) > 1 and t.split(":")[1].isdigit()]
    pre = build_preprocessor(",".join(cheap))
    if pre is not None:
        x = np.asarray(pre.fit_transform(x), dtype=np.float64)
    size = x.shape[1] if ridged else _rank(x)
    if len(cheap) < len(steps):  # a reducing step: at most its size (PCA: at most n - 1 directions)
        size = min([size, x.shape[0] - 1] + caps)
    return size


def _rank(x: np.ndarray) -> int:
    """Rank of the covariance of ``x``, with the tolerance of the CCA solver's whitening."""
    xc = x - x.mean(0)
    ev = np.linalg.eigvalsh(xc.T @ xc)
    if not ev.size or ev[-1] <= 0:
        return 0
    return int((ev > ev[-1] * x.shape[1] * np.finfo(np.float64).eps * 100).sum())


def component_limit(model: str, pairs, views, preprocess, params: dict, n_folds: int) -> tuple[int, int]:
    """(most canonical pairs a training fold allows, width of the narrowest view) for ``model``.

    Plain CCA (no ridge) is bounded by the ranks of the views, ridge models by their widths,
    kernel CCA by its landmarks, multiset CCA by the samples; every one by the samples of a
    training fold less one.
    """
    n_fit = len(pairs) - math.ceil(len(pairs) / n_folds) if n_folds > 1 else len(pairs)
    regs = params.get("reg", [0.1 if model == "rcca" else 0.0])
    regs = regs if isinstance(regs, list) else [regs]
    ridged = model == "pls" or all(np.all(np.asarray(r, dtype=float) > 0) for r in regs)
    specs = {m: preprocess.get(m) if isinstance(preprocess, dict) else preprocess for m in views}
    arrays = {m: np.asarray(pairs[m], dtype=np.float64).reshape(len(pairs), -1) for m in views}
    narrow = min(_view_size(arrays[m], specs[m], True) for m in views)
    if model == "kcca":
        nf = params.get("n_features", 1000)
        limit = n_fit - 1 if params.get("method") == "exact" else min(nf if isinstance(nf, int) else 1000, n_fit)
    else:
        # an unridged view holds as many canonical variables as its rank (10-d topic
        # proportions that sum to one: 9), a ridged one as many as its width
        ranks = [_view_size(arrays[m], specs[m], ridged) for m in views]
        if model == "scca" and pairs.labels is not None and np.asarray(pairs.labels).ndim == 1:
            ranks.append(len(np.unique(pairs.labels)) - 1)  # the one-hot label view, never ridged
        limit = min(ranks)
    return max(1, min(limit, n_fit - 1)), narrow


def component_candidates(ladder, limit: int, narrow: int) -> list[int]:
    """The ladder, then :data:`MORE_COMPONENTS` above its largest value, up to
    ``top = min(limit, max(max(ladder), narrow))``, and ``top`` itself (e.g. 10 for
    regularised CCA on a 10-d view).

    ``narrow`` is the width of the narrowest view: a space tried on narrow views (Wikipedia's
    10-d topics) grows with wider ones, up to what the model can fit (``limit``).
    """
    top = min(limit, max(max(ladder), narrow))
    more = tuple(c for c in MORE_COMPONENTS if c > max(ladder))
    return sorted({c for c in tuple(ladder) + more if c <= top} | {top})


def space_for(model: str, pairs, given: dict | None = None) -> tuple[SearchSpace, str] | None:
    """The template for ``model`` and ``pairs`` and its kind (``"small"`` or ``"wide"``), or None."""
    spaces = SPACES.get(model)
    if spaces is None:
        return None
    views = view_names(model, pairs, dict(given or {}))
    wide = any(np.asarray(pairs[m]).reshape(len(pairs), -1).shape[1] > WIDE_DIM for m in views)
    kind = WIDE if wide and WIDE in spaces else SMALL
    return spaces[kind], kind


def resolve_space(model: str, pairs, given: dict | None = None, *, space: SearchSpace | None = None,
                  candidates: dict | None = None, n_folds: int | None = None) -> ResolvedSpace:
    """Fit a search space to ``pairs`` and to the settings the caller gave.

    Parameters
    ----------
    model : str
        A model with a space (:data:`SPACES`).
    pairs : Pairs
        The training split.
    given : dict, optional
        Settings kept as given: taken out of the search.
    space : SearchSpace, optional
        Instead of the model's own template.
    candidates : dict, optional
        Name -> values that replace the template's for that name (``n_components`` and
        ``preprocess`` included, used as listed).
    n_folds : int, optional
        Folds the components are capped for (default: the template's).

    Returns
    -------
    ResolvedSpace
    """
    given = dict(given or {})
    candidates = dict(candidates or {})
    kind = "custom"
    if space is None:
        found = space_for(model, pairs, given)
        if found is None:
            raise InputError(f"model: {model!r} has no search space; models with one: {', '.join(SEARCHED)}")
        space, kind = found
    folds = space.n_folds if n_folds is None else n_folds
    views = view_names(model, pairs, given)
    for m in views:
        if not isinstance(pairs[m], np.ndarray):  # a missing modality fails here, by name
            raise InputError(f"pairs: {model!r} is fitted on feature arrays; modality {m!r} holds "
                             f"{type(pairs[m]).__name__} items (embed them first, e.g. through towers)")
    if len(views) < 2:
        raise InputError(f"pairs: {model!r} needs two array modalities; these pairs have "
                         f"{', '.join(views) or 'none'}")
    dims = {m: np.asarray(pairs[m]).reshape(len(pairs), -1).shape[1] for m in views}
    grid = {k: list(v) for k, v in space.grid.items()}
    derive = {k: list(v) for k, v in space.derive.items()}
    for k, v in candidates.items():
        if k in ("n_components", "preprocess"):
            continue
        (derive if k in derive else grid)[k] = list(v)
    fixed = {k: v for k, v in space.fixed.items() if k not in grid and k not in derive}
    for k in list(grid) + list(derive):
        if k in given:
            grid.pop(k, None)
            derive.pop(k, None)
    fixed.update(given)
    # preprocess candidates depend on the data
    if "preprocess" in given:
        pres = [given["preprocess"]]
    elif "preprocess" in candidates:
        pres = list(candidates["preprocess"])
    elif "preprocess" in grid:
        pres = grid["preprocess"]
    elif space.preprocess == "hellinger":
        pres = _hellinger_candidates(views, pairs)
    elif space.preprocess == "pca":
        n_fit = len(pairs) - math.ceil(len(pairs) / folds) if folds > 1 else len(pairs)
        pres = _pca_candidates(space.pca, views, dims, n_fit)
    else:
        pres = [fixed.get("preprocess")]
    search_pre = "preprocess" not in given and "preprocess" not in fixed and (
        "preprocess" in candidates or "preprocess" in grid or space.preprocess is not None)
    grid.pop("preprocess", None)
    ladder = tuple(candidates.get("n_components", ())) or space.components
    search_k = bool(ladder) and "n_components" not in given
    grids = []
    derive_k = set()
    for pre in pres:
        g = dict(grid)
        if search_pre:
            g["preprocess"] = [pre]
        if search_k:
            limit, narrow = component_limit(model, pairs, views, pre, {**fixed, **grid}, folds)
            if "n_components" in candidates:
                ks = sorted({k for k in ladder if k <= limit}) or [limit]
            else:
                ks = component_candidates(ladder, limit, narrow)
            if space.derive_components:
                g["n_components"] = [max(ks)]
                derive_k.update(ks)
            else:
                g["n_components"] = ks
        grids.append(g)
    if derive_k:
        derive["n_components"] = sorted(derive_k)
    grids = _merge(grids)
    return ResolvedSpace(grid=grids, derive=derive, fixed=fixed, n_folds=folds, source=space.source, kind=kind)


def _merge(grids: list) -> list:
    """One ParameterGrid dict for candidates that differ only in ``preprocess`` (the order of
    settings then matches a hand-written grid)."""
    rest = [{k: v for k, v in g.items() if k != "preprocess"} for g in grids]
    if len(grids) > 1 and all(r == rest[0] for r in rest) and all("preprocess" in g for g in grids):
        return [{**rest[0], "preprocess": [g["preprocess"][0] for g in grids]}]
    return grids
