"""``jointspace cache info|prune``: the cache's size per tower folder, and pruning its least
recently used chunks without touching a chunk being written."""

import json
import os
import re
import time

import numpy as np
import pytest

from jointspace.cli import main
from jointspace.errors import InputError
from jointspace.towers import EmbeddingCache, Tower
from jointspace.towers.cache_usage import _remove_if_unused_since, cache_info, parse_size, prune_cache


class CountingTower(Tower):
    name = "usage-counting-test"
    modality = "text"

    def __init__(self, seed=0):
        self.seed, self.out_dim, self.items_seen = seed, 3, 0

    def config(self):
        return {"seed": self.seed}

    def _embed_batch(self, items):
        self.items_seen += len(items)
        return np.array([[len(t), self.seed, 1] for t in items], np.float32)


TEXTS = [f"a caption number {i}" for i in range(12)]
DAY = 86400.0


def _fill(root, seeds=(0,)):
    for seed in seeds:
        EmbeddingCache(root, chunk_size=1).embed(CountingTower(seed), TEXTS)   # one chunk per text
    return sorted(root.glob("*/*.safetensors"))


def _age(files, days_ago):
    now = time.time()
    for i, f in enumerate(files):   # distinct times: the first file is the oldest
        os.utime(f, (now, now - days_ago * DAY - (len(files) - i)))


def test_info_gives_chunks_and_bytes_per_tower_folder(tmp_path, capsys):
    _fill(tmp_path, seeds=(0, 1))
    rows = cache_info(tmp_path)
    assert len(rows) == 2
    for row in rows:
        names = os.listdir(tmp_path / row["folder"])
        assert row["chunks"] == len(names) == len(TEXTS)
        assert row["bytes"] == sum(os.path.getsize(tmp_path / row["folder"] / n) for n in names)
        assert abs(row["last_used"] - time.time()) < 60
    assert main(["cache", "info", "--cache-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["folders"] == rows and out["bytes"] == sum(r["bytes"] for r in rows)
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    assert "24 chunks" in capsys.readouterr().out
    assert cache_info(tmp_path / "not-yet") == []


def test_a_hit_marks_the_chunk_used(tmp_path):
    files = _fill(tmp_path)
    _age(files, 10)
    EmbeddingCache(tmp_path, chunk_size=1).embed(CountingTower(), TEXTS[:3])
    used = [f for f in files if time.time() - f.stat().st_mtime < 60]
    assert len(used) == 3


def test_prune_older_than_deletes_the_chunks_unused_for_that_long(tmp_path, capsys):
    files = _fill(tmp_path)
    _age(files[:5], 40)
    _age(files[5:], 10)
    sizes = [f.stat().st_size for f in files]
    assert main(["cache", "prune", "--cache-dir", str(tmp_path), "--older-than", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["removed"], out["kept"]) == (5, 7)
    assert (out["freed"], out["bytes"]) == (sum(sizes[:5]), sum(sizes[5:]))
    assert [f.exists() for f in files] == [False] * 5 + [True] * 7
    tower = CountingTower()   # the pruned chunks are computed again, the others read
    assert np.array_equal(EmbeddingCache(tmp_path, chunk_size=1).embed(tower, TEXTS), tower.embed(TEXTS))
    assert tower.items_seen == 5 + len(TEXTS)


def test_prune_max_size_deletes_the_least_recently_used_first(tmp_path, capsys):
    files = _fill(tmp_path)
    _age(files, 1)   # files[0] used longest ago
    newest3 = sum(f.stat().st_size for f in files[-3:])
    assert main(["cache", "prune", "--cache-dir", str(tmp_path), "--max-size", str(newest3), "--dry-run"]) == 0
    assert "would delete 9 chunks" in capsys.readouterr().out and all(f.exists() for f in files)
    assert prune_cache(tmp_path, max_size=newest3)["bytes"] == newest3
    assert [f.exists() for f in files] == [False] * 9 + [True] * 3
    assert prune_cache(tmp_path, max_size=newest3 + 10**6) == {"removed": 0, "freed": 0, "kept": 3,
                                                               "bytes": newest3}


def test_prune_never_deletes_a_chunk_being_written(tmp_path):
    files = _fill(tmp_path)
    folder = files[0].parent
    writing, killed = folder / ".abc.safetensors.x1.tmp", folder / ".def.safetensors.x2.tmp"
    writing.write_bytes(b"half a chunk")
    killed.write_bytes(b"left by a killed writer")
    os.utime(killed, (0, time.time() - 2 * 3600))
    assert prune_cache(tmp_path, max_size=0)["removed"] == len(TEXTS)
    assert writing.exists() and not killed.exists() and folder.is_dir()
    # a chunk read (or rewritten) after pruning listed it is kept
    chunk = folder / "c.safetensors"
    chunk.write_bytes(b"x")
    listed = chunk.stat().st_mtime - 5
    assert not _remove_if_unused_since(chunk, listed) and chunk.exists()
    assert _remove_if_unused_since(chunk, chunk.stat().st_mtime) and not chunk.exists()


@pytest.mark.parametrize("text, expected", [
    ("4096", 4096), ("500M", 500 << 20), ("2g", 2 << 30), ("1.5GB", int(1.5 * (1 << 30))), ("10 KiB", 10240),
    ("0", 0), (7, 7),
])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("argv, message", [
    ([], "prune: expected --older-than DAYS, --max-size SIZE or both, got neither"),
    (["--older-than", "-1"], "--older-than: expected a number of days >= 0, got -1.0"),
    (["--older-than", "nan"], "--older-than: expected a number of days >= 0, got nan"),
    (["--older-than", "soon"], "argument --older-than: invalid float value: 'soon'"),
    (["--max-size", "2X"], "--max-size: expected a size in bytes such as 4096, 500M or 2G, got '2X'"),
    (["--max-size=-5M"], "--max-size: expected a size in bytes such as 4096, 500M or 2G, got '-5M'"),
    (["--max-size", "1G", "--cache-dir", ""], "--cache-dir: expected a folder, got ''"),
    (["--max-size", "1G", "--cache-dir", "FILE"], "--cache-dir: expected a folder, got the file"),
])
def test_bad_prune_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    files = _fill(tmp_path / "c")
    (tmp_path / "f").write_text("x")
    argv = [str(tmp_path / "f") if a == "FILE" else a for a in argv]
    if "--cache-dir" not in argv:
        argv += ["--cache-dir", str(tmp_path / "c")]
    assert main(["cache", "prune", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert all(f.exists() for f in files)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "prune_cache: expected older_than_days, max_size or both, got neither"),
    ({"older_than_days": -2}, "older_than_days: expected a number >= 0, got -2.0"),
    ({"older_than_days": "old"}, "older_than_days: expected a finite number, got 'old'"),
    ({"max_size": "lots"}, "max_size: expected a size in bytes such as 4096, 500M or 2G, got 'lots'"),
    ({"max_size": -1}, "max_size: expected an integer >= 0, got -1"),
])
def test_bad_prune_cache_arguments(tmp_path, kwargs, message):
    files = _fill(tmp_path)
    with pytest.raises(InputError, match=re.escape(message)):
        prune_cache(tmp_path, **kwargs)
    assert all(f.exists() for f in files)
