"""An index larger than the data held in memory: 1,000,000 synthetic 512-d embeddings end to end.

Two builds over the same stream of batches (50,000 rows each, generated from a seed, never all
in memory for the on-disk build), each in its own process so that its peak resident memory
(``ru_maxrss``) is its own:

* ``ondisk``: :func:`jointspace.index.ondisk.build_on_disk` with ``IVF1024,PQ128`` (128 bytes a
  vector, 4 dimensions a byte; ``--quick``: 100,000 x 128 with ``IVF256,PQ32``): quantisers trained on the first 50,000 rows, vectors added shard by shard (250,000
  rows), inverted lists merged into ``lists.ivfdata`` and memory-mapped on load; the exact
  vectors kept beside them (``vectors.f32``, memory-mapped) re-rank ``k_factor * 10`` candidates
  (``k_factor`` 1: the compressed codes alone);
* ``flat``: the in-memory exact index (``Flat``, 4 x 512 bytes a vector), added batch by batch.

Reported: indexing time, peak RSS against the index size on disk and the raw float32 size,
recall@10 of the on-disk index against the exact one on 1,000 queries (nprobe 16 and 64, each
with and without re-ranking), and search throughput (queries/s, median of 3) of both.  The
peak RSS after the searches counts the pages of the memory-mapped files they touched (the
operating system can drop them; they are not the process's own memory).  The machine has 2 cores, shared.

Usage::

    python benchmarks/bench_scale.py [--quick]

Writes ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

BATCH = 50_000
LATENT = 48
CLUSTERS = 1000


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def batch(i: int, d: int, rows: int = BATCH) -> np.ndarray:
    """Batch ``i`` of the synthetic collection, shape (rows, d): a mixture of 1,000 clusters in a
    48-d subspace of R^d (what embeddings of many classes look like), plus isotropic noise."""
    g = np.random.default_rng(12345)
    mixing = g.normal(size=(LATENT, d)).astype(np.float32) / np.sqrt(LATENT)
    centres = g.normal(size=(CLUSTERS, LATENT)).astype(np.float32)
    r = np.random.default_rng(1000 + i)
    x = np.empty((rows, d), dtype=np.float32)
    for s in range(0, rows, 5_000):   # in blocks, so that generating adds little to the batch itself
        m = min(5_000, rows - s)
        z = centres[r.integers(0, CLUSTERS, m)] + 0.5 * r.standard_normal((m, LATENT), dtype=np.float32)
        np.matmul(z, mixing, out=x[s:s + m])
        x[s:s + m] += 0.1 * r.standard_normal((m, d), dtype=np.float32)
    return x


def stream(n: int, d: int):
    for i in range(0, n, BATCH):
        yield batch(i // BATCH, d, min(BATCH, n - i))


def queries(nq: int, d: int) -> np.ndarray:
    return batch(10_000_000, d, nq)


def run_child(script: Path, case: str, **kwargs) -> dict:
    """Run ``script --child CASE --args JSON`` in a fresh process; return the JSON it prints last
    (a child that fails stops the run with its own traceback)."""
    from _util import run_json_child

    return run_json_child([sys.executable, str(script), "--child", case, "--args", json.dumps(kwargs)])


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())


# children -----------------------------------------------------------------------------------------
def child_ondisk(n, d, spec, train_size, shard_size, nq, settings, folder, ids_out):
    from jointspace.index.ondisk import build_on_disk

    base = peak_rss_mb()
    t0 = time.perf_counter()
    index = build_on_disk(stream(n, d), folder, spec=spec, train_size=train_size, shard_size=shard_size)
    build_s = time.perf_counter() - t0
    build_peak = peak_rss_mb()
    del index
    from jointspace import Index

    t0 = time.perf_counter()
    index = Index.load(folder, verify=False)
    load_s = time.perf_counter() - t0
    after_load = current_rss_mb()
    q = queries(nq, d)
    search = {}
    for nprobe, k_factor in settings:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            _, ids = index.search(q, 10, params={"nprobe": nprobe, "k_factor": k_factor})
            times.append(time.perf_counter() - t0)
        key = setting_key(nprobe, k_factor)
        np.save(f"{ids_out}-{key}.npy", ids)
        search[key] = {"nprobe": nprobe, "k_factor": k_factor, "qps": nq / statistics.median(times),
                       "median_s": statistics.median(times)}
    return {"build_s": build_s, "rss_after_imports_mb": base, "peak_rss_build_mb": build_peak,
            "rss_after_load_mb": after_load, "load_s": load_s, "peak_rss_mb": peak_rss_mb(),
            "index_bytes": folder_bytes(Path(folder)), "search": search}


def child_flat(n, d, nq, ids_out):
    from jointspace import Index

    base = peak_rss_mb()
    t0 = time.perf_counter()
    index = Index(d, "Flat")
    for x in stream(n, d):
        index.add(x)
    build_s = time.perf_counter() - t0
    q = queries(nq, d)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        _, ids = index.search(q, 10)
        times.append(time.perf_counter() - t0)
    np.save(f"{ids_out}.npy", ids)
    return {"build_s": build_s, "rss_after_imports_mb": base, "peak_rss_mb": peak_rss_mb(),
            "index_bytes": 4 * n * d + 8 * n,
            "search": {"exact": {"qps": nq / statistics.median(times), "median_s": statistics.median(times)}}}


CHILDREN = {"ondisk": child_ondisk, "flat": child_flat}


def setting_key(nprobe: int, k_factor: int) -> str:
    return f"nprobe{nprobe}-kfactor{k_factor}"


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(e[e >= 0])) / len(e[e >= 0]) for a, e in zip(approx, exact)]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100,000 x 128 instead of 1,000,000 x 512")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--args", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](**json.loads(args.args))))
        return 0
    from _util import machine, save

    n, d, spec = (100_000, 128, "IVF256,PQ32") if args.quick else (1_000_000, 512, "IVF1024,PQ128")
    nq, settings = 1000, [(16, 1), (16, 10), (64, 1), (64, 10)]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        ondisk = run_child(Path(__file__), "ondisk", n=n, d=d, spec=spec, train_size=50_000,
                           shard_size=250_000, nq=nq, settings=settings, folder=str(work / "idx"),
                           ids_out=str(work / "ondisk"))
        flat = run_child(Path(__file__), "flat", n=n, d=d, nq=nq, ids_out=str(work / "flat"))
        exact = np.load(work / "flat.npy")
        for key, row in ondisk["search"].items():
            row["recall_at_10"] = recall_at(np.load(work / f"ondisk-{key}.npy"), exact)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {"n": n, "d": d, "spec": spec, "queries": nq, "raw_float32_bytes": 4 * n * d,
               "ondisk": ondisk, "flat": flat, "machine": machine(), "quick": args.quick}
    path = save("scale", payload)
    mb = 1 / 2**20
    print(f"{n:,} x {d} ({4 * n * d * mb:,.0f} MB of float32), {nq} queries, 2 shared cores")
    print(f"{'index':<34}{'build s':>9}{'size MB':>10}{'peak RSS MB':>13}{'q/s':>9}{'recall@10':>11}")
    for s in ondisk["search"].values():
        name = f"{spec} nprobe {s['nprobe']} k_factor {s['k_factor']}"
        print(f"{name:<34}{ondisk['build_s']:>9.1f}{ondisk['index_bytes'] * mb:>10.0f}"
              f"{ondisk['peak_rss_mb']:>13.0f}{s['qps']:>9.0f}{s['recall_at_10']:>11.3f}")
    s = flat["search"]["exact"]
    print(f"{'Flat (in memory)':<34}{flat['build_s']:>9.1f}{flat['index_bytes'] * mb:>10.0f}"
          f"{flat['peak_rss_mb']:>13.0f}{s['qps']:>9.0f}{1.0:>11.3f}")
    print(f"on-disk build peak RSS {ondisk['peak_rss_build_mb']:.0f} MB (after imports "
          f"{ondisk['rss_after_imports_mb']:.0f} MB); RSS after load {ondisk['rss_after_load_mb']:.0f} MB")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
