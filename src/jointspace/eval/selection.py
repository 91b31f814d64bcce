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


def select_by_cv(make_model, grid: dict, pairs: Pairs, *, n_folds: int = 5, seed: int = 0,
                 relevance: str = "auto", score_key: str = "mAP", progress=None) -> tuple[dict, list[dict]]:
    """Pick the settings whose mean validation retrieval score is highest.

    Parameters
    ----------
    make_model : callable
        ``make_model(**params) -> JointModel`` (unfitted).
    grid : dict of str to list
        Settings to try (every combination).
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

    folds = cv_folds(pairs, n_folds, seed)
    table = []
    combos = param_grid(grid)
    for params in combos:
        scores = []
        try:
            for tr, va in folds:
                model = make_model(**params).fit(pairs.subset(tr))
                res = evaluate_retrieval(model, pairs.subset(va), relevance=relevance)
                scores.append(np.mean([v for k, v in res.items() if k.endswith("/" + score_key)]))
        except InputError:
            continue  # e.g. more components than a fold's rank allows
        finally:
            if progress is not None:
                progress()
        table.append({**params, score_key: float(np.mean(scores))})
    if not table:
        raise InputError("grid: no setting could be fitted on the training folds")
    best = max(table, key=lambda r: r[score_key])
    return {k: best[k] for k in grid}, table
