"""An embedding job killed half way continues where it stopped, and ends with the same vectors."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
N = 1536   # about three chunks of the cache's 512


def _captions(path: Path) -> int:
    """Write N captions; the number of chunks the cache cuts them into."""
    from jointspace.towers.cache import chunk_bounds, item_digest

    rng = np.random.default_rng(0)
    words = "red blue cat dog house tree a drawing of the small large bird car boat sun".split()
    texts = [" ".join(rng.choice(words, rng.integers(3, 15))) + f" {i}" for i in range(N)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["text"])
        out.writerows([t] for t in texts)
    return len(chunk_bounds([item_digest(t, "text") for t in texts], 512))


def _embed(data, cache, out, **popen):
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "jointspace", "embed", str(data), "--tower", "minilm", "--quiet",
           "--out", str(out), *(["--cache-dir", str(cache)] if cache else ["--no-cache"])]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)


def test_killed_embedding_resumes_from_its_finished_chunks(tmp_path):
    data, cache, out = tmp_path / "captions.csv", tmp_path / "cache", tmp_path / "vectors.npy"
    n_chunks = _captions(data)
    assert n_chunks >= 2
    proc = _embed(data, cache, out)
    deadline = time.monotonic() + 300
    while not list(cache.glob("*/*.safetensors")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no chunk written in 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    # a chunk written again would be a new file (written beside it, then renamed over it); a
    # hit only marks the file used (its modification time), for pruning
    kept = {p: p.stat().st_ino for p in cache.glob("*/*.safetensors")}
    assert 1 <= len(kept) < n_chunks and not out.exists()   # killed half way: nothing written at --out
    again = _embed(data, cache, out)
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()
    again.stderr.close()
    # the chunks finished before the kill were read, not computed again
    assert all(p.stat().st_ino == t for p, t in kept.items())
    assert len(list(cache.glob("*/*.safetensors"))) == n_chunks
    # as a run never killed: the same chunks computed afresh (without the cache, one call over
    # all the texts batches them otherwise, and rounding differs below 1e-6)
    fresh = _embed(data, tmp_path / "fresh-cache", tmp_path / "fresh.npy")
    assert fresh.wait(timeout=300) == 0, fresh.stderr.read().decode()
    fresh.stderr.close()
    np.testing.assert_array_equal(np.load(out), np.load(tmp_path / "fresh.npy"))
