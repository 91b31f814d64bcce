"""Benchmark of jointspace.Index against FAISS used directly.

(a) Exact search: 1,000 queries over 1,000,000 x 512 normalised float32 vectors, through
    ``Index(spec="Flat", metric="cosine")`` and through ``faiss.IndexFlatIP`` on the same data,
    timed alternately in one run; medians of --repeats runs and their ratio (target: within 10%).
(b) HNSW32 through ``Index``: build time, then recall@10 against exact search and query time
    for a sweep of efSearch values, on two kinds of random data: "latent" (a 32-dimensional
    Gaussian latent mapped into 512 dimensions plus noise, shaped like learned embeddings)
    and "gaussian" (isotropic, the hardest case for graph search).  Target: recall@10 >= 0.95.

The data are generated in blocks and added to both indexes block by block, so at most two
full copies (one per index) are held.

    python benchmarks/bench_index.py            # full run (about 4.5 GB of memory)
    python benchmarks/bench_index.py --quick    # smaller sizes, a smoke run

Writes benchmarks/results/index.json.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

import faiss  # noqa: E402
from _util import RESULTS, machine, positive_int  # noqa: E402

from jointspace._io import atomic_write_json  # noqa: E402
from jointspace.index.faiss_index import Index  # noqa: E402

BLOCK = 65_536
LATENT = 32
KINDS = ("latent", "gaussian")


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def blocks(kind: str, n: int, dim: int, seed: int):
    """Yield normalised float32 blocks of a reproducible random data set of n rows."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    mix = np.random.default_rng([seed, 0]).standard_normal((LATENT, dim)).astype(np.float32) / np.sqrt(LATENT)
    for b, start in enumerate(range(0, n, BLOCK)):
        rng = np.random.default_rng([seed, 1, b])
        rows = min(BLOCK, n - start)
        if kind == "gaussian":
            x = rng.standard_normal((rows, dim), dtype=np.float32)
        else:
            z = rng.standard_normal((rows, LATENT), dtype=np.float32)
            x = z @ mix + 0.3 / np.sqrt(dim) * rng.standard_normal((rows, dim), dtype=np.float32)
        yield _normalised(x)


def data(kind: str, n: int, dim: int, seed: int) -> np.ndarray:
    return np.concatenate(list(blocks(kind, n, dim, seed)))


def bench_exact(n: int, dim: int, nq: int, k: int, repeats: int, seed: int) -> dict:
    print(f"(a) exact search: {nq} queries over {n:,} x {dim}, k={k}, {repeats} repeats", flush=True)
    ours = Index(dim, spec="Flat", metric="cosine")
    ref = faiss.IndexFlatIP(dim)
    t0 = time.perf_counter()
    for block in blocks("gaussian", n, dim, seed):
        ours.add(block)
        ref.add(block)
        del block
    print(f"    both indexes filled in {time.perf_counter() - t0:.1f} s", flush=True)
    queries = data("gaussian", nq, dim, seed + 1)
    s_ours, i_ours = ours.search(queries, k)          # warm-up, and the results compared below
    s_ref, i_ref = ref.search(queries, k)
    t_ours, t_ref = [], []
    for r in range(repeats):                          # alternate who goes first
        order = (("ours", t_ours), ("faiss", t_ref)) if r % 2 == 0 else (("faiss", t_ref), ("ours", t_ours))
        for name, out in order:
            t = time.perf_counter()
            ours.search(queries, k) if name == "ours" else ref.search(queries, k)
            out.append(time.perf_counter() - t)
    med_ours, med_ref = statistics.median(t_ours), statistics.median(t_ref)
    same_ids = float(np.mean(i_ours == i_ref))
    max_score_diff = float(np.abs(s_ours - s_ref).max())
    del ours, ref
    gc.collect()
    return {"n": n, "dim": dim, "nq": nq, "k": k, "repeats": repeats,
            "index_s": t_ours, "faiss_s": t_ref, "index_median_s": med_ours, "faiss_median_s": med_ref,
            "ratio": med_ours / med_ref, "target_ratio_max": 1.10, "same_ids_fraction": same_ids,
            "max_abs_score_diff": max_score_diff}


def bench_hnsw(kind: str, n: int, dim: int, nq: int, k: int, efs: list[int], ef_construction: int,
               repeats: int, seed: int) -> dict:
    print(f"(b) HNSW32 on {kind} data: {n:,} x {dim}, {nq} queries, efConstruction={ef_construction}", flush=True)
    x = data(kind, n, dim, seed)
    queries = data(kind, nq, dim, seed + 1)
    exact = faiss.IndexFlatIP(dim)
    exact.add(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _, truth = exact.search(queries, k)
        times.append(time.perf_counter() - t)
    exact_s = statistics.median(times)
    del exact
    t = time.perf_counter()
    index = Index.build(x, spec="HNSW32", metric="cosine", build_params={"efConstruction": ef_construction})
    build_s = time.perf_counter() - t
    print(f"    built in {build_s:.1f} s; exact search {exact_s * 1e3:.0f} ms", flush=True)
    rows, key = [], f"recall_at_{k}"   # recall@k against exact search, named by its k
    for ef in efs:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            _, got = index.search(queries, k, params={"efSearch": ef})
            times.append(time.perf_counter() - t)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(truth, got)]))
        rows.append({"efSearch": ef, key: recall, "search_median_s": statistics.median(times),
                     "speedup_vs_exact": exact_s / statistics.median(times)})
        print(f"    efSearch={ef:5d}  recall@{k}={recall:.4f}  {statistics.median(times) * 1e3:8.1f} ms", flush=True)
        if recall >= 0.995:
            break
    reached = [r for r in rows if r[key] >= 0.95]
    return {"data": kind, "n": n, "dim": dim, "nq": nq, "k": k, "efConstruction": ef_construction,
            "build_s": build_s, "exact_search_median_s": exact_s, "sweep": rows,
            "efSearch_for_0.95": reached[0]["efSearch"] if reached else None,
            "recall_at_that_efSearch": reached[0][key] if reached else max(r[key] for r in rows),
            "target_recall_min": 0.95}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=positive_int, default=1_000_000, help="vectors for the exact-search comparison")
    p.add_argument("--dim", type=positive_int, default=512)
    p.add_argument("--nq", type=positive_int, default=1000, help="queries")
    p.add_argument("--k", type=positive_int, default=10)
    p.add_argument("--repeats", type=positive_int, default=5, help="timed runs per measurement (median; >= 5)")
    p.add_argument("--hnsw-n", type=positive_int, default=100_000, help="vectors for the HNSW recall part")
    p.add_argument("--hnsw-data", default="latent,gaussian", help="comma-separated: latent, gaussian")
    p.add_argument("--ef", default="16,32,64,128,256,512,1024,2048", help="efSearch values to sweep")
    p.add_argument("--ef-construction", type=positive_int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="n=100,000, hnsw-n=20,000, 200 queries")
    p.add_argument("--skip-exact", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "index.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.hnsw_n, args.nq = min(args.n, 100_000), min(args.hnsw_n, 20_000), min(args.nq, 200)
    if args.repeats < 5:
        p.error("--repeats: medians need at least 5 runs")
    kinds = [kind.strip() for kind in args.hnsw_data.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        p.error(f"--hnsw-data: expected a comma-separated list of {', '.join(KINDS)}, got {args.hnsw_data!r}")
    try:
        efs = [int(v) for v in args.ef.split(",")]
    except ValueError:
        efs = []
    if not efs or min(efs) < 1:
        p.error(f"--ef: expected a comma-separated list of integers >= 1, got {args.ef!r}")
    result = {"machine": {**machine(), "platform": platform.platform(),
                          "faiss_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__},
              "args": vars(args)}
    if not args.skip_exact:
        result["exact"] = bench_exact(args.n, args.dim, args.nq, args.k, args.repeats, args.seed)
    result["hnsw"] = [bench_hnsw(kind, args.hnsw_n, args.dim, args.nq, args.k, efs, args.ef_construction,
                                 args.repeats, args.seed + 10) for kind in kinds]

    print()
    if "exact" in result:
        e = result["exact"]
        print(f"exact search, {e['nq']} queries over {e['n']:,} x {e['dim']} (median of {e['repeats']})")
        print(f"  {'jointspace Index (Flat, cosine)':34s} {e['index_median_s']:8.3f} s")
        print(f"  {'faiss.IndexFlatIP directly':34s} {e['faiss_median_s']:8.3f} s")
        verdict = "ok" if e["ratio"] <= 1.10 else "MISSED"
        print(f"  ratio Index / FAISS = {e['ratio']:.3f} (target <= 1.10: {verdict}); "
              f"same ids {e['same_ids_fraction']:.4f}, max |score diff| {e['max_abs_score_diff']:.2e}")
    for h in result["hnsw"]:
        ef = h["efSearch_for_0.95"]
        verdict = f"efSearch={ef} gives recall@{h['k']}={h['recall_at_that_efSearch']:.4f}" if ef else "NOT reached"
        print(f"HNSW32 on {h['data']} data, {h['n']:,} x {h['dim']}: build {h['build_s']:.1f} s; "
              f"recall@{h['k']} >= 0.95: {verdict}")
    out = Path(args.out)
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
