"""Worker of the crash tests: save one artefact (a model, an index, a training checkpoint, or
a new chunk of the embedding cache) over and over until killed.

    python save_loop.py KIND PATH LOG

Before each save it appends ``pending <i> <fingerprint>`` to LOG, after it ``done <i>``.
``os.replace`` sleeps a random moment after each rename so that a kill often lands between
the two renames that replace a folder, the narrowest window.
"""

import os
import random
import sys

import numpy as np

_replace = os.replace


def _slow_replace(src, dst):
    _replace(src, dst)
    if random.random() < 0.5:
        import time

        time.sleep(random.uniform(0, 0.02))


os.replace = _slow_replace


def model_version(i):
    """A fitted CCA whose encoding of a fixed probe depends on ``i``."""
    import jointspace as js

    rng = np.random.default_rng(i)
    x = rng.normal(size=(40, 5))
    y = x @ rng.normal(size=(5, 4)) + 0.1 * rng.normal(size=(40, 4))
    model = js.create_model("cca", n_components=2).fit(js.Pairs({"a": x, "b": y}))
    return model, fingerprint_model(model)


#: rows of one cached chunk (one version of the embedding-cache loop)
CACHE_ROWS = 256
#: the cache's chunk_size: its shortest chunk (a quarter of it) holds all of a version's rows
CACHE_CHUNK = 4 * CACHE_ROWS


def cache_tower():
    """A cheap deterministic features tower (64-d) whose outputs the cache stores."""
    from jointspace.towers.base import Tower

    class CrashTower(Tower):
        name = "crash-test"
        modality = "features"
        default_batch_size = CACHE_ROWS

        def __init__(self):
            self.out_dim = 64
            self._w = np.random.default_rng(0).normal(size=(16, 64)).astype(np.float32)

        def _embed_batch(self, items):
            return np.tanh(np.asarray(items, np.float32) @ self._w)

    return CrashTower()


def cache_items(i):
    """The items of version ``i`` of the embedding-cache loop, (CACHE_ROWS, 16)."""
    return np.random.default_rng(10_000 + i).normal(size=(CACHE_ROWS, 16)).astype(np.float32)


def fingerprint_model(model):
    probe = np.linspace(-1, 1, 10).reshape(2, 5)
    return "%.6f" % float(np.abs(model.encode("a", probe)).sum())


def main(kind, path, log):
    random.seed(os.getpid())
    first = 1   # versions go on from the last run's
    if os.path.exists(log):
        with open(log) as fh:
            first += max((int(ln.split()[1]) for ln in fh if ln.strip()), default=0)
    with open(log, "a", buffering=1) as out:
        for i in range(first, first + 100000):
            if kind == "model":
                model, fp = model_version(i)
                out.write(f"pending {i} {fp}\n")
                model.save(path)
            elif kind == "index":
                from jointspace.index.faiss_index import Index

                index = Index(8)
                index.add(np.random.default_rng(i).normal(size=(10 + i, 8)).astype(np.float32))
                out.write(f"pending {i} {10 + i}\n")
                index.save(path)
            elif kind == "checkpoint":
                import torch

                from jointspace.train.checkpoint import save_checkpoint

                torch.manual_seed(i)
                net = torch.nn.Linear(4, 3)
                opt = torch.optim.SGD(net.parameters(), lr=0.1)
                out.write(f"pending {i} {i}\n")
                save_checkpoint(path, i, net, opt, {"epoch": i}, {"kind": "crash-test"}, keep=2)
            elif kind == "cache":
                from jointspace.towers import EmbeddingCache

                out.write(f"pending {i} {i}\n")
                EmbeddingCache(path, chunk_size=CACHE_CHUNK).embed(cache_tower(), cache_items(i), progress=False)
            out.write(f"done {i}\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
