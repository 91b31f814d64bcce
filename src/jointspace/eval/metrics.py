r"""Ranking metrics for retrieval, computed block by block from scores and relevance.

Each query ranks the whole gallery by score, highest first.  With :math:`R` relevant items
whose 1-based ranks are :math:`r_1 < r_2 < \dots < r_R`:

* **AP** (average precision of the full ranking) :math:`= \frac1R \sum_{m=1}^{R} m / r_m`
  (the precision at each relevant item, averaged); **mAP** is its mean over queries.
* **Recall@K** is the fraction of queries with at least one relevant item in the top K,
  i.e. :math:`[r_1 \le K]` averaged (the usual cross-modal retrieval definition, not the
  fraction of each query's relevant items retrieved).
* **MRR** is the mean of :math:`1 / r_1`; **medR** and **meanR** the median and mean of
  :math:`r_1`, the rank of the first relevant item (1-based; lower is better; with an even
  number of queries the median is the mean of the two middle ranks).
* **nDCG@K** with binary gains: :math:`\mathrm{DCG} = \sum_{r_m \le K} 1/\log_2(r_m + 1)`,
  divided by the ideal :math:`\sum_{r=1}^{\min(K, R)} 1/\log_2(r + 1)`.

Queries without any relevant item are left out of every average and counted
(``n_skipped``).

**Ties.** Items with equal scores are ordered by a fixed rule, ``ties``:

* ``"pessimistic"`` (default): among tied items the non-relevant ones come first, so the
  relevant item at descending position :math:`m` has rank
  :math:`r_m = m + \#\{\text{non-relevant } j : s_j \ge s_m\}`.  A model cannot gain by
  giving many items the same score (a constant scorer gets the worst possible ranks).
* ``"optimistic"``: relevant ones first, :math:`r_m = m + \#\{\text{non-relevant } j :
  s_j > s_m\}`.

Without ties both rules give the same numbers.

**Speed and memory.** Nothing per query is larger than the gallery, and nothing per block
larger than the block of scores.  When every query of a block has few relevant items (pair
identity has one) the ranks are counted directly, one pass over the block per relevant
item; otherwise each row of the block is sorted once and the relevant scores are located
in it by binary search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .._validation import check_choice, check_int
from ..errors import InputError
from .relevance import DenseRelevance, KeyRelevance, Relevance, RelevanceBlock, make_relevance
from .similarity import check_pair

TIES = ("pessimistic", "optimistic")

#: up to this many relevant items per query, ranks are counted instead of sorted
COUNT_MAX = 4


def check_ks(ks, name: str = "ks") -> tuple[int, ...]:
    """Validate the cut-offs of Recall@K (each an integer >= 1)."""
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    if not isinstance(ks, Iterable) or isinstance(ks, (str, bytes)):
        raise InputError(f"{name}: expected a sequence of integers >= 1, got {ks!r}")
    out = tuple(check_int(k, name, low=1) for k in ks)
    if not out:
        raise InputError(f"{name}: expected at least one cut-off, got an empty sequence")
    return out


def _ideal_dcg(n_rel: np.ndarray, k: int) -> np.ndarray:
    disc = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    return np.where(n_rel > 0, disc[np.clip(np.minimum(n_rel, k) - 1, 0, None)], 0.0)


def _block_metrics(S: np.ndarray, blk: RelevanceBlock, ndcg_k: int, ties: str, owned: bool = False):
    """AP, first relevant rank and nDCG of each query of one block.

    Parameters
    ----------
    S : ndarray, shape (b, ng)
        Scores of ``b`` queries against the gallery.
    blk : RelevanceBlock
        Their relevant items.
    ndcg_k : int
    ties : {"pessimistic", "optimistic"}
    owned : bool
        ``S`` may be overwritten (sorted in place).

    Returns
    -------
    ap, first_rank, ndcg, n_rel : ndarrays, shape (b,)
        Zeros for queries without a relevant item.
    """
    n_rel = np.asarray(blk.n_relevant, dtype=np.int64)
    pessimistic = ties == "pessimistic"
    r_max = int(n_rel.max()) if n_rel.size else 0
    if r_max == 0:
        z = np.zeros(S.shape[0])
        return z, np.zeros(S.shape[0], dtype=np.int64), z.copy(), n_rel
    # no rank exceeds the gallery: nDCG@k for k >= ng is nDCG@ng, and the discount
    # tables stay gallery-sized however large the cut-off asked for
    ndcg_k = min(ndcg_k, S.shape[1])
    if r_max <= COUNT_MAX:
        rows, m, rank = _ranks_by_counting(S, blk, n_rel, r_max, pessimistic)
        b = S.shape[0]
        rank_f = rank.astype(np.float64)
        ap = np.bincount(rows, weights=m / rank_f, minlength=b) / np.maximum(n_rel, 1)
        first = np.zeros(b, dtype=np.int64)
        top = m == 1
        first[rows[top]] = rank[top]
        gains = np.where(rank <= ndcg_k, 1.0 / np.log2(rank_f + 1.0), 0.0)
        dcg = np.bincount(rows, weights=gains, minlength=b)
    else:
        ap, first, dcg = _metrics_by_sorting(S, blk, n_rel, ndcg_k, pessimistic, owned)
    idcg = _ideal_dcg(n_rel, ndcg_k)
    return ap, first, dcg / np.where(idcg > 0, idcg, 1.0), n_rel


def _ranks_by_counting(S, blk, n_rel, r_max, pessimistic):
    """Few relevant items per query: one comparison pass over the block per relevant item.

    Returns rows, m (1-based position among the query's relevant items by descending
    score) and rank (1-based rank in the gallery) of every relevant item.
    """
    b = S.shape[0]
    rows, cols = blk.pairs()
    row_start = np.cumsum(n_rel) - n_rel
    thr = np.full((b, r_max), -np.inf, dtype=S.dtype)
    thr[rows, np.arange(rows.shape[0]) - row_start[rows]] = S[rows, cols]
    thr = -np.sort(-thr, axis=1)                     # descending; padding (-inf) last
    valid = np.arange(r_max)[None, :] < n_rel[:, None]
    cmp = np.greater_equal if pessimistic else np.greater
    # relevant items scoring >= (or >) each relevant score; the padding never counts
    rel_ahead = cmp(thr[:, None, :], thr[:, :, None]).sum(axis=2)
    all_ahead = np.zeros((b, r_max), dtype=np.int64)
    buf = np.empty(S.shape[1], dtype=bool)
    # row by row: the comparison stays in cache and the whole-array count_nonzero is the
    # fast (vectorised) one; about twice as fast as comparing the block at once
    for r in range(r_max):
        for i in np.flatnonzero(n_rel > r).tolist():
            cmp(S[i], thr[i, r], out=buf)
            all_ahead[i, r] = np.count_nonzero(buf)
    m = np.broadcast_to(np.arange(1, r_max + 1), (b, r_max))
    rank = m + all_ahead - rel_ahead                 # m + non-relevant items ahead
    out_rows = np.broadcast_to(np.arange(b)[:, None], (b, r_max))[valid]
    return out_rows, m[valid], rank[valid]


def _metrics_by_sorting(S, blk, n_rel, ndcg_k, pessimistic, owned):
    """Many relevant items: sort each row once, locate the relevant scores by bisection."""
    b, ng = S.shape
    vals = S[blk.mask()]                             # row by row, before S is sorted
    Ss = S if owned else S.copy()
    Ss.sort(axis=1)
    side = "left" if pessimistic else "right"
    ap = np.zeros(b)
    first = np.zeros(b, dtype=np.int64)
    dcg = np.zeros(b)
    ends = np.cumsum(n_rel)
    r_max = int(n_rel.max())
    desc = np.arange(r_max, 0, -1)                   # m of the entries of an ascending array
    inv_log = 1.0 / np.log2(np.arange(2, ndcg_k + 2))
    for q in np.flatnonzero(n_rel):
        R = int(n_rel[q])
        v = np.sort(vals[ends[q] - R:ends[q]])      # this query's relevant scores, ascending
        m = desc[r_max - R:]
        # in ascending order the items >= v (left) or > v (right) follow the insertion point
        ahead = ng - np.searchsorted(Ss[q], v, side=side)
        if R > 1 and not np.all(v[1:] != v[:-1]):
            # relevant items tied with each other: count them exactly
            rank = m + ahead - (R - np.searchsorted(v, v, side=side))
        elif pessimistic:
            rank = ahead                             # the m relevant items >= v are among them
        else:
            rank = ahead + 1
        ap[q] = np.dot(m, 1.0 / rank) / R
        first[q] = rank[-1]
        top = rank[-ndcg_k:]
        dcg[q] = inv_log[top[top <= ndcg_k] - 1].sum()
    return ap, first, dcg


#: integers up to this magnitude are exact in float64
_EXACT_INT = 2**53


def _exact_float(S: np.ndarray) -> np.ndarray:
    """Integer (or boolean) scores as float64 with the same order and the same ties.

    Integers beyond 2**53 would merge in float64: they are replaced by their rank among the
    block's distinct values, which orders every row exactly as the integers do.
    """
    if S.dtype.itemsize >= 8 and S.size and (int(S.max()) > _EXACT_INT or int(S.min()) < -_EXACT_INT):
        return np.unique(S, return_inverse=True)[1].reshape(S.shape).astype(np.float64)
    return S.astype(np.float64)


def _check_block(start, S, nq: int, ng: int) -> np.ndarray:
    """One block of :func:`ranking_metrics`: 2-D, numeric, finite, ``ng`` wide, within the queries."""
    S = np.asarray(S)
    if S.ndim != 2:
        raise InputError(f"scores: expected 2-D blocks of shape (queries in block, {ng}), got shape {S.shape}")
    if S.shape[1] != ng:
        raise InputError(f"scores: expected {ng} columns (one per gallery item), got shape {S.shape}")
    if S.dtype.kind not in "biuf":
        raise InputError(f"scores: expected numeric scores, got dtype {S.dtype}")
    if S.dtype.kind != "f":
        S = _exact_float(S)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0 or start + S.shape[0] > nq:
        raise InputError(f"score_chunks: expected a block within the {nq} queries, got {S.shape[0]} rows "
                         f"starting at {start!r}")
    finite = np.isfinite(S)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        # NaN has no place in a ranking; -inf / NaN also come from scores that overflowed
        raise InputError(f"scores: expected finite values, got {S[i, j]} for query {start + i}, gallery item "
                         f"{j} (NaN or infinite scores cannot be ranked; huge embeddings can overflow the score)")
    return S


def ranking_metrics(score_chunks: Iterable[tuple[int, np.ndarray]], relevance: Relevance, *,
                    ndcg_k: int = 10, ties: str = "pessimistic", owned: bool = False,
                    progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Per-query ranking results from blocks of scores.

    Parameters
    ----------
    score_chunks : iterable of (start, block)
        ``block`` (b, ng) holds the scores of queries ``start .. start + b - 1`` against the
        whole gallery, higher = more similar (as :func:`~jointspace.eval.similarity.iter_similarity_chunks`
        yields them).  Blocks must be 2-D, numeric and finite, and cover every query.
    relevance : Relevance
        Which items are relevant (see :mod:`jointspace.eval.relevance`).
    ndcg_k : int
        Cut-off of nDCG; a cut-off beyond the gallery size counts as the gallery size.
    ties : {"pessimistic", "optimistic"}
        Tie rule (see the module docstring).
    owned : bool
        The blocks are temporary and may be overwritten.
    progress : callable, optional
        Called with the number of queries just finished after each block.

    Returns
    -------
    dict of ndarray, each shape (nq,)
        ``ap``, ``first_rank`` (0 where no relevant item), ``ndcg``, ``n_relevant``.

    Raises
    ------
    InputError
        A block that is not 2-D, not ``ng`` wide, holds NaN or infinite scores, lies outside
        the queries, or blocks that leave queries out.
    """
    ndcg_k = check_int(ndcg_k, "ndcg_k", low=1)
    check_choice(ties, "ties", TIES)
    nq = relevance.n_queries
    out = {"ap": np.zeros(nq), "first_rank": np.zeros(nq, dtype=np.int64), "ndcg": np.zeros(nq),
           "n_relevant": np.zeros(nq, dtype=np.int64)}
    done = np.zeros(nq, dtype=bool)
    for start, S in score_chunks:
        S = _check_block(start, S, nq, relevance.n_gallery)
        b = S.shape[0]
        ap, first, ndcg, n_rel = _block_metrics(S, relevance.block(start, start + b), ndcg_k, ties, owned)
        sl = slice(start, start + b)
        out["ap"][sl] = ap
        out["first_rank"][sl] = first
        out["ndcg"][sl] = ndcg
        out["n_relevant"][sl] = n_rel
        done[sl] = True
        if progress is not None:
            progress(b)
    if not done.all():
        raise InputError(f"score_chunks: expected blocks covering all {nq} queries, "
                         f"{int((~done).sum())} were missing")
    return out


def summarize(per_query: dict[str, np.ndarray], ks: Sequence[int] = (1, 5, 10),
              ndcg_k: int = 10) -> dict[str, float]:
    """Average per-query results into the reported metrics.

    Returns
    -------
    dict
        ``mAP``, ``R@k`` for each k, ``MRR``, ``medR``, ``meanR``, ``nDCG@<ndcg_k>`` over the
        queries that have at least one relevant item, and the counts ``n_queries`` (those
        queries) and ``n_skipped`` (queries without a relevant item).

    Raises
    ------
    InputError
        No query has a relevant item.
    """
    ks = check_ks(ks)
    valid = per_query["n_relevant"] > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise InputError("query_keys, gallery_keys: no query has a relevant item in the gallery; "
                         "check the relevance keys")
    fr = per_query["first_rank"][valid].astype(np.float64)
    res = {"mAP": float(per_query["ap"][valid].mean())}
    for k in ks:
        res[f"R@{k}"] = float((fr <= k).mean())
    res["MRR"] = float((1.0 / fr).mean())
    res["medR"] = float(np.median(fr))
    res["meanR"] = float(fr.mean())
    res[f"nDCG@{ndcg_k}"] = float(per_query["ndcg"][valid].mean())
    res["n_queries"] = n_valid
    res["n_skipped"] = int(valid.size - n_valid)
    return res


def _score_matrix(scores) -> np.ndarray:
    """A 2-D numeric score matrix in its own dtype (``check_matrix`` would round integers
    to float32); finiteness is checked block by block."""
    try:
        S = np.asarray(scores)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise InputError(f"scores: expected a 2-D numeric array, got {type(scores).__name__} ({exc})") from None
    if S.dtype == object or S.dtype.kind not in "biuf":
        raise InputError(f"scores: expected a 2-D numeric array, got dtype {S.dtype}")
    if S.ndim != 2 or S.shape[0] < 1 or S.shape[1] < 1:
        raise InputError(f"scores: expected a 2-D array of shape (n_queries, n_gallery), got shape {S.shape}")
    if S.dtype.kind == "f" and S.dtype.itemsize < 4:
        S = S.astype(np.float32)
    return S


def ranking_metrics_dense(scores, relevant, *, ks: Sequence[int] = (1, 5, 10), ndcg_k: int = 10,
                          ties: str = "pessimistic", chunk_size: int | None = None,
                          return_per_query: bool = False):
    """Metrics from a full score matrix and a boolean relevance matrix (small inputs).

    Parameters
    ----------
    scores : array-like, shape (nq, ng)
        Higher = more similar.  Ranked in their own precision: integer scores are never
        rounded (no false ties), float64 stays float64.
    relevant : array-like of bool, shape (nq, ng)
    ks, ndcg_k, ties
        As in :func:`summarize` and :func:`ranking_metrics`.
    chunk_size : int, optional
        Queries per block (default: all at once up to about 64 MB of scores).
    return_per_query : bool
        Also return the per-query arrays.

    Returns
    -------
    summary : dict, or (summary, per_query) when ``return_per_query``
    """
    S = _score_matrix(scores)
    rel = DenseRelevance(relevant)
    if rel.rel.shape != S.shape:
        raise InputError(f"relevant: expected shape {S.shape} like scores, got {rel.rel.shape}")
    ks = check_ks(ks)
    if chunk_size is None:
        chunk_size = max(1, (64 * 2**20) // (S.shape[1] * S.dtype.itemsize))
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    chunks = ((s, S[s:s + chunk_size]) for s in range(0, S.shape[0], chunk_size))
    per_query = ranking_metrics(chunks, rel, ndcg_k=ndcg_k, ties=ties)
    summary = summarize(per_query, ks, ndcg_k)
    return (summary, per_query) if return_per_query else summary


__all__ = ["TIES", "check_ks", "first_relevant_rank", "ranking_metrics", "ranking_metrics_dense", "summarize",
           "top_k_recall"]


#: how :func:`top_k_recall` weighs queries
RECALL_AVERAGES = ("query", "group")


def first_relevant_rank(S: np.ndarray, mask: np.ndarray, ties: str = "pessimistic") -> np.ndarray:
    r"""1-based rank of each row's first relevant item under the tie rule of this module.

    :math:`r_1 = 1 + \#\{\text{non-relevant } j : s_j \ge s^*\}` (pessimistic) or
    :math:`s_j > s^*` (optimistic), :math:`s^*` being the row's highest relevant score: the
    same :math:`r_1` as :func:`ranking_metrics` gives, in two passes over the block.

    Parameters
    ----------
    S : ndarray, shape (b, ng)
        Finite scores, higher = more similar.
    mask : ndarray of bool, shape (b, ng)
        Relevant items.
    ties : {"pessimistic", "optimistic"}

    Returns
    -------
    ndarray of int64, shape (b,)
        0 for rows without a relevant item.
    """
    has = mask.any(axis=1)
    best = np.where(mask, S, -np.inf).max(axis=1) if S.size else np.zeros(S.shape[0])
    cmp = np.greater_equal if ties == "pessimistic" else np.greater
    ahead = np.count_nonzero(cmp(S, best[:, None]) & ~mask, axis=1)
    return np.where(has, ahead + 1, 0).astype(np.int64)


def top_k_recall(queries: np.ndarray, gallery: np.ndarray, query_keys, gallery_keys, k: int = 10,
                 chunk: int = 1024, average: str = "query", ties: str = "pessimistic") -> float:
    """Recall@K by inner product, the quick form used to choose settings and stop training.

    Parameters
    ----------
    queries : array-like, shape (nq, d)
    gallery : array-like, shape (ng, d)
        Both L2-normalised when the inner product should be the cosine; checked as in
        :func:`jointspace.eval.retrieval.retrieval_scores` (2-D, numeric, finite, one width).
    query_keys : array, shape (nq,) (or (nq, C), or label sets)
    gallery_keys : array, shape (ng,) (or (ng, C), or label sets)
        Relevance as in :func:`jointspace.eval.relevance.make_relevance`: gallery j is
        relevant to query i when the keys are equal (the label sets intersect).
    k : int
        Capped at the gallery size.
    chunk : int
        Queries scored per block.
    average : {"query", "group"}
        "query": each query counts once.  "group": the hit rate is averaged within each
        query key first, then over keys, so a key shared by many queries (one title on 50
        drawings) weighs no more than a key held by one (1-D keys only).
    ties : {"pessimistic", "optimistic"}
        Tie rule, as in :func:`ranking_metrics` (the default is the reports' rule).

    Returns
    -------
    float
        Share of queries (or of query keys) whose first relevant item has rank <= ``k``
        (:func:`first_relevant_rank`), exactly the ``R@k`` of :func:`summarize`.  Queries
        without a relevant gallery item have nothing to find and are left out, as in
        :func:`summarize`.
    """
    check_choice(average, "average", RECALL_AVERAGES)
    check_choice(ties, "ties", TIES)
    k = check_int(k, "k", low=1)
    chunk = check_int(chunk, "chunk", low=1)
    queries, gallery = check_pair(queries, gallery, names=("queries", "gallery"))
    relevance = make_relevance(query_keys, gallery_keys, queries.shape[0], gallery.shape[0])
    if average == "group" and not isinstance(relevance, KeyRelevance):
        raise InputError("average: 'group' needs one key per query (1-D keys), got multi-label keys")
    nq = queries.shape[0]
    first = np.zeros(nq, dtype=np.int64)
    for s in range(0, nq, chunk):
        S = _check_block(s, queries[s:s + chunk] @ gallery.T, nq, gallery.shape[0])
        first[s:s + S.shape[0]] = first_relevant_rank(S, relevance.block(s, s + S.shape[0]).mask(), ties)
    findable = first > 0
    if not findable.any():
        raise InputError("query_keys: no query has a relevant gallery item (no key occurs in gallery_keys)")
    hits = (first[findable] <= k).astype(np.float64)
    if average == "query":
        return float(hits.mean())
    _, group = np.unique(relevance.query_codes[findable], return_inverse=True)
    return float(np.mean(np.bincount(group, weights=hits) / np.bincount(group)))
