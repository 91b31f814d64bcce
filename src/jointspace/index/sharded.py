"""``ShardedIndex``: several indexes over disjoint ids, searched in parallel, results merged.

Each shard is an :class:`~jointspace.index.faiss_index.Index` (in memory, or on disk as built by
:func:`jointspace.index.ondisk.build_on_disk`).  A query goes to every shard at once (threads:
FAISS releases the GIL while it searches), each returns its own top ``k``, and the merged top
``k`` is taken over the ``shards x k`` candidates by score, equal scores by increasing id (as
:meth:`Index.search` orders them).  Because every shard returns its exact top ``k`` under the
same metric, merging exact shards gives exactly the single-index result, except which of equal
scores straddling the ``k``-th place make the cut (what FAISS ``IndexShards`` does, here over
whole ``Index`` objects so that ids, metadata and removed ids stay with their shard).

Saved as one folder: ``shards.json`` (format, order, info) and one saved index folder per shard
(``shard-0000/`` ...).  :meth:`Index.load` recognises such a folder and returns a
``ShardedIndex``.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .._io import atomic_dir, atomic_write_json, read_json_object
from .._validation import check_int
from ..errors import InputError
from ._inputs import as_id_list, check_k, in_sorted
from .results import order_ties_by_id

FORMAT = "jointspace-sharded-index"
MANIFEST = "shards.json"


def is_sharded_index(path) -> bool:
    """Whether ``path`` is a folder written by :meth:`ShardedIndex.save`."""
    meta = read_json_object(Path(path) / MANIFEST)
    return meta is not None and meta.get("format") == FORMAT


class ShardedIndex:
    """Disjoint shards searched in parallel, with the surface of :class:`Index` for searching.

    Parameters
    ----------
    shards : sequence of Index
        At least one; all of the same ``dim`` and ``metric``, with no id in two shards.  Their
        ids are read once, here: add to or remove from a shard before building the
        ``ShardedIndex`` (or build it again), not after.
    workers : int, optional
        Threads searching shards at once (default: one per shard).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from jointspace import Index
    >>> x = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    >>> parts = [Index.build(x[:60], spec="Flat"), Index.build(x[60:], spec="Flat", ids=range(60, 100))]
    >>> big = ShardedIndex(parts)
    >>> scores, ids = big.search(x[[3, 70]], k=10)   # both shards at once, merged
    >>> ids[:, 0].tolist()
    [3, 70]
    >>> folder = tempfile.mkdtemp() + "/all"
    >>> big.save(folder); type(Index.load(folder)).__name__, Index.load(folder).ntotal
    ('ShardedIndex', 100)
    """

    def __init__(self, shards, *, workers: int | None = None):
        if isinstance(shards, (str, bytes)) or hasattr(shards, "search") or not isinstance(shards, Iterable):
            raise InputError(f"shards: expected a sequence of Index objects, got {type(shards).__name__}")
        shards = list(shards)
        if not shards:
            raise InputError("shards: expected at least one index, got none")
        first = shards[0]
        for i, s in enumerate(shards):
            if not hasattr(s, "search") or not hasattr(s, "ids"):
                raise InputError(f"shards[{i}]: expected an Index, got {type(s).__name__}")
            if s.dim != first.dim or s.metric != first.metric:
                raise InputError(f"shards[{i}]: expected dim {first.dim} and metric {first.metric!r} "
                                 f"(shards[0]'s), got dim {s.dim} and metric {s.metric!r}")
        self._shards = shards
        self._shard_ids = [s.ids for s in shards]
        all_ids = np.concatenate(self._shard_ids)
        if np.unique(all_ids).size != all_ids.size:
            raise InputError("shards: expected disjoint ids, got ids held by more than one shard")
        self._workers = check_int(workers, "workers", low=1) if workers is not None else len(shards)
        self.info: dict = {}
        """Free JSON-serialisable notes saved in shards.json."""

    @property
    def shards(self) -> list:
        """The shard indexes, in order."""
        return list(self._shards)

    @property
    def dim(self) -> int:
        return self._shards[0].dim

    @property
    def metric(self) -> str:
        return self._shards[0].metric

    @property
    def higher_is_better(self) -> bool:
        return self._shards[0].higher_is_better

    @property
    def ntotal(self) -> int:
        return int(sum(s.ntotal for s in self._shards))

    def __len__(self) -> int:
        return self.ntotal

    @property
    def ids(self) -> np.ndarray:
        """Sorted ids of every shard, shape (ntotal,)."""
        return np.sort(np.concatenate(self._shard_ids))

    @property
    def spec(self) -> str:
        return self.resolved_spec

    @property
    def resolved_spec(self) -> str:
        specs = sorted({str(s.resolved_spec) for s in self._shards})
        return f"{len(self._shards)} shards of {' / '.join(specs)}"

    @property
    def search_params(self) -> dict:
        return self._shards[0].search_params

    def set_search_params(self, **params) -> "ShardedIndex":
        """Set ``nprobe`` / ``efSearch`` on every shard (see :meth:`Index.set_search_params`);
        a value that one shard refuses changes none of them."""
        before = [s.search_params for s in self._shards]
        for i, s in enumerate(self._shards):
            try:
                s.set_search_params(**params)
            except InputError as exc:
                for done, old in zip(self._shards[:i], before):
                    done.set_search_params(**old)
                raise InputError(f"{exc} (in shards[{i}], {s.resolved_spec!r})") from None
        return self

    def __repr__(self) -> str:
        return f"ShardedIndex({len(self._shards)} shards, dim={self.dim}, metric={self.metric!r}, ntotal={self.ntotal})"

    def search(self, queries, k: int = 10, *, batch_size: int | None = None, params: dict | None = None):
        """Search every shard in parallel and merge: the best ``k`` of the ``shards x k`` results.

        Parameters and returns as :meth:`Index.search`: scores (nq, k) float32 and ids (nq, k)
        int64, best first, padded with id -1 where fewer than ``k`` exist.
        """
        k = check_k(k, lambda: self.ntotal)

        def one(shard):   # a shard has no more than its own vectors to give (the merge pads)
            return shard.search(queries, min(k, max(shard.ntotal, 1)), batch_size=batch_size, params=params)

        with ThreadPoolExecutor(max_workers=min(self._workers, len(self._shards))) as pool:
            results = list(pool.map(one, self._shards))
        return merge_results(results, k, self.higher_is_better)

    def ids_with_path(self, path) -> np.ndarray:
        """Ids, in every shard, of the items whose metadata ``path`` is ``path`` (see :meth:`Index.ids_with_path`)."""
        return np.sort(np.concatenate([shard.ids_with_path(path) for shard in self._shards]))

    def shard_of(self, item_id: int):
        """The shard (an :class:`~jointspace.index.faiss_index.Index`) that holds ``item_id``, or None."""
        for shard, held in zip(self._shards, self._shard_ids):
            if in_sorted(held, np.asarray([item_id], np.int64))[0]:
                return shard
        return None

    def metadata(self, ids) -> list:
        """Metadata of ``ids`` in order, each read from the shard that holds it (see :meth:`Index.metadata`)."""
        arr = as_id_list(ids)
        out: list = [None] * arr.size
        found = arr == -1
        for shard, held in zip(self._shards, self._shard_ids):
            mask = ~found & in_sorted(held, arr)
            if mask.any():
                for pos, row in zip(np.flatnonzero(mask), shard.metadata(arr[mask])):
                    out[pos] = row
                found |= mask
        if not found.all():
            missing = arr[~found]
            raise InputError(f"ids: expected ids in the index, got {missing.size} that are not "
                             f"(e.g. {', '.join(map(str, missing[:5].tolist()))})")
        return out

    # persistence --------------------------------------------------------------------------------
    def save(self, folder) -> None:
        """Write ``shards.json`` and one saved index folder per shard into ``folder``, atomically."""
        from .persistence import check_folder, check_info, is_index_folder, write_folder

        check_folder(folder)
        info_json = check_info(self.info)
        names = [f"shard-{i:04d}" for i in range(len(self._shards))]
        with atomic_dir(folder, "index", is_kind=is_index_folder, arg="folder", keep_others=True) as tmp:
            for name, shard in zip(names, self._shards):
                (tmp / name).mkdir()
                write_folder(shard, tmp / name, check_info(shard.info))
            atomic_write_json(tmp / MANIFEST, {"format": FORMAT, "format_version": 1, "shards": names,
                                               "dim": self.dim, "metric": self.metric, "count": self.ntotal,
                                               "info": info_json})

    @classmethod
    def load(cls, folder, *, verify: bool = True) -> "ShardedIndex":
        """Load a folder written by :meth:`save` (each shard checked as :meth:`Index.load` does);
        a folder that a save replaces meanwhile is read again, whole from the new version."""
        from .._folder_reads import read_whole

        return read_whole(folder, lambda: cls._load(Path(folder), verify), "index")

    @classmethod
    def _load(cls, folder: Path, verify: bool) -> "ShardedIndex":
        from .faiss_index import Index
        from .persistence import load_index

        meta = read_json_object(folder / MANIFEST)
        if meta is None or meta.get("format") != FORMAT:
            raise InputError(f"folder: {str(folder)!r} is not a sharded jointspace index (no valid {MANIFEST})")
        names = meta.get("shards")
        if not isinstance(names, list) or not names or not all(
                isinstance(n, str) and n.startswith("shard-") and "/" not in n and "\\" not in n for n in names):
            raise InputError(f"folder: {str(folder / MANIFEST)!r} has a bad 'shards': expected a list of "
                             "shard-NNNN folder names; the index folder is corrupted")
        index = cls([load_index(Index, folder / n, verify=verify) for n in names])
        if index.ntotal != meta.get("count"):
            raise InputError(f"folder: the shards in {str(folder)!r} hold {index.ntotal} vectors; "
                             f"{MANIFEST} says {meta.get('count')!r}")
        index.info = meta.get("info") if isinstance(meta.get("info"), dict) else {}
        return index


def merge_results(results, k: int, higher_is_better: bool):
    """Merge per-shard ``(scores, ids)`` pairs, each (nq, k_s), into the best ``k`` per query.

    Equal scores are ordered by increasing id, padded entries (id -1) sort last.

    Returns
    -------
    scores : numpy.ndarray of float32, shape (nq, k)
    ids : numpy.ndarray of int64, shape (nq, k)
    """
    scores = np.concatenate([s for s, _ in results], axis=1)
    ids = np.concatenate([i for _, i in results], axis=1)
    scores, ids = (a[:, :k] for a in order_ties_by_id(scores, ids, higher_is_better))
    if ids.shape[1] < k:   # fewer results than k in all the shards together
        pad = ((0, 0), (0, k - ids.shape[1]))
        scores = np.pad(scores, pad, constant_values=-np.inf if higher_is_better else np.inf)
        ids = np.pad(ids, pad, constant_values=-1)
    return scores, ids
