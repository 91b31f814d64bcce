"""Atomic writes: complete or absent, never half; usual permissions."""

import os
import stat

import pytest

from jointspace._io import atomic_dir, atomic_write_json, atomic_write_text


def test_atomic_file_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "hello")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert (tmp_path / "a.txt").read_text() == "hello"


def test_failed_dir_write_keeps_the_old_folder(tmp_path):
    box = {"kind": "box", "is_kind": lambda p: (p / "x").is_file()}
    with atomic_dir(tmp_path / "d", **box) as d:
        (d / "x").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d", **box) as d:
            (d / "x").write_text("new")
            raise RuntimeError("boom")
    assert (tmp_path / "d" / "x").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_json_round_trip(tmp_path):
    import json

    atomic_write_json(tmp_path / "r.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1, 2], "b": 1}


def test_saved_model_files_have_the_same_permissions(tmp_path):
    import numpy as np

    from jointspace import Pairs, create_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    create_model("cca", n_components=2).fit(Pairs({"a": x, "b": x @ rng.normal(size=(4, 3))})).save(tmp_path / "m")
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert modes["state.safetensors"] == modes["config.json"]     # not safetensors' 0600
