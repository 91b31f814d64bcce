r"""Similarity between two sets of vectors in the joint space, computed in bounded memory.

The chapter measures closeness in the joint space with cosine similarity and Euclidean
distance; the inner product is the third score that indexes and contrastive models use.
For rows :math:`a` of ``A`` (n, d) and :math:`b` of ``B`` (m, d):

* ``"cosine"``:  :math:`s(a, b) = a^\top b / (\lVert a\rVert \lVert b\rVert)`; a zero row
  has similarity 0 to everything.  Norms are taken after dividing each row by its largest
  entry (:func:`l2_normalize`), so very small or very large vectors keep their cosine.
* ``"dot"``:     :math:`s(a, b) = a^\top b`.
* ``"euclidean"``: :math:`s(a, b) = -\lVert a - b\rVert_2`, the *negative* distance, so that
  for every metric a higher score means more similar and rankings sort scores downward.
  Use :func:`pairwise_distance` for the (positive) distance itself.

Scores are computed block by block (:func:`iter_similarity_chunks`): a block holds the
scores of ``chunk_size`` rows of ``A`` against all of ``B``, and the automatic chunk size
keeps a block at or below about 64 MB, so a 100,000 x 100,000 comparison never builds the
full matrix.  Float32 inputs give float32 scores; float64 inputs give float64.  Euclidean
distances of float32 inputs are accumulated in float64 (as scikit-learn's
``euclidean_distances`` does): the expanded form ||a||^2 + ||b||^2 - 2 a.b cancels badly in
float32 for vectors close together compared with their norms.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .._validation import check_choice, check_int, check_matrix
from ..errors import InputError

#: the similarity metrics understood everywhere in ``jointspace.eval``
METRICS = ("cosine", "dot", "euclidean")

#: target size of one block of scores, in bytes
BLOCK_BYTES = 64 * 2**20

#: largest full matrix :func:`pairwise_similarity` agrees to build, in bytes
_PAIRWISE_LIMIT = 2 * 2**30



def check_pair(A, B, names=("A", "B")) -> tuple[np.ndarray, np.ndarray]:
    """Validate two sets of vectors and bring them to one floating dtype.

    Parameters
    ----------
    A : array-like, shape (n, d)
    B : array-like, shape (m, d)
    names : tuple of str
        Argument names used in error messages.

    Returns
    -------
    A, B : ndarray, shapes (n, d) and (m, d), both float32 or both float64
    """
    A = check_matrix(A, names[0])
    B = check_matrix(B, names[1])
    if A.shape[1] != B.shape[1]:
        raise InputError(f"{names[1]}: expected {A.shape[1]} columns to match {names[0]} "
                         f"(shape {A.shape}), got shape {B.shape}")
    dtype = np.result_type(A.dtype, B.dtype)
    return A.astype(dtype, copy=False), B.astype(dtype, copy=False)


def auto_chunk_size(n_cols: int, itemsize: int = 4, budget: int = BLOCK_BYTES) -> int:
    """Rows per block so that a (rows, n_cols) block of ``itemsize`` bytes fits ``budget``."""
    return max(1, int(budget // max(1, n_cols * itemsize)))


def l2_normalize(z: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """Rows of ``z`` (n, d) scaled to unit Euclidean norm (zero rows stay zero).

    Each row is first divided by its largest absolute entry, so that the sum of squares
    neither overflows (entries near 1e20 in float32) nor underflows (entries near 1e-25):
    every non-zero row comes out with norm 1.  Rows whose norm is at most ``eps`` become zero.
    """
    z = np.asarray(z)
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    if z.size == 0:
        return z.copy()
    # largest |entry| per row without an |z| temporary as large as z
    big = np.maximum(z.max(axis=1), -z.min(axis=1))
    out = z / np.where(big > 0, big, 1).astype(z.dtype)[:, None]
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    keep = (norms > 0) & (big * norms > eps)
    out /= np.where(keep, norms, 1).astype(z.dtype)[:, None]
    out[~keep] = 0
    return out


def _row_norms(X: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", X, X))


#: bytes of one float64 working block when float32 Euclidean distances are accumulated in float64
_UPCAST_BYTES = 16 * 2**20


class _Scorer:
    """Prepared gallery side of one metric: ``scorer(A_block)`` gives the score block.

    Euclidean distances come from ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, which cancels
    when a and b are close compared with their norms: in float32 (about 7 digits) two
    vectors of norm 200 a distance 0.005 apart come out anywhere in [0, 0.09].  As
    scikit-learn's ``euclidean_distances`` does, float32 inputs are therefore accumulated
    in float64 (a few rows at a time, so the extra memory stays small) and the result is
    cast back to float32.
    """

    def __init__(self, B: np.ndarray, metric: str):
        self.metric = metric
        self.dtype = B.dtype
        if metric == "cosine":
            self.Bt = np.ascontiguousarray(l2_normalize(B).T)
        elif metric == "euclidean":
            B = B.astype(np.float64, copy=False)
            self.Bt = np.ascontiguousarray(B.T)
            self.b_sq = np.einsum("ij,ij->i", B, B)
        else:
            self.Bt = np.ascontiguousarray(B.T)

    def __call__(self, A: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return l2_normalize(A) @ self.Bt
        if self.metric == "dot":
            return A @ self.Bt
        if self.dtype == np.float64:
            return self._neg_distances(A)
        out = np.empty((A.shape[0], self.Bt.shape[1]), dtype=self.dtype)
        rows = max(1, _UPCAST_BYTES // max(1, 8 * self.Bt.shape[1]))
        for s in range(0, A.shape[0], rows):
            out[s:s + rows] = self._neg_distances(A[s:s + rows].astype(np.float64))
        return out

    def _neg_distances(self, A: np.ndarray) -> np.ndarray:
        """-||a - b|| in float64 for float64 rows ``A``, in place on the product block.

        Distances beyond float64 come out inf or NaN without numpy's warnings: the callers
        refuse non-finite scores with a message of their own."""
        with np.errstate(over="ignore", invalid="ignore"):
            block = A @ self.Bt
            block *= -2.0
            block += np.einsum("ij,ij->i", A, A)[:, None]
            block += self.b_sq[None, :]
            np.maximum(block, 0.0, out=block)  # rounding can push tiny distances below zero
            np.sqrt(block, out=block)
            np.negative(block, out=block)
        return block


def iter_similarity_chunks(A, B, metric: str = "cosine", chunk_size: int | None = None
                           ) -> Iterator[tuple[int, np.ndarray]]:
    """Scores of every row of ``A`` against every row of ``B``, one block of rows at a time.

    Parameters
    ----------
    A : array-like, shape (n, d)
        Queries.
    B : array-like, shape (m, d)
        Gallery.
    metric : {"cosine", "dot", "euclidean"}
        Higher is more similar for each; ``"euclidean"`` yields the negative distance.
    chunk_size : int, optional
        Rows of ``A`` per block; by default as many as keep a block near 64 MB.

    Yields
    ------
    start : int
        Index of the block's first row in ``A``.
    block : ndarray, shape (rows, m)
        ``block[i, j]`` is the score of ``A[start + i]`` against ``B[j]``; inf or NaN where a
        score overflows the floating-point range (the retrieval metrics refuse those).

    Examples
    --------
    >>> import numpy as np
    >>> A = np.eye(3, dtype=np.float32); B = np.ones((2, 3), dtype=np.float32)
    >>> [(s, b.shape) for s, b in iter_similarity_chunks(A, B, "dot", chunk_size=2)]
    [(0, (2, 2)), (2, (1, 2))]
    """
    check_choice(metric, "metric", METRICS)
    A, B = check_pair(A, B)
    if chunk_size is None:
        chunk_size = auto_chunk_size(B.shape[0], A.dtype.itemsize)
    else:
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
    yield from _iter_blocks(A, B, metric, chunk_size)


def _iter_blocks(A: np.ndarray, B: np.ndarray, metric: str, chunk_size: int):
    """Inner generator on validated inputs."""
    scorer = _Scorer(B, metric)
    for start in range(0, A.shape[0], chunk_size):
        yield start, scorer(A[start:start + chunk_size])


def pairwise_similarity(A, B, metric: str = "cosine") -> np.ndarray:
    """The full (n, m) score matrix; for small inputs (use the chunked iterator otherwise).

    Parameters
    ----------
    A : array-like, shape (n, d)
    B : array-like, shape (m, d)
    metric : {"cosine", "dot", "euclidean"}
        ``"euclidean"`` gives the negative distance (higher = more similar).

    Returns
    -------
    scores : ndarray, shape (n, m)

    Raises
    ------
    InputError
        Bad shapes or values, a result larger than 2 GiB, or scores beyond the floating-point
        range of the inputs (vectors of huge norm).
    """
    check_choice(metric, "metric", METRICS)
    A, B = check_pair(A, B)
    size = A.shape[0] * B.shape[0] * A.dtype.itemsize
    if size > _PAIRWISE_LIMIT:
        raise InputError(f"A, B: the full {A.shape[0]} x {B.shape[0]} score matrix would take "
                         f"{size / 2**30:.1f} GiB; use iter_similarity_chunks instead")
    with np.errstate(over="ignore", invalid="ignore"):
        scores = _Scorer(B, metric)(A)
    rows = max(1, BLOCK_BYTES // max(1, scores.shape[1]))   # boolean masks of one block at a time
    for s in range(0, len(scores), rows):
        finite = np.isfinite(scores[s:s + rows])
        if finite.all():
            continue
        i, j = np.argwhere(~finite)[0]
        i += s
        na, nb = (np.linalg.norm(v.astype(np.float64)) for v in (A[i], B[j]))
        raise InputError(f"A, B: the {metric} score of A[{i}] and B[{j}] overflows {scores.dtype} (norms "
                         f"{na:.3g} and {nb:.3g}); scale the vectors down")
    return scores


def pairwise_distance(A, B) -> np.ndarray:
    """Euclidean distances (n, m) between the rows of ``A`` (n, d) and ``B`` (m, d)."""
    return -pairwise_similarity(A, B, "euclidean")
