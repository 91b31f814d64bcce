"""Which gallery items are relevant to which query, without building the full matrix.

Two kinds of relevance cover the evaluation protocols:

* **keys** (:class:`KeyRelevance`): query keys (nq,) and gallery keys (ng,), ints or
  strings; gallery item ``j`` is relevant to query ``i`` when ``query_keys[i] ==
  gallery_keys[j]``.  Object arrays of numbers compare as numbers (``1 == 1.0``), other
  object arrays as strings.  A shared class label, a shared normalised title, or the pair identity
  (the sample ids, so each query's own partner is its one relevant item) are all keys.
* **multi-label** (:class:`MultiLabelRelevance`): multi-hot NumPy matrices (nq, C) and
  (ng, C) of booleans or 0/1; relevant when the two rows share at least one label.
* **label sets** (:class:`LabelSetRelevance`): a set of labels per query and per gallery
  item (lists, tuples, sets, frozensets; a scalar is a set of one); relevant when the two
  sets intersect.  Lists of equal length are label sets, never a multi-hot matrix
  (``[[0, 2], [1, 3], [0, 2]]`` gives 2, 1 and 2 relevant items); a NumPy 2-D numeric
  array with values other than 0 and 1 is refused as ambiguous.  The rules are those of
  :mod:`jointspace.data.labels`.

Both answer :meth:`pairs` for a block of queries: the (row, column) positions of the
relevant items, grouped by row, so metrics are computed block by block.
:class:`DenseRelevance` wraps an explicit boolean (nq, ng) matrix for small cases.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_matrix
from ..data.labels import encode_label_sets, is_label_sets, multi_hot_matrix
from ..errors import InputError


class RelevanceBlock:
    """Relevance of a block of queries, as (row, column) pairs or as a boolean mask.

    Whichever form the relevance kind produces cheaply is made first; the other is derived
    on demand.
    """

    def __init__(self, n_relevant: np.ndarray, n_gallery: int, *, mask=None, make_pairs=None,
                 make_mask=None):
        self.n_relevant = n_relevant
        self._n_gallery = n_gallery
        self._pairs = None
        self._mask = mask
        self._make_pairs = make_pairs
        self._make_mask = make_mask

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the relevant items, rows non-decreasing."""
        if self._pairs is None and self._make_pairs is not None:
            self._pairs = self._make_pairs()
        if self._pairs is None:
            rows, cols = np.nonzero(self.mask())
            self._pairs = rows.astype(np.int64, copy=False), cols.astype(np.int64, copy=False)
        return self._pairs

    def mask(self) -> np.ndarray:
        """Boolean (b, ng) matrix of relevant items."""
        if self._mask is None:
            if self._make_mask is not None:
                self._mask = self._make_mask()
            else:
                rows, cols = self.pairs()
                self._mask = np.zeros((self.n_relevant.shape[0], self._n_gallery), dtype=bool)
                self._mask[rows, cols] = True
        return self._mask


class Relevance:
    """Interface: ``n_queries``, ``n_gallery``, ``pairs(start, stop)`` and ``block(start, stop)``."""

    n_queries: int
    n_gallery: int

    def block(self, start: int, stop: int) -> RelevanceBlock:
        """Relevance of queries ``start:stop`` (see :class:`RelevanceBlock`)."""
        mask = self._mask(start, stop)
        return RelevanceBlock(mask.sum(axis=1), self.n_gallery, mask=mask)

    def _mask(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def pairs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Relevant positions for queries ``start:stop``.

        Returns
        -------
        rows : ndarray of int64, shape (P,)
            Query index relative to ``start``, non-decreasing.
        cols : ndarray of int64, shape (P,)
            Gallery index of a relevant item.
        """
        raise NotImplementedError

    def density(self, sample: int = 256) -> float:
        """Estimated fraction of relevant (query, item) pairs, from the first ``sample`` queries."""
        stop = min(self.n_queries, sample)
        if stop == 0 or self.n_gallery == 0:
            return 0.0
        return len(self.pairs(0, stop)[0]) / (stop * self.n_gallery)


def _as_array(keys, name: str) -> np.ndarray:
    try:
        arr = np.asarray(keys)
    except ValueError as exc:  # ragged nested sequences that are not label sets
        raise InputError(f"{name}: expected keys (n,), a multi-hot matrix (n, C) or label sets, "
                         f"got {type(keys).__name__} ({exc})") from None
    if arr.ndim not in (1, 2):
        shown = f"{type(keys).__name__} {keys!r:.40}" if arr.ndim == 0 else f"shape {arr.shape}"
        raise InputError(f"{name}: expected keys (n,), a multi-hot matrix (n, C) or label sets, got {shown}")
    return arr


def _as_keys(keys, name: str) -> np.ndarray:
    arr = np.asarray(keys)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array of keys (n,) or a multi-hot matrix (n, C), "
                         f"got shape {arr.shape}")
    if arr.dtype == object:
        values = arr.tolist()
        if any(k is None for k in values):
            raise InputError(f"{name}: expected ints or strings, got None among the keys")
        numeric = None
        if all(isinstance(k, numbers.Real) for k in values):
            # object arrays of numbers (e.g. a pandas column) compare as numbers, so 1 == 1.0
            # as with numeric arrays; stringified, "1" and "1.0" would differ
            try:
                numeric = np.array(values)
            except (OverflowError, ValueError):
                numeric = None
        arr = numeric if numeric is not None and numeric.dtype.kind in "biuf" else arr.astype(str)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{name}: expected finite keys, got NaN or Inf")
    elif arr.dtype.kind not in "iubUS":
        raise InputError(f"{name}: expected int or string keys, got dtype {arr.dtype}")
    return arr


class KeyRelevance(Relevance):
    """Relevant when the keys are equal.

    Parameters
    ----------
    query_keys : array-like, shape (nq,)
    gallery_keys : array-like, shape (ng,)
        Ints or strings (both of one kind).
    """

    def __init__(self, query_keys, gallery_keys):
        q = _as_keys(query_keys, "query_keys")
        g = _as_keys(gallery_keys, "gallery_keys")
        q_str, g_str = q.dtype.kind in "US", g.dtype.kind in "US"
        if q_str != g_str:
            raise InputError(f"gallery_keys: expected keys of the same kind as query_keys "
                             f"({q.dtype}), got {g.dtype}")
        if q_str:
            q, g = q.astype(str), g.astype(str)
        codes = np.unique(np.concatenate([q, g]), return_inverse=True)[1].ravel()
        self.query_codes = codes[:len(q)].astype(np.int64)
        gallery_codes = codes[len(q):].astype(np.int64)
        n_codes = int(codes.max()) + 1 if codes.size else 0
        self.counts = np.bincount(gallery_codes, minlength=n_codes)
        self.group_start = np.cumsum(self.counts) - self.counts
        self.gallery_codes = gallery_codes
        self.gallery_order = np.argsort(gallery_codes, kind="stable")
        self.n_queries, self.n_gallery = len(q), len(g)

    def density(self, sample: int = 256) -> float:
        if self.n_queries == 0 or self.n_gallery == 0:
            return 0.0
        return float(self.n_relevant().mean()) / self.n_gallery

    def n_relevant(self) -> np.ndarray:
        """Number of relevant gallery items per query, shape (nq,)."""
        return self.counts[self.query_codes]

    def pairs(self, start, stop):
        q = self.query_codes[start:stop]
        n = self.counts[q]
        total = int(n.sum())
        rows = np.repeat(np.arange(len(q), dtype=np.int64), n)
        first = np.cumsum(n) - n
        offsets = np.arange(total, dtype=np.int64) - np.repeat(first, n)
        cols = self.gallery_order[np.repeat(self.group_start[q], n) + offsets]
        return rows, cols

    def block(self, start, stop):
        q = self.query_codes[start:stop]
        return RelevanceBlock(self.counts[q], self.n_gallery, make_pairs=lambda: self.pairs(start, stop),
                              make_mask=lambda: q[:, None] == self.gallery_codes[None, :])


class MultiLabelRelevance(Relevance):
    """Relevant when two multi-hot rows share at least one label.

    Parameters
    ----------
    query_labels : array-like, shape (nq, C)
    gallery_labels : array-like, shape (ng, C)
        Multi-hot (any non-zero entry counts as the label being present).
    """

    def __init__(self, query_labels, gallery_labels):
        q = check_matrix(query_labels, "query_keys", min_rows=1)
        g = check_matrix(gallery_labels, "gallery_keys", min_rows=1)
        if q.shape[1] != g.shape[1]:
            raise InputError(f"gallery_keys: expected a multi-hot matrix with {q.shape[1]} columns "
                             f"like query_keys, got shape {g.shape}")
        # 0/1 float32 rows: the dot product counts shared labels exactly (C < 2**24)
        self.q = (q != 0).astype(np.float32)
        self.gT = np.ascontiguousarray((g != 0).astype(np.float32).T)
        self.n_queries, self.n_gallery = q.shape[0], g.shape[0]

    def _mask(self, start, stop):
        return (self.q[start:stop] @ self.gT) > 0

    def pairs(self, start, stop):
        rows, cols = np.nonzero(self._mask(start, stop))
        return rows.astype(np.int64, copy=False), cols.astype(np.int64, copy=False)


class LabelSetRelevance(Relevance):
    """Relevant when the query's set of labels and the item's set of labels intersect.

    Parameters
    ----------
    query_labels : sequence of nq label sets
    gallery_labels : sequence of ng label sets
        Each entry a list, tuple, set, frozenset or 1-D array of ints or strings, or one
        label (a set of one); an empty entry has no labels and matches nothing.
    """

    def __init__(self, query_labels, gallery_labels):
        from scipy import sparse

        q, g = encode_label_sets(query_labels, gallery_labels, names=("query_keys", "gallery_keys"))
        n_labels = len(q.vocabulary)

        def matrix(s):
            data = np.ones(len(s.codes), dtype=np.int32)
            return sparse.csr_matrix((data, s.codes, s.indptr), shape=(len(s), n_labels))

        self.q = matrix(q)
        self.gT = matrix(g).T.tocsr()
        self.n_queries, self.n_gallery = len(q), len(g)

    def pairs(self, start, stop):
        block = (self.q[start:stop] @ self.gT).tocsr()
        block.sort_indices()
        rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), np.diff(block.indptr))
        return rows, block.indices.astype(np.int64)

    def block(self, start, stop):
        rows, cols = self.pairs(start, stop)
        n_rel = np.bincount(rows, minlength=self.q[start:stop].shape[0]).astype(np.int64)
        return RelevanceBlock(n_rel, self.n_gallery, make_pairs=lambda: (rows, cols))


class DenseRelevance(Relevance):
    """An explicit boolean relevance matrix (nq, ng)."""

    def __init__(self, relevant):
        rel = np.asarray(relevant)
        if rel.ndim != 2:
            raise InputError(f"relevant: expected a 2-D boolean matrix (n_queries, n_gallery), "
                             f"got shape {rel.shape}")
        if rel.dtype != bool:
            if not np.issubdtype(rel.dtype, np.number):
                raise InputError(f"relevant: expected a boolean (or 0/1) matrix, got dtype {rel.dtype}")
            bad = np.argwhere(~np.isin(rel, (0, 1)))
            if bad.size:
                i, j = bad[0]
                raise InputError(f"relevant: expected a boolean (or 0/1) matrix, got {rel[i, j].item()!r} "
                                 f"at row {i}, column {j}")
            rel = rel.astype(bool)
        self.rel = rel
        self.n_queries, self.n_gallery = rel.shape

    def _mask(self, start, stop):
        return self.rel[start:stop]

    def pairs(self, start, stop):
        rows, cols = np.nonzero(self.rel[start:stop])
        return rows.astype(np.int64, copy=False), cols.astype(np.int64, copy=False)


def make_relevance(query_keys, gallery_keys, n_queries: int | None = None,
                   n_gallery: int | None = None) -> Relevance:
    """Pick the relevance kind from the keys' shapes and check their lengths.

    Parameters
    ----------
    query_keys : array-like, shape (nq,) or (nq, C), or nq label sets
    gallery_keys : array-like, shape (ng,) or (ng, C), or ng label sets
        1-D keys: relevant when equal (labels, titles, ids).  A NumPy 2-D array of booleans
        or 0/1: multi-hot, relevant when sharing a column.  Label sets (lists, tuples, sets,
        frozensets per sample): relevant when the sets intersect; when one side holds label
        sets, plain keys on the other side are sets of one label.
    n_queries, n_gallery : int, optional
        Expected lengths (the number of query and gallery embeddings).
    """
    q_sets, g_sets = is_label_sets(query_keys), is_label_sets(gallery_keys)
    if q_sets or g_sets:
        for keys, sets, name in ((query_keys, q_sets, "query_keys"), (gallery_keys, g_sets, "gallery_keys")):
            if not sets and _as_array(keys, name).ndim != 1:
                other = "gallery_keys" if name == "query_keys" else "query_keys"
                raise InputError(f"{name}: expected label sets or one key per item like {other} (label sets), "
                                 f"got shape {np.shape(keys)}; a multi-hot matrix cannot be compared with label sets")
        rel: Relevance = LabelSetRelevance(query_keys, gallery_keys)
    else:
        qa, ga = _as_array(query_keys, "query_keys"), _as_array(gallery_keys, "gallery_keys")
        if qa.ndim != ga.ndim:
            raise InputError(f"gallery_keys: expected the same kind of keys as query_keys "
                             f"(shape {qa.shape}), got shape {ga.shape}")
        if qa.ndim == 2:
            rel = MultiLabelRelevance(multi_hot_matrix(qa, "query_keys"), multi_hot_matrix(ga, "gallery_keys"))
        else:
            rel = KeyRelevance(qa, ga)
    if n_queries is not None and rel.n_queries != n_queries:
        raise InputError(f"query_keys: expected {n_queries} keys (one per query), got {rel.n_queries}")
    if n_gallery is not None and rel.n_gallery != n_gallery:
        raise InputError(f"gallery_keys: expected {n_gallery} keys (one per gallery item), got {rel.n_gallery}")
    return rel
