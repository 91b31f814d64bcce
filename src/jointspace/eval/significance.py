r"""Is one model's retrieval better than another's on the same queries, or is it chance?

Two rankings of the same queries give each query two scores (its average precision, its
reciprocal rank, whether a relevant item is in its top k, ...).  :func:`compare_rankings`
reports the mean difference :math:`\bar d = \frac1n \sum_i (b_i - a_i)` with

- a two-sided p-value from the paired randomisation (permutation) test: under the null
  hypothesis that the two systems are exchangeable, each query's pair of scores may be
  swapped, so :math:`\bar d` is compared with its distribution over random swaps (Smucker,
  Allan & Carterette 2007, "A comparison of statistical significance tests for information
  retrieval evaluation", CIKM; ``scipy.stats.permutation_test`` with
  ``permutation_type="samples"``);
- a percentile bootstrap confidence interval of :math:`\bar d` over queries
  (``scipy.stats.bootstrap``).

Queries without a relevant item are left out, as the metrics leave them out.  Each p-value
is for one metric and one direction: when many are read at once, some fall below 0.05 by
chance, so :func:`compare_models` also gives each its Holm–Bonferroni adjusted p-value over
all the comparisons it makes (:func:`holm`; Holm 1979, "A simple sequentially rejective
multiple test procedure", Scand. J. Statist. 6).
"""

from __future__ import annotations

import re

import numpy as np

from .._validation import check_float, check_int
from ..errors import InputError

#: the metrics compared per query (medR and meanR are not means of per-query scores)
METRICS = ("mAP", "R@k", "MRR", "nDCG@k")
#: the options of :func:`compare_rankings` that :func:`compare_models` passes on
_RANKING_OPTIONS = ("confidence", "n_resamples", "seed")


def per_query_scores(per_query: dict, metric: str, ndcg_k: int = 10) -> np.ndarray:
    """Each query's contribution to ``metric`` (the metric is their mean).

    Parameters
    ----------
    per_query : dict
        From :func:`~jointspace.eval.retrieval.retrieval_scores` with ``return_per_query=True``.
    metric : str
        ``"mAP"`` (average precision), ``"MRR"`` (reciprocal rank of the first relevant item),
        ``"R@<k>"`` (1 when a relevant item is in the top k, else 0) or ``"nDCG@<ndcg_k>"``.
    ndcg_k : int
        The cut-off ``per_query`` was computed with.

    Returns
    -------
    ndarray of float64, shape (n_valid,)
        Over the queries that have a relevant item.
    """
    kind, k = _metric(metric, ndcg_k)
    valid = np.asarray(per_query["n_relevant"]) > 0
    if kind in ("ap", "ndcg"):
        return np.asarray(per_query[kind], dtype=np.float64)[valid]
    first = np.asarray(per_query["first_rank"], dtype=np.float64)[valid]
    return 1.0 / first if kind == "rr" else (first <= k).astype(np.float64)


def _metric(metric: str, ndcg_k: int) -> tuple[str, int | None]:
    """``(kind, k)`` of a metric name: ``("ap", None)``, ``("rr", None)``, ``("recall", k)`` or
    ``("ndcg", ndcg_k)``; InputError naming ``metric`` for any other name."""
    recall = re.fullmatch(r"R@(\d+)", str(metric))
    if metric == "mAP":
        return "ap", None
    if metric == "MRR":
        return "rr", None
    if recall and int(recall.group(1)) >= 1:
        return "recall", int(recall.group(1))
    if metric == f"nDCG@{int(ndcg_k)}":
        return "ndcg", int(ndcg_k)
    raise InputError(f"metric: expected 'mAP', 'MRR', 'R@<k>' or 'nDCG@{int(ndcg_k)}', got {metric!r}")


def compare_rankings(per_query_a: dict, per_query_b: dict, metric: str = "mAP", *, confidence: float = 0.95,
                     n_resamples: int = 9999, seed: int = 0, ndcg_k: int = 10) -> dict:
    """Paired comparison of two rankings of the same queries on one metric.

    Parameters
    ----------
    per_query_a, per_query_b : dict
        Per-query arrays of the two rankings (same queries, same relevance), from
        :func:`~jointspace.eval.retrieval.retrieval_scores` with ``return_per_query=True``.
    metric : str
        See :func:`per_query_scores`.
    confidence : float
        Level of the bootstrap interval, in (0, 1).
    n_resamples : int
        Random swaps of the permutation test and resamples of the bootstrap.
    seed : int
    ndcg_k : int

    Returns
    -------
    dict
        ``metric``, ``n_queries``, ``a`` and ``b`` (the metric of each), ``difference``
        (b − a), ``ci_low`` and ``ci_high`` (its bootstrap interval), ``p_value`` (two-sided
        paired randomisation test); plain numbers, JSON-ready.
    """
    from scipy import stats

    confidence = check_float(confidence, "confidence", low=0.0, low_open=True)
    if confidence >= 1.0:
        raise InputError(f"confidence: expected a level in (0, 1), e.g. 0.95, got {confidence}")
    n_resamples = check_int(n_resamples, "n_resamples", low=99)
    seed = check_int(seed, "seed", low=0, high=2**32 - 1)
    valid_a = np.asarray(per_query_a["n_relevant"]) > 0
    valid_b = np.asarray(per_query_b["n_relevant"]) > 0
    if valid_a.shape != valid_b.shape or not np.array_equal(valid_a, valid_b):
        raise InputError(f"per_query_b: expected the queries of per_query_a ({valid_a.size}, {int(valid_a.sum())} "
                         f"with a relevant item), got {valid_b.size} ({int(valid_b.sum())} with one); compare "
                         "rankings of the same queries under the same relevance")
    if not valid_a.any():   # as summarize: no mean to compare
        raise InputError("per_query_a, per_query_b: no query has a relevant item in the gallery; expected at "
                         "least one to compare")
    a, b = per_query_scores(per_query_a, metric, ndcg_k), per_query_scores(per_query_b, metric, ndcg_k)
    for scores, name in ((a, "per_query_a"), (b, "per_query_b")):
        if not np.isfinite(scores).all():   # a NaN would compare as never extreme: p = 0
            first = int(np.flatnonzero(valid_a)[np.argmin(np.isfinite(scores))])
            raise InputError(f"{name}: expected finite per-query {metric} scores, got NaN or Inf (first at query "
                             f"{first})")
    d = b - a
    out = {"metric": metric, "n_queries": int(d.size), "a": float(a.mean()), "b": float(b.mean()),
           "difference": float(d.mean())}
    if not np.any(d):   # the same score on every query: nothing to test
        return {**out, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
    if d.size == 1:   # the swaps give +d and -d, both as far from 0: the exact test's p is 1
        p_value = 1.0
    else:
        p_value = float(stats.permutation_test((a, b), lambda x, y, axis: np.mean(y - x, axis=axis),
                                               permutation_type="samples", vectorized=True, n_resamples=n_resamples,
                                               alternative="two-sided",
                                               random_state=np.random.default_rng(seed)).pvalue)
    if np.all(d == d[0]):   # one difference on every query: every resample has that mean
        low = high = float(d[0])
    else:
        ci = stats.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return {**out, "ci_low": low, "ci_high": high, "p_value": p_value}


def holm(p_values) -> np.ndarray:
    r"""Holm–Bonferroni adjusted p-values of :math:`m` tests read together.

    With :math:`p_{(1)} \le \dots \le p_{(m)}` the p-values in increasing order, the
    adjusted value of :math:`p_{(i)}` is :math:`\max_{j \le i} \min(1, (m - j + 1)\,p_{(j)})`;
    rejecting the tests whose adjusted value is at most :math:`\alpha` is Holm's step-down
    procedure, which keeps the chance of any false rejection (family-wise error) at most
    :math:`\alpha`.

    Parameters
    ----------
    p_values : array-like, shape (m,)
        Each in [0, 1].

    Returns
    -------
    ndarray of float64, shape (m,)
        In the order given; each at least its own p-value, at most 1.
    """
    try:
        p = np.asarray(p_values, dtype=np.float64)
    except (TypeError, ValueError):
        p = None
    if p is None or p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):   # NaN fails the comparison too
        raise InputError(f"p_values: expected a 1-D sequence of p-values in [0, 1], got {p_values!r:.80}")
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((p.size - np.arange(p.size)) * p[order]))
    return adjusted


def compare_models(model_a, model_b, pairs, *, metrics=("mAP", "R@1", "R@10"), relevance: str = "auto",
                   directions=None, metric: str = "cosine", ndcg_k: int = 10, **options) -> list[dict]:
    """:func:`compare_rankings` of two fitted joint models on the same pairs, per direction
    and metric.

    Parameters
    ----------
    model_a, model_b : JointModel
        Fitted; ``b`` is compared against ``a`` (a positive difference: ``b`` is better).
    pairs : Pairs
        Evaluation samples: queries and gallery.
    metrics : sequence of str
        See :func:`per_query_scores`.
    relevance : str
        As in :func:`~jointspace.eval.retrieval.evaluate_retrieval` (without a gallery).
    directions : sequence of "q->t" or (q, t), optional
        Default: every ordered pair of distinct modalities both models know and the pairs hold.
    metric : {"cosine", "dot", "euclidean"}
        Similarity that ranks the gallery.
    ndcg_k : int
    options
        ``confidence``, ``n_resamples``, ``seed`` of :func:`compare_rankings`.

    Returns
    -------
    list of dict
        One per direction and metric: ``direction``, the fields of :func:`compare_rankings`
        and ``p_holm``, the p-value adjusted by :func:`holm` over every row returned.
    """
    from ..data.pairs import Pairs
    from .retrieval import _parse_directions, retrieval_scores

    unknown = [k for k in options if k not in _RANKING_OPTIONS]
    if unknown:
        raise InputError(f"{unknown[0]}: compare_models takes the options {', '.join(_RANKING_OPTIONS)} of "
                         f"compare_rankings besides its own; got {', '.join(map(repr, unknown))}")
    if not isinstance(pairs, Pairs):
        raise InputError(f"pairs: expected a Pairs, got {type(pairs).__name__}")
    for name, model in (("model_a", model_a), ("model_b", model_b)):
        if getattr(model, "modalities_", None) is None or not hasattr(model, "encode"):
            raise InputError(f"{name}: expected a fitted joint model, got {type(model).__name__}")
    if isinstance(metrics, str):
        metrics = [metrics]
    for m in metrics:
        _metric(m, ndcg_k)   # an unknown metric, refused before encoding
    mods = [m for m in pairs.modalities if m in model_a.modalities_ and m in model_b.modalities_]
    keys = pairs.relevance_keys(relevance)
    normalize = metric == "cosine"   # as evaluate_retrieval: dot and euclidean rank the raw embeddings
    rows = []
    for q, t in _parse_directions(directions, mods, mods):
        per = [retrieval_scores(model.encode(q, pairs[q], normalize=normalize),
                                model.encode(t, pairs[t], normalize=normalize), keys, keys, metric=metric,
                                ndcg_k=ndcg_k, return_per_query=True)[1] for model in (model_a, model_b)]
        rows += [{"direction": f"{q}->{t}", **compare_rankings(*per, m, ndcg_k=ndcg_k, **options)} for m in metrics]
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = float(adjusted)
    return rows


__all__ = ["compare_models", "compare_rankings", "holm", "per_query_scores"]
