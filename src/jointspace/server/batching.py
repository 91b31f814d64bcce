"""Micro-batching: queries that arrive together go through a tower in one forward pass.

Each request thread submits its item and waits; one worker thread takes whatever is queued
(up to ``max_batch`` items) and encodes it as one batch.  Under concurrent load (the batch
being gathered, or the one before it, had more than one item) it also waits up to
``max_wait_ms`` for more after the first, trading a millisecond for far fewer, larger forward
passes; a lone caller is never held back, so one client pays no wait at all.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future


class Batcher:
    """Run ``fn(list_of_items) -> array (n, d)`` on batches gathered from concurrent callers.

    Parameters
    ----------
    fn : callable
        Encodes a list of items; row i of its result belongs to item i.
    max_batch : int
        Largest batch.
    max_wait_ms : float
        How long the worker waits for more items after the first one of a batch.
    name : str
        Name of the worker thread.
    """

    def __init__(self, fn, *, max_batch: int = 32, max_wait_ms: float = 2.0, name: str = "batcher"):
        self.fn = fn
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self.batches = 0
        self.items = 0
        self._last = 0   # size of the previous batch
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item) -> Future:
        """Queue one item; the future's result is ``(vector (d,), batch size)``."""
        fut: Future = Future()
        self._queue.put((item, fut))
        return fut

    def __call__(self, item, timeout: float | None = 300.0):
        """Encode one item (blocking); returns ``(vector (d,), batch size)``."""
        return self.submit(item).result(timeout=timeout)

    def _gather(self) -> list:
        batch = [self._queue.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:   # what is queued already
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if len(batch) > 1 or self._last > 1:   # concurrent callers: wait a little for more
            while len(batch) < self.max_batch:
                left = deadline - time.perf_counter()
                try:
                    batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
        self._last = len(batch)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._gather()
            items = [it for it, _ in batch]
            try:
                out = self.fn(items)
                for i, (_, fut) in enumerate(batch):
                    fut.set_result((out[i], len(batch)))
            except Exception:   # one bad item must not fail the others: encode them one by one
                for item, fut in batch:
                    try:
                        fut.set_result((self.fn([item])[0], 1))
                    except Exception as exc:
                        fut.set_exception(exc)
            self.batches += 1
            self.items += len(batch)

    def stats(self) -> dict:
        return {"batches": self.batches, "items": self.items,
                "mean_batch": round(self.items / self.batches, 2) if self.batches else 0.0}
