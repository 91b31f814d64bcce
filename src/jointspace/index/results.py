"""Search results joined with their stored metadata, ready to print, plot or serve."""

from __future__ import annotations


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
