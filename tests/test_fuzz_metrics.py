"""Property-based tests of the ranking metrics and the similarity functions.

Metrics: invariance to the order of the gallery (and of the queries), 1.0 for a perfect
ranking, the closed-form minimum for a reversed one, and agreement between every path that
computes them (dense, keys, multi-hot, label sets, counting vs sorting, chunked, the quick
Recall@K).  Similarities: against a direct NumPy computation.
"""

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jointspace.eval.metrics as metrics_mod
from jointspace.eval.metrics import ranking_metrics, ranking_metrics_dense, summarize, top_k_recall
from jointspace.eval.relevance import DenseRelevance, KeyRelevance, LabelSetRelevance, MultiLabelRelevance
from jointspace.eval.similarity import iter_similarity_chunks, l2_normalize, pairwise_distance, pairwise_similarity

#: examples per property: kept small for ``make test``; JOINTSPACE_FUZZ_EXAMPLES=2000 fuzzes deeper
FUZZ = settings(max_examples=int(os.environ.get("JOINTSPACE_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

KEYS = ("ap", "first_rank", "ndcg", "n_relevant")


@st.composite
def ranking_cases(draw, max_q=8, max_g=12):
    """Scores (few distinct values, so many ties, or floats) and a relevance matrix."""
    nq, ng = draw(st.integers(1, max_q)), draw(st.integers(1, max_g))
    if draw(st.booleans()):
        scores = draw(hnp.arrays(np.int64, (nq, ng), elements=st.integers(-3, 3))).astype(np.float64)
    else:
        scores = draw(hnp.arrays(np.float64, (nq, ng), elements=st.floats(-1e6, 1e6, allow_nan=False)))
    rel = draw(hnp.arrays(np.bool_, (nq, ng)))
    ndcg_k = draw(st.integers(1, ng + 2))
    ties = draw(st.sampled_from(["pessimistic", "optimistic"]))
    return scores, rel, ndcg_k, ties


def _per_query(scores, rel, ndcg_k=10, ties="pessimistic"):
    return ranking_metrics(((0, scores),), DenseRelevance(rel), ndcg_k=ndcg_k, ties=ties)


def _assert_same(a, b):
    np.testing.assert_array_equal(a["first_rank"], b["first_rank"])
    np.testing.assert_array_equal(a["n_relevant"], b["n_relevant"])
    np.testing.assert_allclose(a["ap"], b["ap"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a["ndcg"], b["ndcg"], rtol=1e-12, atol=1e-15)


def _brute(scores, rel, ndcg_k, ties):
    """Per-query results from a full sort with the tie rule as an explicit second key."""
    out = {k: [] for k in KEYS}
    for s, r in zip(scores, rel):
        tie_key = r.astype(int) if ties == "pessimistic" else -r.astype(int)
        ranks = np.flatnonzero(r[np.lexsort((tie_key, -s))]) + 1
        R = len(ranks)
        out["n_relevant"].append(R)
        out["first_rank"].append(ranks[0] if R else 0)
        out["ap"].append(np.mean(np.arange(1, R + 1) / ranks) if R else 0.0)
        ideal = sum(1 / np.log2(x + 1) for x in range(1, min(ndcg_k, R) + 1))
        out["ndcg"].append(sum(1 / np.log2(x + 1) for x in ranks if x <= ndcg_k) / ideal if R else 0.0)
    return {k: np.asarray(v) for k, v in out.items()}


@FUZZ
@given(ranking_cases(), st.randoms(use_true_random=False))
def test_gallery_and_query_order_do_not_matter(case, rnd):
    scores, rel, ndcg_k, ties = case
    base = _per_query(scores, rel, ndcg_k, ties)
    cols = list(range(scores.shape[1]))
    rnd.shuffle(cols)
    _assert_same(_per_query(scores[:, cols], rel[:, cols], ndcg_k, ties), base)
    rows = list(range(scores.shape[0]))
    rnd.shuffle(rows)
    moved = _per_query(scores[rows], rel[rows], ndcg_k, ties)
    _assert_same({k: moved[k] for k in KEYS}, {k: base[k][rows] for k in KEYS})


@FUZZ
@given(ranking_cases())
def test_every_path_agrees_with_a_brute_force_sort(case):
    scores, rel, ndcg_k, ties = case
    want = _brute(scores, rel, ndcg_k, ties)
    _assert_same(_per_query(scores, rel, ndcg_k, ties), want)
    old = metrics_mod.COUNT_MAX
    try:
        for count_max in (0, 10**6):            # the sorting path, then the counting path
            metrics_mod.COUNT_MAX = count_max
            _assert_same(_per_query(scores, rel, ndcg_k, ties), want)
    finally:
        metrics_mod.COUNT_MAX = old
    # block by block, and through the relevance kinds that describe the same matrix
    chunks = ((s, scores[s:s + 3]) for s in range(0, len(scores), 3))
    _assert_same(ranking_metrics(chunks, DenseRelevance(rel), ndcg_k=ndcg_k, ties=ties), want)
    eye = np.eye(rel.shape[1], dtype=bool)
    _assert_same(ranking_metrics(((0, scores),), MultiLabelRelevance(rel, eye), ndcg_k=ndcg_k, ties=ties), want)
    sets = [set(np.flatnonzero(r).tolist()) for r in rel]
    _assert_same(ranking_metrics(((0, scores),), LabelSetRelevance(sets, [{j} for j in range(rel.shape[1])]),
                                 ndcg_k=ndcg_k, ties=ties), want)
    # the quick R@1 of model selection and early stopping reads the same first ranks
    np.testing.assert_array_equal(metrics_mod.first_relevant_rank(scores, rel, ties), want["first_rank"])


@FUZZ
@given(st.integers(1, 6), st.integers(1, 15), st.integers(0, 4), st.integers(1, 20), st.data())
def test_key_relevance_and_top_k_recall_agree_with_dense(nq, ng, n_keys, k, data):
    qk = data.draw(hnp.arrays(np.int64, nq, elements=st.integers(0, n_keys)))
    gk = data.draw(hnp.arrays(np.int64, ng, elements=st.integers(0, n_keys)))
    rel = qk[:, None] == gk[None, :]
    assume(rel.any())
    # embeddings with few distinct inner products: many ties
    q = data.draw(hnp.arrays(np.float64, (nq, 2), elements=st.integers(-2, 2).map(float)))
    g = data.draw(hnp.arrays(np.float64, (ng, 2), elements=st.integers(-2, 2).map(float)))
    scores = q @ g.T
    dense = ranking_metrics_dense(scores, rel, ks=(k,))
    keyed = summarize(ranking_metrics(((0, scores),), KeyRelevance(qk, gk)), (k,))
    assert keyed == pytest.approx(dense, rel=1e-12)
    assert top_k_recall(q, g, qk, gk, k=k, chunk=2) == pytest.approx(dense[f"R@{k}"], rel=1e-12)


@FUZZ
@given(st.integers(1, 6), st.integers(1, 12), st.data())
def test_perfect_ranking_gives_one(nq, ng, data):
    rel = data.draw(hnp.arrays(np.bool_, (nq, ng)))
    assume(rel.any())
    noise = data.draw(hnp.arrays(np.float64, (nq, ng), elements=st.floats(0, 0.99)))
    scores = rel + noise                       # every relevant item above every other one
    res = ranking_metrics_dense(scores, rel, ks=(1, ng), ndcg_k=data.draw(st.integers(1, ng + 1)))
    for key, value in res.items():
        if key in ("n_queries", "n_skipped"):
            continue
        assert value == pytest.approx(1.0), key
    assert res["n_queries"] == int(rel.any(axis=1).sum())


def _reversed_closed_form(R: int, N: int, k: int) -> dict:
    """Every relevant item below every non-relevant one: r_m = N - R + m."""
    ranks = N - R + np.arange(1, R + 1)
    ideal = sum(1 / np.log2(x + 1) for x in range(1, min(k, R) + 1))
    return {"ap": np.mean(np.arange(1, R + 1) / ranks), "first_rank": N - R + 1,
            "ndcg": sum(1 / np.log2(x + 1) for x in ranks if x <= k) / ideal}


@FUZZ
@given(st.integers(1, 6), st.integers(1, 12), st.data())
def test_reversed_ranking_gives_the_closed_form_minimum(nq, ng, data):
    rel = data.draw(hnp.arrays(np.bool_, (nq, ng)))
    assume(rel.any())
    k = data.draw(st.integers(1, ng + 1))
    noise = data.draw(hnp.arrays(np.float64, (nq, ng), elements=st.floats(0, 0.99)))
    worst = _per_query(-(rel + noise), rel, ndcg_k=k)
    # constant scores under the pessimistic rule are exactly as bad
    flat = _per_query(np.zeros((nq, ng)), rel, ndcg_k=k)
    # and no ranking of the same relevance does worse
    other = _per_query(data.draw(hnp.arrays(np.float64, (nq, ng), elements=st.floats(-5, 5))), rel, ndcg_k=k)
    for i in np.flatnonzero(rel.any(axis=1)):
        want = _reversed_closed_form(int(rel[i].sum()), ng, k)
        for got in (worst, flat):
            assert got["first_rank"][i] == want["first_rank"]
            assert got["ap"][i] == pytest.approx(want["ap"], rel=1e-12)
            assert got["ndcg"][i] == pytest.approx(want["ndcg"], rel=1e-12, abs=1e-15)
        assert other["first_rank"][i] <= want["first_rank"]
        assert other["ap"][i] >= want["ap"] - 1e-12
        assert other["ndcg"][i] >= want["ndcg"] - 1e-12


@FUZZ
@given(ranking_cases())
def test_metrics_lie_in_their_ranges(case):
    scores, rel, ndcg_k, ties = case
    pq = _per_query(scores, rel, ndcg_k, ties)
    has = pq["n_relevant"] > 0
    assert np.all((pq["ap"][has] > 0) & (pq["ap"][has] <= 1 + 1e-12))
    assert np.all((pq["ndcg"][has] >= 0) & (pq["ndcg"][has] <= 1 + 1e-12))
    assert np.all((pq["first_rank"][has] >= 1) & (pq["first_rank"][has] <= scores.shape[1] - pq["n_relevant"][has] + 1))
    assert np.all(pq["first_rank"][~has] == 0)
    # the optimistic rule never ranks worse than the pessimistic one
    other = _per_query(scores, rel, ndcg_k, "optimistic" if ties == "pessimistic" else "pessimistic")
    opt, pes = (other, pq) if ties == "pessimistic" else (pq, other)
    assert np.all(opt["first_rank"] <= pes["first_rank"]) and np.all(opt["ap"] >= pes["ap"] - 1e-12)


@FUZZ
@given(st.integers(1, 2**40), st.integers(1, 50), st.booleans())
def test_integer_scores_keep_their_order_however_large(base, gap, first_relevant):
    # two scores one apart at any magnitude: never a false tie
    scores = np.array([[base * 2**20 + gap, base * 2**20]], dtype=np.int64)
    rel = np.array([[first_relevant, not first_relevant]])
    assert ranking_metrics_dense(scores, rel)["MRR"] == (1.0 if first_relevant else 0.5)


# -- similarity ------------------------------------------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def vector_sets(draw):
    d = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    A = draw(hnp.arrays(np.float64, (draw(st.integers(1, 7)), d), elements=finite)).astype(dtype)
    B = draw(hnp.arrays(np.float64, (draw(st.integers(1, 7)), d), elements=finite)).astype(dtype)
    return A, B


def _unit_exponent(v):
    """``v`` times the power of two that brings its largest entry into [0.5, 1) (exact)."""
    top = max(abs(x) for x in v)
    return v if top == 0 else [math.ldexp(x, -math.frexp(top)[1]) for x in v]


def _direct(A, B, metric):
    """The definitions, row pair by row pair, with Python floats (``math.hypot`` takes norms
    without overflow or underflow, ``math.fsum`` sums exactly)."""
    out = np.empty((len(A), len(B)))
    for i, a in enumerate(A.astype(np.float64).tolist()):
        for j, b in enumerate(B.astype(np.float64).tolist()):
            if metric == "cosine":
                # cosine ignores scale: bring each vector to unit magnitude by an exact power of
                # two first, so subnormal inputs keep all their bits in the division below
                a, b = _unit_exponent(a), _unit_exponent(b)
                na, nb = math.hypot(*a), math.hypot(*b)
                out[i, j] = 0.0 if na == 0 or nb == 0 else math.fsum((x / na) * (y / nb) for x, y in zip(a, b))
            elif metric == "dot":
                out[i, j] = math.fsum(x * y for x, y in zip(a, b))
            else:
                out[i, j] = -math.hypot(*(x - y for x, y in zip(a, b)))
    return out


def _tolerance(A, B, metric):
    eps = np.finfo(A.dtype).eps
    if metric == "cosine":
        return 64 * eps
    scale = np.abs(A).max() * np.abs(B).max() * A.shape[1] if metric == "dot" else 0.0
    if metric == "euclidean":
        # the expanded form loses about sqrt(eps) * norm on near-equal vectors
        scale = (np.linalg.norm(A, axis=1).max() + np.linalg.norm(B, axis=1).max()) * np.sqrt(eps) * 4
        return scale + 1e-6
    return 64 * eps * scale + 1e-12


@FUZZ
@given(vector_sets(), st.sampled_from(["cosine", "dot", "euclidean"]), st.integers(1, 8))
def test_similarities_match_a_direct_computation(vectors, metric, chunk):
    A, B = vectors
    want = _direct(A, B, metric)
    got = pairwise_similarity(A, B, metric)
    assert got.dtype == A.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=_tolerance(A, B, metric))
    blocks = list(iter_similarity_chunks(A, B, metric, chunk_size=chunk))
    assert [s for s, _ in blocks] == list(range(0, len(A), chunk))
    # BLAS may sum a one-row block in another order than a many-row one: the last bit may differ
    np.testing.assert_allclose(np.concatenate([b for _, b in blocks]), got, rtol=4 * np.finfo(A.dtype).eps,
                               atol=_tolerance(A, B, metric))
    if metric == "euclidean":
        dist = pairwise_distance(A, B)
        np.testing.assert_array_equal(dist, -got)
        assert np.all(dist >= 0)
    if metric == "cosine":
        assert np.all(np.abs(got) <= 1 + 64 * np.finfo(A.dtype).eps)


@FUZZ
@given(vector_sets(), st.floats(-30, 30), st.floats(-30, 30))
def test_cosine_ignores_the_scale_of_each_row_however_small_or_large(vectors, ea, eb):
    A, B = vectors
    # powers of two scale exactly (float32 keeps exponents -126 .. 127 for normal numbers)
    sa, sb = 2.0 ** round(ea * 2), 2.0 ** round(eb * 2)
    assume(np.all((A == 0) | (np.abs(A) * sa > 1e-30)) and np.all((B == 0) | (np.abs(B) * sb > 1e-30)))
    a = pairwise_similarity(A, B, "cosine")
    b = pairwise_similarity((A * sa).astype(A.dtype), (B * sb).astype(B.dtype), "cosine")
    np.testing.assert_allclose(a, b, atol=64 * np.finfo(A.dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_cosine_of_tiny_and_huge_vectors(dtype, scale):
    # squares of these underflow to 0 or overflow to inf in float32: norms are taken scaled
    A = (np.array([[3.0, 4.0], [0.0, 0.0]]) * scale).astype(dtype)
    B = (np.array([[3.0, 4.0], [4.0, -3.0], [-6.0, -8.0]]) * scale).astype(dtype)
    np.testing.assert_allclose(pairwise_similarity(A, B, "cosine"), [[1, 0, -1], [0, 0, 0]], atol=1e-6)
    unit = l2_normalize(A)
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0, 0]], atol=1e-6)


# -- relevance from labels -------------------------------------------------------------------

label_value = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "c"]), st.none(), st.booleans(),
                        st.floats(allow_nan=True), st.lists(st.integers(0, 2), max_size=2))
label_entry = st.one_of(label_value, st.lists(label_value, max_size=3), st.sets(st.integers(0, 4), max_size=3),
                        st.frozensets(st.sampled_from(["a", "b", "c"]), max_size=3), st.tuples(st.integers(0, 4)))


def _as_set(entry):
    return set(entry) if isinstance(entry, (list, tuple, set, frozenset)) else {entry}


@FUZZ
@given(st.lists(label_entry, min_size=1, max_size=6), st.lists(label_entry, min_size=1, max_size=6))
def test_any_labels_give_set_intersection_relevance_or_a_clear_error(query, gallery):
    from jointspace.errors import InputError
    from jointspace.eval.relevance import make_relevance

    try:
        rel = make_relevance(query, gallery)
    except InputError as exc:
        assert str(exc).startswith(("query_keys", "gallery_keys")), str(exc)
        return
    mask = rel.block(0, len(query)).mask()
    sets_given = any(isinstance(e, (list, tuple, set, frozenset)) for e in query + gallery)
    if sets_given:
        want = [[bool(_as_set(q) & _as_set(g)) for g in gallery] for q in query]
    else:
        # 1-D keys: numbers compare as numbers; a list mixing kinds compares as strings
        def form(side):
            return side if all(isinstance(v, (int, float)) for v in side) else [str(v) for v in side]
        want = [[q == g for g in form(gallery)] for q in form(query)]
    np.testing.assert_array_equal(mask, want)
    np.testing.assert_array_equal(rel.block(0, len(query)).n_relevant, np.sum(want, axis=1))
