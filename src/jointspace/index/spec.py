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

HNSW_M_RANGE = (2, 512)
"""Accepted HNSW ``M`` (graph neighbours per node).  FAISS aborts or segfaults for ``M`` < 2
(its level multiplier is ``1 / log(M)``); the cap bounds the graph's memory (``8 * M`` bytes a
vector on the base level)."""

NSG_R_RANGE = (16, 512)
"""Accepted NSG ``R`` (graph degree).  With small ``R`` FAISS's NSG build can loop forever
(seen with ``R`` up to 12 on 512-dimensional data)."""

NBITS_RANGE = (1, 16)
"""Accepted bits per code of PQ / IMI / additive quantizers.  FAISS allocates ``2**nbits``
centroids of the full dimension up front and needs as many training vectors."""

MAX_SPEC_INT = 2**31 - 1
"""Largest number FAISS reads from a factory string (a C ``int``)."""

MAX_TRANSFORM_DIM = 65_536
"""Largest output dimension accepted for PCA / RR / ITQ / OPQ / Pad transforms."""

_IDMAP_PREFIX = re.compile(r"^IDMap2?,", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])\d+(?![\d.])")
_SPECTRAL_PERIOD = re.compile(r"(?<![A-Za-z])SH[-0-9.e]+")
_WORD = r"(?<![A-Za-z])"
# (pattern, [(group, description, low, high), ...]) for every numeric parameter of the
# factory grammar that has a range narrower than "a positive int"; group values are ints.
_SPEC_RULES = (
    (re.compile(_WORD + r"HNSW(\d+)"), [(1, "HNSW M (graph neighbours, 'HNSW<M>')", *HNSW_M_RANGE)]),
    (re.compile(_WORD + r"NSG(\d+)"), [(1, "NSG R (graph degree, 'NSG<R>')", *NSG_R_RANGE)]),
    (re.compile(_WORD + r"IVF(\d+)[kM]?"), [(1, "IVF nlist (number of lists, 'IVF<nlist>')", 1, MAX_SPEC_INT)]),
    (re.compile(_WORD + r"IMI2x(\d+)"), [(1, "IMI nbits ('IMI2x<nbits>')", *NBITS_RANGE)]),
    (re.compile(_WORD + r"PQ(\d+)(?:x(\d+))?"),
     [(1, "PQ m (sub-quantizers, 'PQ<m>')", 1, MAX_SPEC_INT), (2, "PQ nbits ('PQ<m>x<nbits>')", *NBITS_RANGE)]),
    (re.compile(_WORD + r"OPQ(\d+)(?:_(\d+))?"),
     [(1, "OPQ m ('OPQ<m>')", 1, MAX_SPEC_INT), (2, "OPQ output dimension ('OPQ<m>_<dim>')", 1, MAX_TRANSFORM_DIM)]),
    (re.compile(_WORD + r"P(?:RQ|LSQ)(\d+)x(\d+)x(\d+)"),
     [(1, "PRQ / PLSQ splits", 1, MAX_SPEC_INT), (2, "PRQ / PLSQ sub-quantizers", 1, MAX_SPEC_INT),
      (3, "PRQ / PLSQ nbits", *NBITS_RANGE)]),
    (re.compile(_WORD + r"(?:RQ|LSQ|RCQ|LSCQ)((?:_?\d+x\d+)+)"), "additive"),
    (re.compile(r"fsr?_(\d+)"), [(1, "fast-scan block size ('...fs_<bbs>')", 32, 32 * 1024)]),
    (re.compile(_WORD + r"RaBitQfs_(\d+)"), [(1, "fast-scan block size ('RaBitQfs_<bbs>')", 32, 32 * 1024)]),
    (re.compile(_WORD + r"(?:PCAW?R?|RR|ITQ|Pad)(\d+)"), [(1, "transform output dimension", 1, MAX_TRANSFORM_DIM)]),
    (re.compile(_WORD + r"Residual(\d+)x(\d+)"),
     [(1, "Residual m", 1, MAX_SPEC_INT), (2, "Residual nbits", *NBITS_RANGE)]),
)
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
    spec = _IDMAP_PREFIX.sub("", spec)
    check_spec_numbers(spec)
    return spec


def _spec_range_error(spec: str, what: str, low: int, high: int, value: int) -> InputError:
    return InputError(f"spec: expected {what} between {low} and {high}, got {value} in {spec!r}")


def check_spec_numbers(spec: str) -> None:
    """Check the numbers inside a factory string before FAISS sees them.

    FAISS itself asserts, segfaults, loops forever or writes an unreadable index for some
    values (``HNSW0``, ``HNSW1``, ``IVF0,Flat``, ``PQ8x0``, ``NSG4``, ``SQ0``, ``...fs_0``).
    Every number must be at least 1 and fit a C ``int``; the parameters listed in
    ``_SPEC_RULES`` have the ranges given there (e.g. HNSW ``M`` in :data:`HNSW_M_RANGE`,
    PQ ``nbits`` in :data:`NBITS_RANGE`).

    Raises
    ------
    InputError
        Naming ``spec``, the parameter, its accepted range and the value found.
    """
    for pattern, rules in _SPEC_RULES:
        for match in pattern.finditer(spec):
            if rules == "additive":
                for m_txt, bits_txt in re.findall(r"(\d+)x(\d+)", match.group(1)):
                    if not 1 <= int(m_txt) <= MAX_SPEC_INT:
                        raise _spec_range_error(spec, "RQ / LSQ m ('RQ<m>x<nbits>')", 1, MAX_SPEC_INT, int(m_txt))
                    if not NBITS_RANGE[0] <= int(bits_txt) <= NBITS_RANGE[1]:
                        raise _spec_range_error(spec, "RQ / LSQ nbits ('RQ<m>x<nbits>')", *NBITS_RANGE,
                                                int(bits_txt))
                continue
            for group, what, low, high in rules:
                text = match.group(group)
                if text is not None and not low <= int(text) <= high:
                    raise _spec_range_error(spec, what, low, high, int(text))
    for match in _NUMBER.finditer(_SPECTRAL_PERIOD.sub("SH", spec)):
        value = int(match.group(0))
        if not 1 <= value <= MAX_SPEC_INT:
            raise InputError(f"spec: expected every number in a factory string to be between 1 and "
                             f"{MAX_SPEC_INT}, got {match.group(0)} in {spec!r}")


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
    return ivf_pq_spec(n, dim)


def ivf_pq_spec(n: int, dim: int) -> str:
    """``"IVF<nlist>,PQ<m>"`` for ``n`` vectors of dimension ``dim``, as :func:`auto_spec` picks
    beyond 2,000,000 vectors (and ``jointspace index --on-disk`` at any size):
    ``nlist`` the power of two nearest ``4 * sqrt(n)``, ``m`` the largest divisor of ``dim`` at
    most ``min(64, dim / 8)``."""
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    m = _largest_divisor_at_most(dim, max(1, min(64, dim // 8)))
    return f"IVF{nlist},PQ{m}"


PQ_MIN_VECTORS = 256
"""Fewest vectors that train the 256 centroids of each sub-quantizer of ``PQ<m>``."""


def on_disk_spec(n: int, dim: int) -> str:
    """What ``jointspace index --on-disk --spec auto`` builds for ``n`` vectors of dimension
    ``dim``: :func:`ivf_pq_spec`, or ``"IVF<nlist>,Flat"`` below :data:`PQ_MIN_VECTORS` vectors
    (too few to train a product quantizer), with ``nlist`` at most ``n``."""
    if n >= PQ_MIN_VECTORS:
        return ivf_pq_spec(n, dim)
    nlist = min(2 ** round(math.log2(4 * math.sqrt(n))), 2 ** int(math.log2(max(n, 1))))
    return f"IVF{nlist},Flat"


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

    check_spec_numbers(spec)
    try:
        index = faiss.index_factory(int(dim), spec, faiss_metric(metric))
    except RuntimeError as exc:
        raise InputError(
            f"spec: could not build a FAISS index from {spec!r} for dim={dim} ({faiss_error_message(exc)}); "
            f"expected a FAISS factory string such as {', '.join(map(repr, EXAMPLE_SPECS))}") from None
    if isinstance(index, faiss.IndexBinary) or not isinstance(index, faiss.Index):
        raise InputError(f"spec: expected a float-vector index, got {type(index).__name__} from {spec!r}")
    from ._faiss_parts import layers

    # some factory entries drop the metric (HNSW<M>_PQ<m>, NSG<R>_PQ<m> are always L2): their scores
    # would be distances read as similarities, and the saved index would not load
    if any(layer.metric_type != faiss_metric(metric) for layer in layers(index)):
        raise InputError(f"spec: FAISS builds {spec!r} for the l2 metric only, got metric={metric!r}; use "
                         "metric='l2' or another spec (e.g. 'HNSW32', 'IVF1024,PQ32')")
    return index
