"""Index specs: FAISS factory strings, the metrics, and the ``auto`` choice by size.

A spec is a string in FAISS's own ``index_factory`` grammar (``"Flat"``, ``"HNSW32"``,
``"IVF1024,PQ32"``, ``"IVF256,Flat"``, ``"PCA64,HNSW32"``, ...), so an index on disk says how it
was built and any FAISS user can read it.  ``"auto"`` is resolved to a concrete factory string
from the number of vectors (see :func:`auto_spec`); the resolved string is what is built and
recorded.

Metrics (the chapter's cosine and Euclidean similarities, plus the raw dot product):

``"cosine"``
    vectors and queries are L2-normalised, then compared by inner product; scores are cosine
    similarities in [-1, 1], higher is better.
``"ip"``
    inner product of the vectors as given; scores are dot products, higher is better.
``"l2"``
    Euclidean; scores are *squared* Euclidean distances (FAISS's convention), lower is better.
"""

from __future__ import annotations

import math
import re

from ..errors import InputError

METRICS = ("cosine", "ip", "l2")
"""Metric names accepted by :class:`jointspace.index.faiss_index.Index`."""

EXAMPLE_SPECS = ("auto", "Flat", "HNSW32", "IVF256,Flat", "IVF1024,PQ32", "IVF4096,SQ8", "PCA64,HNSW32")

FLAT_MAX = 50_000
"""``auto`` builds an exact ``Flat`` index below this many vectors."""

HNSW_MAX = 2_000_000
"""``auto`` builds ``HNSW32`` below this many vectors, ``IVF<nlist>,PQ<m>`` from here on."""

_IDMAP_PREFIX = re.compile(r"^IDMap2?,", re.IGNORECASE)
_FAISS_LOCATION = re.compile(r"^Error in .*? at \S+:\d+: ", re.DOTALL)
_FAISS_ASSERT = re.compile(r"^Error: '.*?' failed: ", re.DOTALL)


def check_metric(metric) -> str:
    """Return ``metric`` if it is one of :data:`METRICS`, else raise :class:`InputError`."""
    if metric not in METRICS:
        raise InputError(f"metric: expected one of {', '.join(METRICS)}; got {metric!r}")
    return metric


def faiss_metric(metric: str) -> int:
    """The FAISS metric constant behind a jointspace metric name (cosine is inner product)."""
    import faiss

    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def higher_is_better(metric: str) -> bool:
    """True for similarity scores (cosine, ip), False for distances (l2)."""
    return metric != "l2"


def normalize_spec(spec) -> str:
    """Check that ``spec`` is a non-empty string and tidy it.

    Whitespace is removed, and a leading ``IDMap,`` / ``IDMap2,`` is dropped because
    :class:`~jointspace.index.faiss_index.Index` always maps ids itself.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"spec: expected a FAISS factory string such as {', '.join(map(repr, EXAMPLE_SPECS))}; "
                         f"got {spec!r}")
    spec = re.sub(r"\s+", "", spec)
    if spec.lower() == "auto":
        return "auto"
    return _IDMAP_PREFIX.sub("", spec)


def _largest_divisor_at_most(n: int, cap: int) -> int:
    for m in range(min(n, cap), 0, -1):
        if n % m == 0:
            return m
    return 1


def auto_spec(n: int, dim: int) -> str:
    """The factory string ``"auto"`` resolves to for ``n`` vectors of dimension ``dim``.

    The rule (FAISS's own guidance on choosing an index, simplified):

    * ``n < 50,000``: ``"Flat"`` — exact search is fast enough and needs no training.
    * ``n < 2,000,000``: ``"HNSW32"`` — graph search, high recall, no training, vectors kept
      in full (``4 * dim`` bytes each plus the graph).
    * otherwise: ``"IVF<nlist>,PQ<m>"`` with ``nlist`` the power of two nearest
      ``4 * sqrt(n)`` and ``m`` the largest divisor of ``dim`` that is at most
      ``min(64, dim / 8)`` sub-quantizers (about 8 dimensions per byte of code), so memory
      stays at ``m`` bytes a vector.

    Parameters
    ----------
    n : int
        Number of vectors the index will hold.
    dim : int
        Vector dimension.

    Returns
    -------
    str
        A concrete FAISS factory string.
    """
    if n < FLAT_MAX:
        return "Flat"
    if n < HNSW_MAX:
        return "HNSW32"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    m = _largest_divisor_at_most(dim, max(1, min(64, dim // 8)))
    return f"IVF{nlist},PQ{m}"


def faiss_error_message(exc: BaseException) -> str:
    """FAISS's message without the C++ source location and assertion text."""
    msg = str(exc).strip()
    msg = _FAISS_LOCATION.sub("", msg)
    msg = _FAISS_ASSERT.sub("", msg)
    return msg


def make_faiss_index(dim: int, spec: str, metric: str):
    """Build the empty FAISS index for a concrete factory string (``auto`` already resolved).

    Raises
    ------
    InputError
        If FAISS cannot parse ``spec`` or rejects it for this ``dim``; the message lists
        example specs.
    """
    import faiss

    try:
        index = faiss.index_factory(int(dim), spec, faiss_metric(metric))
    except RuntimeError as exc:
        raise InputError(
            f"spec: could not build a FAISS index from {spec!r} for dim={dim} ({faiss_error_message(exc)}); "
            f"expected a FAISS factory string such as {', '.join(map(repr, EXAMPLE_SPECS))}") from None
    if isinstance(index, faiss.IndexBinary) or not isinstance(index, faiss.Index):
        raise InputError(f"spec: expected a float-vector index, got {type(index).__name__} from {spec!r}")
    return index
