"""The tower surface: embed in batches, in the processing order, with the next batch prepared ahead."""

import numpy as np


def test_towers_that_prepare_ahead_keep_the_order_and_the_thread_does_the_decoding():
    """A tower overriding _prepare gets batch k + 1 prepared in another thread while batch k
    runs; with a processing order (longest first) every vector still lands on its own item."""
    import threading

    from jointspace.towers.base import Tower

    class Lengths(Tower):
        name, modality, default_batch_size = "lengths-test", "text", 2

        def __init__(self):
            self.out_dim = 2
            self.prepared_in = set()

        def _order(self, items):
            return np.argsort([-len(t) for t in items], kind="stable")

        def _prepare(self, chunk):
            self.prepared_in.add(threading.current_thread().name)
            return np.array([[len(t), t.count("a")] for t in chunk], np.float32)

        def _embed_prepared(self, x):
            return x * 10

    texts = ["a", "bbbbb", "aaa", "cc", "abababa", "dddd", "aaaaaa"]
    tower = Lengths()
    got = tower.embed(texts, progress=False)
    want = np.array([[len(t) * 10, t.count("a") * 10] for t in texts], np.float32)
    assert np.array_equal(got, want)
    assert tower.prepared_in and all(n.startswith("lengths-test-prepare") for n in tower.prepared_in)
