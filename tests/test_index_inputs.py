"""Bad input to jointspace.index.Index: each case gives an InputError naming the argument."""

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.index.faiss_index import Index
from jointspace.index.spec import EXAMPLE_SPECS, auto_spec, normalize_spec


@pytest.fixture
def flat():
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    return Index.build(x, spec="Flat")


def test_query_dimension_mismatch_names_queries_and_dims(flat):
    with pytest.raises(InputError) as err:
        flat.search(np.zeros((3, 5)), k=2)
    msg = str(err.value)
    assert "queries" in msg and "8" in msg and "5" in msg


def test_vectors_dimension_mismatch_on_add(flat):
    with pytest.raises(InputError, match=r"vectors: expected dimension 8.*got 9"):
        flat.add(np.zeros((2, 9)))


@pytest.mark.parametrize("k", [0, -3, 2.5, "10", True])
def test_bad_k(flat, k):
    with pytest.raises(InputError, match="^k:"):
        flat.search(np.ones((1, 8)), k=k)


def test_k_far_beyond_the_index_is_refused_not_padded(flat):
    # padding up to 10 000 results is kept; 10**9 would allocate about 12 GB of padding
    assert flat.search(np.ones((1, 8)), k=10_000)[1].shape == (1, 10_000)
    with pytest.raises(InputError, match=r"^k: expected at most 10000 results per query \(the index holds 50 "
                                         r"vectors.*got 1000000000"):
        flat.search(np.ones((1, 8)), k=10**9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_vectors_and_queries(bad):
    x = np.ones((10, 4), dtype=np.float32)
    x[7, 2] = bad
    with pytest.raises(InputError, match=r"vectors: expected finite values.*row 7, column 2"):
        Index.build(x, spec="Flat")
    idx = Index.build(np.ones((3, 4)), spec="Flat")
    with pytest.raises(InputError, match="queries: expected finite"):
        idx.search(x, k=1)


@pytest.mark.parametrize("spec", ["Bogus12", "IVF,Flat", "HNSW32,Blah", "", None, 42])
def test_unknown_spec_lists_examples(spec):
    with pytest.raises(InputError) as err:
        Index(16, spec=spec)
    msg = str(err.value)
    assert msg.startswith("spec:") and "'Flat'" in msg and "'IVF1024,PQ32'" in msg


def test_spec_that_does_not_fit_dim():
    with pytest.raises(InputError, match=r"spec: .*'IVF8,PQ5'.*dim=16.*multiple"):
        Index(16, spec="IVF8,PQ5")


@pytest.mark.parametrize("metric", ["cos", "euclidean", None, "L2"])
def test_unknown_metric(metric):
    with pytest.raises(InputError, match=r"^metric: expected one of cosine, ip, l2"):
        Index(4, metric=metric)


def test_bad_dim():
    with pytest.raises(InputError, match="^dim:"):
        Index(0)


def test_ids_length_mismatch_and_duplicates_and_negative(flat):
    x = np.ones((3, 8))
    with pytest.raises(InputError, match=r"ids: expected 3 ids .*got 2"):
        flat.add(x, ids=[100, 101])
    with pytest.raises(InputError, match=r"ids: expected distinct ids.*101"):
        flat.add(x, ids=[100, 101, 101])
    with pytest.raises(InputError, match="ids: expected non-negative"):
        flat.add(x, ids=[100, -1, 102])
    with pytest.raises(InputError, match="ids: expected integers"):
        flat.add(x, ids=[1.5, 2.5, 3.5])
    with pytest.raises(InputError, match=r"ids: expected ids not already in the index.*\b4\b"):
        flat.add(x, ids=[4, 200, 201])
    assert len(flat) == 50      # nothing was added by the failed calls


def test_a_train_size_below_what_the_spec_needs_is_named_rather_than_the_vectors():
    x = np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32)
    with pytest.raises(InputError, match=r"^train_size: spec 'IVF32,Flat' needs at least 32 training vectors "
                                         r"\(32 IVF lists .*\); got 10\. Train on a larger sample"):
        Index.build(x, spec="IVF32,Flat", train_size=10)
    idx = Index(16, "IVF32,Flat")
    with pytest.raises(InputError, match=r"^train_size: spec 'IVF32,Flat' needs at least 32 .*got 31\."):
        idx.train(x, train_size=31)
    assert not idx.is_trained
    idx.train(x, train_size=32)
    assert idx.is_trained
    with pytest.raises(InputError, match=r"^vectors: spec 'IVF32,Flat' needs at least 32 .*got 20\. .*more data"):
        Index.build(x[:20], spec="IVF32,Flat", train_size=10)   # the data, not the sample, is too small


def test_nsg_is_built_once_from_enough_vectors():
    """FAISS's NSG build aborted the process on 101 vectors, raised a bare FAISS error on 99 (and kept
    them, so the next add failed too), and refused a second add with a FAISS error."""
    import subprocess
    import sys

    NSG_MIN_VECTORS = 1000   # jointspace.index._training.NSG_MIN_VECTORS
    code = ("import numpy as np\n"
            "from jointspace.errors import InputError\n"
            "from jointspace.index import Index\n"
            "x = np.random.default_rng(101).standard_normal((101, 16)).astype(np.float32)\n"
            "try:\n"
            "    Index.build(x, spec='NSG32,Flat')\n"
            "except InputError as exc:\n"
            "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-300:]
    assert done.stdout.strip() == (f"vectors: spec 'NSG32,Flat' needs at least {NSG_MIN_VECTORS} vectors, added at "
                                   "once (FAISS's NSG build aborts or never ends on small sets); got 101. Use 'Flat' "
                                   "or 'HNSW32' for so few")
    x = np.random.default_rng(0).standard_normal((NSG_MIN_VECTORS + 10, 16)).astype(np.float32)
    idx = Index(16, "NSG32,Flat")
    with pytest.raises(InputError, match=rf"^vectors: spec 'NSG32,Flat' needs at least {NSG_MIN_VECTORS} .*got 99\."):
        idx.add(x[:99])
    assert idx.ntotal == 0 and idx._faiss.ntotal == 0
    assert idx.add(x[:NSG_MIN_VECTORS]).tolist() == list(range(NSG_MIN_VECTORS))
    with pytest.raises(InputError, match=r"^vectors: an index of type 'NSG32,Flat' is built once, from all its "
                                         r"vectors \(FAISS's NSG cannot add to a built graph\); build it again"):
        idx.add(x[NSG_MIN_VECTORS:])
    assert idx.ntotal == NSG_MIN_VECTORS
    assert idx.search(x[:3], 1)[1].ravel().tolist() == [0, 1, 2]


@pytest.mark.parametrize("spec", ["Flat", "IVF1,Flat", "HNSW8"])
def test_default_ids_that_would_pass_the_largest_id_are_refused(spec):
    """They wrapped around to -2**63, an id that search then reported as a missing result."""
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    idx = Index.build(x[:1], spec=spec, ids=[2**63 - 3])
    with pytest.raises(InputError, match=r"^ids: expected ids for 3 new vectors; the default ones would follow the "
                                         rf"largest id stored \({2**63 - 3}\) past 2\*\*63 - 1, so give ids$"):
        idx.add(x[1:4])
    assert idx.ids.tolist() == [2**63 - 3]
    assert idx.add(x[1:3]).tolist() == [2**63 - 2, 2**63 - 1]
    assert (idx.ids >= 0).all() and idx.ntotal == 3


def test_too_few_vectors_to_train_ivf():
    x = np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32)
    with pytest.raises(InputError, match=r"vectors: spec 'IVF256,Flat' needs at least 256 training vectors.*got 100"):
        Index.build(x, spec="IVF256,Flat")
    with pytest.raises(InputError, match=r"needs at least 256 .*PQ.*got 100"):
        Index.build(x, spec="IVF4,PQ4")
    idx = Index(16, "IVF256,Flat")
    with pytest.raises(InputError, match="needs at least 256"):
        idx.add(x)
    assert not idx.is_trained and len(idx) == 0


def test_search_params_that_do_not_apply(flat):
    with pytest.raises(InputError, match=r"nprobe: applies to IVF indexes only; this index is 'Flat'"):
        flat.set_search_params(nprobe=4)
    hnsw = Index(8, "HNSW32")
    with pytest.raises(InputError, match="efSearch: expected an integer >= 1"):
        hnsw.set_search_params(efSearch=0)
    with pytest.raises(InputError, match=r"params: unknown setting 'ef'"):
        hnsw.search(np.ones((1, 8)), params={"ef": 3})
    ivf = Index(8, "IVF4,Flat")
    with pytest.raises(InputError, match=r"nprobe: expected an integer <= 4 \(nlist\), got 5"):
        ivf.set_search_params(nprobe=5)


def test_graph_sizes_beyond_the_cap_name_the_setting_and_leave_the_index_as_it_was():
    """FAISS reads efSearch / efConstruction as a C int (a larger one raised OverflowError) and
    keeps a candidate list that long per query (2**27 took 1 GB for one query)."""
    from jointspace.index._params import MAX_EF

    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    hnsw = Index.build(x, spec="HNSW8")
    for big in (MAX_EF + 1, 2**31, 10**12):
        with pytest.raises(InputError, match=rf"^efSearch: expected an integer <= {MAX_EF}, got {big}$"):
            hnsw.set_search_params(efSearch=big)
        with pytest.raises(InputError, match=rf"^params\['efSearch'\]: expected an integer <= {MAX_EF}, got {big}$"):
            hnsw.search(x[:1], 3, params={"efSearch": big})
        with pytest.raises(InputError, match=rf"^build_params\['efConstruction'\]: expected an integer <= {MAX_EF}"):
            Index.build(x, spec="HNSW8", build_params={"efConstruction": big})
    assert hnsw.search_params == {"efSearch": 64}
    hnsw.set_search_params(efSearch=MAX_EF)
    assert hnsw.search_params == {"efSearch": MAX_EF}
    assert Index(8, "HNSW8", build_params={"efConstruction": MAX_EF}).build_params == {"efConstruction": MAX_EF}


def test_bad_shapes(flat):
    with pytest.raises(InputError, match=r"queries: expected a 2-D array"):
        flat.search(np.ones((2, 2, 2)))
    with pytest.raises(InputError, match=r"vectors: expected a 2-D numeric array, got dtype"):
        Index.build(np.array([["a", "b"]]))
    with pytest.raises(InputError, match="vectors: expected at least 1 row"):
        Index.build(np.ones((0, 3)))
    with pytest.raises(InputError, match="batch_size"):
        flat.search(np.ones((1, 8)), batch_size=0)


def test_remove_and_metadata_of_unknown_ids(flat):
    with pytest.raises(InputError, match=r"ids: expected ids in the index, got 1 that are not \(e.g. 999\)"):
        flat.remove([1, 999])
    assert len(flat) == 50
    with pytest.raises(InputError, match="999"):
        flat.metadata([999])


def test_bad_metadata():
    x = np.ones((2, 3))
    with pytest.raises(InputError, match=r"metadata: expected 2 entries"):
        Index.build(x, spec="Flat", metadata=[{}])
    with pytest.raises(InputError, match=r"metadata\[1\]: expected a dict"):
        Index.build(x, spec="Flat", metadata=[{}, "cat"])
    with pytest.raises(InputError, match=r"metadata\[0\]\['text'\]: expected a string"):
        Index.build(x, spec="Flat", metadata=[{"text": 3}, {}])
    with pytest.raises(InputError, match=r"metadata\['label'\]: expected 2 values"):
        Index.build(x, spec="Flat", metadata={"label": [1, 2, 3]})
    with pytest.raises(InputError, match="JSON-serialisable"):
        Index.build(x, spec="Flat", metadata=[{"extra": {"f": object()}}, {}])


def test_a_failed_add_leaves_the_index_as_it_was(flat, monkeypatch):
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    # a file name that is not UTF-8, as Python reads it (a lone surrogate)
    with pytest.raises(InputError, match=r"metadata\[0\]\['path'\]: expected text that UTF-8 can store"):
        flat.add(x, ids=[50, 51], metadata=[{"path": "caf\udce9.jpg"}, {}])
    assert flat.ntotal == 50
    # a store that fails while writing: no vector is added either
    monkeypatch.setattr(flat._metadata, "add", lambda ids, rows: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        flat.add(x, ids=[50, 51], metadata=[{"text": "a"}, {"text": "b"}])
    assert flat.ntotal == 50 and 50 not in flat.ids
    monkeypatch.undo()
    flat.add(x, ids=[50, 51], metadata=[{"path": "cafe.jpg"}, {}])   # the retry is not refused
    assert flat.ntotal == 52 and flat.metadata([50])[0]["path"] == "cafe.jpg"


def test_set_metadata_replaces_whole_rows_of_items_in_the_index(flat):
    flat.set_metadata([3, 7], [{"text": "three", "extra": {"k": 1}}, {"label": 2}])
    rows = flat.metadata([3, 7, 8])
    assert (rows[0]["text"], rows[0]["extra"], rows[0]["label"]) == ("three", {"k": 1}, None)
    assert (rows[1]["label"], rows[1]["text"]) == (2, None) and rows[2]["text"] is None
    flat.set_metadata([3], [None])   # no metadata any more
    assert flat.metadata([3])[0] == {"id": 3, "label": None, "text": None, "path": None, "extra": {}}
    with pytest.raises(InputError, match=r"^ids: expected ids in the index, got 1 that are not \(e.g. 99\)"):
        flat.set_metadata([99], [{"text": "x"}])
    with pytest.raises(InputError, match=r"^ids: expected distinct ids, got 2 with 1 repeated"):
        flat.set_metadata([4, 4], [{"text": "x"}, {"text": "y"}])
    with pytest.raises(InputError, match=r"^metadata: expected 2 entries"):
        flat.set_metadata([4, 5], [{"text": "x"}])
    assert flat.metadata([4])[0]["text"] is None   # a refused call changes nothing


def test_spec_helpers():
    assert normalize_spec(" IVF256, Flat ") == "IVF256,Flat"
    assert normalize_spec("IDMap,Flat") == "Flat"
    assert normalize_spec("AUTO") == "auto"
    assert "Flat" in EXAMPLE_SPECS


def test_auto_rule():
    assert auto_spec(10, 64) == "Flat"
    assert auto_spec(49_999, 64) == "Flat"
    assert auto_spec(50_000, 64) == "HNSW32"
    assert auto_spec(1_999_999, 512) == "HNSW32"
    # nlist: power of two nearest 4 sqrt(n); m: largest divisor of d <= min(64, d/8)
    assert auto_spec(4_000_000, 512) == "IVF8192,PQ64"
    assert auto_spec(100_000_000, 384) == "IVF32768,PQ48"
    assert auto_spec(3_000_000, 100) == "IVF8192,PQ10"
    for n, d in ((4_000_000, 512), (3_000_000, 100), (2_000_000, 7)):
        Index(d, auto_spec(n, d))    # every auto choice is a spec FAISS accepts


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_vectors_whose_float32_scores_overflow_are_refused(tmp_path, metric):
    """An l2 index holding [1e20, 1e20] never returned it (its distances were inf: id -1), and a
    query of that size found nothing at all; such rows are refused, those just below kept."""
    from jointspace.index.ondisk import build_on_disk
    from jointspace.index._inputs import MAX_SQUARED_NORM

    assert MAX_SQUARED_NORM == pytest.approx(np.finfo(np.float32).max / 4)
    ok = np.array([[9e18, 0], [1, 0], [0, 1]], np.float32)   # squared norm 8.1e37
    big = np.array([[1, 0], [1e19, 0]], np.float32)           # squared norm 1e38 at row 1
    msg = rf"squared L2 norm at most 8.51e\+37 for metric '{metric}' .*got 1e\+38 at row 1; scale"
    with pytest.raises(InputError, match=r"^vectors: expected rows of " + msg):
        Index.build(big, spec="Flat", metric=metric)
    idx = Index.build(ok, spec="Flat", metric=metric)
    with pytest.raises(InputError, match=r"^vectors: expected rows of " + msg):
        idx.add(big)
    with pytest.raises(InputError, match=r"^queries: expected rows of " + msg):
        idx.search(big, k=3)
    with pytest.raises(InputError, match=r"^batches\[0\]: expected rows of " + msg):
        build_on_disk([big], tmp_path / "d", spec="IVF1,Flat", metric=metric, train_size=2)
    assert Index.build(big, spec="Flat", metric="cosine").ntotal == 2   # cosine scales them down
    q = np.array([[-9e18, 0]], np.float32)
    scores, ids = idx.search(q, k=3)
    x64, q64 = ok.astype(np.float64), q.astype(np.float64)
    want = ((q64 - x64) ** 2).sum(1) if metric == "l2" else x64 @ q64[0]
    order = np.argsort(want if metric == "l2" else -want, kind="stable")
    assert ids[0].tolist() == order.tolist()
    np.testing.assert_allclose(scores[0], want[order], rtol=1e-6)


def test_values_beyond_float32_are_not_reported_as_nan_or_inf(flat):
    """1e39 in float64 is finite; it became inf in float32 and was reported as 'NaN or Inf'."""
    x = np.zeros((3, 8))
    x[2, 5] = -1e39
    with pytest.raises(InputError, match=r"^vectors: expected values within float32's range \(magnitude at most "
                                         r"3\.403e\+38\), got -1e\+39 at row 2, column 5$"):
        Index.build(x)
    with pytest.raises(InputError, match=r"^queries: expected values within float32's range .* got 1e\+39 at row 0"):
        flat.search(np.full((1, 8), 1e39), k=1)
    x[2, 5] = np.nan
    with pytest.raises(InputError, match=r"^vectors: expected finite values, got NaN or Inf \(first at row 2, "
                                         r"column 5\)$"):
        Index.build(x)
