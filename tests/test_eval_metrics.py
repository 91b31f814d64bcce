"""Ranking metrics: pinned against scikit-learn, a brute-force ranking and a hand-worked case."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, ndcg_score

import jointspace.eval.metrics as metrics_mod
from jointspace.errors import InputError
from jointspace.eval.metrics import ranking_metrics, ranking_metrics_dense, summarize
from jointspace.eval.relevance import DenseRelevance, KeyRelevance, MultiLabelRelevance


def brute_force(scores, relevant, ks=(1, 5, 10), ndcg_k=10, ties="pessimistic"):
    """Full sort of every row with an explicit tie-break key; a plain loop per query."""
    aps, firsts, ndcgs = [], [], []
    for s, r in zip(scores, relevant):
        if not r.any():
            continue
        tie_key = r.astype(int) if ties == "pessimistic" else -r.astype(int)
        order = np.lexsort((tie_key, -s))           # score descending, then the tie rule
        ranks = np.flatnonzero(r[order]) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        firsts.append(ranks[0])
        dcg = sum(1 / np.log2(x + 1) for x in ranks if x <= ndcg_k)
        idcg = sum(1 / np.log2(x + 1) for x in range(1, min(ndcg_k, len(ranks)) + 1))
        ndcgs.append(dcg / idcg)
    f = np.array(firsts, dtype=float)
    out = {"mAP": np.mean(aps)}
    out.update({f"R@{k}": np.mean(f <= k) for k in ks})
    out.update({"MRR": np.mean(1 / f), "medR": np.median(f), "meanR": f.mean(), f"nDCG@{ndcg_k}": np.mean(ndcgs)})
    return out


def assert_summary_close(got, want):
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.fixture(params=[0.02, 0.3], ids=["sparse", "dense"])
def random_case(request):
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((60, 80))
    relevant = rng.random((60, 80)) < request.param
    return scores, relevant


def test_ap_matches_sklearn_per_query(random_case):
    scores, relevant = random_case
    summary, per_query = ranking_metrics_dense(scores, relevant, return_per_query=True)
    valid = relevant.any(axis=1)
    want = np.array([average_precision_score(relevant[i], scores[i]) for i in np.flatnonzero(valid)])
    np.testing.assert_allclose(per_query["ap"][valid], want, atol=1e-12)
    assert summary["mAP"] == pytest.approx(want.mean(), abs=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10, 80])
def test_ndcg_matches_sklearn(random_case, k):
    scores, relevant = random_case
    valid = relevant.any(axis=1)
    summary = ranking_metrics_dense(scores, relevant, ndcg_k=k)
    want = ndcg_score(relevant[valid].astype(float), scores[valid], k=k)
    assert summary[f"nDCG@{k}"] == pytest.approx(want, abs=1e-12)


def test_all_metrics_match_brute_force(random_case):
    scores, relevant = random_case
    assert_summary_close(ranking_metrics_dense(scores, relevant, ks=(1, 2, 5, 10)),
                         brute_force(scores, relevant, ks=(1, 2, 5, 10)))


# 3 queries x 4 items, worked by hand:
#   q0 scores .9 .1 .5 .3, relevant {2}:    order 0 2 3 1 -> rank 2;     AP 1/2
#   q1 scores .2 .8 .4 .6, relevant {1, 2}: order 1 3 2 0 -> ranks 1, 3; AP (1/1 + 2/3)/2 = 5/6
#   q2 scores .1 .2 .3 .4, relevant {0}:    order 3 2 1 0 -> rank 4;     AP 1/4
HAND_SCORES = np.array([[.9, .1, .5, .3], [.2, .8, .4, .6], [.1, .2, .3, .4]])
HAND_REL = np.array([[0, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=bool)


def test_hand_worked_case():
    res, pq = ranking_metrics_dense(HAND_SCORES, HAND_REL, ks=(1, 2, 3, 4), ndcg_k=2, return_per_query=True)
    np.testing.assert_array_equal(pq["first_rank"], [2, 1, 4])
    np.testing.assert_allclose(pq["ap"], [1 / 2, 5 / 6, 1 / 4])
    assert res["mAP"] == pytest.approx((1 / 2 + 5 / 6 + 1 / 4) / 3)
    assert [res[f"R@{k}"] for k in (1, 2, 3, 4)] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1.0])
    assert res["MRR"] == pytest.approx((1 / 2 + 1 + 1 / 4) / 3)
    assert res["medR"] == 2.0
    assert res["meanR"] == pytest.approx(7 / 3)
    # nDCG@2: q0 (1/log2 3) / 1; q1 1 / (1 + 1/log2 3); q2 0
    l3 = 1 / np.log2(3)
    np.testing.assert_allclose(pq["ndcg"], [l3, 1 / (1 + l3), 0.0])
    assert res["n_queries"] == 3 and res["n_skipped"] == 0


def test_queries_without_relevant_items_are_skipped_and_counted():
    scores = np.vstack([HAND_SCORES, [[.4, .3, .2, .1]]])
    rel = np.vstack([HAND_REL, [[0, 0, 0, 0]]]).astype(bool)
    res = ranking_metrics_dense(scores, rel, ks=(1, 2, 3, 4), ndcg_k=2)
    assert res["n_queries"] == 3 and res["n_skipped"] == 1
    assert res["mAP"] == pytest.approx((1 / 2 + 5 / 6 + 1 / 4) / 3)
    assert res["medR"] == 2.0


def test_no_query_with_relevant_items_is_an_error():
    with pytest.raises(InputError, match="no query has a relevant item"):
        ranking_metrics_dense(HAND_SCORES, np.zeros((3, 4), dtype=bool))


def test_top_k_recall_leaves_out_queries_with_nothing_to_find_as_summarize_does():
    rng = np.random.default_rng(5)
    q, g = rng.normal(size=(6, 4)), rng.normal(size=(8, 4))
    qk, gk = np.array([0, 1, 2, 3, 8, 9]), np.array([0, 1, 2, 3, 0, 1, 2, 3])   # keys 8, 9 absent
    dense = ranking_metrics_dense(q @ g.T, qk[:, None] == gk[None, :], ks=(3,))
    assert dense["n_skipped"] == 2
    assert metrics_mod.top_k_recall(q, g, qk, gk, k=3) == pytest.approx(dense["R@3"])
    # "group": one mean per key over the findable queries, written out here
    qk2 = np.array([0, 0, 1, 2, 3, 9])
    top = np.argsort(-(q @ g.T), axis=1)[:, :3]
    hit = [(gk[top[i]] == qk2[i]).any() for i in range(5)]
    expected = np.mean([np.mean(hit[:2]), hit[2], hit[3], hit[4]])
    assert metrics_mod.top_k_recall(q, g, qk2, gk, k=3, average="group") == pytest.approx(expected)
    with pytest.raises(InputError, match="no query has a relevant gallery item"):
        metrics_mod.top_k_recall(q, g, qk + 20, gk, k=3)


@pytest.mark.parametrize("make, match", [
    (lambda q, g: (q, g[:, :3]),
     r"^gallery: expected 4 columns to match queries \(shape \(6, 4\)\), got shape \(8, 3\)"),
    (lambda q, g: (q.astype(str), g), r"^queries: expected a 2-D numeric array, got dtype <U"),
    (lambda q, g: (q[0], g), r"^queries: expected a 2-D array .* got shape \(4,\)"),
    (lambda q, g: (q, np.where(g > 1, np.nan, g)), r"^gallery: expected finite values"),
])
def test_top_k_recall_checks_the_embeddings_as_retrieval_scores_does(make, match):
    from jointspace.eval import retrieval_scores

    rng = np.random.default_rng(6)
    q, g = make(rng.normal(size=(6, 4)), rng.normal(size=(8, 4)))
    qk, gk = np.arange(6) % 4, np.arange(8) % 4
    with pytest.raises(InputError, match=match):
        metrics_mod.top_k_recall(q, g, qk[:len(np.atleast_2d(q))], gk, k=3)
    with pytest.raises(InputError, match=match):
        retrieval_scores(q, g, qk[:len(np.atleast_2d(q))], gk)


def test_missing_keys_are_blamed_on_their_own_side():
    from jointspace.eval import retrieval_scores

    x = np.eye(3)
    with pytest.raises(InputError, match=r"^query_keys: expected keys \(n,\).*got NoneType None"):
        retrieval_scores(x, x, None, [0, 1, 2])
    with pytest.raises(InputError, match=r"^gallery_keys: expected keys \(n,\).*got NoneType None"):
        retrieval_scores(x, x, [0, 1, 2], None)
    with pytest.raises(InputError, match=r"^query_keys: expected keys \(n,\).*got int 3"):
        metrics_mod.top_k_recall(x, x, 3, [0, 1, 2])


class TestTies:
    scores = np.array([[0.5, 0.5, 0.5, 0.1], [0.5, 0.5, 0.5, 0.1]])
    rel = np.array([[0, 1, 0, 0], [1, 1, 0, 0]], dtype=bool)

    def test_pessimistic_puts_non_relevant_first(self):
        _, pq = ranking_metrics_dense(self.scores, self.rel, return_per_query=True)
        np.testing.assert_array_equal(pq["first_rank"], [3, 2])
        np.testing.assert_allclose(pq["ap"], [1 / 3, (1 / 2 + 2 / 3) / 2])

    def test_optimistic_puts_relevant_first(self):
        _, pq = ranking_metrics_dense(self.scores, self.rel, ties="optimistic", return_per_query=True)
        np.testing.assert_array_equal(pq["first_rank"], [1, 1])
        np.testing.assert_allclose(pq["ap"], [1.0, 1.0])

    def test_constant_scores_get_the_worst_ranks(self):
        rel = np.eye(5, dtype=bool)
        res = ranking_metrics_dense(np.zeros((5, 5)), rel)
        assert res["medR"] == 5 and res["mAP"] == pytest.approx(1 / 5)

    @pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
    @pytest.mark.parametrize("density", [0.03, 0.3])
    def test_counting_and_sorting_paths_agree_with_brute_force(self, monkeypatch, ties, density):
        rng = np.random.default_rng(5)
        scores = rng.integers(0, 4, size=(40, 30)).astype(np.float32)   # many ties
        rel = rng.random((40, 30)) < density
        want = brute_force(scores, rel, ties=ties)
        assert_summary_close(ranking_metrics_dense(scores, rel, ties=ties), want)
        monkeypatch.setattr(metrics_mod, "COUNT_MAX", 0)          # force the sorting path
        assert_summary_close(ranking_metrics_dense(scores, rel, ties=ties), want)
        monkeypatch.setattr(metrics_mod, "COUNT_MAX", 10**6)      # force the counting path
        assert_summary_close(ranking_metrics_dense(scores, rel, ties=ties), want)


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunked_equals_unchunked(random_case, chunk):
    scores, relevant = random_case
    _, whole = ranking_metrics_dense(scores, relevant, return_per_query=True)
    _, parts = ranking_metrics_dense(scores, relevant, chunk_size=chunk, return_per_query=True)
    # ranks are exact; AP and nDCG may differ in the last bit when a block takes the
    # counting path and the whole matrix the sorting path (different summation order)
    np.testing.assert_array_equal(parts["first_rank"], whole["first_rank"])
    np.testing.assert_array_equal(parts["n_relevant"], whole["n_relevant"])
    np.testing.assert_allclose(parts["ap"], whole["ap"], rtol=1e-13, atol=0)
    np.testing.assert_allclose(parts["ndcg"], whole["ndcg"], rtol=1e-13, atol=0)


def test_input_scores_are_not_modified(random_case):
    scores, relevant = random_case
    copy = scores.copy()
    ranking_metrics_dense(scores, relevant)
    np.testing.assert_array_equal(scores, copy)


def test_key_and_multilabel_relevance_match_dense():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((25, 30))
    qk, gk = rng.integers(0, 4, 25), rng.integers(0, 4, 30)
    dense = ranking_metrics(((0, scores),), DenseRelevance(qk[:, None] == gk[None, :]))
    keyed = ranking_metrics(((0, scores),), KeyRelevance(qk, gk))
    for key in dense:
        np.testing.assert_array_equal(keyed[key], dense[key])
    ql, gl = rng.random((25, 5)) < 0.2, rng.random((30, 5)) < 0.2
    dense = ranking_metrics(((0, scores),), DenseRelevance((ql.astype(int) @ gl.T.astype(int)) > 0))
    multi = ranking_metrics(((0, scores),), MultiLabelRelevance(ql, gl))
    for key in dense:
        np.testing.assert_array_equal(multi[key], dense[key])


def test_string_keys():
    rel = KeyRelevance(np.array(["cat", "dog", "eel"]), ["dog", "cat", "cat", "owl"])
    rows, cols = rel.pairs(0, 3)
    assert rows.tolist() == [0, 0, 1] and cols.tolist() == [1, 2, 0]
    np.testing.assert_array_equal(rel.n_relevant(), [2, 1, 0])


@pytest.mark.parametrize("kwargs, match", [
    ({"ks": (0, 5)}, "ks: expected an integer >= 1, got 0"),
    ({"ks": ()}, "ks: expected at least one cut-off"),
    ({"ks": "5"}, "ks: expected a sequence of integers"),
    ({"ndcg_k": 0}, "ndcg_k: expected an integer >= 1, got 0"),
    ({"ties": "random"}, "ties: expected one of pessimistic, optimistic"),
    ({"chunk_size": 0}, "chunk_size: expected an integer >= 1"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(InputError, match=match):
        ranking_metrics_dense(HAND_SCORES, HAND_REL, **kwargs)


def test_bad_score_and_relevance_inputs():
    with pytest.raises(InputError, match="scores: expected finite values"):
        ranking_metrics_dense(np.array([[np.nan, 1.0]]), np.array([[True, False]]))
    with pytest.raises(InputError, match="scores: expected a 2-D array"):
        ranking_metrics_dense(np.array([1.0, 2.0]), np.array([True, False]))
    with pytest.raises(InputError, match=r"relevant: expected shape \(3, 4\)"):
        ranking_metrics_dense(HAND_SCORES, HAND_REL[:, :3])
    with pytest.raises(InputError, match="relevant: expected a boolean"):
        ranking_metrics_dense(HAND_SCORES, HAND_REL * 2)


def test_summarize_ks():
    _, pq = ranking_metrics_dense(HAND_SCORES, HAND_REL, return_per_query=True)
    assert set(summarize(pq, ks=(3,))) >= {"R@3", "mAP", "nDCG@10"}


def test_relevance_block_derives_the_other_form():
    from jointspace.eval.relevance import RelevanceBlock

    mask = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=bool)
    from_mask = RelevanceBlock(mask.sum(1), 3, mask=mask)
    rows, cols = from_mask.pairs()
    assert rows.tolist() == [0, 0, 2] and cols.tolist() == [1, 2, 0]
    from_pairs = RelevanceBlock(mask.sum(1), 3, make_pairs=lambda: (rows, cols))
    np.testing.assert_array_equal(from_pairs.mask(), mask)


def test_key_relevance_block_mask_matches_pairs():
    rel = KeyRelevance([3, 1, 7, 1], [1, 3, 3, 1, 2])
    blk = rel.block(1, 4)
    np.testing.assert_array_equal(blk.n_relevant, [2, 0, 2])
    np.testing.assert_array_equal(blk.mask(), [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 1, 0]])
    rows, cols = blk.pairs()
    assert rows.tolist() == [0, 0, 2, 2] and cols.tolist() == [0, 3, 0, 3]


def test_progress_reports_every_query():
    seen = []
    ranking_metrics(((0, HAND_SCORES[:2]), (2, HAND_SCORES[2:])), DenseRelevance(HAND_REL), progress=seen.append)
    assert seen == [2, 1]


def test_blocks_must_cover_all_queries():
    with pytest.raises(InputError, match="score_chunks: expected blocks covering all 3 queries, 1 were missing"):
        ranking_metrics(((0, HAND_SCORES[:2]),), DenseRelevance(HAND_REL))
    with pytest.raises(InputError, match="scores: expected 4 columns"):
        ranking_metrics(((0, HAND_SCORES[:, :3]),), DenseRelevance(HAND_REL))


def test_blocks_must_be_2d_finite_and_within_the_queries():
    nan = HAND_SCORES.copy()
    nan[1, 2] = np.nan
    for rel in (DenseRelevance(HAND_REL), KeyRelevance([0, 1, 2], [5, 1, 0, 6])):
        # NaN compares false both ways: the counting and sorting paths would rank it differently
        with pytest.raises(InputError, match="scores: expected finite values, got nan for query 1, gallery item 2"):
            ranking_metrics(((0, nan),), rel)
    inf = HAND_SCORES.copy()
    inf[2, 0] = -np.inf
    with pytest.raises(InputError, match="scores: expected finite values, got -inf for query 2, gallery item 0"):
        ranking_metrics(((0, HAND_SCORES[:2]), (2, inf[2:])), DenseRelevance(HAND_REL))
    with pytest.raises(InputError, match=r"scores: expected 2-D blocks of shape \(queries in block, 4\), "
                                         r"got shape \(4,\)"):
        ranking_metrics(((0, HAND_SCORES[0]),), DenseRelevance(HAND_REL))
    with pytest.raises(InputError, match="scores: expected numeric scores, got dtype <U1"):
        ranking_metrics(((0, np.array([list("abcd")] * 3)),), DenseRelevance(HAND_REL))
    with pytest.raises(InputError, match="score_chunks: expected a block within the 3 queries, "
                                         "got 2 rows starting at 2"):
        ranking_metrics(((0, HAND_SCORES[:2]), (2, HAND_SCORES[1:])), DenseRelevance(HAND_REL))
    # integer scores are ranked as numbers
    _, pq = ranking_metrics_dense(HAND_SCORES, HAND_REL, return_per_query=True)
    ints = ranking_metrics(((0, (HAND_SCORES * 10).astype(np.int64)),), DenseRelevance(HAND_REL))
    np.testing.assert_array_equal(ints["first_rank"], pq["first_rank"])


@pytest.mark.parametrize("count_max", [10**6, 0], ids=["counting", "sorting"])
def test_ndcg_cutoff_beyond_the_gallery_is_the_gallery_size(monkeypatch, count_max):
    monkeypatch.setattr(metrics_mod, "COUNT_MAX", count_max)
    huge = 10**11                                           # a discount table this long would not fit
    res, pq = ranking_metrics_dense(HAND_SCORES, HAND_REL, ndcg_k=huge, return_per_query=True)
    # full rankings: q0 rank 2; q1 ranks 1, 3 (ideal 1, 2); q2 rank 4
    want = [1 / np.log2(3), (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)), 1 / np.log2(5)]
    np.testing.assert_allclose(pq["ndcg"], want, rtol=1e-12)
    assert res[f"nDCG@{huge}"] == pytest.approx(np.mean(want))
    assert res[f"nDCG@{huge}"] == pytest.approx(ranking_metrics_dense(HAND_SCORES, HAND_REL, ndcg_k=4)["nDCG@4"])


def test_object_keys_of_numbers_compare_as_numbers():
    floats = KeyRelevance(np.array([1.0, 2.0, 3.0], dtype=object), np.array([3, 1, 2, 1], dtype=object))
    np.testing.assert_array_equal(floats.n_relevant(), [2, 1, 1])
    mixed = KeyRelevance(np.array([1, 2, 3], dtype=object), np.array([3, 1, 2, 1], dtype=np.int64))
    np.testing.assert_array_equal(mixed.n_relevant(), [2, 1, 1])
    rows, cols = mixed.pairs(0, 1)
    assert cols.tolist() == [1, 3]
    # strings stay strings: "1" is not the number 1
    words = KeyRelevance(np.array(["1", "b"], dtype=object), np.array(["b", "1", "1"]))
    np.testing.assert_array_equal(words.n_relevant(), [2, 1])
    with pytest.raises(InputError, match="gallery_keys: expected keys of the same kind as query_keys"):
        KeyRelevance(np.array(["1", "2"], dtype=object), np.array([1, 2]))
    with pytest.raises(InputError, match="query_keys: expected finite keys"):
        KeyRelevance(np.array([1.0, np.nan], dtype=object), np.array([1, 2]))


@pytest.mark.parametrize("scores", [
    [[2**24 + 1, 2**24]],                                        # float32 would tie these
    np.array([[2**62 + 1, 2**62]], dtype=np.int64),              # float64 would tie these
    np.array([[2**63 + 1, 2**63]], dtype=np.uint64),
    np.array([[1.0 + 2.0**-40, 1.0]]),                           # float64 stays float64
])
def test_integer_and_float64_scores_keep_their_exact_order(scores):
    res = ranking_metrics_dense(scores, [[True, False]])
    assert res["MRR"] == 1.0 and res["mAP"] == 1.0
    # swapped, the relevant item is second; equal, the pessimistic rule puts it second too
    assert ranking_metrics_dense(scores, [[False, True]])["MRR"] == 0.5
    tied = np.asarray(scores)[:, :1].repeat(2, axis=1)
    assert ranking_metrics_dense(tied, [[True, False]])["MRR"] == 0.5


def test_huge_integer_scores_rank_as_brute_force_does():
    rng = np.random.default_rng(3)
    base = np.int64(2**62)
    scores = base + rng.integers(0, 5, size=(12, 9))             # distinct only beyond 2**53
    rel = rng.random((12, 9)) < 0.3
    rel[:, 0] = True
    want = brute_force(scores - base, rel)                       # small ints: exact anywhere
    assert_summary_close(ranking_metrics_dense(scores, rel), want)


class TestOneTieRule:
    """Model selection and early stopping (top_k_recall) rank ties as the reports do."""

    def test_a_relevant_item_tied_with_non_relevant_ones_ranks_after_them(self):
        # query 0 scores every gallery item 1.0 (equal embeddings): its partner, gallery 0,
        # ties with the three others, so pessimistically its rank is 4
        q = np.array([[1.0, 0.0], [0.0, 1.0]])
        g = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
        keys_q, keys_g = np.array([0, 1]), np.array([0, 1, 2, 3])
        for k, want in ((1, 0.0), (3, 0.0), (4, 1.0)):
            got = metrics_mod.top_k_recall(q, g, keys_q, keys_g, k=k)
            report = ranking_metrics_dense(q @ g.T, keys_q[:, None] == keys_g[None, :], ks=(k,))[f"R@{k}"]
            assert got == want == report   # query 1 (key 1) scores 0 against all: rank 4 too
        assert metrics_mod.top_k_recall(q, g, keys_q, keys_g, k=1, ties="optimistic") == 1.0

    @pytest.mark.parametrize("average", ["query", "group"])
    def test_many_ties_agree_with_the_report_and_brute_force(self, average):
        rng = np.random.default_rng(11)
        # integer embeddings: many exactly equal inner products
        q = rng.integers(0, 2, size=(50, 3)).astype(np.float64)
        g = rng.integers(0, 2, size=(40, 3)).astype(np.float64)
        qk, gk = rng.integers(0, 8, size=50), rng.integers(0, 8, size=40)
        rel = qk[:, None] == gk[None, :]
        _, pq = ranking_metrics_dense(q @ g.T, rel, return_per_query=True)
        for k in (1, 3, 10):
            first = pq["first_rank"]
            found = first > 0
            hits = first[found] <= k
            if average == "query":
                want = hits.mean()
            else:
                want = np.mean([hits[qk[found] == key].mean() for key in np.unique(qk[found])])
            assert metrics_mod.top_k_recall(q, g, qk, gk, k=k, chunk=7, average=average) == pytest.approx(want)
        # the report's R@k is the query average
        report = ranking_metrics_dense(q @ g.T, rel, ks=(3,))["R@3"]
        assert metrics_mod.top_k_recall(q, g, qk, gk, k=3) == pytest.approx(report)
        brute = brute_force(q @ g.T, rel, ks=(3,))["R@3"]
        assert report == pytest.approx(brute)

    def test_first_relevant_rank_is_the_rank_ranking_metrics_gives(self):
        rng = np.random.default_rng(2)
        S = rng.integers(0, 3, size=(30, 12)).astype(np.float32)
        rel = rng.random((30, 12)) < 0.2
        for ties in ("pessimistic", "optimistic"):
            want = ranking_metrics(((0, S),), DenseRelevance(rel), ties=ties)["first_rank"]
            np.testing.assert_array_equal(metrics_mod.first_relevant_rank(S, rel, ties), want)

    def test_the_matchers_early_stopping_mrr_is_the_reports_mrr(self):
        from jointspace.models.rerank import _text_to_image_mrr

        rng = np.random.default_rng(4)
        scores = rng.integers(0, 3, size=(20, 20)).astype(np.float32)   # many ties
        keys = rng.integers(0, 5, size=20)
        want = ranking_metrics_dense(scores, keys[:, None] == keys[None, :])["MRR"]
        assert _text_to_image_mrr(scores, keys) == pytest.approx(want)

    def test_top_k_recall_reads_label_sets(self):
        q = g = np.eye(3)
        sets = [[0, 2], [1], [2]]
        # query 0 holds {0, 2}: its best relevant item is itself (score 1)
        assert metrics_mod.top_k_recall(q, g, sets, sets, k=1) == 1.0
        with pytest.raises(InputError, match="average: 'group' needs one key per query"):
            metrics_mod.top_k_recall(q, g, sets, sets, k=1, average="group")


@pytest.mark.parametrize("relevant, given", [([[1, np.nan, 0]], r"nan at row 0, column 1"),
                                             ([[1, 0, 0], [0, 2, 0]], r"2 at row 1, column 1"),
                                             ([[0.5, 1, 0]], r"0.5 at row 0, column 0"),
                                             ([["a", "b", "c"]], r"dtype <U1")])
def test_a_relevance_matrix_not_of_zeros_and_ones_is_refused_with_what_was_given(relevant, given):
    with pytest.raises(InputError, match=rf"^relevant: expected a boolean \(or 0/1\) matrix, got {given}$"):
        DenseRelevance(relevant)
    with pytest.raises(InputError, match=rf"^relevant: expected a boolean \(or 0/1\) matrix, got {given}$"):
        ranking_metrics_dense(np.zeros((len(relevant), 3)), relevant)
