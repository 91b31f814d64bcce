"""Exact re-ranking of compressed-index candidates from vectors kept on disk.

A product-quantised index ranks by approximate distances: at 1,000,000 512-d vectors with
``IVF1024,PQ128`` about 3 in 10 of the true ten nearest neighbours fall out of the top ten.
The usual remedy (FAISS ``IndexRefine``; the full-precision re-ranking of disk-based indexes
such as DiskANN) is to ask the compressed index for ``k_factor * k`` candidates and order them
again by the exact score.  Here the exact vectors stay on disk, memory-mapped, so the index
can still exceed RAM: a query reads only the rows of its candidates.

The file ``vectors.f32`` holds row ``i`` = the vector of id ``first_id + i`` in float32,
row-major, L2-normalised for the cosine metric (as the index stores them), so re-ranked scores
are those of an exact (``Flat``) index.  Re-ranking pays off where the codes are lossy (PQ,
SQ, a pre-transform such as PCA); an ``IVF...,Flat`` index stores exact vectors already and keeps no copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._validation import check_int
from ..errors import InputError

VECTORS = "vectors.f32"
DTYPE = np.float32
DEFAULT_K_FACTOR = 10
"""Candidates asked of the compressed index per wanted result when re-ranking (``k_factor``)."""


class VectorWriter:
    """Append blocks of vectors to ``path`` as float32 rows (the file :class:`StoredVectors` reads)."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = open(self.path, "wb")

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` (n, dim), already normalised where the metric needs it."""
        self._file.write(np.ascontiguousarray(block, dtype=DTYPE).tobytes())

    def close(self) -> None:
        self._file.flush()
        self._file.close()


class StoredVectors:
    """The memory-mapped vectors of ids ``first_id .. first_id + n - 1`` (see the module docstring).

    Parameters
    ----------
    path : path-like
        A ``vectors.f32`` file of ``n * dim`` float32 values.
    n, dim : int
    first_id : int
        The id of row 0.
    """

    def __init__(self, path, n: int, dim: int, first_id: int):
        path = Path(path)
        expected = n * dim * np.dtype(DTYPE).itemsize
        size = path.stat().st_size
        if size != expected:
            raise InputError(f"folder: {path.name} in {str(path.parent)!r} is {size} bytes, expected {expected} "
                             f"({n} vectors of dim {dim} in float32); the folder is corrupted")
        self.path, self.n, self.dim, self.first_id = path, n, dim, first_id
        self._rows = np.memmap(path, dtype=DTYPE, mode="r", shape=(n, dim)) if n else np.empty((0, dim), DTYPE)

    def vector(self, item_id: int) -> np.ndarray | None:
        """The stored vector (dim,) float32 of ``item_id`` (a copy), or None outside the range."""
        row = int(item_id) - self.first_id
        return np.array(self._rows[row], DTYPE) if 0 <= row < self.n else None

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int, metric: str):
        """Order each query's candidates by the exact score and keep the best ``k``.

        Parameters
        ----------
        queries : ndarray of float32, shape (nq, dim)
            As the index compares them (L2-normalised for cosine).
        candidates : ndarray of int64, shape (nq, c)
            Ids from the compressed index; -1 marks a missing candidate.
        k : int
            Results kept (<= c).
        metric : {"cosine", "ip", "l2"}

        Returns
        -------
        scores : ndarray of float32, shape (nq, k)
            Inner products (cosine, ip; decreasing) or squared L2 distances (l2; increasing);
            -inf / +inf where fewer than ``k`` candidates exist.
        ids : ndarray of int64, shape (nq, k)
            -1 where fewer than ``k`` candidates exist.

        Notes
        -----
        A block of queries at a time, so that the gathered rows stay small (about 16 MB).
        """
        block = max(1, (1 << 22) // (max(1, candidates.shape[1]) * self.dim))
        scores = np.empty((queries.shape[0], k), dtype=np.float32)
        ids = np.empty((queries.shape[0], k), dtype=np.int64)
        for s in range(0, queries.shape[0], block):
            scores[s:s + block], ids[s:s + block] = self._rerank_block(queries[s:s + block],
                                                                       candidates[s:s + block], k, metric)
        return scores, ids

    def _rerank_block(self, queries: np.ndarray, candidates: np.ndarray, k: int, metric: str):
        """:meth:`rerank` of one block of queries (the same shapes)."""
        missing = candidates < 0
        rows = np.where(missing, 0, candidates - self.first_id)
        if np.any((rows < 0) | (rows >= self.n)):
            raise InputError(f"candidates: ids outside {self.first_id} .. {self.first_id + self.n - 1}, "
                             "the range of the stored vectors")
        order = np.argsort(rows, axis=None, kind="stable")   # read the file in increasing offset
        flat = np.empty((rows.size, self.dim), dtype=np.float32)
        flat[order] = self._rows[rows.reshape(-1)[order]]
        x = flat.reshape(*rows.shape, self.dim)
        if metric == "l2":
            diff = x - queries[:, None, :]
            score = np.einsum("qcd,qcd->qc", diff, diff)
            score[missing] = np.inf
            best = np.argsort(score, axis=1, kind="stable")[:, :k]
        else:
            score = np.einsum("qcd,qd->qc", x, queries)
            score[missing] = -np.inf
            best = np.argsort(-score, axis=1, kind="stable")[:, :k]
        ids = np.take_along_axis(np.where(missing, -1, candidates), best, axis=1)
        return np.take_along_axis(score, best, axis=1).astype(np.float32), ids


def check_k_factor(value, name: str = "k_factor") -> int:
    """``value`` as an int in 1 .. 1000."""
    return check_int(value, name, low=1, high=1000)
