"""Atomic writes: complete or absent, never half; usual permissions."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jointspace._io import atomic_dir, atomic_write_json, atomic_write_text

SRC = Path(__file__).resolve().parents[1] / "src"
BOX = {"kind": "box", "is_kind": lambda p: (p / "x").is_file()}


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
    box = BOX
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


KILLED_MID_WRITE = """
import os, sys
from jointspace._io import atomic_dir

with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "part.bin").write_bytes(bytes(4096))
    (tmp / "sub").mkdir()
    (tmp / "sub" / "more.bin").write_bytes(b"1")
    os._exit(1)
"""


def _killed_mid_write(path: Path) -> Path:
    """Run a writer of folder ``path`` that dies inside atomic_dir; the temporary folder it left."""
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(path)], env=env, capture_output=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr.decode()
    left = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp")]
    assert len(left) == 1 and (left[0] / "sub" / "more.bin").is_file(), left
    return left[0]


def _age(path: Path, hours: float) -> None:
    """Set the times of ``path`` and of everything under it ``hours`` into the past."""
    then = time.time() - hours * 3600
    for root, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (then, then))
    os.utime(path, (then, then))


def test_a_temporary_folder_a_killed_writer_left_is_removed_once_stale(tmp_path):
    target = tmp_path / "idx"
    left = _killed_mid_write(target)
    with atomic_dir(target, **BOX) as d:
        (d / "x").write_text("1")
    assert left.is_dir()                  # not an hour old: it could be a live writer's
    others = [tmp_path / ".idx.v2.k3j9x0a_.tmp", tmp_path / ".idx.tmp", tmp_path / "notes"]
    for other in others:                  # another target's temporary, names that are no temporary
        other.mkdir()
    (tmp_path / ".idx.q8w7e6r5.tmp").write_text("a file, not a folder atomic_dir made")
    others.append(tmp_path / ".idx.q8w7e6r5.tmp")
    for path in [left, *others]:
        _age(path, 2)
    with atomic_dir(target, **BOX) as d:
        (d / "x").write_text("2")
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["idx", *(p.name for p in others)])
    assert (target / "x").read_text() == "2"


def test_the_temporary_folder_of_a_live_writer_is_kept_however_old(tmp_path):
    target = tmp_path / "idx"
    with atomic_dir(target, **BOX) as slow:
        (slow / "x").write_text("slow")
        _age(slow, 2)                     # a writer that has not written for two hours, but lives
        with atomic_dir(target, **BOX) as d:
            (d / "x").write_text("quick")
        assert (slow / "x").read_text() == "slow"
    assert (target / "x").read_text() == "slow"
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_a_save_keeps_the_previous_version_another_folder_set_aside(tmp_path):
    """Saving ``idx`` deletes what a killed save of ``idx`` left aside, but not the previous
    version of ``idx.v2`` that a save killed between its two renames set aside (``recover_dir``
    puts that back when ``idx.v2`` is next read)."""
    from jointspace._io import recover_dir

    with atomic_dir(tmp_path / "idx", **BOX) as d:
        (d / "x").write_text("1")
    own = tmp_path / ".idx.a1b2c3d4.old"            # idx's leftover: its writer died deleting it
    (own / "idx").mkdir(parents=True)
    other = tmp_path / ".idx.v2.k3j9x0a_.old"        # idx.v2 is missing; its previous version is here
    (other / "idx.v2").mkdir(parents=True)
    (other / "idx.v2" / "x").write_text("v2")
    with atomic_dir(tmp_path / "idx", **BOX) as d:
        (d / "x").write_text("2")
    assert not own.exists()
    assert recover_dir(tmp_path / "idx.v2")
    assert (tmp_path / "idx.v2" / "x").read_text() == "v2"


def test_a_temporary_file_a_killed_write_left_goes_with_a_later_write_once_stale(tmp_path):
    from jointspace._io import atomic_write_bytes

    out = tmp_path / "vectors.npy"
    stale, young = tmp_path / ".vectors.npy.a1b2c3d4.tmp", tmp_path / ".vectors.npy.e5f6g7h8.tmp"
    others = [tmp_path / ".vectors.npy.v2.k3j9x0a_.tmp", tmp_path / ".other.npy.a1b2c3d4.tmp"]
    for path in [stale, young, *others]:   # as large as the file a killed write was writing
        path.write_bytes(b"half")
    for path in [stale, *others]:
        _age(path, 2)
    atomic_write_bytes(out, b"small")   # the folder is not listed for each small file
    assert stale.exists()
    atomic_write_bytes(out, b"w" * (1 << 20))
    assert out.stat().st_size == 1 << 20
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["vectors.npy", young.name, *(p.name for p in others)])
