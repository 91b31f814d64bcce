"""``Index``: a FAISS index built from a spec string, with 64-bit ids, metadata and persistence.

Similarity follows the chapter's joint space: with ``metric="cosine"`` the score of a query
``q`` and an item ``x`` is ``q·x / (‖q‖ ‖x‖)`` (both are L2-normalised, then compared by
inner product); ``"ip"`` is the raw dot product ``q·x``; ``"l2"`` is the squared Euclidean
distance ``‖q − x‖²``.  Cosine and ip scores are similarities (higher is better, results in
decreasing order); l2 scores are distances (lower is better, results in increasing order).
Equal scores are ordered by increasing id.
Where fewer than ``k`` results come back, ids are ``-1`` and scores ``-inf`` (similarities) or
``+inf`` (distances): the index holds fewer than ``k`` items, or an approximate index reached
fewer (IVF's probed lists hold fewer than ``k``; an HNSW graph asked for nearly all its items
visits only part of them; raise ``nprobe`` or ``efSearch``, or use ``Flat``, for every item).
"""

from __future__ import annotations

import os

import faiss
import numpy as np

from .._validation import check_int
from ..errors import InputError, JointspaceError
from . import _faiss_parts as parts
from . import _params, _training
from ._inputs import as_id_list, as_vectors, check_k, check_new_ids, in_sorted, normalized
from .metadata import MetadataStore, normalize_metadata
from .results import order_ties_by_id
from .spec import (auto_spec, check_metric, faiss_error_message, higher_is_better, make_faiss_index,
                   normalize_spec)

_ADD_ROWS = 65_536


class Index:
    """A vector index over FAISS with ids, metadata and one-folder persistence.

    Parameters
    ----------
    dim : int
        Vector dimension ``d``.
    spec : str
        A FAISS factory string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,PQ32"``, ``"IVF256,Flat"``,
        ...) or ``"auto"``, which is resolved from the number of vectors in the first
        :meth:`add` / :meth:`train` (see :func:`jointspace.index.spec.auto_spec`).  The numbers
        in it are range-checked before FAISS sees them (e.g. HNSW ``M`` >= 2, IVF ``nlist`` >= 1;
        see :func:`jointspace.index.spec.check_spec_numbers`).
    metric : {"cosine", "ip", "l2"}
        Similarity; see the module docstring for what the scores mean.
    build_params : dict, optional
        Build-time settings: ``efConstruction`` for HNSW graphs.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> vectors = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    >>> idx = Index.build(vectors, spec="HNSW32", metadata=[{"label": i % 3, "text": f"item {i}"} for i in range(100)])
    >>> idx = idx.set_search_params(efSearch=128)
    >>> scores, ids = idx.search(vectors[:2], k=10)   # (nq, 10) each, best first
    >>> scores.shape, ids[:, 0].tolist()
    ((2, 10), [0, 1])
    >>> folder = tempfile.mkdtemp() + "/img"
    >>> idx.save(folder); Index.load(folder).metadata([1])[0]["text"]
    'item 1'
    """

    def __init__(self, dim: int, spec: str = "Flat", metric: str = "cosine", *, build_params: dict | None = None):
        self._dim = check_int(dim, "dim", low=1)
        self._metric = check_metric(metric)
        self._spec = normalize_spec(spec)
        self._build_params = _params.check_params(build_params, _params.BUILD_PARAMS, "build_params")
        self._faiss = None           # the top FAISS object (an id map, or an IVF index with native ids)
        self._core = None            # what is searched (inside the id map)
        self._resolved = None
        self._ids = np.empty(0, dtype=np.int64)       # sorted ids stored in FAISS
        self._removed = np.empty(0, dtype=np.int64)   # sorted ids filtered at search time
        self._next_id = 0            # one past the largest id ever held: default ids never reuse a removed one
        self._search_defaults: dict = {}
        self._id_map = None          # cached internal -> external ids of the id map
        self._selector = None        # cached (selector, keepalive) for removed ids
        self._metadata = MetadataStore()
        self._stored = None          # StoredVectors for exact re-ranking (on-disk builds), or None
        self._k_factor = None
        self.info: dict = {}
        """Free JSON-serialisable notes saved in index.json (e.g. the model and modality)."""
        if self._spec != "auto":
            self._create(self._spec)

    # construction -----------------------------------------------------------------------------
    def _create(self, resolved: str, faiss_index=None) -> None:
        raw = make_faiss_index(self._dim, resolved, self._metric) if faiss_index is None else faiss_index
        self._raw = raw  # owns the C++ index (or, wrapped below, is pointed at by the id map)
        if faiss_index is None and not parts.stores_ids_natively(raw):
            top = faiss.IndexIDMap2(raw)
        else:
            top = faiss.downcast_index(raw)
        self._faiss = top
        self._core = faiss.downcast_index(top.index) if isinstance(top, faiss.IndexIDMap) else top
        self._resolved = resolved
        self._real_remove = parts.can_remove(self._core)
        _params.set_defaults(self._core, self._build_params, set(self._search_defaults))
        pending, self._search_defaults = self._search_defaults, {}
        self.set_search_params(**{k: v for k, v in pending.items() if k in _params.applicable(self._core)})

    def _ensure_created(self, n: int) -> None:
        if self._faiss is None:
            self._create(auto_spec(n, self._dim))

    @classmethod
    def build(cls, vectors, *, spec: str = "auto", metric: str = "cosine", ids=None, metadata=None,
              train_size: int | None = None, seed: int = 0, build_params: dict | None = None,
              search_params: dict | None = None) -> "Index":
        """Create an index over ``vectors`` (training it first when the spec needs it).

        Parameters
        ----------
        vectors : array-like, shape (n, d)
        spec, metric, build_params
            As for :class:`Index`.
        ids : array-like of int, shape (n,), optional
            Distinct non-negative 64-bit ids; default ``0 .. n-1``.
        metadata : list of n dicts or dict of columns, optional
            ``label``, ``text``, ``path`` and any other keys (kept in ``extra``).
        train_size : int, optional
            Train IVF / PQ on a random sample of this many vectors (default: all of them).
        seed : int
            Seed of the training sample and of the k-means initialisation.
        search_params : dict, optional
            Default ``nprobe`` / ``efSearch`` (see :meth:`set_search_params`).
        """
        x = as_vectors(vectors, "vectors", metric=metric)
        if x.shape[0] < 1:
            raise InputError("vectors: expected at least 1 row, got 0")
        index = cls(x.shape[1], spec, metric, build_params=build_params)
        ids = check_new_ids(ids, x.shape[0], index._ids, index._removed, index._resolved, index._next_id)
        rows = normalize_metadata(metadata, x.shape[0])
        if search_params:
            index.set_search_params(**_params.check_params(search_params, _params.SEARCH_PARAMS, "search_params"))
        index._ensure_created(x.shape[0])
        index._train(x, train_size=train_size, seed=seed)
        index._add(x, ids, rows)
        return index

    # properties ---------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def spec(self) -> str:
        """The spec as given (may be ``"auto"``)."""
        return self._spec

    @property
    def resolved_spec(self) -> str | None:
        """The FAISS factory string actually built (None while ``"auto"`` is unresolved)."""
        return self._resolved

    @property
    def metric(self) -> str:
        """``"cosine"``, ``"ip"`` or ``"l2"``."""
        return self._metric

    @property
    def higher_is_better(self) -> bool:
        """True when scores are similarities (cosine, ip), False for l2 distances."""
        return higher_is_better(self._metric)

    @property
    def ntotal(self) -> int:
        """Number of searchable vectors (removed ones excluded)."""
        return int(self._ids.size - self._removed.size)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def ids(self) -> np.ndarray:
        """Sorted ids of the searchable vectors, shape (ntotal,)."""
        return np.setdiff1d(self._ids, self._removed, assume_unique=True)

    @property
    def is_trained(self) -> bool:
        """False for IVF / PQ specs until :meth:`train` (or the first :meth:`add`)."""
        return self._faiss is not None and bool(self._faiss.is_trained)

    @property
    def search_params(self) -> dict:
        """The default search-time settings in effect (``nprobe``, ``efSearch``, ``k_factor`` where
        they apply)."""
        out = {} if self._core is None else _params.current(self._core)
        if self._stored is not None:
            out["k_factor"] = self._k_factor
        return out

    @property
    def keeps_vectors(self) -> bool:
        """True when exact vectors are stored beside a compressed index and candidates are
        re-ranked by them (see :mod:`jointspace.index.refine`)."""
        return self._stored is not None

    @property
    def build_params(self) -> dict:
        """Build-time settings given at construction."""
        return dict(self._build_params)

    def __repr__(self) -> str:
        spec = self._spec if self._resolved in (None, self._spec) else f"{self._spec} -> {self._resolved}"
        return f"Index(dim={self._dim}, spec={spec!r}, metric={self._metric!r}, ntotal={self.ntotal})"

    # parameters ---------------------------------------------------------------------------------
    def set_search_params(self, *, nprobe: int | None = None, efSearch: int | None = None,
                          k_factor: int | None = None) -> "Index":
        """Set default search-time settings (kept apart from build settings, saved with the index).

        Parameters
        ----------
        nprobe : int, optional
            IVF lists visited per query (1 .. nlist); higher is slower and more exact.
        efSearch : int, optional
            HNSW candidate-list size (1 .. :data:`~jointspace.index._params.MAX_EF`); higher is
            slower and more exact.
        k_factor : int, optional
            For an index that keeps its vectors (:attr:`keeps_vectors`) or a spec with a refine
            stage (``"IVF256,PQ32,RFlat"``): ``k_factor * k`` candidates are re-ranked by the
            exact score (1: no more candidates than results).

        A setting that the index type lacks raises :class:`InputError`; while ``"auto"`` is
        unresolved, settings are kept and applied where they fit once it resolves.
        """
        params = _params.validate_search(self._core, self._resolved, {"nprobe": nprobe, "efSearch": efSearch},
                                         "set_search_params")
        if k_factor is not None:
            self._k_factor = self._checked_k_factor(k_factor, "k_factor")
            if self._stored is None:   # a refine stage's own, saved in index.faiss
                params["k_factor"] = self._k_factor
        self._search_defaults.update(params)
        if self._core is not None:
            _params.apply(self._core, params)
        return self

    # training and adding --------------------------------------------------------------------------
    def train(self, vectors, *, train_size: int | None = None, seed: int = 0) -> "Index":
        """Train an IVF / PQ / SQ index on ``vectors`` (n, d); a no-op for specs that need none.

        ``"auto"`` is resolved from ``len(vectors)`` here.  ``train_size`` trains on a random
        sample of that many rows; ``seed`` seeds the sample and the k-means.
        """
        x = as_vectors(vectors, "vectors", self._dim, metric=self._metric)
        self._ensure_created(x.shape[0])
        self._train(x, train_size=train_size, seed=seed)
        return self

    def _train(self, x: np.ndarray, *, train_size, seed) -> None:
        _training.train(self._faiss, self._core, x, metric=self._metric, spec=self._resolved,
                        train_size=train_size, seed=seed)

    def add(self, vectors, ids=None, metadata=None) -> np.ndarray:
        """Add vectors (training first on them if the spec needs it and it is untrained).

        Parameters
        ----------
        vectors : array-like, shape (n, d)
        ids : array-like of int, shape (n,), optional
            Distinct non-negative ids not yet in the index; default: consecutive after the
            largest id the index has ever held (the id of a removed vector is not given again).
        metadata : list of n dicts or dict of columns, optional
            ``label``, ``text``, ``path``; other keys are kept in ``extra``.

        Returns
        -------
        numpy.ndarray of int64, shape (n,)
            The ids given to the new vectors.
        """
        x = as_vectors(vectors, "vectors", self._dim, metric=self._metric)
        self._check_writable("add")
        ids = check_new_ids(ids, x.shape[0], self._ids, self._removed, self._resolved, self._next_id)
        rows = normalize_metadata(metadata, x.shape[0])
        if x.shape[0] == 0:
            return ids
        self._ensure_created(x.shape[0])
        self._train(x, train_size=None, seed=0)
        self._add(x, ids, rows)
        return ids

    def _add(self, x: np.ndarray, ids: np.ndarray, rows) -> None:
        _training.check_graph_build(self._core, x.shape[0], self._resolved)
        # the metadata first, in one transaction: if it fails, no vector has been added
        if rows is not None:
            self._metadata.add(ids, rows)
        try:
            for s in range(0, x.shape[0], _ADD_ROWS):
                block = x[s:s + _ADD_ROWS]
                if self._metric == "cosine":
                    block = normalized(block)
                self._faiss.add_with_ids(block, ids[s:s + _ADD_ROWS])
        except RuntimeError as exc:
            self._ids = np.sort(parts.stored_ids(self._faiss))   # what FAISS holds after a partial add
            if rows is not None:
                self._metadata.remove(ids[~in_sorted(self._ids, ids)])
            raise JointspaceError(f"adding to {self._resolved!r} failed: {faiss_error_message(exc)}") from None
        finally:
            self._id_map = None
        self._ids = np.union1d(self._ids, ids)
        if ids.size:
            self._next_id = max(self._next_id, int(ids.max()) + 1)

    @property
    def on_disk(self) -> bool:
        """True when the inverted lists live in a memory-mapped file (see :mod:`jointspace.index.ondisk`)."""
        return self._faiss is not None and parts.on_disk_lists(self._faiss) is not None

    def _check_writable(self, what: str) -> None:
        if self.on_disk:
            raise InputError(f"index: cannot {what} vectors in an on-disk index (its lists are a read-only "
                             "memory-mapped file); build it again from the stream "
                             "(jointspace.index.ondisk.build_on_disk)")

    # removing -------------------------------------------------------------------------------------
    def remove(self, ids) -> int:
        """Remove vectors by id; they never come back from :meth:`search`.

        Indexes that can delete in place (Flat, IVF, PQ, SQ) do so; graph indexes (HNSW) keep
        the vectors and filter their ids at search time (FAISS ``IDSelectorNot``), and those
        ids stay reserved.  Indexes that can do neither (NSG, fast-scan PQ without IVF) raise
        :class:`InputError`.

        Returns
        -------
        int
            Number of vectors removed.
        """
        ids = self._require_live(np.unique(as_id_list(ids)))
        if ids.size == 0:
            return 0
        self._check_writable("remove")
        if not self._real_remove and not parts.can_filter(self._core):
            raise InputError(f"index: cannot remove vectors from an index of type {self._resolved!r} (FAISS can "
                             "neither delete them from it nor skip them in its search); build it again without them")
        if self._real_remove:
            self._faiss.remove_ids(ids)
            self._ids = np.setdiff1d(self._ids, ids, assume_unique=True)
            self._id_map = None
        else:
            self._removed = np.union1d(self._removed, ids)
            self._selector = None
        self._metadata.remove(ids)
        return int(ids.size)

    def _require_live(self, ids: np.ndarray) -> np.ndarray:
        missing = ids[~in_sorted(self._ids, ids) | in_sorted(self._removed, ids)]
        if missing.size:
            raise InputError(f"ids: expected ids in the index, got {missing.size} that are not "
                             f"(e.g. {', '.join(map(str, missing[:5].tolist()))})")
        return ids

    def _removed_selector(self):
        if self._removed.size == 0:
            return None
        if self._selector is None:    # ids in the searched index's own space: positions inside an id map
            inner = (self._removed if self._core is self._faiss else
                     np.flatnonzero(np.isin(self._internal_to_external(), self._removed)))
            self._selector = parts.exclusion_selector(inner)
        return self._selector[0]

    def _checked_k_factor(self, value, label: str) -> int:
        from .refine import check_k_factor

        if self._stored is None and (self._core is None or parts.find_refine(self._core) is None):
            raise InputError(f"{label}: applies to indexes that keep their vectors for exact re-ranking "
                             "(built by jointspace.index.ondisk.build_on_disk) and to specs with a refine stage "
                             f"(e.g. 'IVF256,PQ32,RFlat'); this index ({self._resolved!r}) is neither")
        return check_k_factor(value, label)

    def _internal_to_external(self) -> np.ndarray:
        if self._id_map is None:
            self._id_map = faiss.vector_to_array(self._faiss.id_map).astype(np.int64, copy=False)
        return self._id_map

    # searching ------------------------------------------------------------------------------------
    def search(self, queries, k: int = 10, *, batch_size: int | None = None, params: dict | None = None):
        """The ``k`` best items for each query.

        Parameters
        ----------
        queries : array-like, shape (nq, d) or (d,)
        k : int
            Results per query (>= 1); when fewer come back (fewer items held, or fewer reached
            by an approximate index: see the module's docstring), the rest is padded with id -1.
        batch_size : int, optional
            Search this many queries per FAISS call (default: all at once).
        params : dict, optional
            ``nprobe`` / ``efSearch`` / ``k_factor`` for this call only.

        Returns
        -------
        scores : numpy.ndarray of float32, shape (nq, k)
            Similarities (cosine, ip; decreasing) or squared L2 distances (l2; increasing).
        ids : numpy.ndarray of int64, shape (nq, k)
            Equal scores in increasing id; -1 for padding.
        """
        q = as_vectors(queries, "queries", self._dim, allow_1d=True, metric=self._metric)
        k = check_k(k, lambda: self.ntotal)
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", low=1)
        params = _params.validate_search(self._core, self._resolved, params, "params")
        k_factor = self._k_factor
        if "k_factor" in params:
            k_factor = self._checked_k_factor(params.pop("k_factor"), "params['k_factor']")
            if self._stored is None:   # a refine stage's, passed to FAISS
                params["k_factor"] = k_factor
        nq = q.shape[0]
        fill = -np.inf if self.higher_is_better else np.inf
        scores = np.full((nq, k), fill, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        if self._faiss is None or self._faiss.ntotal == 0 or nq == 0:
            return scores, ids
        if self._metric == "cosine":
            q = normalized(q)
        kk = min(k, int(self._faiss.ntotal))
        kc = kk if self._stored is None else min(kk * k_factor, int(self._faiss.ntotal))
        fparams, keep = parts.search_params(self._core, sel=self._removed_selector(), **params)
        try:
            d, i = parts.search_batches(self._core, q, kc, fparams, batch_size or nq)
        except RuntimeError as exc:
            raise JointspaceError(f"search in {self._resolved!r} failed: {faiss_error_message(exc)}") from None
        del keep
        missing = i < 0
        if self._core is not self._faiss:
            i = np.where(missing, -1, self._internal_to_external()[np.where(missing, 0, i)])
        d[missing] = fill
        if self._stored is not None and k_factor > 1:   # also where k takes every vector: exact scores
            d, i = self._stored.rerank(q, i, kk, self._metric)
        scores[:, :kk], ids[:, :kk] = order_ties_by_id(d, i, self.higher_is_better)
        return scores, ids

    # metadata -------------------------------------------------------------------------------------
    def metadata(self, ids) -> list:
        """Metadata of ``ids`` in order: dicts with ``id``, ``label``, ``text``, ``path``, ``extra``.

        An id of -1 (a padded search result) gives None; an id not in the index raises
        :class:`InputError`.  Accepts an int or any 1-D integer sequence (e.g. a row of ids
        returned by :meth:`search`).
        """
        arr = as_id_list(ids)
        rows = self._metadata.get(self._require_live(arr[arr != -1]))
        return [None if i == -1 else rows.get(int(i)) or MetadataStore.empty_row(int(i)) for i in arr]

    def set_metadata(self, ids, metadata) -> None:
        """Replace the metadata of items already in the index.

        Parameters
        ----------
        ids : sequence of int, shape (m,)
            Ids in the index.
        metadata : list of m dicts or dict of columns
            As in :meth:`add`; each item's whole row is replaced (``None``: no metadata).
        """
        arr = self._require_live(np.unique(as_id_list(ids)))
        given = as_id_list(ids)
        if arr.size != given.size:
            raise InputError(f"ids: expected distinct ids, got {given.size} with {given.size - arr.size} repeated")
        rows = normalize_metadata(metadata, given.size)
        self._metadata.replace(given, rows if rows is not None else [(None,) * 4] * given.size)

    def ids_with_path(self, path) -> np.ndarray:
        """Ids of the items whose metadata ``path`` is ``path`` (compared as given: store and
        ask with the same spelling, e.g. resolved absolute paths), int64 (m,)."""
        return np.asarray(self._metadata.ids_with_path(os.fspath(path)), dtype=np.int64)

    # persistence ----------------------------------------------------------------------------------
    def save(self, folder) -> None:
        """Save to ``folder`` (index.faiss, metadata.sqlite, index.json); an existing folder is
        replaced only once the new one is complete (see :mod:`jointspace.index.persistence`)."""
        from .persistence import save_index

        save_index(self, folder)

    @classmethod
    def load(cls, folder, *, verify: bool = True) -> "Index":
        """Load an index saved by :meth:`save`; ``verify`` checks index.faiss's SHA-256 (sizes are
        always checked).  A folder of shards (:class:`~jointspace.index.sharded.ShardedIndex`)
        loads as one, searched shard by shard in parallel; an on-disk index memory-maps its lists.  Raises :class:`InputError` for a missing, incomplete, truncated or
        corrupted folder."""
        from .._folder_reads import read_whole
        from .persistence import check_folder, load_index
        from .sharded import ShardedIndex, is_sharded_index

        check_folder(folder, "a saved index folder path")

        def read():
            if is_sharded_index(folder):
                return ShardedIndex.load(folder, verify=verify)
            return load_index(cls, folder, verify=verify)

        return read_whole(folder, read, "index")   # read again if a save replaced the folder meanwhile
