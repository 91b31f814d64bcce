"""Choosing model settings by cross-validated retrieval on the training split only.

:func:`select_by_cv` is a small ``GridSearchCV`` for joint models: every setting of a grid is
fitted on k - 1 folds of the *training* pairs and scored by cross-modal retrieval (mean of a
metric over every direction, :func:`jointspace.eval.retrieval.evaluate_retrieval`) on the
held-out fold; the test split is never touched.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold, ParameterGrid, StratifiedKFold

from .._validation import check_int
from ..data.pairs import Pairs
from ..errors import InputError
from .report import RANK_METRICS


#: counts in a retrieval result, not scores
_COUNTS = ("n_queries", "n_skipped")


def _fold_score(res: dict, score_key: str) -> float:
    """Mean of ``score_key`` over the directions of one :func:`evaluate_retrieval` result."""
    values = [x for k, x in res.items() if k.endswith("/" + score_key)]
    if not values or score_key in _COUNTS:
        known = list(dict.fromkeys(k.rsplit("/", 1)[1] for k in res if k.rsplit("/", 1)[1] not in _COUNTS))
        raise InputError(f"score_key: expected one of {', '.join(known)}; got {score_key!r}")
    return float(np.mean(values))


def param_grid(grid) -> list[dict]:
    """All settings of a ``{name: [values]}`` grid (or a list of such grids), as dicts."""
    return list(ParameterGrid(grid))


def cv_folds(pairs: Pairs, n_folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) row indices of ``n_folds`` shuffled folds.

    Folds are stratified by label when the pairs have single labels and at least one class
    has ``n_folds`` members (scikit-learn's ``StratifiedKFold``; smaller classes then miss
    from some folds).  When no class is that large (e.g. labels that are nearly pair ids),
    stratification is impossible and plain ``KFold`` folds are used: a sample's items stay
    together in one fold, so every held-out query still finds its own partner and the
    held-out scores keep their meaning.

    Parameters
    ----------
    pairs : Pairs
        N samples.
    n_folds : int
        2 .. N.
    seed : int
        Seed of the shuffle, 0 to 2**32 - 1.

    Returns
    -------
    list of (train, validation) index arrays
    """
    n_folds = check_int(n_folds, "n_folds", low=2)
    seed = check_int(seed, "seed", low=0, high=2**32 - 1)
    if n_folds > len(pairs):
        raise InputError(f"pairs: {n_folds}-fold cross-validation needs at least {n_folds} pairs, got {len(pairs)}")
    dummy = np.zeros(len(pairs))
    if pairs.labels is not None and pairs.labels.ndim == 1:
        counts = np.unique(pairs.labels, return_counts=True)[1]
        if counts.max() >= n_folds:
            with warnings.catch_warnings():   # classes smaller than n_folds: said above, not a fault
                warnings.filterwarnings("ignore", "The least populated class", UserWarning)
                return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(dummy, pairs.labels))
    return list(KFold(n_folds, shuffle=True, random_state=seed).split(dummy))


@dataclass
class SelectionResult:
    """Outcome of :func:`select_by_cv`.

    Attributes
    ----------
    best_params : dict
        The setting with the best mean held-out score: the highest, or the lowest for the
        rank metrics ``medR`` and ``meanR``.
    best_score : float
    table : list of dict
        One row per setting tried: its parameters, ``"score"`` (mean over folds and
        directions) and ``"fold_scores"``. Settings that could not be fitted are left out.
    model : JointModel or None
        The best setting refitted on all the training pairs (``refit=True``).
    """

    best_params: dict
    best_score: float
    table: list = field(default_factory=list)
    model: object = None
    #: every constructor argument of the chosen model: the fixed and given ones and ``best_params``
    settings: dict = field(default_factory=dict)
    #: the settings the caller gave (kept, not searched); from :func:`choose_settings`
    given: dict = field(default_factory=dict)
    #: how the score was measured: ``"5-fold CV"``, ``"validation split"`` or ``"none"`` (nothing searched)
    protocol: str = ""
    score_key: str = "mAP"
    #: wall-clock seconds of the search and the refit
    seconds: float = 0.0
    #: where the search space comes from (a bench and what its CV chose)
    source: str = ""

    def summary(self) -> dict:
        """A JSON-ready record of the choice: settings, score, protocol, time, table size."""
        return _jsonable({"settings": self.settings, "chosen": self.best_params, "given": self.given,
                          "score": None if self.best_score is None or not np.isfinite(self.best_score)
                          else float(self.best_score), "metric": self.score_key, "protocol": self.protocol,
                          "n_tried": len(self.table), "seconds": round(float(self.seconds), 3),
                          "source": self.source})


def select_by_cv(model, grid, pairs: Pairs, *, fixed: dict | None = None, derive: dict | None = None,
                 n_folds: int = 5, seed: int = 0, relevance: str = "auto", score_key: str = "mAP",
                 directions=None, refit: bool = True, progress=None, val: Pairs | None = None) -> SelectionResult:
    """Pick the setting whose mean held-out retrieval score is best.

    The best score is the highest, except for the rank metrics ``medR`` and ``meanR``
    (:data:`RANK_METRICS`), where it is the lowest.

    Parameters
    ----------
    model : str or callable
        A registered model name, or ``make_model(**params) -> JointModel`` (unfitted).
    grid : dict of str to list, or list of such dicts
        Settings to try (as scikit-learn's ``ParameterGrid``); each is fitted once per fold.
    pairs : Pairs
        The training split; folds are drawn from it only.
    fixed : dict, optional
        Parameters shared by every setting.
    derive : dict of str to list, optional
        Settings a fitted model can switch to without refitting, through
        ``model.derive(**setting)`` (e.g. fewer CCA components, another component
        weighting); every combination is scored from each fitted model.
    n_folds : int
    seed : int
    relevance : str
        ``Pairs.relevance_keys`` rule for the held-out folds.
    score_key : str
        Metric averaged over the directions: ``"mAP"``, ``"R@1"``, ``"R@5"``, ``"R@10"``,
        ``"MRR"``, ``"nDCG@10"`` (maximised) or ``"medR"``, ``"meanR"`` (minimised).
    directions : list, optional
        Retrieval directions to average (default: every direction).
    refit : bool
        Refit the best setting on all of ``pairs`` (``result.model``).
    progress : callable, optional
        Called with no argument after each grid setting.
    val : Pairs, optional
        Score every setting on this split, fitted on all of ``pairs``, instead of on folds
        of ``pairs`` (``n_folds`` and ``seed`` are then unused).

    Returns
    -------
    SelectionResult

    Raises
    ------
    InputError
        Bad arguments, an unknown ``score_key`` (found at the first evaluation), or no
        setting that could be fitted.
    """
    from threadpoolctl import threadpool_limits

    from ..models.base import create_model

    if not isinstance(pairs, Pairs):
        raise InputError(f"pairs: expected a Pairs, got {type(pairs).__name__}")
    if not isinstance(score_key, str):
        raise InputError(f"score_key: expected a metric name such as 'mAP', got {score_key!r}")
    fixed = dict(fixed or {})
    make = (lambda **p: create_model(model, **fixed, **p)) if isinstance(model, str) else \
        (lambda **p: model(**fixed, **p))
    settings = param_grid(grid)
    if not settings:
        raise InputError("grid: expected at least one setting, got an empty grid")
    if val is not None and not isinstance(val, Pairs):
        raise InputError(f"val: expected a Pairs, got {type(val).__name__}")
    start = time.perf_counter()
    folds = [(pairs, val)] if val is not None else \
        [(pairs.subset(tr), pairs.subset(va)) for tr, va in cv_folds(pairs, n_folds, seed)]
    variants = param_grid(derive) if derive else [{}]
    table, origin, failures = [], [], []
    for params in settings:
        try:
            # many small fits: BLAS threads only add contention here
            with threadpool_limits(limits=1):
                results = [[_evaluate_variant(fitted, var, val_pairs, relevance, directions) for var in variants]
                           for fitted, val_pairs in ((make(**params).fit(train), v) for train, v in folds)]
        except InputError as exc:
            failures.append(exc)
            continue  # e.g. more components than a fold's rank allows
        finally:
            if progress is not None:
                progress()
        # outside the try: an unknown score_key is the caller's error, not a setting that failed
        for v, var in enumerate(variants):
            if any(row[v] is None for row in results):
                continue  # a derived setting this fit cannot give (e.g. more components than it has)
            scores = np.array([_fold_score(row[v], score_key) for row in results])
            table.append({**params, **var, "score": float(scores.mean()), "fold_scores": scores.tolist()})
            origin.append((params, var))
    if not table:
        # every setting failed alike, or each on the same fixed parameter (a bound that depends
        # on the searched values, as multiset CCA's rank under ridge): that parameter is at fault
        errors = [str(e) for e in failures]
        named = {e.split(":", 1)[0] for e in errors}
        if len(errors) == len(settings) and (len(set(errors)) == 1 or (len(named) == 1 and named <= set(fixed))):
            raise failures[0].with_traceback(None)   # as raised, so its kind (e.g. ModalitiesToName) is kept
        raise InputError("grid: no setting could be fitted on the training folds"
                         + (f" (the first failed with: {errors[0]})" if errors else ""))
    pick = min if score_key in RANK_METRICS else max
    i = pick(range(len(table)), key=lambda j: table[j]["score"])
    best = {k: v for k, v in table[i].items() if k not in ("score", "fold_scores")}
    result = SelectionResult(best_params=best, best_score=table[i]["score"], table=table,
                             settings={**fixed, **best}, score_key=score_key,
                             protocol="validation split" if val is not None else f"{len(folds)}-fold CV")
    if refit:
        fit_params, var = origin[i]
        fitted = make(**fit_params).fit(pairs)
        result.model = fitted.derive(**var) if var else fitted
    result.seconds = time.perf_counter() - start
    return result


def _evaluate_variant(fitted, var: dict, val: Pairs, relevance, directions):
    """Retrieval on ``val`` of ``fitted`` switched to the derived setting ``var`` (None when the
    fitted model cannot give it)."""
    from .retrieval import evaluate_retrieval

    if var:
        try:
            fitted = fitted.derive(**var)
        except InputError:
            return None
    return evaluate_retrieval(fitted, val, relevance=relevance, directions=directions)


def _jsonable(value):
    """Tuples as lists and numpy scalars as numbers, recursively (for a JSON record)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def retrieval_map(model, pairs: Pairs, directions=None) -> dict:
    """mAP per direction and their mean (key ``"mean"``) of a fitted model on ``pairs``."""
    from .retrieval import evaluate_retrieval

    res = evaluate_retrieval(model, pairs, directions=directions, ks=(1,))
    maps = {k[:-len("/mAP")]: float(v) for k, v in res.items() if k.endswith("/mAP")}
    maps["mean"] = float(np.mean(list(maps.values())))
    return maps


def choose_settings(model: str, train: Pairs, *, given: dict | None = None, val: Pairs | None = None,
                    relevance: str = "auto", n_folds: int = 5, seed: int = 0, score_key: str = "mAP",
                    candidates: dict | None = None, space=None, refit: bool = True,
                    directions=None, score_alone: bool = False, progress=None) -> SelectionResult:
    """Fit ``model`` on ``train`` with the settings that retrieve best, keeping those given.

    The values tried are the model's search space (:mod:`jointspace.eval.search_spaces`: the
    grids the benches cross-validate), fitted to ``train``: settings named in ``given`` are
    kept as given and not searched.  Each candidate is scored by mean retrieval ``score_key``
    over every direction on ``n_folds`` held-out folds of ``train``, or on ``val`` when it
    is given; the best is refitted on all of ``train``.  A model
    with no search space (the trained models) or whose searched settings are all given is
    fitted once, with no search.

    Parameters
    ----------
    model : str
        A registered model name, e.g. ``"cca"``.
    train : Pairs
        The training split.
    given : dict, optional
        Constructor arguments the caller chose; kept as they are.
    val : Pairs, optional
        Score on this split instead of by cross-validation on ``train``.
    relevance : str
        ``Pairs.relevance_keys`` rule for held-out retrieval (``"auto"``: labels, else pair ids).
    n_folds : int
        Folds of the cross-validation.  5, as the Wikipedia bench's linear rows; its kernel
        and semantic rows use 3 to save time (there 5 folds make the choice less noisy: with 3,
        SM picks raw histograms at C=100, 97.9 % of the bench row's test mAP; with 5, 98.2 %).
    seed : int
        Seed of the folds.
    score_key : str
        Retrieval metric to maximise (``"mAP"``) or minimise (``"medR"``).
    candidates : dict, optional
        Name -> values replacing the space's values for that name (to narrow or widen a search).
    space : SearchSpace, optional
        A template to use instead of the model's own.
    refit : bool
        Refit the chosen settings on all of ``train`` (``result.model``).
    directions : list, optional
        Retrieval directions whose scores are averaged (default: every direction).
    score_alone : bool
        Score a single candidate too (by default it is only fitted: nothing to choose).
    progress : callable, optional
        Called with no argument after each fitted setting.

    Returns
    -------
    SelectionResult
        ``model`` (fitted on ``train``), ``settings`` (every constructor argument: given and
        chosen), ``best_params`` (the chosen ones), ``best_score`` (the held-out score, NaN
        when nothing was searched), ``protocol``, ``seconds``, ``source`` and ``table``
        (every candidate with its score); ``summary()`` is a JSON-ready record.

    Examples
    --------
    >>> res = choose_settings("cca", load_dataset("wikipedia", "train"))   # doctest: +SKIP
    >>> res.settings                                                        # doctest: +SKIP
    {'n_components': 9, 'weight': 1.0}
    """
    from .._validation import check_params
    from ..models.base import MODELS, _import_builtin_models, create_model
    from . import search_spaces as ss

    if not isinstance(model, str):
        raise InputError(f"model: expected a registered model name such as 'cca', got {model!r}")
    if not isinstance(train, Pairs):
        raise InputError(f"train: expected a Pairs, got {type(train).__name__}")
    if given is not None and not isinstance(given, dict):
        raise InputError(f"given: expected a dict of settings, got {type(given).__name__}")
    given = dict(given or {})
    _import_builtin_models()
    check_params(f"model {model!r}", MODELS.get(model), given)
    for what, extra in (("candidates", candidates),):
        if extra is not None:
            check_params(f"{what} of model {model!r}", MODELS.get(model), dict(extra))
    start = time.perf_counter()
    folds_for_limits = 1 if val is not None else n_folds
    rs = None
    if model == "scm" and space is None:
        result = _choose_scm(train, given, val=val, relevance=relevance, n_folds=n_folds, seed=seed,
                             score_key=score_key, candidates=candidates, refit=refit, directions=directions,
                             score_alone=score_alone, progress=progress)
    elif space is None and not ss.has_search_space(model):
        result = None
    else:
        rs = ss.resolve_space(model, train, given, space=space, candidates=candidates, n_folds=folds_for_limits)
        rs.n_folds = n_folds
        if rs.n_settings == 1 and not rs.derive and not score_alone:
            result = None  # every searched setting was given
        else:
            result = select_by_cv(model, rs.grid, train, fixed=rs.fixed, derive=rs.derive or None,
                                  n_folds=n_folds, seed=seed, relevance=relevance,
                                  score_key=score_key, directions=directions, refit=refit, progress=progress,
                                  val=val)
            result.source = rs.source
    if result is None:
        settings = dict(given) if rs is None else {**rs.fixed, **param_grid(rs.grid)[0]}
        fitted = create_model(model, **settings).fit(train) if refit else None
        result = SelectionResult(best_params={}, best_score=float("nan"), model=fitted, settings=settings,
                                 protocol="none", score_key=score_key)
    result.given = given
    result.seconds = time.perf_counter() - start
    return result


def scm_base_candidates(base: str, base_settings: dict, train: Pairs, *, n_folds: int, components=None) -> list[dict]:
    """``base_params`` SCM tries over one base: its chosen settings at each size of
    :data:`~jointspace.eval.search_spaces.SCM_COMPONENTS` (capped by what the base can fit).

    Parameters
    ----------
    base : str
        The joint model under SCM (``"cca"``, ``"kcca"``, ``"scca"``, ...).
    base_settings : dict
        Its settings (e.g. chosen by :func:`choose_settings`).
    train : Pairs
    n_folds : int
        Folds the sizes are capped for.
    components : sequence of int, optional
        Sizes to try instead of the space's (used as listed, capped).
    """
    from . import search_spaces as ss

    ladder = tuple(components or ss.SCM_COMPONENTS.get(base, ()))
    if not ladder:
        return [dict(base_settings)]
    views = ss.view_names(base, train, base_settings)
    limit, narrow = ss.component_limit(base, train, views, base_settings.get("preprocess"), base_settings, n_folds)
    if components:
        ks = sorted({k for k in ladder if k <= limit}) or [limit]
    else:
        ks = ss.component_candidates(ladder, limit, narrow)
    return [{**base_settings, "n_components": k} for k in ks]


def _choose_scm(train, given, *, val, relevance, n_folds, seed, score_key, candidates, refit, directions,
                score_alone, progress):
    """SCM: each base's settings chosen by its own search, then C and the base's size."""
    from . import search_spaces as ss

    folds = n_folds
    candidates = dict(candidates or {})
    bases = [given["base"]] if "base" in given else list(candidates.get("base", ss.SCM_BASES))
    grids = []
    for base in bases:
        if "base_params" in given:
            base_params = [dict(given["base_params"] or {})]
        elif "base_params" in candidates:
            base_params = [dict(p or {}) for p in candidates["base_params"]]
        else:
            space = ss.SCM_CCA_SPACE if base == "cca" else None
            if space is None and not ss.has_search_space(base):
                base_params = [{}]
            else:
                sub = choose_settings(base, train, val=val, relevance=relevance, n_folds=folds, seed=seed,
                                      score_key=score_key, space=space, refit=False, directions=directions)
                base_params = scm_base_candidates(base, sub.settings, train, n_folds=1 if val is not None else folds)
        grid = {"base": [base], "base_params": base_params}
        if "C" not in given:
            grid["C"] = list(candidates.get("C", ss.SCM_C))
        grids.append(grid)
    fixed = {k: v for k, v in given.items() if k not in ("base", "base_params")}
    if len(param_grid(grids)) == 1 and not score_alone:
        return None
    result = select_by_cv("scm", grids, train, fixed=fixed, n_folds=folds, seed=seed, relevance=relevance,
                          score_key=score_key, directions=directions, refit=refit, progress=progress, val=val)
    result.source = ("Wikipedia bench, SCM rows (3-fold CV): each base (CCA, kernel CCA, supervised CCA) chosen "
                     "by its own CV, then C and the base's size; chose the kernel-CCA base")
    return result
