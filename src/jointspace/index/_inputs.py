"""Validation of vectors and ids at the index's edge, without extra full-size copies."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

_CHECK_ROWS = 65_536


#: largest squared L2 norm of a vector or query under the l2 and ip metrics: FAISS computes
#: ``|q|^2 + |x|^2 - 2 q.x`` and ``q.x`` in float32, which then stay finite
MAX_SQUARED_NORM = float(np.finfo(np.float32).max) / 4


def as_vectors(x, name: str, dim: int | None = None, *, allow_1d: bool = False,
               metric: str | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 ``(n, dim)`` array with finite values.

    A float32 C-contiguous input is returned as is (no copy).  The finiteness check runs in
    row blocks so that a million-row input does not need a full-size boolean mask.  With
    ``metric`` ``"l2"`` or ``"ip"``, rows whose squared norm passes :data:`MAX_SQUARED_NORM` are
    refused too: their float32 scores would overflow (an l2 index then never returns them).

    Parameters
    ----------
    x : array-like, shape (n, d) (or (d,) when ``allow_1d``)
    name : str
        Argument name for messages.
    dim : int, optional
        Required number of columns.
    allow_1d : bool
        Treat a 1-D array as a single row.
    metric : str, optional
        The index's metric, for the norm check.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise InputError(f"{name}: expected a 2-D numeric array, got {type(x).__name__} ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name}: expected a 2-D numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1 and allow_1d:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array of shape (n, dim), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(f"{name}: expected dimension {dim} (the index's dim), got {arr.shape[1]} "
                         f"(shape {arr.shape})")
    if arr.shape[1] < 1:
        raise InputError(f"{name}: expected at least 1 column, got shape {arr.shape}")
    with np.errstate(over="ignore"):   # values beyond float32 are reported below
        given, arr = arr, np.ascontiguousarray(arr, dtype=np.float32)
    for s in range(0, arr.shape[0], _CHECK_ROWS):
        block = arr[s:s + _CHECK_ROWS]
        if not np.isfinite(block).all():
            r, c = np.argwhere(~np.isfinite(block))[0]
            value = given[s + r, c]
            if np.isfinite(value):   # float64 (or a large int) beyond float32's range: inf once converted
                raise InputError(f"{name}: expected values within float32's range (magnitude at most "
                                 f"{float(np.finfo(np.float32).max):.4g}), got {value:.4g} at row {s + r}, column {c}")
            raise InputError(f"{name}: expected finite values, got NaN or Inf (first at row {s + r}, column {c})")
        if metric in ("l2", "ip") and block.size:
            _check_norms(block, name, metric, s)
    return arr


def _check_norms(block: np.ndarray, name: str, metric: str, offset: int) -> None:
    big = np.maximum(block.max(axis=1), -block.min(axis=1)).astype(np.float64)   # no full-size temporary
    near = np.flatnonzero(big ** 2 * block.shape[1] > MAX_SQUARED_NORM)   # only these can pass it
    if near.size:
        rows = block[near].astype(np.float64)
        squared = np.einsum("ij,ij->i", rows, rows)
        over = np.flatnonzero(squared > MAX_SQUARED_NORM)
        if over.size:
            raise InputError(f"{name}: expected rows of squared L2 norm at most {MAX_SQUARED_NORM:.3g} for metric "
                             f"{metric!r} (float32 scores overflow beyond), got {squared[over[0]]:.3g} at row "
                             f"{offset + near[over[0]]}; scale the vectors down or use metric='cosine'")


#: rows whose largest magnitude lies outside [2**-50, 2**50] are normalised in float64
_SAFE_MAGNITUDE = 2.0 ** 50


def normalized(x: np.ndarray) -> np.ndarray:
    """A copy of ``x`` (n, d) float32 whose rows have unit L2 norm (zero rows stay zero).

    FAISS's ``normalize_L2`` sums the squares in float32: from values of about 1e19 the sum
    overflows and the row comes out as zeros, below about 1e-19 it underflows and the row is
    left as it was.  Such rows are normalised by :func:`~jointspace.eval.similarity.l2_normalize`
    first; the others exactly as FAISS does.
    """
    import faiss

    out = np.array(x, dtype=np.float32, order="C")
    if out.size:
        big = np.maximum(out.max(axis=1), -out.min(axis=1))   # reductions: no full-size temporary
        odd = (big > _SAFE_MAGNITUDE) | ((big > 0) & (big < 1 / _SAFE_MAGNITUDE))
        if odd.any():
            from ..eval.similarity import l2_normalize   # scales each row by its largest entry first

            out[odd] = l2_normalize(out[odd])
    faiss.normalize_L2(out)
    return out


def as_ids(ids, n: int, name: str = "ids") -> np.ndarray:
    """Return ``ids`` as a 1-D int64 array of ``n`` distinct non-negative integers."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D sequence of integers, got shape {arr.shape}")
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name}: expected integers, got dtype {arr.dtype}")
    if arr.shape[0] != n:
        raise InputError(f"{name}: expected {n} ids (one per vector), got {arr.shape[0]}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise InputError(f"{name}: expected ids below 2**63, got {int(arr.max())}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise InputError(f"{name}: expected non-negative integers (-1 marks 'no result'), got {int(arr.min())}")
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size != arr.size:
        dup = uniq[counts > 1]
        raise InputError(f"{name}: expected distinct ids, got {dup.size} repeated "
                         f"(e.g. {', '.join(map(str, dup[:5].tolist()))})")
    return arr


def as_id_list(ids, name: str = "ids") -> np.ndarray:
    """Return ``ids`` (an int or a sequence of ints) as a 1-D int64 array (repeats allowed)."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected an integer or a 1-D sequence of integers, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name}: expected integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def check_new_ids(ids, n: int, stored: np.ndarray, removed: np.ndarray, spec, next_id: int = 0) -> np.ndarray:
    """Ids for ``n`` new vectors: ``ids`` checked against the ``stored`` ones, or consecutive ones.

    Parameters
    ----------
    ids : array-like of int, shape (n,), or None
        None gives ``max(next_id, max(stored) + 1) ...``: after every id the index has held, so
        that the id of a removed item is never given to another.
    stored, removed : numpy.ndarray of int64, sorted
        Ids held by FAISS, and those of them filtered at search time (still reserved).
    spec : str
        The index's spec, for the message.
    next_id : int
        One past the largest id the index has ever held.
    """
    if ids is None:
        return next_ids(max(int(next_id), int(stored[-1]) + 1 if stored.size else 0), n)
    ids = as_ids(ids, n)
    clash = ids[in_sorted(stored, ids)]
    if clash.size:
        gone = clash[in_sorted(removed, clash)]
        hint = (f"; {gone.size} of them were removed, and an index of type {spec!r} keeps removed ids "
                "reserved" if gone.size else "")
        raise InputError(f"ids: expected ids not already in the index, got {clash.size} that are "
                         f"(e.g. {', '.join(map(str, clash[:5].tolist()))}){hint}")
    return ids


MAX_ID = 2**63 - 1
"""The largest id (FAISS ids are signed 64-bit integers; -1 marks a missing result)."""


def next_ids(start: int, n: int) -> np.ndarray:
    """The default ids ``start .. start + n - 1`` of ``n`` new vectors, int64 (n,); raises
    :class:`InputError` where they would pass :data:`MAX_ID` (they would wrap to negative ids)."""
    if n and start + n - 1 > MAX_ID:
        raise InputError(f"ids: expected ids for {n} new vectors; the default ones would follow the largest id "
                         f"stored ({start - 1}) past 2**63 - 1, so give ids")
    return np.arange(start, start + n, dtype=np.int64)


def in_sorted(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``ids`` occur in the sorted array ``sorted_ids`` (O(m log n))."""
    if sorted_ids.size == 0:
        return np.zeros(ids.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return sorted_ids[pos] == ids


#: results per query an index pads to (with id -1) beyond the vectors it holds
MAX_PADDED_K = 10_000


def check_k(k, ntotal) -> int:
    """``k`` (results per query) as an int >= 1, at most ``max(ntotal, MAX_PADDED_K)``.

    Results beyond the vectors an index holds are padded, so a ``k`` far above them would only
    allocate padding (12 bytes per query per result): it is refused instead.

    Parameters
    ----------
    k : int
    ntotal : callable
        ``ntotal() -> int``, the vectors the index holds; called only for ``k > MAX_PADDED_K``
        (counting may be a request to a server).
    """
    from .._validation import check_int

    k = check_int(k, "k", low=1)
    if k > MAX_PADDED_K and k > (held := int(ntotal())):
        raise InputError(f"k: expected at most {max(held, MAX_PADDED_K)} results per query (the index holds "
                         f"{held} vectors; fewer are padded with id -1 up to {MAX_PADDED_K}), got {k}")
    return k
