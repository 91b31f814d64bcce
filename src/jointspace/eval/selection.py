"""Choosing model settings by cross-validated retrieval on the training split only.

:func:`select_by_cv` is a small ``GridSearchCV`` for joint models: every setting of a grid is
fitted on k - 1 folds of the *training* pairs and scored by cross-modal retrieval (mean of a
metric over every direction, :func:`jointspace.eval.retrieval.evaluate_retrieval`) on the
held-out fold; the test split is never touched.
"""

from __future__ import annotations

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
        Seed of the shuffle.

    Returns
    -------
    list of (train, validation) index arrays
    """
    n_folds = check_int(n_folds, "n_folds", low=2, high=len(pairs))
    dummy = np.zeros(len(pairs))
    if pairs.labels is not None and pairs.labels.ndim == 1:
        counts = np.unique(pairs.labels, return_counts=True)[1]
        if counts.max() >= n_folds:
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


def select_by_cv(model, grid, pairs: Pairs, *, fixed: dict | None = None, derive: dict | None = None,
                 n_folds: int = 5, seed: int = 0, relevance: str = "auto", score_key: str = "mAP",
                 directions=None, refit: bool = True, progress=None) -> SelectionResult:
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
    from .retrieval import evaluate_retrieval

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
    folds = [(pairs.subset(tr), pairs.subset(va)) for tr, va in cv_folds(pairs, n_folds, seed)]
    variants = param_grid(derive) if derive else [{}]
    table, origin = [], []
    for params in settings:
        try:
            # many small fits: BLAS threads only add contention here
            with threadpool_limits(limits=1):
                results = [[evaluate_retrieval(fitted.derive(**var) if var else fitted, val,
                                               relevance=relevance, directions=directions) for var in variants]
                           for fitted, val in ((make(**params).fit(train), val) for train, val in folds)]
        except InputError:
            continue  # e.g. more components than a fold's rank allows
        finally:
            if progress is not None:
                progress()
        # outside the try: an unknown score_key is the caller's error, not a setting that failed
        scores = np.array([[_fold_score(res, score_key) for res in row] for row in results])
        for v, var in enumerate(variants):
            table.append({**params, **var, "score": float(scores[:, v].mean()),
                          "fold_scores": scores[:, v].tolist()})
            origin.append((params, var))
    if not table:
        raise InputError("grid: no setting could be fitted on the training folds")
    pick = min if score_key in RANK_METRICS else max
    i = pick(range(len(table)), key=lambda j: table[j]["score"])
    best = {k: v for k, v in table[i].items() if k not in ("score", "fold_scores")}
    result = SelectionResult(best_params=best, best_score=table[i]["score"], table=table)
    if refit:
        fit_params, var = origin[i]
        fitted = make(**fit_params).fit(pairs)
        result.model = fitted.derive(**var) if var else fitted
    return result


def retrieval_map(model, pairs: Pairs, directions=None) -> dict:
    """mAP per direction and their mean (key ``"mean"``) of a fitted model on ``pairs``."""
    from .retrieval import evaluate_retrieval

    res = evaluate_retrieval(model, pairs, directions=directions, ks=(1,))
    maps = {k[:-len("/mAP")]: float(v) for k, v in res.items() if k.endswith("/mAP")}
    maps["mean"] = float(np.mean(list(maps.values())))
    return maps
