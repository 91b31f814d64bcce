"""CSLS hubness correction: the penalty and the folded inner product against brute force."""

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.eval.hubness import csls_vectors, hub_penalty


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_hub_penalty_hand_worked():
    # gallery g = (1, 0); bank cosines to g: 1, 0, 0.6 -> the two largest average 0.8
    gallery = np.array([[1.0, 0.0]])
    bank = np.array([[2.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    np.testing.assert_allclose(hub_penalty(gallery, bank, k=2), [0.8])
    np.testing.assert_allclose(hub_penalty(gallery, bank, k=3), [1.6 / 3])


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_hub_penalty_matches_brute_force(chunk_size):
    rng = np.random.default_rng(0)
    gallery, bank = rng.normal(size=(23, 6)), rng.normal(size=(40, 6))
    cos = _unit(gallery) @ _unit(bank).T
    expected = np.sort(cos, axis=1)[:, -5:].mean(1)
    np.testing.assert_allclose(hub_penalty(gallery, bank, k=5, chunk_size=chunk_size), expected, rtol=1e-10)


def test_csls_vectors_rank_by_csls():
    rng = np.random.default_rng(1)
    q, g, bank = rng.normal(size=(9, 5)), rng.normal(size=(30, 5)), rng.normal(size=(50, 5))
    qa, ga = csls_vectors(q, g, bank, k=4)
    assert qa.shape == (9, 6) and ga.shape == (30, 6)
    cos = _unit(q) @ _unit(g).T
    r = np.sort(_unit(g) @ _unit(bank).T, axis=1)[:, -4:].mean(1)
    csls = 2 * cos - r[None, :]
    np.testing.assert_allclose(qa @ ga.T, csls / 2, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.argsort(-(qa @ ga.T), axis=1), np.argsort(-csls, axis=1))


def test_csls_demotes_a_hub():
    # item 0 is close to every bank query (a hub); item 1 only to the query at hand
    bank = _unit(np.array([[1.0, 0.1, 0.0], [1.0, -0.1, 0.0], [1.0, 0.0, 0.1], [1.0, 0.0, -0.1]]))
    gallery = _unit(np.array([[1.0, 0.0, 0.0], [0.6, 0.0, 0.8]]))
    query = _unit(np.array([[0.9, 0.0, 0.436]]))
    cos = query @ gallery.T
    assert cos[0, 0] > cos[0, 1]                      # plain cosine ranks the hub first
    qa, ga = csls_vectors(query, gallery, bank, k=2)
    assert (qa @ ga.T)[0, 1] > (qa @ ga.T)[0, 0]      # CSLS ranks the specific item first


def test_bad_input_is_named():
    g, bank = np.ones((3, 4)), np.ones((5, 4))
    with pytest.raises(InputError, match="k: expected an integer <= 5"):
        hub_penalty(g, bank, k=6)
    with pytest.raises(InputError, match="bank"):
        hub_penalty(g, np.ones((5, 3)))
    with pytest.raises(InputError, match="gallery"):
        csls_vectors(np.ones((2, 4)), np.ones((3, 5)), bank)
    bad = g.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="gallery"):
        hub_penalty(bad, bank)


def test_evaluate_csls_matches_dense_metrics_on_csls_scores():
    from jointspace.eval.hubness import evaluate_csls
    from jointspace.eval.metrics import ranking_metrics_dense

    rng = np.random.default_rng(2)
    keys = rng.integers(0, 6, size=25)
    z = {"image": rng.normal(size=(25, 4)), "text": rng.normal(size=(25, 4))}
    bank = {"image": rng.normal(size=(40, 4)), "text": rng.normal(size=(40, 4))}
    res = evaluate_csls(z, keys, bank, k=3)
    rel = keys[:, None] == keys[None, :]
    for q, t in (("text", "image"), ("image", "text")):
        r = np.sort(_unit(z[t]) @ _unit(bank[q]).T, axis=1)[:, -3:].mean(1)
        scores = 2 * _unit(z[q]) @ _unit(z[t]).T - r[None, :]
        expected = ranking_metrics_dense(scores, rel)
        for m in ("R@1", "R@5", "R@10", "mAP"):
            assert res[f"{q}->{t}/{m}"] == pytest.approx(expected[m], abs=1e-12)
    with pytest.raises(InputError, match="bank: expected a bank of 'image'"):
        evaluate_csls(z, keys, {"text": bank["text"]}, k=3)
    with pytest.raises(InputError,
                       match=r"bank: expected a mapping of query modality -> bank embeddings .* got ndarray"):
        evaluate_csls(z, keys, bank["text"], k=3)


def test_inner_product_index_ranks_by_csls():
    from jointspace import Index

    rng = np.random.default_rng(3)
    q, g, bank = (rng.normal(size=s).astype(np.float32) for s in ((6, 8), (50, 8), (80, 8)))
    qa, ga = csls_vectors(q, g, bank, k=10)
    scores, ids = Index.build(ga, spec="Flat", metric="ip").search(qa, k=5)
    expected = np.argsort(-(qa @ ga.T), axis=1)[:, :5]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(qa @ ga.T, expected, axis=1), rtol=1e-5)
