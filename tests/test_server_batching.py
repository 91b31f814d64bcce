"""Micro-batching of concurrent queries: each caller gets its own row, bad items fail alone."""

import threading
import time

import numpy as np
import pytest

import server_support as sup
from jointspace.server.batching import Batcher


def _parallel(fn, args):
    out = [None] * len(args)
    errs = [None] * len(args)

    def run(i):
        try:
            out[i] = fn(args[i])
        except Exception as exc:
            errs[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, errs


def test_batcher_returns_each_callers_row_and_batches_concurrent_calls():
    sizes = []

    def fn(items):
        sizes.append(len(items))
        time.sleep(0.05)     # a slow "forward pass" lets the queue fill up
        return np.array([[float(x), 2.0 * x] for x in items])

    b = Batcher(fn, max_batch=8, max_wait_ms=5)
    out, errs = _parallel(b, list(range(20)))
    assert errs == [None] * 20
    for i, (vec, batch) in enumerate(out):
        assert np.array_equal(vec, [i, 2 * i]) and 1 <= batch <= 8
    assert sum(sizes) == 20 and max(sizes) > 1 and max(sizes) <= 8
    assert b.stats()["items"] == 20


def test_batcher_holds_back_a_lone_caller_never_and_waits_under_load():
    calls = []

    def fn(items):
        calls.append(len(items))
        return np.array([[float(x)] for x in items])

    b = Batcher(fn, max_batch=8, max_wait_ms=300)
    t0 = time.perf_counter()
    for i in range(3):   # one caller at a time: no wait for company that never comes
        assert b(i)[0][0] == i
    assert time.perf_counter() - t0 < 0.3 and calls == [1, 1, 1]
    # after a batch of several, the next one waits for the late arrival
    b._last = 2
    f1 = b.submit(10)
    time.sleep(0.05)
    f2 = b.submit(11)
    assert f1.result(timeout=5)[1] == 2 and f2.result(timeout=5)[1] == 2


def test_batcher_isolates_a_failing_item():
    def fn(items):
        if "bad" in items:
            raise ValueError("cannot encode 'bad'")
        return np.array([[len(x)] for x in items], dtype=float)

    b = Batcher(fn, max_batch=16, max_wait_ms=20)
    out, errs = _parallel(b, ["a", "bb", "bad", "dddd"])
    assert isinstance(errs[2], ValueError)
    assert [o[0][0] for i, o in enumerate(out) if i != 2] == [1, 2, 4]


def test_engine_batched_text_encoding_equals_single_encoding():
    from jointspace.models.base import load_model

    eng = sup.engine()
    texts = [f"a {c} {s} number {i}" for i, (c, s) in enumerate(zip(sup.COLOURS, sup.SHAPES * 5))]
    out, errs = _parallel(lambda t: eng.encode("text", t, use_cache=False), texts)
    assert errs == [None] * len(texts)
    model = load_model(sup.towered_setup()["model"])
    for t, (vec, timings) in zip(texts, out):
        assert np.allclose(vec, model.encode("text", [t])[0], atol=1e-5)
        assert timings["batch"] >= 1
    assert eng.info()["batching"]["text"]["items"] >= len(texts)


def test_unbatched_engine_option():
    from jointspace.server.engine import SearchEngine

    s = sup.towered_setup()
    eng = SearchEngine(s["index"], s["model"], max_batch=1)
    vec, timings = eng.encode("text", "a red disc")
    assert timings["batch"] == 1 and eng.info()["batching"] == {}
    with pytest.raises(Exception, match="k: expected"):
        eng.check_k(0)


def test_concurrent_first_reads_of_an_ivf_index_wait_for_its_id_map(tmp_path, monkeypatch):
    """FAISS marks an IVF index's id -> list map as built before it fills it: a vector read by
    one request while another builds the map fails or is wrong, so no read runs meanwhile."""
    import faiss

    from jointspace.index.faiss_index import Index
    from jointspace.server.engine import _reconstruct

    x = np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32)
    Index.build(x, spec="IVF4,Flat", metric="l2").save(tmp_path / "ivf")
    index = Index.load(tmp_path / "ivf")
    building, overlaps = [], []
    real_make, real_read = faiss.IndexIVF.set_direct_map_type, type(index._faiss).reconstruct

    def slow_make(self, *args):   # as a large index takes a while
        building.append(1)
        try:
            time.sleep(0.2)
            return real_make(self, *args)
        finally:
            building.pop()

    def watched_read(self, key, *args):
        if building:
            overlaps.append(key)
        return real_read(self, key, *args)

    monkeypatch.setattr(faiss.IndexIVF, "set_direct_map_type", slow_make)
    monkeypatch.setattr(type(index._faiss), "reconstruct", watched_read)
    out, errs = _parallel(lambda i: time.sleep(0.05 * i) or _reconstruct(index, i), [0, 1, 2])
    assert errs == [None] * 3 and overlaps == []
    np.testing.assert_array_equal(np.stack(out), x[:3])
