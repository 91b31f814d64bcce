"""Killed while saving: the previous version on disk stays loadable, nothing half-written loads.

A worker (``_crash/save_loop.py``) saves a model, an index, a training checkpoint or a chunk of
the embedding cache over and over; it is killed with SIGKILL at a random moment, many times, and after each kill the
artefact must load and be one of the two versions a reader may see: the last one saved
completely, or the one being saved if its save got as far as the final rename.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).parent / "_crash" / "save_loop.py"
SRC = Path(__file__).resolve().parents[1] / "src"
KILLS = 6


def _run_and_kill(kind, path, log, rng):
    """Start the worker, let it save at least once, kill it at a random moment; the log lines."""
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    before = log.read_text().count("done") if log.exists() else 0
    proc = subprocess.Popen([sys.executable, str(WORKER), kind, str(path), str(log)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (log.read_text().count("done") if log.exists() else 0) <= before:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the worker saved nothing in 120 s"
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.4))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    lines = log.read_text().splitlines()
    done = [int(ln.split()[1]) for ln in lines if ln.startswith("done")]
    pending = {int(ln.split()[1]): ln.split()[2] for ln in lines if ln.startswith("pending")}
    return done[-1], pending


def _allowed(done, pending):
    """The fingerprints a reader may find: the last completed version and the next one."""
    return {pending[done]} | ({pending[done + 1]} if done + 1 in pending else set())


@pytest.mark.parametrize("kind", ["model", "index", "checkpoint"])
def test_killed_while_saving_the_previous_version_stays_loadable(kind, tmp_path):
    rng = random.Random(f"crash-{kind}")
    path, log = tmp_path / kind, tmp_path / f"{kind}.log"
    for _ in range(KILLS):
        done, pending = _run_and_kill(kind, path, log, rng)
        found = _load_fingerprint(kind, path)
        assert found in _allowed(done, pending), (found, done, sorted(pending)[-2:])
        # and the next run saves over it as if nothing had happened
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".old") and kind != "checkpoint"]
    assert len(leftovers) <= 1, leftovers    # a kill between renames leaves one aside at most, put back on load


def _load_fingerprint(kind, path):
    if kind == "model":
        import jointspace as js

        sys.path.insert(0, str(WORKER.parent))
        try:
            from save_loop import fingerprint_model
        finally:
            sys.path.remove(str(WORKER.parent))
        return fingerprint_model(js.load_model(path))
    if kind == "index":
        from jointspace.index.faiss_index import Index

        return str(Index.load(path).ntotal)
    import torch

    from jointspace.train.checkpoint import checkpoint_dirs, load_checkpoint

    net = torch.nn.Linear(4, 3)
    state = load_checkpoint(path, net, torch.optim.SGD(net.parameters(), lr=0.1), {"kind": "crash-test"})
    # every checkpoint still listed loads too (pruning never leaves half of one)
    for older in checkpoint_dirs(path):
        load_checkpoint(older, torch.nn.Linear(4, 3), None, {"kind": "crash-test"})
    return str(state["step"])


def test_killed_while_caching_embeddings_every_finished_chunk_is_read_back(tmp_path):
    """Each version of the loop caches one new chunk; after every kill, each chunk finished
    before the kill is a cache hit equal to the tower's output, and no other file is read."""
    from jointspace.towers import EmbeddingCache

    sys.path.insert(0, str(WORKER.parent))
    try:
        from save_loop import CACHE_CHUNK, cache_items, cache_tower
    finally:
        sys.path.remove(str(WORKER.parent))
    rng = random.Random("crash-cache")
    path, log = tmp_path / "cache", tmp_path / "cache.log"
    tower = cache_tower()
    for _ in range(KILLS):
        _run_and_kill("cache", path, log, rng)
        lines = [ln.split() for ln in log.read_text().splitlines()]
        finished = {int(v) for word, v, *_ in lines if word == "done"}
        started = {int(v) for word, v, *_ in lines if word == "pending"}   # a killed version never finishes
        chunks = list(path.glob("*/*.safetensors"))
        assert len(finished) <= len(chunks) <= len(started), (len(finished), len(chunks), len(started))
        cache = EmbeddingCache(path, chunk_size=CACHE_CHUNK)
        for i in sorted(started):
            items = cache_items(i)
            hits = cache.hits
            assert np.array_equal(cache.embed(tower, items, progress=False), tower.embed(items, progress=False))
            assert cache.hits == hits + 1 or i not in finished, f"version {i} finished but was not read back"
        # a version killed before its rename was recomputed just now; none other was missed
        assert cache.hits == len(chunks), (cache.hits, len(chunks))


def test_a_save_killed_between_its_two_renames_is_put_back(tmp_path):
    """The narrowest window, made by hand: the previous folder moved aside, the new one still
    under its temporary name.  Loading puts the previous version back; saving again works
    and leaves nothing behind."""
    import jointspace as js
    from jointspace._io import recover_dir

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    pairs = js.Pairs({"a": x, "b": x @ rng.normal(size=(4, 3))})
    old = js.create_model("cca", n_components=2).fit(pairs)
    old.save(tmp_path / "m")
    want = old.encode("a", x[:3])
    holder = tmp_path / ".m.abc123.old"
    holder.mkdir()
    os.replace(tmp_path / "m", holder / "m")
    shutil.copytree(holder / "m", tmp_path / ".m.def456.tmp")
    (tmp_path / ".m.def456.tmp" / "state.safetensors").write_bytes(b"half")
    assert not (tmp_path / "m").exists()
    np.testing.assert_array_equal(js.load_model(tmp_path / "m").encode("a", x[:3]), want)
    assert not holder.exists() and not recover_dir(tmp_path / "m")
    old.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.def456.tmp", "m"]   # the dead writer's temp: never loaded


def test_a_malicious_pickle_in_a_run_folder_is_never_unpickled(tmp_path):
    """Loading reads safetensors and JSON only: a pickle planted as a model's or checkpoint's
    state file is refused with a clear error, and its payload never runs."""
    import pickle

    import torch

    import jointspace as js
    from jointspace.errors import JointspaceError
    from jointspace.train.checkpoint import save_checkpoint, load_checkpoint

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    js.create_model("cca", n_components=2).fit(js.Pairs({"a": x, "b": x[:, :3]})).save(tmp_path / "m")
    (tmp_path / "m" / "state.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(JointspaceError):
        js.load_model(tmp_path / "m")
    net = torch.nn.Linear(4, 3)
    ckpt = save_checkpoint(tmp_path / "run", 1, net, torch.optim.SGD(net.parameters(), lr=0.1), {}, {"k": 1})
    for name in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        (ckpt / name).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(JointspaceError):
        load_checkpoint(ckpt, net, None, {"k": 1})
    torch.save(Payload(), tmp_path / "weights.pt")   # what torch.load(weights_only=True) refuses
    with pytest.raises(Exception):
        torch.load(tmp_path / "weights.pt", weights_only=True)
    assert not marker.exists()
