"""Saving / loading jointspace.index.Index folders and the SQLite metadata store."""

import json
import sqlite3

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.index.faiss_index import Index


def _data(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((20, d)).astype(np.float32)


@pytest.mark.parametrize("spec,metric", [("Flat", "cosine"), ("HNSW32", "ip"), ("IVF8,Flat", "l2"),
                                         ("IVF8,PQ4x4", "cosine")])
def test_round_trip_gives_identical_results(tmp_path, spec, metric):
    x, q = _data()
    idx = Index.build(x, spec=spec, metric=metric, ids=np.arange(600) * 10)
    if "IVF" in spec:
        idx.set_search_params(nprobe=3)
    if "HNSW" in spec:
        idx.set_search_params(efSearch=40)
    idx.remove([0, 10, 20])
    idx.info = {"model": "runs/x", "modality": "image"}
    before = idx.search(q, 10)
    idx.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [".jointspace-written.json", "index.faiss", "index.json",
                                                                   "metadata.sqlite"]
    back = Index.load(tmp_path / "idx")
    after = back.search(q, 10)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])
    assert (back.dim, back.spec, back.resolved_spec, back.metric, len(back)) == (16, spec, spec, metric, 597)
    assert back.search_params == idx.search_params
    assert back.info == {"model": "runs/x", "modality": "image"}
    np.testing.assert_array_equal(back.ids, idx.ids)
    # the loaded index keeps working: add, remove, search
    new = back.add(x[:2])
    assert new.tolist() == [5991, 5992] and len(back) == 599
    back.remove([30])
    assert 30 not in back.search(q, 50)[1]


def test_index_json_records_how_it_was_built(tmp_path):
    x, _ = _data()
    idx = Index.build(x, spec="auto", metric="cosine", build_params=None)
    idx.save(tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "index.json").read_text())
    assert meta["spec"] == "auto" and meta["resolved_spec"] == "Flat"
    assert meta["dim"] == 16 and meta["metric"] == "cosine" and meta["count"] == 600
    assert meta["format_version"] == 1 and meta["removed_ids"] == []
    size = (tmp_path / "a" / "index.faiss").stat().st_size
    assert meta["files"]["index.faiss"]["bytes"] == size and len(meta["files"]["index.faiss"]["sha256"]) == 64


def test_metadata_round_trip(tmp_path):
    x, _ = _data(n=4)
    md = [{"label": 3, "text": "a cat", "path": "img/1.png", "source": "flickr"},
          {"label": "dog", "extra": {"w": 1.5, "tags": ["a", "b"]}},
          None,
          {"label": [1, 0, 1], "text": "multi"}]
    idx = Index.build(x, spec="HNSW32", ids=[10, 11, 12, 13], metadata=md)
    idx.add(np.ones((1, 16)), ids=[20], metadata={"label": np.array([7]), "text": ["col"]})
    expect = [
        {"id": 10, "label": 3, "text": "a cat", "path": "img/1.png", "extra": {"source": "flickr"}},
        {"id": 11, "label": "dog", "text": None, "path": None, "extra": {"w": 1.5, "tags": ["a", "b"]}},
        {"id": 12, "label": None, "text": None, "path": None, "extra": {}},
        {"id": 13, "label": [1, 0, 1], "text": "multi", "path": None, "extra": {}},
        {"id": 20, "label": 7, "text": "col", "path": None, "extra": {}},
    ]
    assert idx.metadata([10, 11, 12, 13, 20]) == expect
    idx.save(tmp_path / "m")
    back = Index.load(tmp_path / "m")
    assert back.metadata([20, -1, 10]) == [expect[4], None, expect[0]]
    assert back.metadata(13) == [expect[3]]
    # the file is a plain SQLite database keyed by id
    con = sqlite3.connect(tmp_path / "m" / "metadata.sqlite")
    assert con.execute("SELECT text FROM items WHERE id = 10").fetchone() == ("a cat",)
    con.close()
    back.remove([10])
    with pytest.raises(InputError):
        back.metadata([10])


def test_search_results_feed_metadata():
    x, q = _data(n=30)
    idx = Index.build(x, spec="Flat", metadata={"label": list(range(30))})
    _, ids = idx.search(q[:1], k=40)
    rows = idx.metadata(ids[0])
    assert len(rows) == 40 and rows[-1] is None and [r["label"] for r in rows[:30]] == ids[0, :30].tolist()


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(InputError, match=r"folder: index folder .*nope.* does not exist"):
        Index.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no index.json"):
        Index.load(tmp_path / "empty")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="got a file"):
        Index.load(tmp_path / "f")


@pytest.fixture
def saved(tmp_path):
    x, _ = _data()
    Index.build(x, spec="Flat", metadata=[{"text": str(i)} for i in range(600)]).save(tmp_path / "s")
    return tmp_path / "s"


@pytest.mark.parametrize("bad", [None, 5, ""])
def test_a_folder_that_is_not_a_path_is_refused(bad):
    with pytest.raises(InputError, match=r"^folder: expected a saved index folder path, got"):
        Index.load(bad)


@pytest.mark.parametrize("bad,shown", [(None, "NoneType None"), (5, "int 5"), ("", "str ''")])
def test_saving_to_a_folder_that_is_not_a_path_is_refused(bad, shown, monkeypatch):
    """Index.save and ShardedIndex.save raised TypeError from os.fspath; build_on_disk did so after
    reading and training on the stream."""
    import re

    from jointspace.index import ondisk
    from jointspace.index.sharded import ShardedIndex

    x, _ = _data(300)
    message = rf"^folder: expected an index folder path, got {re.escape(shown)}$"
    with pytest.raises(InputError, match=message):
        Index.build(x).save(bad)
    with pytest.raises(InputError, match=message):
        ShardedIndex([Index.build(x)]).save(bad)
    monkeypatch.setattr(ondisk, "_batches", lambda stream: pytest.fail("the stream was read"))
    with pytest.raises(InputError, match=message):
        ondisk.build_on_disk([x], bad, spec="IVF4,Flat", train_size=300)


def test_truncated_index_file(saved):
    data = (saved / "index.faiss").read_bytes()
    (saved / "index.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"index.faiss in .* is truncated: expected \d+ bytes, found \d+"):
        Index.load(saved)


def test_altered_index_file_fails_checksum(saved):
    data = bytearray((saved / "index.faiss").read_bytes())
    data[-10] ^= 0xFF
    (saved / "index.faiss").write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupted: its SHA-256 does not match"):
        Index.load(saved)


def test_missing_index_faiss_and_metadata(saved):
    (saved / "metadata.sqlite").unlink()
    with pytest.raises(InputError, match="has no metadata.sqlite"):
        Index.load(saved)
    (saved / "index.faiss").unlink()
    with pytest.raises(InputError, match="has no index.faiss"):
        Index.load(saved)


def test_damaged_metadata_pages_are_found_on_load_without_verify(tmp_path):
    """Damaged pages copied into memory without complaint; reading a row on them raised
    sqlite3.DatabaseError ('database disk image is malformed') long after the load."""
    x, _ = _data()
    Index.build(x, metadata=[{"text": str(i) * 20, "label": i} for i in range(600)]).save(tmp_path / "s")
    path = tmp_path / "s" / "metadata.sqlite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 200] = bytes(200)   # same size: only the checksum would tell
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"^folder: .*metadata.sqlite is corrupted \(SQLite's quick_check: "
                                         r"On tree page \d+ .*\)$") as err:
        Index.load(tmp_path / "s", verify=False)
    assert "\n" not in str(err.value)


def test_corrupted_json(saved):
    (saved / "index.json").write_text('{"format": "jointspace-index", "dim": ')
    with pytest.raises(InputError, match="not valid JSON"):
        Index.load(saved)
    (saved / "index.json").write_text(json.dumps({"format": "jointspace-index", "format_version": 1}))
    with pytest.raises(InputError, match="missing 'spec'"):
        Index.load(saved)
    (saved / "index.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputError, match="does not describe a jointspace index"):
        Index.load(saved)


def test_a_metric_that_does_not_match_index_faiss_is_refused(saved):
    meta = json.loads((saved / "index.json").read_text())
    meta["metric"] = "l2" if meta["metric"] != "l2" else "cosine"
    (saved / "index.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"index.faiss in .* compares by .*; index.json says metric .*corrupted"):
        Index.load(saved)


@pytest.mark.parametrize("key,value", [("search_params", {"efSearch": 2**40}),
                                       ("build_params", {"efConstruction": 2**40})])
def test_an_hnsw_setting_beyond_the_cap_in_index_json_names_the_file(tmp_path, key, value):
    x, _ = _data(100)
    Index.build(x, spec="HNSW8").save(tmp_path / "h")
    meta = json.loads((tmp_path / "h" / "index.json").read_text())
    meta[key] = value
    (tmp_path / "h" / "index.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=rf"index.json' has a bad '{key}' .*expected an integer <= 1048576, "
                                         rf"got {2**40}"):
        Index.load(tmp_path / "h")


def test_failed_save_leaves_existing_folder_intact(saved):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    idx = Index.build(np.ones((3, 4)), spec="Flat")
    idx.info = {"bad": object()}
    with pytest.raises(InputError, match="info"):
        idx.save(saved)
    # a field the loader reads back as a string: refused before the save, not at the next load
    idx.info = {"model": 5}
    with pytest.raises(InputError, match=r"index.info\['model'\]: expected a string or None, got 5"):
        idx.save(saved)
    idx.info = {}
    idx._metadata.save = lambda path: (_ for _ in ()).throw(OSError("disk full"))
    with pytest.raises(OSError, match="disk full"):
        idx.save(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert [p.name for p in saved.parent.iterdir()] == ["s"]    # no temporary folders left
    assert len(Index.load(saved)) == 600


def test_save_replaces_existing_folder(saved):
    Index.build(np.ones((3, 4)), spec="Flat").save(saved)
    assert Index.load(saved).dim == 4


def test_unresolved_auto_cannot_be_saved(tmp_path):
    with pytest.raises(InputError, match="add vectors first"):
        Index(8, "auto").save(tmp_path / "x")
