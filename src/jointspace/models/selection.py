"""Choosing kernels, ridge and components by cross-validated retrieval on the training split.

``cross_validate_retrieval`` is a small ``GridSearchCV`` for joint models: every setting of a
parameter grid is fitted on k - 1 folds of the *training* pairs and scored by cross-modal
retrieval mAP (:func:`jointspace.eval.retrieval.evaluate_retrieval`) on the held-out fold;
the best setting is refitted on all the training pairs. The test split is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold, ParameterGrid, StratifiedKFold

from .._validation import check_int
from ..data.pairs import Pairs
from ..errors import InputError
from .base import JointModel, create_model


def retrieval_map(model: JointModel, pairs: Pairs, directions=None) -> dict:
    """mAP per direction and their mean (key ``"mean"``) of a fitted model on ``pairs``.

    Relevance is the shared label when the pairs have labels, else the pair identity.
    """
    from ..eval.retrieval import evaluate_retrieval

    res = evaluate_retrieval(model, pairs, directions=directions, ks=(1,))
    maps = {k[:-len("/mAP")]: float(v) for k, v in res.items() if k.endswith("/mAP")}
    maps["mean"] = float(np.mean(list(maps.values())))
    return maps


@dataclass
class SelectionResult:
    """Outcome of :func:`cross_validate_retrieval`.

    Attributes
    ----------
    best_params : dict
        The grid point with the highest mean held-out mAP.
    best_score : float
    table : list of dict
        One row per grid point: its parameters, ``"score"`` (mean over folds and directions)
        and ``"fold_scores"``.
    model : JointModel or None
        The best setting refitted on all the training pairs (``refit=True``).
    """

    best_params: dict
    best_score: float
    table: list = field(default_factory=list)
    model: JointModel | None = None


def cross_validate_retrieval(model: str, param_grid, pairs: Pairs, *, fixed: dict | None = None,
                             n_splits: int = 3, directions=None, seed: int = 0, refit: bool = True,
                             progress=None) -> SelectionResult:
    """Grid search of a registered model by k-fold retrieval mAP on training pairs.

    Parameters
    ----------
    model : str
        Registered model name (``"kcca"``, ``"scm"``, ...).
    param_grid : dict of str to list, or list of such dicts
        As scikit-learn's ``ParameterGrid``.
    pairs : Pairs
        Training pairs only; folds are stratified by label when there is one label per sample.
    fixed : dict, optional
        Parameters shared by every grid point.
    n_splits : int
        Number of folds (>= 2).
    directions : optional
        Retrieval directions to average (default: every direction between the modalities).
    seed : int
    refit : bool
        Refit the best setting on all of ``pairs``.
    progress : callable, optional
        Called with a short string after each grid point.

    Returns
    -------
    SelectionResult
    """
    if not isinstance(pairs, Pairs):
        raise InputError(f"pairs: expected a Pairs, got {type(pairs).__name__}")
    k = check_int(n_splits, "n_splits", low=2)
    grid = list(ParameterGrid(param_grid))
    if not grid:
        raise InputError("param_grid: expected at least one setting, got an empty grid")
    fixed = dict(fixed or {})
    if pairs.labels is not None and pairs.labels.ndim == 1:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = list(splitter.split(np.zeros(len(pairs)), pairs.labels))
    else:
        folds = list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(pairs))))
    parts = [(pairs.subset(tr), pairs.subset(va)) for tr, va in folds]
    table = []
    for params in grid:
        scores = []
        for fit_part, val_part in parts:
            m = create_model(model, **fixed, **params).fit(fit_part)
            scores.append(retrieval_map(m, val_part, directions)["mean"])
        table.append({**params, "score": float(np.mean(scores)), "fold_scores": scores})
        if progress is not None:
            progress(f"{model} {params}: {np.mean(scores):.4f}")
    best = max(range(len(grid)), key=lambda i: table[i]["score"])
    result = SelectionResult(best_params=grid[best], best_score=table[best]["score"], table=table)
    if refit:
        result.model = create_model(model, **fixed, **grid[best]).fit(pairs)
    return result
