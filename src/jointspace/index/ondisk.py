"""IVF indexes larger than memory: trained on a sample, filled shard by shard from a stream of
batches, inverted lists on disk.

The recipe is FAISS's own (``faiss/contrib/ondisk.py``, the "indexing 1G vectors" demo):

1. the first ``train_size`` rows of the stream train the quantisers (coarse k-means, PQ);
2. the stream is cut into shards of ``shard_size`` rows; each shard is a copy of the trained,
   empty index, filled batch by batch and written to a temporary file, then dropped from memory;
3. :func:`faiss.contrib.ondisk.merge_ondisk` merges the shards' inverted lists (memory-mapped)
   into one file, ``lists.ivfdata``, held by FAISS ``OnDiskInvertedLists``.

With ``keep_vectors`` (the default where the codes are lossy: PQ, SQ, a transform such as PCA) the
exact vectors are also written to ``vectors.f32``; a search then re-ranks ``k_factor * k`` candidates of
the compressed index by the exact score, reading only the candidates' rows (:mod:`jointspace.index.refine`).

Only one batch of float32 vectors and one shard of compressed codes are in memory at a time.
The result is an ordinary saved index folder: :meth:`Index.load` memory-maps ``lists.ivfdata``
(the operating system pages in the lists a search visits), so ``search``, ``metadata`` and the
CLI's ``search`` / ``serve`` work unchanged.  An on-disk index is read-only: to add vectors,
build it again from the stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .._validation import check_int
from ..errors import InputError
from . import _faiss_parts as parts
from . import _params, _training
from ._inputs import MAX_ID, as_vectors, normalized
from .metadata import normalize_metadata


def _batches(stream, metric: str):
    """Yield ``(vectors (n, d) float32, metadata rows or None)`` from the items of ``stream``;
    every batch must have the first batch's dimension."""
    if isinstance(stream, (np.ndarray, str, bytes)) or not isinstance(stream, Iterable):
        raise InputError(f"batches: expected an iterable of (n, d) arrays or (array, metadata) pairs, "
                         f"got {type(stream).__name__}")
    dim = None
    for i, item in enumerate(stream):
        meta = None
        if isinstance(item, tuple):
            if len(item) != 2:
                raise InputError(f"batches[{i}]: expected an array or an (array, metadata) pair, "
                                 f"got a tuple of {len(item)}")
            item, meta = item
        x = as_vectors(item, f"batches[{i}]", metric=metric)
        if dim is None:
            dim = x.shape[1]
        elif x.shape[1] != dim:
            raise InputError(f"batches[{i}]: expected vectors of dim {dim} (the first batch's), "
                             f"got {x.shape[1]} (shape {x.shape})")
        yield x, normalize_metadata(meta, x.shape[0]) if meta is not None else None


def build_on_disk(batches, folder, *, spec: str = "IVF1024,PQ32", metric: str = "cosine",
                  train_size: int = 100_000, shard_size: int = 250_000, seed: int = 0, first_id: int = 0,
                  search_params: dict | None = None, info: dict | None = None, keep_vectors: bool | None = None):
    """Build an IVF index with on-disk inverted lists from a stream of batches into ``folder``.

    Parameters
    ----------
    batches : iterable
        Arrays of shape (n_i, d) (float32 or convertible), or ``(array, metadata)`` pairs with
        metadata as for :meth:`Index.add` (a list of n_i dicts or a dict of columns).  Read once,
        in order; vectors get ids ``first_id .. first_id + n - 1`` in stream order.
    folder : str or path-like
        Where the index is saved (missing, empty, or a saved index, which is replaced atomically).
    spec : str
        A FAISS factory string with an IVF layer (``"IVF1024,PQ32"``, ``"IVF4096,SQ8"``,
        ``"PCA128,IVF1024,PQ16"``...).
    metric : {"cosine", "ip", "l2"}
    train_size : int
        The first ``train_size`` rows of the stream train the quantisers (they are held in memory
        until then).  A stream in random order gives a uniform sample; a sorted one does not.
    shard_size : int
        Rows per shard: the codes of one shard are in memory at a time.
    seed : int
        Seed of the k-means.
    first_id : int
        Id of the first vector (give each part of a :class:`~jointspace.index.sharded.ShardedIndex`
        its own range).
    search_params : dict, optional
        Default ``nprobe`` (and ``k_factor``, with ``keep_vectors``) saved with the index.
    info : dict, optional
        Free JSON notes saved in ``index.json`` (e.g. the model and modality).
    keep_vectors : bool, optional
        Also keep the vectors on disk (float32, ``4 * d`` bytes each) and re-rank the compressed
        index's candidates by them (default ``k_factor``
        :data:`~jointspace.index.refine.DEFAULT_K_FACTOR`).  Default: True where the codes are
        lossy (PQ, SQ, or a pre-transform such as ``PCA64,IVF256,Flat``), False for ``IVF...,Flat``.

    Returns
    -------
    Index
        The saved index, loaded back (lists memory-mapped from ``folder``).

    Raises
    ------
    InputError
        A spec without an IVF layer, with one inside another index (a refine stage such as
        ``RFlat``) or with lists that cannot be memory-mapped (fast-scan, Panorama); an empty
        stream, a batch of another dimension than the first, fewer training rows than the spec
        needs.
    """
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    from .._io import atomic_dir
    from .faiss_index import Index
    from .persistence import LISTS, is_index_folder, write_folder
    from .refine import DEFAULT_K_FACTOR, VECTORS, StoredVectors, VectorWriter, check_k_factor

    train_size = check_int(train_size, "train_size", low=1)
    shard_size = check_int(shard_size, "shard_size", low=1)
    first_id = check_int(first_id, "first_id", low=0, high=MAX_ID)
    if keep_vectors is not None and not isinstance(keep_vectors, bool):
        raise InputError(f"keep_vectors: expected True, False or None, got {keep_vectors!r}")
    search_params = _params.check_params(search_params, _params.SEARCH_PARAMS, "search_params")
    k_factor = search_params.pop("k_factor", None)
    if str(spec).strip().lower() == "auto":
        raise InputError("spec: an on-disk index needs an explicit IVF spec (e.g. 'IVF1024,PQ32'), got 'auto'")
    from .persistence import check_folder, check_info

    check_folder(folder)
    info_json = check_info(info or {}, "info")
    stream = _batches(batches, metric)
    head, n_head = [], 0
    for x, meta in stream:
        head.append((x, meta))
        n_head += x.shape[0]
        if n_head >= train_size:
            break
    if n_head == 0:
        raise InputError("batches: expected at least one vector, got an empty stream")
    dim = head[0][0].shape[1]
    index = Index(dim, spec, metric)
    ivf = parts.find_ivf(index._faiss)
    if ivf is None:
        raise InputError(f"spec: an on-disk index needs an IVF layer (e.g. 'IVF1024,PQ32'), got {spec!r}")
    if index._core is not index._faiss:   # the lists' merge keeps no id map, nor a refine stage's vectors
        raise InputError(f"spec: an on-disk index needs its IVF layer outermost (after a transform such as PCA at "
                         f"most), got {spec!r}; for exact re-ranking drop the refine stage and keep the vectors "
                         "(keep_vectors=True)")
    if type(faiss.downcast_InvertedLists(ivf.invlists)) is not faiss.ArrayInvertedLists:   # before the work
        raise InputError(f"spec: an on-disk index needs plain inverted lists, and {spec!r} ("
                         f"{type(faiss.downcast_index(ivf)).__name__}) lays its lists out otherwise (fast-scan "
                         "'...fs', Panorama); use e.g. 'IVF1024,PQ32', 'IVF1024,SQ8' or 'IVF1024,Flat'")
    if keep_vectors is None:   # exact codes of the vectors as given need no exact copy; PCA's are not exact
        keep_vectors = not (isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat) and not any(
            isinstance(layer, faiss.IndexPreTransform) for layer in parts.layers(index._faiss)))
    if k_factor is None:
        k_factor = DEFAULT_K_FACTOR if keep_vectors else None
    else:
        if not keep_vectors:
            raise InputError("search_params['k_factor']: applies when the vectors are kept (keep_vectors=True: "
                             f"they re-rank the candidates); {spec!r} keeps none with keep_vectors={keep_vectors}")
        k_factor = check_k_factor(k_factor, "search_params['k_factor']")
    if search_params:
        index.set_search_params(**search_params)
    short = "train_size" if n_head > train_size else "vectors"   # which one to name if too few train
    if n_head == train_size and train_size < _training.min_train_size(index._core)[0]:
        if next(stream, None) is not None:   # it fails either way: only to tell whether the stream held more
            short = "train_size"
    _training.check_enough(index._core, index.resolved_spec, min(n_head, train_size), name=short)
    sample = head[0][0][:train_size] if len(head) == 1 else np.concatenate([x for x, _ in head])[:train_size]
    index._train(sample, train_size=None, seed=seed)
    del sample
    trained = faiss.serialize_index(index._faiss)   # the empty, trained index every shard starts from
    index._faiss = index._core = index._raw = None   # its tables are rebuilt by each copy; keep one at a time

    def everything():
        while head:
            yield head.pop(0)   # the training batches are let go once added
        yield from stream

    with atomic_dir(folder, "index", is_kind=is_index_folder, arg="folder", keep_others=True) as tmp:
        shard_files, shard, in_shard, n = [], None, 0, first_id
        writer = VectorWriter(tmp / VECTORS) if keep_vectors else None
        for x, meta in everything():
            at = 0
            while at < x.shape[0]:
                if shard is None:
                    shard, in_shard = faiss.deserialize_index(trained), 0
                take = min(x.shape[0] - at, shard_size - in_shard)
                block = x[at:at + take]
                if metric == "cosine":
                    block = normalized(block)
                if n + take - 1 > MAX_ID:
                    raise InputError(f"first_id: expected the ids first_id .. first_id + n - 1 to stay below 2**63, "
                                     f"got first_id={first_id} for a stream of at least {n + take - first_id} vectors")
                ids = np.arange(n, n + take, dtype=np.int64)
                shard.add_with_ids(block, ids)
                if writer is not None:
                    writer.write(block)
                if meta is not None:
                    index._metadata.add(ids, meta[at:at + take])
                at, n, in_shard = at + take, n + take, in_shard + take
                if in_shard == shard_size:
                    shard_files.append(_write_shard(shard, tmp, len(shard_files)))
                    shard = None
        if shard is not None:
            shard_files.append(_write_shard(shard, tmp, len(shard_files)))
            shard = None
        merged = faiss.deserialize_index(trained)
        with parts.quiet_stdout():
            merge_ondisk(merged, [str(f) for f in shard_files], str(tmp / LISTS))
        for f in shard_files:
            f.unlink()
        index._create(index.resolved_spec, faiss_index=merged)
        index._ids = np.arange(first_id, n, dtype=np.int64)
        if writer is not None:
            writer.close()
            index._stored = StoredVectors(tmp / VECTORS, n - first_id, dim, first_id)
            index._k_factor = k_factor
        write_folder(index, tmp, info_json, lists_written=True)
    del index, merged
    return Index.load(folder, verify=False)


def _write_shard(shard, folder: Path, number: int) -> Path:
    import faiss

    path = folder / f"shard-{number:04d}.faiss"
    faiss.write_index(shard, str(path))
    return path
