"""Training of IVF / PQ / SQ indexes: sample, seed, minimum sizes, clear errors."""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ..errors import InputError
from . import _faiss_parts as parts
from ._inputs import normalized
from .spec import faiss_error_message


def min_train_size(core) -> tuple[int, str]:
    """Fewest training vectors FAISS accepts for ``core``, and why."""
    need, why = 1, ""
    ivf = parts.find_ivf(core)
    if ivf is not None:
        need, why = int(ivf.nlist), f"{ivf.nlist} IVF lists (FAISS advises about {39 * ivf.nlist})"
    for layer in parts.layers(core):
        pq = getattr(layer, "pq", None)
        if pq is not None and int(pq.ksub) > need:
            need, why = int(pq.ksub), f"{pq.ksub} centroids per PQ sub-quantizer"
    return need, why


def check_enough(core, spec: str, n: int, *, name: str = "vectors") -> None:
    """Raise :class:`InputError` when ``n`` training vectors are fewer than ``core`` needs.

    ``name`` is what limits them: ``"vectors"`` (the data at hand) or ``"train_size"`` (a
    sample smaller than the data), named in the message with its remedy.
    """
    need, why = min_train_size(core)
    if n >= need:
        return
    remedy = ("Train on a larger sample or use a smaller spec" if name == "train_size" else
              "Use a smaller spec (e.g. 'Flat' or fewer lists) or more data")
    raise InputError(f"{name}: spec {spec!r} needs at least {need} training vectors ({why}); got {n}. {remedy}")


NSG_MIN_VECTORS = 1_000
"""Fewest vectors accepted to build an NSG graph.  FAISS builds it once, from the first add;
on small sets its build aborts the process (an assertion in NNDescent, seen at 101 to 140
vectors with ``NSG32``) or never ends (``NSG512`` at 105), and ``Flat`` is exact and instant there."""


def check_graph_build(core, n: int, spec: str) -> None:
    """Raise :class:`InputError` before adding ``n`` vectors to an NSG index that cannot take them:
    one already built (FAISS's NSG cannot add to its graph), or fewer than :data:`NSG_MIN_VECTORS`."""
    import faiss

    if not any(isinstance(layer, faiss.IndexNSG) for layer in parts.layers(core)):
        return
    if core.ntotal > 0:
        raise InputError(f"vectors: an index of type {spec!r} is built once, from all its vectors (FAISS's NSG "
                         "cannot add to a built graph); build it again with all the data")
    if n < NSG_MIN_VECTORS:
        raise InputError(f"vectors: spec {spec!r} needs at least {NSG_MIN_VECTORS} vectors, added at once (FAISS's "
                         f"NSG build aborts or never ends on small sets); got {n}. Use 'Flat' or 'HNSW32' for so few")


def prepare_training(core, seed: int) -> None:
    """Seed every k-means of ``core`` and skip polysemous training (only polysemous search uses it)."""
    for layer in parts.layers(core):
        for obj in (getattr(layer, "cp", None), getattr(getattr(layer, "pq", None), "cp", None)):
            if obj is not None:
                obj.seed = seed
        if hasattr(layer, "do_polysemous_training"):
            layer.do_polysemous_training = False


def train(top, core, x: np.ndarray, *, metric: str, spec: str, train_size, seed) -> None:
    """Train the FAISS index ``top`` (searched layer ``core``) on ``x`` (n, d), if it needs it.

    ``train_size`` rows are drawn at random (``seed``) when given and smaller than ``n``;
    vectors are L2-normalised first for the cosine metric.
    """
    if top.is_trained:
        return
    seed = check_int(seed, "seed", low=0)
    n = x.shape[0]
    if train_size is not None:
        train_size = check_int(train_size, "train_size", low=1)
    check_enough(core, spec, n)
    if train_size is not None and train_size < n:
        check_enough(core, spec, train_size, name="train_size")
        rows = np.sort(np.random.default_rng(seed).choice(n, size=train_size, replace=False))
        x, n = x[rows], train_size
    prepare_training(core, seed)
    if metric == "cosine":
        x = normalized(x)
    try:
        top.train(x)
    except RuntimeError as exc:
        raise InputError(f"vectors: training {spec!r} failed: {faiss_error_message(exc)}") from None
