"""Search results joined with their stored metadata, ready to print, plot or serve, and the
order of equal scores."""

from __future__ import annotations

import numpy as np


def order_ties_by_id(scores: np.ndarray, ids: np.ndarray, higher_is_better: bool):
    """Sort each row of results best first, equal scores by increasing id, padding (id -1) last.

    FAISS leaves the order of equal scores to its kernels (for inner products it differs
    between query batch sizes); ordering them by id makes results deterministic, the same for
    every metric and the same whether the items are in one index or spread over shards.

    Parameters
    ----------
    scores : numpy.ndarray of float32, shape (nq, k)
        Similarities (``higher_is_better``) or distances.
    ids : numpy.ndarray of int64, shape (nq, k)
        -1 marks padding.

    Returns
    -------
    scores, ids : numpy.ndarray, shape (nq, k)
        The same entries, reordered within each row.
    """
    missing = ids < 0
    key = np.where(missing, 0, -scores if higher_is_better else scores)
    order = np.lexsort((ids, key, missing), axis=-1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def search_with_metadata(index, queries, k: int = 10, **search_options) -> list[list[dict]]:
    """Search ``index`` and attach each hit's metadata.

    Parameters
    ----------
    index : Index
    queries : ndarray, shape (nq, dim)
    k : int
    **search_options
        Passed to :meth:`Index.search` (``params``, ``batch_size``).

    Returns
    -------
    results : list (one per query) of lists of dict
        In rank order, each ``{"rank", "id", "score", "label", "text", "path", "extra"}``;
        padding (fewer than k items) is left out.
    """
    scores, ids = index.search(queries, k=k, **search_options)
    return [with_metadata(index, row_scores, row_ids) for row_scores, row_ids in zip(scores, ids)]


def with_metadata(index, scores, ids) -> list[dict]:
    """One ranked list of hits (``scores``, ``ids`` in rank order; id -1 is padding, left
    out) as dicts ``{"rank", "id", "score", "label", "text", "path", "extra"}``."""
    found = [(float(s), int(i)) for s, i in zip(scores, ids) if i >= 0]
    metas = index.metadata([i for _, i in found])
    return [{"rank": r + 1, "id": i, "score": s, "label": m.get("label"), "text": m.get("text"),
             "path": m.get("path"), "extra": m.get("extra") or {}}
            for r, ((s, i), m) in enumerate(zip(found, metas))]
