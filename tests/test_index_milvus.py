"""MilvusIndex on a Milvus Lite file: search against brute force, filters, metadata, reopening."""

from __future__ import annotations

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.index import MilvusIndex
from jointspace.index.milvus import where_expression
from jointspace.index.results import search_with_metadata

N, D = 240, 12
LABELS = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q = rng.standard_normal((6, D)).astype(np.float32)
    labels = [LABELS[i % 3] for i in range(N)]
    return x, q, labels


def brute(x, q, metric):
    """Scores (higher first for cosine/ip, squared distance for l2) of every item, by numpy."""
    if metric == "cosine":
        return (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T
    if metric == "ip":
        return q @ x.T
    return ((q[:, None, :] - x[None]) ** 2).sum(-1)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_search_matches_brute_force(data, metric, tmp_path):
    x, q, labels = data
    ids = np.arange(N, dtype=np.int64) * 3 + 5
    with MilvusIndex.build(x, tmp_path / "v.db", metric=metric, ids=ids, metadata={"label": labels}) as index:
        assert (len(index), index.dim, index.metric) == (N, D, metric)
        scores, found = index.search(q, k=10)
        ref = brute(x, q, metric)
        order = np.argsort(ref if metric == "l2" else -ref, axis=1, kind="stable")[:, :10]
        assert np.array_equal(found, ids[order])
        np.testing.assert_allclose(scores, np.take_along_axis(ref, order, 1), rtol=1e-5, atol=1e-5)
        # only the dogs: the best dogs by brute force
        scores, found = index.search(q, k=5, where={"label": "dog"})
        dogs = np.flatnonzero(np.array(labels) == "dog")
        sub = brute(x[dogs], q, metric)
        order = np.argsort(sub if metric == "l2" else -sub, axis=1, kind="stable")[:, :5]
        assert np.array_equal(found, ids[dogs][order])


def test_filters_lists_raw_expressions_and_padding(data, tmp_path):
    x, q, labels = data
    with MilvusIndex.build(x, tmp_path / "v.db", metadata={"label": labels}) as index:
        _, found = index.search(q, k=20, where={"label": ["cat", "bird"]}, filter="id < 100")
        assert (found < 100).all() and {labels[i] for i in found.ravel()} == {"cat", "bird"}
        # 34 cats below id 100 (0, 3, ..., 99); k=40 pads the rest with -1 and -inf
        scores, found = index.search(q[0], k=40, where={"label": "cat"}, filter="id < 100")
        assert (found[0, :34] >= 0).all() and (found[0, 34:] == -1).all() and np.isneginf(scores[0, 34:]).all()
        hits = search_with_metadata(index, q[:1], k=3, where={"label": "bird"})[0]
        assert [h["label"] for h in hits] == ["bird"] * 3 and [h["rank"] for h in hits] == [1, 2, 3]


def test_metadata_round_trip_integer_labels_and_remove(tmp_path):
    x = np.eye(4, dtype=np.float32)
    meta = [{"label": 2, "text": "a cat", "path": "/p/0.png", "source": "web"},
            {"label": 7, "text": "a dog"}, None, {"label": [1, 2]}]
    with MilvusIndex.build(x, tmp_path / "v.db", metadata=meta) as index:
        got = index.metadata([0, 1, -1, 2, 3])
        assert got[0] == {"id": 0, "label": 2, "text": "a cat", "path": "/p/0.png", "extra": {"source": "web"}}
        assert got[1]["label"] == 7 and got[2] is None and got[3]["label"] is None and got[4]["label"] == [1, 2]
        _, found = index.search(x, k=4, where={"label": 7})
        assert found[:, 0].tolist() == [1, 1, 1, 1] and (found[:, 1:] == -1).all()
        assert index.add(np.ones((2, 4), np.float32)).tolist() == [4, 5]
        assert index.remove([1, 99]) == 1 and len(index) == 5
        _, found = index.search(x[1], k=6)
        assert 1 not in found
        with pytest.raises(InputError, match="not in the collection"):
            index.metadata([1])


def test_reopening_the_uri_is_loading(data, tmp_path):
    x, q, _ = data
    with MilvusIndex.build(x, tmp_path / "v.db", metric="l2", collection="photos", index_type="FLAT") as index:
        before = index.search(q, k=5)
    with MilvusIndex(tmp_path / "v.db", collection="photos") as again:
        assert (len(again), again.dim, again.metric, again.spec) == (N, D, "l2", "Milvus:FLAT")
        after = again.search(q, k=5)
        assert np.array_equal(before[1], after[1]) and np.array_equal(before[0], after[0])


def test_bad_input_is_named(tmp_path):
    with pytest.raises(InputError, match="dim: collection 'jointspace' does not exist"):
        MilvusIndex(tmp_path / "v.db")
    with pytest.raises(InputError, match="metric: expected one of cosine, ip, l2, got 'dot'"):
        MilvusIndex(tmp_path / "v.db", 4, metric="dot")
    with MilvusIndex(tmp_path / "v.db", 4) as index:
        index.add(np.eye(4, dtype=np.float32), ids=[1, 2, 3, 4])
        with pytest.raises(InputError, match=r"ids: 1 already stored"):
            index.add(np.eye(4, dtype=np.float32)[:2], ids=[4, 9])
        with pytest.raises(InputError, match="vectors"):
            index.add(np.ones((2, 5), np.float32))
        with pytest.raises(InputError, match="where: expected fields among id, label, text, path; got 'colour'"):
            index.search(np.ones(4, np.float32), where={"colour": "red"})
    with pytest.raises(InputError, match="dim: collection 'jointspace' holds 4-d vectors, got dim=8"):
        MilvusIndex(tmp_path / "v.db", 8)


def test_metadata_longer_than_a_varchar_field_is_refused_before_anything_is_stored(tmp_path):
    """Milvus refused the chunk holding it after the earlier chunks (1,000 rows each) were stored."""
    x = np.random.default_rng(0).standard_normal((1500, 4)).astype(np.float32)
    meta = [{"text": "a", "path": f"p{i}"} for i in range(1500)]
    meta[1200] = {"text": "b" * 65_536}
    with MilvusIndex(tmp_path / "v.db", 4) as index:
        index.add(x[:3])
        with pytest.raises(InputError, match=r"^metadata\[1200\]\['text'\]: expected at most 65535 characters "
                                             r"\(a Milvus VARCHAR field\), got 65536 characters$"):
            index.add(x, metadata=meta)
        with pytest.raises(InputError, match=r"^metadata\[0\]\['label'\]: expected at most 65535 .*got 65537 "
                                             r"characters as JSON$"):
            index.add(x[:1], metadata=[{"label": "c" * 65_535}])   # stored as JSON, with its quotes
        assert index.ntotal == 3
        meta[1200] = {"text": "b" * 65_535, "path": "é" * 65_535}
        index.add(x, metadata=meta)
        assert index.ntotal == 1503
        assert index.metadata([1203])[0]["path"] == "é" * 65_535   # ids follow the 3 stored


def test_where_expression_quotes_strings():
    assert where_expression({"label": 'say "hi"'}) == 'label == "say \\"hi\\""'
    assert where_expression({"label": [1, "b"], "id": 3}) == 'label in ["1", "b"] and id == 3'


def test_without_pymilvus_the_error_is_a_missing_dependency(tmp_path, monkeypatch):
    import sys

    from jointspace.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pymilvus", None)   # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"^MilvusIndex needs pymilvus .*pip install 'jointspace\[scale\]'$"):
        MilvusIndex(tmp_path / "v.db", dim=4)
    assert not (tmp_path / "v.db").exists()


def test_default_ids_that_would_pass_the_largest_id_are_refused(tmp_path):
    x = np.eye(4, dtype=np.float32)
    with MilvusIndex(tmp_path / "v.db", 4) as index:
        index.add(x[:1], ids=[2**63 - 2])
        with pytest.raises(InputError, match=r"^ids: expected ids for 2 new vectors; the default ones would follow "
                                             rf"the largest id stored \({2**63 - 2}\) past 2\*\*63 - 1, so give ids$"):
            index.add(x[1:3])
        assert index.ntotal == 1
        assert index.add(x[1:2]).tolist() == [2**63 - 1]


def test_default_ids_never_give_a_removed_id_to_another_item(tmp_path):
    """As an Index's default ids: after the largest id ever held, also when the largest ones were
    removed and the collection is opened again."""
    x = np.eye(4, dtype=np.float32)
    with MilvusIndex(tmp_path / "v.db", 4) as index:
        assert index.add(x[:3]).tolist() == [0, 1, 2]
        assert index.remove([2]) == 1
        assert index.add(x[3:]).tolist() == [3]   # not 2 again
        assert index.remove([1, 3]) == 2 and index.ntotal == 1
    with MilvusIndex(tmp_path / "v.db") as again:   # what was removed is remembered with the collection
        assert again.add(x[:2]).tolist() == [4, 5]
        assert again.add(x[2:3], ids=[2]).tolist() == [2]   # a removed id may still be given explicitly
        _, found = again.search(x[1:3], k=1)
        assert found.tolist() == [[5], [2]]
        assert again.remove([5, 4]) == 2
        assert again.add(x[3:]).tolist() == [6]
