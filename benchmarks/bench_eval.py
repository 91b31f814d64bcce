"""Retrieval evaluation speed and memory: jointspace.eval against a plain argsort evaluation.

Cases (n queries x n gallery items, d = 64, cosine):

* ``pair-id``: pair identity (one relevant item per query), the large-scale case; at the
  full size (100,000 x 100,000) only ours runs, with its peak traced memory next to the
  size of the full score matrix it never builds.
* ``pair-id`` and ``label`` (10 classes) at a size where the reference still runs: the
  reference sorts every row fully (``argsort``), gathers relevance and takes cumulative
  sums, block by block, the way retrieval metrics are usually written.  The two differ only
  where float32 scores tie (the reference breaks ties by gallery index, ours pessimistically);
  the largest difference is shown.
* ``wikipedia-size`` (693 x 693, 10 classes, float64 so no scores tie): per-query
  ``sklearn.metrics.average_precision_score``.

Ours and the reference are timed in alternating rounds after one untimed run of each.

Usage::

    python benchmarks/bench_eval.py [--quick] [--repeats N]

Prints a table and writes ``benchmarks/results/eval.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from jointspace.eval.retrieval import retrieval_scores  # noqa: E402
from jointspace.eval.similarity import _iter_blocks, auto_chunk_size  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, positive_int, save, side_by_side, timeit  # noqa: E402


def make_data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, d)).astype(np.float32)
    g = (q + 1.5 * rng.standard_normal((n, d))).astype(np.float32)
    return q, g


def argsort_reference(q, g, qk, gk, ks=(1, 5, 10), ndcg_k=10):
    """Full stable argsort of every row, block by block; metrics by cumulative sums."""
    n_g = g.shape[0]
    aps, firsts, ndcgs = [], [], []
    disc = 1.0 / np.log2(np.arange(2, n_g + 2))
    for start, S in _iter_blocks(q, g, "cosine", auto_chunk_size(n_g, 4)):
        order = np.argsort(-S, axis=1, kind="stable")
        rel = qk[start:start + S.shape[0], None] == gk[order]
        R = rel.sum(axis=1)
        keep = R > 0
        cum = np.cumsum(rel, axis=1)
        aps.append(((cum / np.arange(1, n_g + 1)) * rel).sum(axis=1)[keep] / R[keep])
        firsts.append(rel.argmax(axis=1)[keep] + 1)
        idcg = np.cumsum(disc[:ndcg_k])[np.minimum(R[keep], ndcg_k) - 1]
        ndcgs.append((rel[keep, :ndcg_k] * disc[:ndcg_k]).sum(axis=1) / idcg)
    ap, fr, nd = np.concatenate(aps), np.concatenate(firsts).astype(float), np.concatenate(ndcgs)
    out = {"mAP": ap.mean(), **{f"R@{k}": (fr <= k).mean() for k in ks}, "MRR": (1 / fr).mean(),
           "medR": np.median(fr), "meanR": fr.mean(), f"nDCG@{ndcg_k}": nd.mean()}
    return {k: float(v) for k, v in out.items()}


def sklearn_reference(q, g, qk, gk):
    from sklearn.metrics import average_precision_score

    S = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    return {"mAP": float(np.mean([average_precision_score(gk == qk[i], S[i]) for i in range(len(q))]))}


def timed(fn, repeats: int):
    """(median seconds, last result) of ``repeats`` timed runs."""
    r = timeit(fn, repeats, warmup=0, keep_result=True)
    return r["median_s"], r["result"]


def compared(fns: dict, repeats: int) -> dict:
    """name -> (median seconds, result) of the ``fns`` compared: each run once for its result
    (which also warms it up), then timed in interleaved rounds (``side_by_side``), so a change in
    the machine's load falls on every side alike rather than on whichever ran second."""
    results = {name: fn() for name, fn in fns.items()}
    times = side_by_side(fns, repeats=repeats, warmup=0)
    return {name: (times[name]["median_s"], results[name]) for name in fns}


def peak_memory(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def max_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over the metrics both report (ranks scaled by n)."""
    return max(abs(a[k] - b[k]) for k in b)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed repeats per case (median reported)")
    parser.add_argument("--big-repeats", type=positive_int, default=None,
                        help="repeats of the largest case (default: --repeats)")
    args = parser.parse_args(argv)
    d = 64
    big = 20_000 if args.quick else 100_000
    mid = 5_000 if args.quick else 20_000
    big_repeats = args.big_repeats or args.repeats
    rows, records = [], []

    def record(case, n, method, seconds, peak=None, **extra):
        rec = {"case": case, "n": n, "d": d, "method": method, "seconds": seconds,
               "peak_mib": None if peak is None else peak / 2**20, **extra}
        records.append(rec)
        rows.append([case, f"{n:,}", method, f"{seconds:.2f}",
                     "-" if peak is None else f"{peak / 2**20:.0f}",
                     extra.get("note", "")])
        print(f"  {case} n={n:,} {method}: {seconds:.2f} s", file=sys.stderr, flush=True)

    # 1. the large pair-identity evaluation, ours only
    q, g = make_data(big, d)
    ids = np.arange(big)
    t, res = timed(lambda: retrieval_scores(q, g, ids, ids), big_repeats)
    peak = peak_memory(lambda: retrieval_scores(q, g, ids, ids))
    full = big * big * 4 / 2**20
    record("pair-id", big, "jointspace", t, peak, note=f"full matrix would be {full:,.0f} MiB; "
           f"R@1 {res['R@1']:.3f}", full_matrix_mib=full, metrics=res)
    del q, g

    # 2. mid size: ours vs the argsort reference, pair identity and labels
    q, g = make_data(mid, d, seed=1)
    labels = np.random.default_rng(2).integers(0, 10, mid)
    for case, keys in (("pair-id", np.arange(mid)), ("label", labels)):
        runs = compared({"ours": lambda: retrieval_scores(q, g, keys, keys),
                         "reference": lambda: argsort_reference(q, g, keys, keys)}, args.repeats)
        (t_ours, ours), (t_ref, ref) = runs["ours"], runs["reference"]
        p_ours = peak_memory(lambda: retrieval_scores(q, g, keys, keys))
        p_ref = peak_memory(lambda: argsort_reference(q, g, keys, keys))
        diff = max_diff(ours, {k: v for k, v in ref.items() if k not in ("medR", "meanR")})
        rank_diff = max(abs(ours[k] - ref[k]) for k in ("medR", "meanR"))
        record(case, mid, "jointspace", t_ours, p_ours,
               note=f"{t_ref / t_ours:.1f}x faster; max |diff| {diff:.1e} (ranks {rank_diff:.2g})",
               metrics=ours, speedup=t_ref / t_ours, max_abs_diff=diff, rank_diff=rank_diff)
        record(case, mid, "argsort reference", t_ref, p_ref, metrics=ref)
    del q, g

    # 3. Wikipedia-sized: per-query scikit-learn average precision
    n = 693
    q, g = (x.astype(np.float64) for x in make_data(n, 10, seed=3))   # float64: no tied scores
    labels = np.random.default_rng(4).integers(0, 10, n)
    runs = compared({"ours": lambda: retrieval_scores(q, g, labels, labels),
                     "reference": lambda: sklearn_reference(q, g, labels, labels)}, args.repeats)
    (t_ours, ours), (t_ref, ref) = runs["ours"], runs["reference"]
    diff = abs(ours["mAP"] - ref["mAP"])
    record("wikipedia-size", n, "jointspace", t_ours, note=f"{t_ref / t_ours:.1f}x faster; mAP |diff| {diff:.1e}",
           speedup=t_ref / t_ours, max_abs_diff=diff)
    record("wikipedia-size", n, "sklearn AP per query", t_ref)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"retrieval evaluation (median of {args.repeats} runs, {big_repeats} at n={big:,}; "
                        f"d={d}, cosine)", title_justify="left")
    for i, col in enumerate(["case", "n x n", "method", "seconds", "peak MiB", "note"]):
        table.add_column(col, justify="left" if i in (0, 2, 5) else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=max(Console().width, 140)).print(table)
    out = save("eval", {"quick": args.quick, "repeats": args.repeats, "big_repeats": big_repeats, "d": d,
                        "sizes": {"large": big, "mid": mid, "wikipedia": n}, "cpu_count": os.cpu_count(),
                        "machine": machine(), "results": records})
    print(f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
