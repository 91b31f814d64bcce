"""Helpers that look inside a FAISS index: its layers, where the ids live, search parameters.

A factory string can nest indexes (``"PCA64,IVF256,Flat"`` is a pre-transform around an IVF
index, ``"IVF256,Flat,Refine(Flat)"`` a refine stage around one).  These helpers walk that
chain so that :class:`~jointspace.index.faiss_index.Index` can set ``nprobe`` / ``efSearch``
and filter removed ids at the right layer.
"""

from __future__ import annotations

import contextlib

import numpy as np


def _faiss():
    import faiss

    return faiss


def layers(index) -> list:
    """The chain of indexes from ``index`` inwards (id maps, pre-transforms, refine stages).

    The returned proxies are views owned by ``index``; keep ``index`` alive while using them.
    """
    faiss = _faiss()
    out = []
    cur = faiss.downcast_index(index)
    while cur is not None:
        out.append(cur)
        if isinstance(cur, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
            cur = faiss.downcast_index(cur.index)
        elif isinstance(cur, faiss.IndexRefine):
            cur = faiss.downcast_index(cur.base_index)
        else:
            cur = None
    return out


def find_ivf(index):
    """The IVF layer of ``index`` or None."""
    for layer in layers(index):
        if isinstance(layer, _faiss().IndexIVF):
            return layer
    return None


def find_refine(index):
    """The refine stage of ``index`` (``...,RFlat``, ``...,Refine(Flat)``) or None."""
    for layer in layers(index):
        if isinstance(layer, _faiss().IndexRefine):
            return layer
    return None


def find_hnsw(index):
    """The HNSW graph that ``efSearch`` controls (the index's own or its IVF quantizer's), or None."""
    faiss = _faiss()
    for layer in layers(index):
        if isinstance(layer, faiss.IndexHNSW):
            return layer.hnsw
        if isinstance(layer, faiss.IndexIVF):
            q = faiss.downcast_index(layer.quantizer)
            if isinstance(q, faiss.IndexHNSW):
                return q.hnsw
    return None


def stores_ids_natively(index) -> bool:
    """True when ``index`` (through pre-transforms) is an IVF index, which keeps 64-bit ids itself."""
    faiss = _faiss()
    for layer in layers(index):
        if isinstance(layer, faiss.IndexPreTransform):
            continue
        return isinstance(layer, faiss.IndexIVF)
    return False


def can_remove(core) -> bool:
    """True when FAISS can delete vectors from ``core`` (the index inside any id map) in place.

    IVF indexes remove by id; flat-code indexes (Flat, PQ, SQ, ...) remove and compact in
    order, which the id map mirrors.  Graph indexes (HNSW) cannot: removed ids are filtered
    at search time instead.
    """
    faiss = _faiss()
    for layer in layers(core):
        if isinstance(layer, faiss.IndexPreTransform):
            continue
        return isinstance(layer, (faiss.IndexIVF, faiss.IndexFlatCodes))
    return False


def can_filter(core) -> bool:
    """True when FAISS's search of ``core`` takes an id selector, so that removed ids can be
    skipped at search time.

    HNSW, IVF and flat-code indexes do (through pre-transforms and refine stages); NSG graphs
    and fast-scan PQ indexes without IVF refuse any search parameters.
    """
    faiss = _faiss()
    for layer in layers(core):
        if isinstance(layer, (faiss.IndexPreTransform, faiss.IndexRefine, faiss.IndexIDMap)):
            continue
        return isinstance(layer, (faiss.IndexHNSW, faiss.IndexIVF, faiss.IndexFlatCodes))
    return False


def stored_ids(index) -> np.ndarray:
    """Every id held by ``index`` (an id map or a native-id IVF index), as int64."""
    faiss = _faiss()
    top = faiss.downcast_index(index)
    if isinstance(top, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return faiss.vector_to_array(top.id_map).astype(np.int64, copy=False)
    ivf = find_ivf(index)
    if ivf is None:
        raise TypeError(f"{type(top).__name__} holds no ids")
    invlists = ivf.invlists
    parts = []
    for lst in range(ivf.nlist):
        size = invlists.list_size(lst)
        if size:
            ptr = invlists.get_ids(lst)
            parts.append(np.array(faiss.rev_swig_ptr(ptr, size), dtype=np.int64))
            invlists.release_ids(lst, ptr)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def search_params(target, *, nprobe=None, efSearch=None, k_factor=None, sel=None):
    """Build FAISS search parameters for ``target`` (walking its layers).

    ``sel`` is applied at the innermost layer, in that layer's id space.

    Returns
    -------
    params : faiss.SearchParameters or None
        None when there is nothing to set.
    keep : list
        Python objects the parameters point to; keep them alive during the search.
    """
    faiss = _faiss()
    keep: list = []

    def build(layer):
        if isinstance(layer, faiss.IndexPreTransform):
            inner = build(faiss.downcast_index(layer.index))
            p = faiss.SearchParametersPreTransform()
            p.index_params = inner
        elif isinstance(layer, faiss.IndexRefine):
            inner = build(faiss.downcast_index(layer.base_index))
            p = faiss.IndexRefineSearchParameters()
            p.k_factor = float(k_factor if k_factor is not None else layer.k_factor)
            p.base_index_params = inner
        elif isinstance(layer, faiss.IndexIVF):
            p = faiss.SearchParametersIVF()
            p.nprobe = int(nprobe if nprobe is not None else layer.nprobe)
            q = faiss.downcast_index(layer.quantizer)
            if isinstance(q, faiss.IndexHNSW):
                qp = faiss.SearchParametersHNSW()
                qp.efSearch = int(efSearch if efSearch is not None else q.hnsw.efSearch)
                keep.append(qp)
                p.quantizer_params = qp
            if sel is not None:
                p.sel = sel
        elif isinstance(layer, faiss.IndexHNSW):
            p = faiss.SearchParametersHNSW()
            p.efSearch = int(efSearch if efSearch is not None else layer.hnsw.efSearch)
            if sel is not None:
                p.sel = sel
        else:
            p = faiss.SearchParameters()
            if sel is not None:
                p.sel = sel
        keep.append(p)
        return p

    if nprobe is None and efSearch is None and k_factor is None and sel is None:
        return None, keep
    return build(faiss.downcast_index(target)), keep


def exclusion_selector(ids: np.ndarray):
    """A FAISS selector that rejects ``ids``; returns ``(selector, keepalive)``."""
    faiss = _faiss()
    batch = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    return faiss.IDSelectorNot(batch), batch


def search_batches(index, q: np.ndarray, k: int, params, step: int):
    """``index.search`` over ``q`` in blocks of ``step`` rows; returns (distances, labels), (nq, k)."""
    if step >= q.shape[0]:
        return index.search(q, k, params=params)
    d = np.empty((q.shape[0], k), dtype=np.float32)
    i = np.empty((q.shape[0], k), dtype=np.int64)
    for s in range(0, q.shape[0], step):
        d[s:s + step], i[s:s + step] = index.search(q[s:s + step], k, params=params)
    return d, i


def on_disk_lists(index):
    """The ``OnDiskInvertedLists`` of ``index``'s IVF layer (memory-mapped lists in a file), or None."""
    faiss = _faiss()
    ivf = find_ivf(index)
    if ivf is None:
        return None
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    return lists if isinstance(lists, faiss.OnDiskInvertedLists) else None


@contextlib.contextmanager
def quiet_stdout():
    """Silence what FAISS's C++ code prints to the process's stdout (file descriptor 1) meanwhile.

    On-disk inverted lists print a line when they are resized or re-pointed at a moved folder
    (``printf`` in FAISS, not a log), which would corrupt the JSON output of ``jointspace search``.
    """
    import ctypes
    import os
    import sys

    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        yield
        return
    libc = ctypes.CDLL(None)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            try:
                yield
            finally:
                libc.fflush(None)
                os.dup2(saved, 1)
    finally:
        os.close(saved)
