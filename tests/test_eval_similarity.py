"""Similarity between sets of vectors: pinned against numpy and scipy's cdist."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from jointspace.errors import InputError
from jointspace.eval.similarity import (auto_chunk_size, iter_similarity_chunks, pairwise_distance,
                                        pairwise_similarity)


@pytest.fixture
def ab():
    rng = np.random.default_rng(0)
    return rng.standard_normal((23, 6)), rng.standard_normal((17, 6))


def test_cosine_matches_cdist(ab):
    A, B = ab
    np.testing.assert_allclose(pairwise_similarity(A, B, "cosine"), 1.0 - cdist(A, B, "cosine"), atol=1e-12)


def test_dot_matches_numpy(ab):
    A, B = ab
    np.testing.assert_allclose(pairwise_similarity(A, B, "dot"), A @ B.T, atol=1e-12)


def test_euclidean_is_negative_cdist(ab):
    A, B = ab
    np.testing.assert_allclose(pairwise_similarity(A, B, "euclidean"), -cdist(A, B), atol=1e-10)
    np.testing.assert_allclose(pairwise_distance(A, B), cdist(A, B), atol=1e-10)


def test_euclidean_self_distance_is_zero_not_nan():
    A = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32) * 1e3
    d = pairwise_distance(A, A)
    assert np.isfinite(d).all() and (d >= 0).all()
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1.0)  # float32 cancellation at scale 1e3


def test_float32_stays_float32_and_is_close(ab):
    A, B = (x.astype(np.float32) for x in ab)
    s = pairwise_similarity(A, B, "cosine")
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, 1.0 - cdist(ab[0], ab[1], "cosine"), atol=1e-5)


def test_cosine_zero_row_scores_zero():
    A = np.array([[0.0, 0.0], [1.0, 0.0]])
    B = np.array([[1.0, 1.0], [0.0, 2.0]])
    s = pairwise_similarity(A, B, "cosine")
    np.testing.assert_allclose(s[0], 0.0)
    np.testing.assert_allclose(s[1], [1 / np.sqrt(2), 0.0])


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunks_reassemble_the_full_matrix(ab, metric, chunk):
    A, B = ab
    starts, blocks = zip(*iter_similarity_chunks(A, B, metric, chunk_size=chunk))
    assert list(starts) == list(range(0, len(A), chunk))
    assert all(b.shape[0] <= chunk for b in blocks)
    np.testing.assert_allclose(np.vstack(blocks), pairwise_similarity(A, B, metric), atol=1e-12)


def test_auto_chunk_keeps_block_near_64mb():
    rows = auto_chunk_size(100_000, 4)
    assert rows * 100_000 * 4 <= 64 * 2**20
    assert (rows + 1) * 100_000 * 4 > 64 * 2**20
    assert auto_chunk_size(10**9, 8) == 1


def test_higher_is_more_similar_for_every_metric():
    A = np.array([[1.0, 0.0]])
    B = np.array([[1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    for metric in ("cosine", "dot", "euclidean"):
        s = pairwise_similarity(A, B, metric)[0]
        assert s[0] > s[1] > s[2], metric


@pytest.mark.parametrize("bad, match", [
    ((np.zeros((3, 4)), np.zeros((2, 5))), "B: expected 4 columns"),
    ((np.zeros(4), np.zeros((2, 4))), "A: expected a 2-D array"),
    ((np.zeros((3, 4)), np.zeros(4)), "B: expected a 2-D array"),
    ((np.array([[1.0, np.nan]]), np.zeros((2, 2))), "A: expected finite values"),
    ((np.zeros((2, 2)), np.array([[1.0, np.inf]])), "B: expected finite values"),
    ((np.zeros((2, 2)) + 1j, np.zeros((2, 2))), r"A: expected real numbers, got dtype complex128"),
    ((np.zeros((2, 2)), np.ones((2, 2), dtype=np.complex64)), r"B: expected real numbers, got dtype complex64"),
])
def test_bad_inputs_name_the_argument(bad, match):
    with pytest.raises(InputError, match=match):
        pairwise_similarity(*bad)
    with pytest.raises(InputError, match=match):
        next(iter_similarity_chunks(*bad))


def test_bad_metric_and_chunk_size():
    A = np.zeros((2, 2))
    with pytest.raises(InputError, match="metric: expected one of cosine, dot, euclidean"):
        pairwise_similarity(A, A, "manhattan")
    with pytest.raises(InputError, match="chunk_size: expected an integer >= 1, got 0"):
        next(iter_similarity_chunks(A, A, "dot", chunk_size=0))


def test_pairwise_refuses_huge_matrix(monkeypatch):
    import jointspace.eval.similarity as sim

    monkeypatch.setattr(sim, "_PAIRWISE_LIMIT", 100)
    A = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(InputError, match="use iter_similarity_chunks"):
        pairwise_similarity(A, A)
    assert pairwise_similarity(A[:5], A[:5]).shape == (5, 5)


def test_float32_euclidean_accumulates_in_float64():
    # a of norm 219 and points 0.002 .. 0.010 away from it along u: |a|^2 + |b|^2 - 2 a.b
    # cancels in float32 (about 0.09 of error), not in float64
    rng = np.random.default_rng(0)
    a = rng.normal(size=8)
    a *= 219 / np.linalg.norm(a)
    u = rng.normal(size=8)
    u /= np.linalg.norm(u)
    G = (a[None] + np.array([0.002, 0.004, 0.006, 0.008, 0.010])[:, None] * u[None]).astype(np.float32)
    Q = np.vstack([a, G]).astype(np.float32)
    d = pairwise_distance(Q, G)
    assert d.dtype == np.float32
    want = cdist(Q.astype(np.float64), G.astype(np.float64))     # the very same float32 points
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d[0], [0.002, 0.004, 0.006, 0.008, 0.010], rtol=0.05)
    blocks = np.vstack([b for _, b in iter_similarity_chunks(Q, G, "euclidean", chunk_size=2)])
    np.testing.assert_array_equal(blocks, -d)
    from jointspace.eval.retrieval import retrieval_scores

    ids = np.arange(5)
    assert retrieval_scores(G, G, ids, ids, metric="euclidean")["mAP"] == 1.0


def test_float32_euclidean_works_in_small_float64_pieces(monkeypatch):
    import jointspace.eval.similarity as sim

    monkeypatch.setattr(sim, "_UPCAST_BYTES", 8 * 17 * 3)      # 3 rows of 17 gallery items at a time
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(23, 6)).astype(np.float32), rng.normal(size=(17, 6)).astype(np.float32)
    np.testing.assert_allclose(sim.pairwise_distance(A, B), cdist(A.astype(float), B.astype(float)), rtol=1e-6)
