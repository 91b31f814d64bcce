"""Run many small CPU jobs in worker processes, with a per-job timeout and bounded memory.

Each job is ``func(*args)`` returning a small picklable result (workers write their output
files themselves, so only short status tuples travel back).  A job that runs past the
timeout is reported as failed; the worker pool is then replaced so a stuck native call
cannot hold the run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence


def default_workers() -> int:
    """Worker processes to use: the CPUs this process may run on, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def run_jobs(func: Callable, jobs: Sequence[tuple], *, workers: int = 1, timeout: float | None = None,
             window: int = 4) -> Iterator[tuple[int, object]]:
    """Yield ``(job index, result)`` for every job, in order.

    Parameters
    ----------
    func : callable
        A module-level function (picklable by reference).
    jobs : sequence of tuples
        Arguments for each call.
    workers : int
        ``1`` runs in this process (no timeout); more uses a process pool.
    timeout : float, optional
        Seconds one job may take in a pool; a late job yields ``("timeout", message)``.
    window : int
        Jobs in flight per worker (bounds memory).
    """
    if workers <= 1 or len(jobs) <= 1:
        for i, args in enumerate(jobs):
            yield i, func(*args)
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    pool = ctx.Pool(processes=workers)
    pending: deque = deque()
    nxt = 0
    try:
        while nxt < len(jobs) or pending:
            while nxt < len(jobs) and len(pending) < workers * window:
                pending.append((nxt, pool.apply_async(func, jobs[nxt])))
                nxt += 1
            i, res = pending.popleft()
            try:
                yield i, res.get(timeout)
            except mp.TimeoutError:
                yield i, ("timeout", f"took longer than {timeout:g} s")
                # the pool cannot cancel a running call: replace it and resubmit the rest
                pool.terminate()
                pool.join()
                pool = ctx.Pool(processes=workers)
                redo = [j for j, _ in pending]
                pending.clear()
                for j in redo:
                    pending.append((j, pool.apply_async(func, jobs[j])))
    finally:
        pool.terminate()
        pool.join()
