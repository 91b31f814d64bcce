r"""Two-stage search's second step without the network: re-ordering each query's candidates by
a blend of the first stage's and the matcher's standardised scores, and choosing the blend
weight on validation queries (see :mod:`jointspace.models.rerank`).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_float
from ..errors import InputError

#: blend weights :meth:`CrossAttentionMatcher.choose_weight` chooses from (0 keeps the first
#: stage's order); the list is fixed by hand
RERANK_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def _numbers(x, name: str) -> np.ndarray:
    """``x`` as a float64 array, or an :class:`InputError` naming ``name``."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:   # text, ragged rows
        raise InputError(f"{name}: expected a (q, N) array of numbers, one row per query, got "
                         f"{type(x).__name__} ({exc})") from None


def standardize_rows(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (a constant row becomes zeros)."""
    s = _numbers(scores, "scores")
    if s.ndim != 2:
        raise InputError(f"scores: expected a (q, N) array, one row per query, got shape {s.shape}")
    if not np.isfinite(s).all():   # a row with a NaN became zeros, as if its scores were all equal
        raise InputError("scores: expected finite scores, got NaN or infinity")
    centred = s - s.mean(axis=1, keepdims=True)
    sd = centred.std(axis=1, keepdims=True)
    return np.divide(centred, sd, out=np.zeros_like(centred), where=sd > 0)


def rerank_candidates(first_ids, first_scores, cross_scores, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Re-order candidates by :math:`(1-w)z(s_{first}) + w z(s_{cross})`, :math:`z` standardising
    each query's scores (see the module docstring and :meth:`CrossAttentionMatcher.rerank`); a
    stable sort, so ties keep the first stage's order.  Returns the ids and blended scores."""
    weight = check_float(weight, "weight", low=0.0, high=1.0)
    first = _numbers(first_scores, "first_scores")
    cross = _numbers(cross_scores, "cross_scores")
    try:
        ids = np.asarray(first_ids)
    except ValueError as exc:   # ragged rows
        raise InputError(f"first_ids: expected a (q, N) array, one row per query, got {type(first_ids).__name__} "
                         f"({exc})") from None
    if ids.ndim != 2 or first.shape != ids.shape or cross.shape != ids.shape:
        raise InputError(f"first_ids, first_scores, cross_scores: expected three (q, N) arrays of one shape, got "
                         f"{ids.shape}, {first.shape}, {cross.shape}")
    if ids.shape[0] and not ids.shape[1]:   # NumPy's 'Mean of empty slice', then empty rows
        raise InputError(f"first_ids: expected at least one candidate per query (N >= 1), got shape {ids.shape}")
    if not (np.isfinite(first).all() and np.isfinite(cross).all()):
        raise InputError("first_scores, cross_scores: expected finite scores, got NaN or infinity")
    blended = (1.0 - weight) * standardize_rows(first) + weight * standardize_rows(cross)
    order = np.argsort(-blended, axis=1, kind="stable")
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(blended, order, axis=1)


def choose_rerank_weight(first_ids, first_scores, cross_scores, keys, weights=RERANK_WEIGHTS) -> dict:
    """The blend weight with the best Recall@1 per relevance key (each key counted once; ties:
    the better plain Recall@1, then the smaller weight).

    Parameters
    ----------
    first_ids : (q, N) int
        Each text query's candidate images, best first; ids index ``keys``.
    first_scores, cross_scores : (q, N) float
    keys : (n,) relevance key of each pair; query ``i`` is pair ``i``'s text
    weights : sequence of float in [0, 1]

    Returns
    -------
    dict
        ``weight``, ``recall@1`` and ``recall@1 per key``: weight (as a string) -> value.
    """
    keys = np.asarray(keys)
    ids = np.asarray(first_ids)
    if ids.ndim != 2 or ids.shape[0] > len(keys):
        raise InputError(f"first_ids, keys: expected (q, N) candidates of q <= {len(keys)} queries, got {ids.shape}")
    if ids.size == 0:
        raise InputError(f"first_ids: expected at least one query with at least one candidate to choose the weight "
                         f"on, got shape {ids.shape}")
    if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= len(keys)):
        raise InputError(f"first_ids: expected integer ids of the {len(keys)} keyed items, got {ids.dtype} "
                         f"from {ids.min()} to {ids.max()}")
    weights = tuple(weights)
    if not weights:
        raise InputError("weights: expected at least one blend weight in [0, 1], got none")
    micro, macro = {}, {}
    for w in weights:
        order, _ = rerank_candidates(ids, first_scores, cross_scores, w)
        hits = keys[order[:, 0]] == keys[: len(order)]
        micro[str(w)], macro[str(w)] = float(np.mean(hits)), per_key_mean(hits, keys[: len(order)])
    best = max(weights, key=lambda w: (macro[str(w)], micro[str(w)], -w))
    return {"weight": float(best), "recall@1": micro, "recall@1 per key": macro}


def per_key_mean(hits, keys) -> float:
    """Mean over the distinct ``keys`` of each key's mean of ``hits``: each key (e.g. a title)
    counts once, however many queries share it.

    Parameters
    ----------
    hits : (q,) bool or float
    keys : (q,) each query's relevance key
    """
    _, key, count = np.unique(np.asarray(keys), return_inverse=True, return_counts=True)
    return float(np.mean(np.bincount(key, np.asarray(hits, dtype=np.float64)) / count))
