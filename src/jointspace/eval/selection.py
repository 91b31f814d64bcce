"""Choosing model settings by cross-validated retrieval on the training split only."""

from __future__ import annotations

import itertools

import numpy as np

from ..data.pairs import Pairs
from ..errors import InputError


def param_grid(grid: dict) -> list[dict]:
    """All combinations of a ``{name: [values]}`` grid, as a list of dicts."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def cv_folds(pairs: Pairs, n_folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) row indices; stratified by label when there are single labels."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if n_folds < 2 or n_folds > len(pairs):
        raise InputError(f"n_folds: expected 2..{len(pairs)}, got {n_folds}")
    dummy = np.zeros(len(pairs))
    if pairs.labels is not None and pairs.labels.ndim == 1:
        return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(dummy, pairs.labels))
    return list(KFold(n_folds, shuffle=True, random_state=seed).split(dummy))


def select_by_cv(make_model, grid: dict, pairs: Pairs, *, derive: dict | None = None, n_folds: int = 5,
                 seed: int = 0, relevance: str = "auto", score_key: str = "mAP",
                 progress=None) -> tuple[dict, list[dict]]:
    """Pick the settings whose mean validation retrieval score is highest.

    Parameters
    ----------
    make_model : callable
        ``make_model(**params) -> JointModel`` (unfitted).
    grid : dict of str to list
        Settings to try (every combination), each combination fitted once per fold.
    derive : dict of str to list, optional
        Settings a fitted model can switch to without refitting, through
        ``model.derive(**setting)`` (e.g. fewer CCA components, another weighting); every
        combination is scored from each fitted model.
    pairs : Pairs
        The training split; folds are drawn from it only.
    score_key : str
        Metric averaged over every retrieval direction (e.g. ``"mAP"``).

    Returns
    -------
    best : dict
        The winning settings.
    table : list of dict
        Every setting with its mean score (settings that failed to fit are left out).
    """
    from .retrieval import evaluate_retrieval

    from threadpoolctl import threadpool_limits

    folds = [(pairs.subset(tr), pairs.subset(va)) for tr, va in cv_folds(pairs, n_folds, seed)]
    variants = param_grid(derive) if derive else [{}]
    table = []
    for params in param_grid(grid):
        scores = np.zeros((len(folds), len(variants)))
        try:
            # many small fits: BLAS threads only add contention here
            with threadpool_limits(limits=1):
                for f, (train, val) in enumerate(folds):
                    model = make_model(**params).fit(train)
                    for v, var in enumerate(variants):
                        res = evaluate_retrieval(model.derive(**var) if var else model, val, relevance=relevance)
                        scores[f, v] = np.mean([x for k, x in res.items() if k.endswith("/" + score_key)])
        except InputError:
            continue  # e.g. more components than a fold's rank allows
        finally:
            if progress is not None:
                progress()
        for v, var in enumerate(variants):
            table.append({**params, **var, score_key: float(scores[:, v].mean())})
    if not table:
        raise InputError("grid: no setting could be fitted on the training folds")
    best = max(table, key=lambda r: r[score_key])
    return {k: best[k] for k in [*grid, *(derive or {})]}, table
