"""Search correctness of jointspace.index.Index against brute-force numpy and exact FAISS."""

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.index.faiss_index import Index


def _data(n=2000, d=24, nq=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((nq, d)).astype(np.float32)


def _brute(x, q, metric, k):
    """Independent reference in float64: top-k by cosine / dot product / squared L2."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
    if metric == "l2":
        s = ((q64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)
        order = np.argsort(s, axis=1, kind="stable")[:, :k]
    else:
        s = q64 @ x64.T
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), order


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_flat_matches_bruteforce(metric):
    x, q = _data()
    ids = np.arange(x.shape[0]) * 3 + 7
    idx = Index.build(x, spec="Flat", metric=metric, ids=ids)
    scores, got = idx.search(q, k=10)
    ref_s, ref_i = _brute(x, q, metric, 10)
    assert got.shape == (30, 10) and got.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(got, ids[ref_i])
    np.testing.assert_allclose(scores, ref_s, rtol=1e-4, atol=1e-4)
    assert idx.higher_is_better == (metric != "l2")


def test_cosine_scores_are_cosines_in_range():
    x, q = _data(n=300)
    idx = Index.build(x * 5.0, spec="Flat", metric="cosine")
    scores, ids = idx.search(x[:5] * 0.1, k=3)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)   # each vector finds itself
    np.testing.assert_array_equal(ids[:, 0], np.arange(5))
    assert (scores <= 1.0 + 1e-5).all() and (scores >= -1.0 - 1e-5).all()


def test_hnsw_recall_at_10():
    x, q = _data(n=4000, d=32, nq=200, seed=1)
    exact = Index.build(x, spec="Flat")
    hnsw = Index.build(x, spec="HNSW32")
    hnsw.set_search_params(efSearch=128)
    _, e = exact.search(q, 10)
    _, h = hnsw.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(e, h)])
    assert recall >= 0.95
    assert hnsw.search_params == {"efSearch": 128}


def test_ivf_nprobe_changes_results_and_full_probe_is_exact():
    x, q = _data(n=3000, d=16, nq=100, seed=2)
    exact = Index.build(x, spec="Flat", metric="l2")
    ivf = Index.build(x, spec="IVF32,Flat", metric="l2")
    _, e = exact.search(q, 10)
    _, one = ivf.search(q, 10, params={"nprobe": 1})
    s_all, full = ivf.search(q, 10, params={"nprobe": 32})
    assert not np.array_equal(one, e)
    np.testing.assert_array_equal(full, e)
    # per-call params do not change the defaults
    assert ivf.search_params == {"nprobe": 16}
    ivf.set_search_params(nprobe=32)
    np.testing.assert_array_equal(ivf.search(q, 10)[1], e)


def test_k_larger_than_index_pads_with_minus_one():
    x, q = _data(n=5)
    for metric, fill in (("cosine", -np.inf), ("l2", np.inf)):
        idx = Index.build(x, spec="Flat", metric=metric)
        scores, ids = idx.search(q[:2], k=8)
        assert ids.shape == (2, 8)
        assert (ids[:, 5:] == -1).all() and sorted(ids[0, :5]) == list(range(5))
        assert np.all(scores[:, 5:] == fill) and np.isfinite(scores[:, :5]).all()


def test_empty_index_returns_padding():
    idx = Index(4, "Flat")
    scores, ids = idx.search(np.ones((2, 4)), k=3)
    assert (ids == -1).all() and np.isneginf(scores).all()


def test_batched_search_equals_single_call_and_1d_query():
    x, q = _data(n=500)
    idx = Index.build(x, spec="Flat")
    a = idx.search(q, 7)
    b = idx.search(q, 7, batch_size=4)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    s1, i1 = idx.search(q[3], 7)
    assert i1.shape == (1, 7)
    np.testing.assert_array_equal(i1[0], a[1][3])


@pytest.mark.parametrize("spec", ["Flat", "HNSW32", "IVF16,Flat", "IVF16,PQ8x4", "PCA8,HNSW32"])
def test_remove_never_returns_removed_ids(spec):
    x, q = _data(n=1500, d=16, seed=3)
    idx = Index.build(x, spec=spec, ids=np.arange(1500) + 100)
    if "IVF" in spec:
        idx.set_search_params(nprobe=16)
    _, before = idx.search(q, 10)
    gone = np.unique(before[:, :3])
    assert idx.remove(gone) == gone.size
    assert len(idx) == 1500 - gone.size and idx.ntotal == len(idx)
    _, after = idx.search(q, 10)
    assert not np.isin(after, gone).any()
    assert (after >= 0).all()
    assert not np.isin(gone, idx.ids).any()


@pytest.mark.parametrize("spec", ["NSG32,Flat", "PQ4x4fs"])
def test_remove_from_an_index_that_can_neither_delete_nor_filter_is_refused(spec):
    """remove() used to succeed and leave every later search failing ('search params not
    supported for this index')."""
    x, q = _data(n=1000, d=16, seed=3)   # an NSG graph is built from 1,000 vectors at least
    idx = Index.build(x, spec=spec)
    scores, ids = idx.search(q, 5)
    with pytest.raises(InputError, match=rf"^index: cannot remove vectors from an index of type '{spec}' "
                                         r"\(FAISS can neither delete them from it nor skip them in its search\); "
                                         "build it again without them$"):
        idx.remove([0, 1])
    assert idx.ntotal == 1000 and idx.ids.size == 1000
    again = idx.search(q, 5)
    np.testing.assert_array_equal(again[1], ids)
    np.testing.assert_array_equal(again[0], scores)


def test_remove_flat_matches_bruteforce_on_the_rest():
    x, q = _data(n=400)
    idx = Index.build(x, spec="Flat", metric="ip")
    keep = np.setdiff1d(np.arange(400), np.arange(0, 400, 3))
    idx.remove(np.arange(0, 400, 3))
    _, got = idx.search(q, 10)
    _, ref = _brute(x[keep], q, "ip", 10)
    np.testing.assert_array_equal(got, keep[ref])


def test_hnsw_removed_ids_stay_reserved_and_default_ids_continue():
    x, _ = _data(n=50, d=8)
    idx = Index.build(x, spec="HNSW32")
    idx.remove([3, 49])
    with pytest.raises(Exception, match="removed"):
        idx.add(x[:1], ids=[3])
    new = idx.add(x[:2])
    np.testing.assert_array_equal(new, [50, 51])


@pytest.mark.parametrize("spec", ["Flat", "IVF4,Flat", "SQ8", "HNSW32"])
def test_the_id_of_a_removed_vector_is_never_given_again_by_default(spec, tmp_path):
    """Ids name items outside the index (a user's records, the server's links): the id of a
    removed vector, the largest or not, is not given to a new one, also after a save and load.
    Flat, IVF and SQ delete in place; before, their next default id followed the largest id
    still held (removing 49 then adding gave 49 again), while HNSW kept it reserved."""
    x, _ = _data(n=50, d=8)
    idx = Index.build(x, spec=spec)
    idx.remove([49, 48])
    np.testing.assert_array_equal(idx.add(x[:2]), [50, 51])
    idx.remove([51])
    idx.save(tmp_path / "idx")
    again = Index.load(tmp_path / "idx")
    np.testing.assert_array_equal(again.add(x[:1]), [52])
    if spec != "HNSW32":   # given explicitly, a deleted id may be used again (HNSW keeps it reserved)
        np.testing.assert_array_equal(again.add(x[:1], ids=[49]), [49])


def test_auto_resolves_by_size_and_records_it():
    x, _ = _data(n=300, d=8)
    idx = Index.build(x)
    assert idx.spec == "auto" and idx.resolved_spec == "Flat"
    empty = Index(8, "auto")
    assert empty.resolved_spec is None
    empty.add(x)
    assert empty.resolved_spec == "Flat"


@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
@pytest.mark.parametrize("nq", [1, 25])   # FAISS takes another kernel from 20 queries on
def test_equal_scores_come_in_increasing_id_order(metric, nq):
    """Hand-worked: the query e1 scores ids 0, 2 and 3 equally (the same vector), ahead of 1 and 4.
    FAISS ordered inner-product ties by decreasing id ([3, 2, 0])."""
    x = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1]], np.float32)
    q = np.tile(np.array([[1, 0]], np.float32), (nq, 1))
    scores, ids = Index.build(x, spec="Flat", metric=metric).search(q, k=5)
    best, rest = (1.0, 0.0) if metric != "l2" else (0.0, 2.0)
    assert ids.tolist() == [[0, 2, 3, 1, 4]] * nq
    np.testing.assert_array_equal(scores, [[best] * 3 + [rest] * 2] * nq)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_matches_a_stable_bruteforce_sort_with_many_ties(metric):
    """Small integer vectors tie often (and their scores are exact in float32); wherever no tie
    straddles the k-th place, the ids are numpy's stable sort of the exact scores."""
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, size=(300, 4)).astype(np.float32)
    q = rng.integers(-3, 4, size=(60, 4)).astype(np.float32)
    ref_s, order = _brute(x, q, metric, 300)
    scores, ids = Index.build(x, spec="Flat", metric=metric).search(q, k=10)
    np.testing.assert_array_equal(scores, ref_s[:, :10])
    clean = ref_s[:, 9] != ref_s[:, 10]
    assert clean.sum() >= 5
    np.testing.assert_array_equal(ids[clean], order[clean, :10])


@pytest.mark.parametrize("scale", [1e20, 1e-25])
@pytest.mark.parametrize("spec", ["Flat", "IVF2,Flat", "on-disk IVF2,Flat"])
def test_cosine_ignores_the_scale_of_very_large_and_very_small_vectors(tmp_path, scale, spec):
    """FAISS's float32 sum of squares overflowed (1e20: every vector and query became zeros,
    scoring 0) or underflowed (1e-25: left unnormalised, scoring about 1e-25)."""
    from jointspace.index.ondisk import build_on_disk

    x, q = _data(n=200, d=8, nq=6)
    if spec.startswith("on-disk"):
        idx = build_on_disk([x * scale], tmp_path / "d", spec="IVF2,Flat", train_size=200,
                            search_params={"nprobe": 2})
    else:
        idx = Index.build(x * scale, spec=spec, metric="cosine", search_params={"nprobe": 2} if "IVF" in spec else None)
    ref_s, ref_i = _brute(x, q, "cosine", 5)
    for queries in (q, q * scale):
        scores, ids = idx.search(queries, k=5)
        np.testing.assert_array_equal(ids, ref_i)
        np.testing.assert_allclose(scores, ref_s, atol=1e-5)


def test_a_refine_stage_takes_k_factor_as_a_search_setting(tmp_path):
    """A spec with a refine stage ('...,RFlat') kept FAISS's k_factor of 1, re-ranking no more
    candidates than results, and set_search_params(k_factor=...) refused it."""
    import faiss

    x, q = _data(n=3000, d=16, nq=30)
    _, truth = _brute(x, q, "l2", 10)
    idx = Index.build(x, spec="IVF8,PQ4x4,RFlat", metric="l2", search_params={"nprobe": 8})
    assert idx.search_params == {"nprobe": 8, "k_factor": 1}
    coarse = idx.search(q, 10)[1]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(coarse, truth)]) < 0.5   # 0.31 measured
    np.testing.assert_array_equal(idx.search(q, 10, params={"k_factor": 50})[1], truth)   # 400 of 3000 candidates
    idx.set_search_params(k_factor=50)
    idx.save(tmp_path / "i")
    again = Index.load(tmp_path / "i")
    assert again.search_params == {"nprobe": 8, "k_factor": 50}
    scores, ids = again.search(q, 10)
    np.testing.assert_array_equal(ids, truth)
    # FAISS itself, with the same parameters
    ref = faiss.index_factory(16, "IVF8,PQ4x4,RFlat")
    ivf = faiss.downcast_index(faiss.extract_index_ivf(ref))
    ivf.cp.seed = ivf.pq.cp.seed = 0
    ivf.do_polysemous_training, ivf.nprobe = False, 8
    faiss.downcast_index(ref).k_factor = 50
    ref.train(x)
    ref.add(x)
    want_s, want_i = ref.search(q, 10)
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_array_equal(scores, want_s)
    with pytest.raises(InputError, match=r"^k_factor: applies to .* and to specs with a refine stage .*'Flat'"):
        Index.build(x[:50], spec="Flat").set_search_params(k_factor=3)
