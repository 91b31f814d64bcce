"""Building jointspace.index.Index: training sample and seed, build vs search settings, exports."""

import numpy as np
import pytest

import jointspace
from jointspace.errors import InputError
from jointspace.index.faiss_index import Index


def _data(n=1200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((40, d)).astype(np.float32)


def test_root_and_package_exports():
    assert jointspace.Index is Index
    from jointspace.index import Index as I2, auto_spec  # noqa: F401
    assert I2 is Index


def test_same_seed_same_ivf_index_and_train_size_sample():
    x, q = _data()
    a = Index.build(x, spec="IVF16,Flat", seed=3, train_size=400)
    b = Index.build(x, spec="IVF16,Flat", seed=3, train_size=400)
    a.set_search_params(nprobe=2)
    b.set_search_params(nprobe=2)
    sa, ia = a.search(q, 10)
    sb, ib = b.search(q, 10)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(sa, sb)
    with pytest.raises(InputError, match=r"needs at least 16 training vectors.*got 10"):
        Index.build(x, spec="IVF16,Flat", train_size=10)


def test_train_then_add_in_chunks_equals_build():
    x, q = _data()
    built = Index.build(x, spec="IVF8,Flat", seed=1, metric="l2")
    idx = Index(16, "IVF8,Flat", metric="l2")
    assert not idx.is_trained
    idx.train(x, seed=1)
    assert idx.is_trained
    for s in range(0, 1200, 300):
        idx.add(x[s:s + 300])
    np.testing.assert_array_equal(idx.search(q, 10)[1], built.search(q, 10)[1])


def test_build_and_search_settings_are_kept_apart():
    x, _ = _data(n=300)
    idx = Index.build(x, spec="HNSW32", build_params={"efConstruction": 80}, search_params={"efSearch": 99})
    assert idx.build_params == {"efConstruction": 80}
    assert idx.search_params == {"efSearch": 99}
    assert idx._core.hnsw.efConstruction == 80
    with pytest.raises(InputError, match=r"build_params: unknown setting 'efSearch'"):
        Index(16, "HNSW32", build_params={"efSearch": 10})


def test_defaults_and_auto_pending_search_params():
    assert Index(4, "HNSW32").search_params == {"efSearch": 64}
    assert Index(4, "IVF8,Flat").search_params == {"nprobe": 8}
    assert Index(4, "IVF64,Flat").search_params == {"nprobe": 16}
    idx = Index(4, "auto").set_search_params(efSearch=20)
    idx.add(np.ones((3, 4)))                   # resolves to Flat: efSearch does not apply
    assert idx.resolved_spec == "Flat" and idx.search_params == {}


def test_repr_len_ids():
    x, _ = _data(n=10)
    idx = Index.build(x, ids=np.arange(10) * 5)
    assert repr(idx) == "Index(dim=16, spec='auto -> Flat', metric='cosine', ntotal=10)"
    assert len(idx) == 10 and idx.ids.tolist() == list(range(0, 50, 5))
    assert idx.add(x[:1]).tolist() == [46]


def test_zero_vector_under_cosine_does_not_poison_results():
    x, q = _data(n=20)
    x[4] = 0.0
    idx = Index.build(x, spec="Flat")
    s, i = idx.search(q, 20)
    assert np.isfinite(s).all()
    assert np.allclose(s[i == 4], 0.0)
