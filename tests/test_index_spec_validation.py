"""Numbers in FAISS factory strings and fields of index.json are checked before FAISS or numpy
see them: bad values give one InputError (CLI: exit 2, one line), never an abort or a crash."""

import json

import numpy as np
import pytest

from jointspace.cli import main
from jointspace.errors import InputError
from jointspace.index.faiss_index import Index
from jointspace.index.spec import HNSW_M_RANGE, check_spec_numbers, normalize_spec


def _x(n=300, d=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


# -- spec numbers ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec,words", [
    ("HNSW0", ["HNSW M", "between 2 and", "got 0"]),
    ("HNSW1", ["HNSW M", "got 1"]),
    ("HNSW1_PQ2", ["HNSW M", "got 1"]),
    ("IVF4_HNSW1,Flat", ["HNSW M", "got 1"]),
    ("IVF4(HNSW1),Flat", ["HNSW M", "got 1"]),
    ("HNSW100000", ["HNSW M", "got 100000"]),
    ("IVF0,Flat", ["IVF nlist", "between 1 and", "got 0"]),
    ("IVF2147483648,Flat", ["IVF nlist", "got 2147483648"]),
    ("PQ2x0", ["PQ nbits", "got 0"]),
    ("IVF4,PQ2x0", ["PQ nbits", "got 0"]),
    ("PQ2x40", ["PQ nbits", "got 40"]),
    ("PQ0", ["PQ m", "got 0"]),
    ("IMI2x0,Flat", ["IMI nbits", "got 0"]),
    ("NSG4", ["NSG R", "got 4"]),
    ("OPQ2_0,Flat", ["OPQ output dimension", "got 0"]),
    ("RR0,Flat", ["transform output dimension", "got 0"]),
    ("PCAR0,Flat", ["transform output dimension", "got 0"]),
    ("RQ2x0", ["RQ / LSQ nbits", "got 0"]),
    ("LSQ0x4", ["RQ / LSQ m", "got 0"]),
    ("PRQ2x0x4", ["PRQ / PLSQ sub-quantizers", "got 0"]),
    ("PQ4x4fs_0", ["block size", "got 0"]),
    ("SQ0", ["every number", "got 0"]),
    ("IVF4,FlatPanorama0", ["every number", "got 0"]),
    ("LSH0", ["every number", "got 0"]),
])
def test_bad_numbers_in_spec_are_refused_before_faiss(spec, words):
    with pytest.raises(InputError) as err:
        Index(8, spec)
    msg = str(err.value)
    assert msg.startswith("spec: expected") and repr(spec) in msg
    for word in words:
        assert word in msg


@pytest.mark.parametrize("spec", ["Flat", "HNSW", "HNSW2", "HNSW32", "HNSW32_PQ4", "HNSW16_SQ8", "IVF1,Flat",
                                  "IVF4k,Flat", "IVF8,PQ4x4", "IVF8,PQ4x4fs_64", "PQ4np", "SQfp16", "SQ8",
                                  "NSG32", "OPQ4_8,IVF8,PQ4", "PCA4,HNSW32", "RR8,Flat", "IVF8,Flat,RFlat",
                                  "IVF8,PQ4,Refine(Flat)", "RQ2x4_1x4", "IVF8,ITQ,SH1.0", "IDMap2,Flat"])
def test_good_specs_pass(spec):
    assert check_spec_numbers(normalize_spec(spec)) is None


@pytest.mark.parametrize("spec", ["HNSW8_PQ4", "HNSW8,PQ4", "PCA8,HNSW8_PQ4", "HNSW8_PQ4,RFlat", "NSG32_PQ4"])
@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_specs_faiss_builds_for_l2_only_are_refused_for_other_metrics(spec, metric):
    """FAISS built them with the L2 metric whatever was asked: the distances were ranked as
    similarities (each vector found itself last) and the saved index did not load."""
    with pytest.raises(InputError, match=rf"^spec: FAISS builds {spec!r} for the l2 metric only, "
                                         rf"got metric={metric!r}; use metric='l2'"):
        Index(8, spec, metric)


def test_a_spec_faiss_builds_for_l2_only_builds_saves_and_searches_with_l2(tmp_path):
    x = _x()
    Index.build(x, spec="HNSW8_PQ4x4", metric="l2").save(tmp_path / "i")
    _, ids = Index.load(tmp_path / "i").search(x[:5], k=1)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_smallest_hnsw_m_builds_saves_and_searches(tmp_path):
    x = _x()
    spec = f"HNSW{HNSW_M_RANGE[0]}"
    idx = Index.build(x, spec=spec)
    idx.save(tmp_path / "i")
    _, ids = Index.load(tmp_path / "i").search(x[:5], k=1)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_nlist_up_to_the_number_of_training_vectors(tmp_path):
    x = _x(n=50)
    idx = Index.build(x, spec="IVF50,Flat", metric="l2")
    idx.save(tmp_path / "i")
    assert Index.load(tmp_path / "i").ntotal == 50
    with pytest.raises(InputError, match=r"needs at least 51 training vectors.*got 50"):
        Index.build(x, spec="IVF51,Flat")


# -- CLI -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cca_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(["fit", "wikipedia", "--model", "cca", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("spec,words", [("HNSW0", "HNSW M"), ("HNSW1", "HNSW M"), ("IVF0,Flat", "IVF nlist"),
                                        ("IVF100000,Flat", "training vectors")])
def test_cli_index_refuses_bad_specs(cca_model, tmp_path, capsys, spec, words):
    capsys.readouterr()
    out = tmp_path / "idx"
    code = main(["index", str(cca_model), "--dataset", "wikipedia", "--modality", "image", "--spec", spec,
                 "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# -- index.json fields -----------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    idx = Index.build(_x(), spec="HNSW16")
    idx.remove([3, 4])
    idx.info = {"model": "runs/m", "modality": "image", "free": [1, 2]}
    idx.save(tmp_path / "i")
    return tmp_path / "i"


def _edit(folder, **changes):
    path = folder / "index.json"
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            meta.pop(key)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))


def test_saved_fixture_loads(saved):
    idx = Index.load(saved)
    assert idx.ntotal == 298 and idx.info["free"] == [1, 2]


@pytest.mark.parametrize("key,value,field", [
    ("removed_ids", ["x"], "'removed_ids'"),
    ("removed_ids", [3, 3], "'removed_ids'"),
    ("removed_ids", [-1, 4], "'removed_ids'"),
    ("removed_ids", [2**70, 4], "'removed_ids'"),
    ("removed_ids", "3,4", "'removed_ids'"),
    ("removed_ids", KeyError, "'removed_ids'"),
    ("next_id", -1, "'next_id'"),
    ("next_id", "7", "'next_id'"),
    ("next_id", 2**64, "'next_id'"),
    ("info", {"model": 5}, "'info.model'"),
    ("info", {"modality": ["image"]}, "'info.modality'"),
    ("info", [1], "'info'"),
    ("dim", "8", "'dim'"),
    ("dim", True, "'dim'"),
    ("dim", 0, "'dim'"),
    ("count", -1, "'count'"),
    ("count", 300, "'count'"),
    ("stored", 1.5, "'stored'"),
    ("metric", "cos", "'metric'"),
    ("spec", 3, "'spec'"),
    ("resolved_spec", None, "'resolved_spec'"),
    ("search_params", {"efSearch": "64"}, "'search_params'"),
    ("search_params", {"depth": 3}, "'search_params'"),
    ("search_params", {"nprobe": 4}, "'search_params'"),
    ("build_params", {"efConstruction": 0}, "'build_params'"),
    ("build_params", [], "'build_params'"),
    ("files", [], "'files'"),
    ("format_version", True, "format_version"),
])
def test_bad_index_json_fields_raise_one_input_error(saved, key, value, field):
    _edit(saved, **{key: value})
    with pytest.raises(InputError) as err:
        Index.load(saved)
    msg = str(err.value)
    assert "index.json" in msg and field in msg


def test_bad_file_entries_in_index_json(saved):
    meta = json.loads((saved / "index.json").read_text())
    meta["files"]["index.faiss"]["bytes"] = "12"
    (saved / "index.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"index\.json.*'files\.index\.faiss\.bytes'"):
        Index.load(saved)
    meta["files"]["index.faiss"] = {"bytes": 1, "sha256": 5}
    (saved / "index.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"'files\.index\.faiss\.sha256'"):
        Index.load(saved)


def test_cli_search_reports_bad_index_json_in_one_line(cca_model, tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["index", str(cca_model), "--dataset", "wikipedia", "--modality", "image", "--spec", "Flat",
                 "--out", str(out)]) == 0
    for key, value, field in (("removed_ids", ["x"], "removed_ids"), ("info", {"model": 5}, "info.model")):
        meta = json.loads((out / "index.json").read_text())
        good = meta[key]
        meta[key] = value
        (out / "index.json").write_text(json.dumps(meta))
        capsys.readouterr()
        code = main(["search", str(out), "--query-row", "0"])
        _, err = capsys.readouterr()
        assert code == 2 and "index.json" in err and field in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        meta[key] = good
        (out / "index.json").write_text(json.dumps(meta))
    assert main(["search", str(out), "--query-row", "0"]) == 0


def test_corrupt_metadata_rows_raise_input_error(tmp_path):
    import sqlite3

    idx = Index.build(_x(n=5), spec="Flat", metadata=[{"label": i, "text": f"t{i}"} for i in range(5)])
    idx.save(tmp_path / "i")
    db = tmp_path / "i" / "metadata.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE items SET label = 'not json' WHERE id = 1")
        conn.execute("UPDATE items SET extra = '[1]' WHERE id = 2")
    meta = json.loads((tmp_path / "i" / "index.json").read_text())
    meta["files"]["metadata.sqlite"]["bytes"] = db.stat().st_size
    meta["files"]["metadata.sqlite"]["sha256"] = None
    (tmp_path / "i" / "index.json").write_text(json.dumps(meta))
    loaded = Index.load(tmp_path / "i")
    assert loaded.metadata([0])[0]["text"] == "t0"
    with pytest.raises(InputError, match=r"metadata\.sqlite.*'label' of id 1"):
        loaded.metadata([1])
    with pytest.raises(InputError, match=r"metadata\.sqlite.*'extra' of id 2"):
        loaded.metadata([2])
