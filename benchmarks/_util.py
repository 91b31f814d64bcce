"""Shared helpers for the benchmark scripts: repeated timing and JSON results."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def timeit(fn, repeats: int = 5, warmup: int = 1) -> dict:
    """Median, min and all wall-clock seconds of ``fn()`` over ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


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
