"""Shared helpers for the benchmark scripts: repeated timing and JSON results."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def positive_int(text: str) -> int:
    """``argparse`` type of a count (repeats, sizes): an integer >= 1, refused with the value
    given otherwise, so ``--repeats 0`` stops at the command line instead of after the runs."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def timeit(fn, repeats: int = 5, warmup: int = 1, *, keep_result: bool = False) -> dict:
    """Median, min and all wall-clock seconds of ``fn()`` over ``repeats`` runs (after
    ``warmup`` untimed runs); with ``keep_result`` also ``"result"``, the last run's return
    value.  The one timing helper of the benchmark scripts."""
    for _ in range(warmup):
        fn()
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    out = {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}
    if keep_result:
        out["result"] = result
    return out


def run_json_child(cmd: list, env: dict | None = None) -> dict:
    """Run ``cmd`` (a child process of a benchmark) and return the JSON object it prints last.

    A child that fails stops the benchmark with the child's own error output (its traceback),
    which a bare ``CalledProcessError`` would hide."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        command = " ".join(str(c) for c in cmd).replace("\n", " ")
        raise SystemExit(f"a benchmark child process failed (exit {out.returncode}): {command[:200]}\n"
                         f"{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def save(name: str, payload: dict) -> Path:
    """Write ``benchmarks/results/<name>.json``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from jointspace._io import atomic_write_json

    path = RESULTS / f"{name}.json"
    atomic_write_json(path, payload)
    return path


def machine() -> dict:
    import os
    import platform

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def side_by_side(fns: dict, repeats: int = 5, warmup: int = 1) -> dict:
    """Time several ``name -> fn`` interleaved: each round runs every fn once, in an order that
    rotates from round to round, so a change in the machine's load falls on all of them alike.

    Returns
    -------
    dict of name -> {"median_s", "min_s", "times_s"}
    """
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
    return {n: {"median_s": statistics.median(t), "min_s": min(t), "times_s": t} for n, t in times.items()}


def gemm_gflops(n: int = 1024, repeats: int = 5, dtype: str = "float32") -> float:
    """The machine's measured matrix-product rate (GFLOP/s): median of ``n x n @ n x n`` in
    PyTorch with its default threads (2 n^3 flops each)."""
    import torch

    a = torch.randn(n, n).to(getattr(torch, dtype))
    b = torch.randn(n, n).to(getattr(torch, dtype))
    reps = 8
    res = timeit(lambda: [a @ b for _ in range(reps)], repeats=repeats)
    return reps * 2 * n ** 3 / res["median_s"] / 1e9


def model_flops(fn) -> float:
    """Floating-point operations PyTorch counts while ``fn()`` runs (matrix products and
    convolutions; ``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
