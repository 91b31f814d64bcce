"""The search engine behind the HTTP service: one model, one or more indexes, a query cache.

Everything is loaded once when the engine is built.  Queries are encoded by the model into
the joint space and searched in the index of the wanted result modality; cosine scores follow
the index's metric (see :mod:`jointspace.index.faiss_index`).  Text query embeddings are kept
in an LRU cache, so a repeated text skips the text tower.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..index.results import search_with_metadata, with_metadata

RAW_MODALITIES = ("image", "text", "audio")
#: the index info field holding the digest of the saved model it was built with
MODEL_DIGEST = "model_sha256"
MEDIA_BATCH = 8   # largest batch of image / audio queries
#: held while an IVF index's id -> list map is built and read (requests run in threads)
_DIRECT_MAP_LOCK = threading.Lock()


class LRUCache:
    """A small thread-safe LRU mapping (key -> value) with hit / miss counts."""

    def __init__(self, maxsize: int = 1024):
        self.maxsize = int(maxsize)
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key, value) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict:
        return {"size": len(self._data), "maxsize": self.maxsize, "hits": self.hits, "misses": self.misses}


class SearchEngine:
    """A loaded model plus its indexes, answering queries in the joint space.

    Parameters
    ----------
    index_dirs : path or list of paths
        Index folders (from ``jointspace index``); each records the modality it holds in
        ``index.info["modality"]``.  The first one is the default result modality.
    model_dir : path, optional
        The saved model folder (default: the one the first index records).
    cache_size : int
        Number of text query embeddings kept (0 disables the cache).
    max_k : int
        Largest accepted ``k``.
    max_batch : int
        Text queries arriving together are encoded in batches of up to this many, image and
        audio queries up to ``min(max_batch, 8)`` (see :mod:`jointspace.server.batching`);
        1 encodes each alone.
    batch_wait_ms : float
        How long a batch waits for more queries after its first one.

    Attributes
    ----------
    model : JointModel
    indexes : dict of str to Index
        Result modality -> index.
    raw_modalities : tuple of str
        Modalities the model can embed from raw items (texts, image files, sound files).

    Raises
    ------
    InputError
        No index folder, two indexes of one modality, no model folder given or recorded, a
        model whose vectors are not the indexes' width, or the model folder an index was built
        with saved again since (its recorded ``model_sha256`` differs).
    """

    def __init__(self, index_dirs, model_dir=None, *, cache_size: int = 1024, max_k: int = 1000,
                 max_batch: int = 32, batch_wait_ms: float = 2.0):
        from .._validation import check_float, check_int
        from ..index.faiss_index import Index
        from ..models.base import load_model

        # checked before anything loads: max_k=0 made a server that refused every k
        cache_size = check_int(cache_size, "cache_size", low=0)
        max_k = check_int(max_k, "max_k", low=1)
        max_batch = check_int(max_batch, "max_batch", low=1)
        batch_wait_ms = check_float(batch_wait_ms, "batch_wait_ms", low=0.0)
        if isinstance(index_dirs, (str, Path)):
            index_dirs = [index_dirs]
        if not index_dirs:
            raise InputError("index: expected at least one index folder, got none")
        self.indexes: dict = {}
        self.index_dirs: dict = {}
        for folder in index_dirs:
            index = Index.load(folder)
            mod = str(index.info.get("modality") or f"items{len(self.indexes)}")
            if mod in self.indexes:
                raise InputError(f"index: two indexes hold the modality {mod!r} ({self.index_dirs[mod]}, {folder})")
            self.indexes[mod] = index
            self.index_dirs[mod] = str(folder)
        self.default_modality = next(iter(self.indexes))
        first = self.indexes[self.default_modality]
        model_dir = model_dir or first.info.get("model")
        if not model_dir:
            raise InputError("model: the index does not record its model; pass the model folder")
        self.model_dir = str(model_dir)
        self.model = load_model(model_dir)
        self._check_model_unchanged()
        self.raw_modalities = tuple(m for m in self._raw() if m in self.model.modalities_)
        for mod in self.raw_modalities:   # warm each tower up and check the dimensions agree
            # a full batch, as the batcher will send under load: the runtime sizes its buffers
            # and loads its kernels now rather than on the first queries
            size = max(1, min(max_batch, 32 if mod == "text" else MEDIA_BATCH))
            dim = self.model.encode(mod, self._probe_item(mod) * size).shape[1]
            for imod, index in self.indexes.items():
                if index.dim != dim:
                    raise InputError(f"index: {self.index_dirs[imod]} holds {index.dim}-d vectors but the model "
                                     f"embeds into {dim}-d; was it built with this model?")
        if not self.raw_modalities:   # no tower to probe: a row of zeros of a width the model reads
            from ..models.probe import output_dim

            dim = output_dim(self.model, model_dir)
            for imod, index in self.indexes.items():
                if dim is not None and index.dim != dim:
                    raise InputError(f"index: {self.index_dirs[imod]} holds {index.dim}-d vectors but the model "
                                     f"embeds into {dim}-d; was it built with this model?")
        self.max_k = int(max_k)
        self.cache = LRUCache(cache_size)
        self._encode_lock = threading.Lock()
        self._batchers = {}
        if max_batch > 1:
            from .batching import Batcher

            for mod in self.raw_modalities:
                # large image batches were slower per item than small ones on a 2-core CPU
                size = max_batch if mod == "text" else min(max_batch, MEDIA_BATCH)
                self._batchers[mod] = Batcher(lambda items, mod=mod: self.model.encode(mod, items),
                                              max_batch=size, max_wait_ms=batch_wait_ms, name=f"encode-{mod}")
        self._label_ids = {m: self._collect_labels(ix) for m, ix in self.indexes.items()}
        self._labels = {m: sorted(by_label) for m, by_label in self._label_ids.items()}

    # -- set-up --------------------------------------------------------------------------------
    def _raw(self) -> tuple:
        """The model's modalities it embeds from raw items of that kind (a text, an image, a
        sound), as the model itself says (:meth:`~jointspace.models.base.JointModel.raw_kind`):
        also a default tower's, as a CLIP-style model trained on MiniLM features has."""
        return tuple(m for m in self.model.modalities_ if m in RAW_MODALITIES and self.model.raw_kind(m) == m)

    def _check_model_unchanged(self) -> None:
        """Refuse the model folder when an index built with it records a digest of it
        (``model_sha256``, written by ``jointspace index``) that it no longer has: the folder
        was saved again since, and its vectors no longer match the index's."""
        from ..models.base import saved_model_digest

        digest = None
        for mod, index in self.indexes.items():
            recorded, want = index.info.get("model"), index.info.get(MODEL_DIGEST)
            if not recorded or not isinstance(want, str) or not _same_folder(self.model_dir, recorded):
                continue
            digest = digest or saved_model_digest(self.model_dir)
            if digest != want:
                raise InputError(f"index: {self.index_dirs[mod]}: the model at {str(recorded)!r} was saved again "
                                 "after this index was built, so its vectors no longer match the index's; build "
                                 "the index again with 'jointspace index', or pass the model it was built with")

    @staticmethod
    def _probe_item(modality: str):
        """A tiny raw item (in a list) that loads the tower's network before the first query."""
        if modality == "text":
            return ["warm up"]
        if modality == "image":
            return [np.full((32, 32, 3), 255, np.uint8)]
        return [np.zeros(4000, np.float32)]

    @staticmethod
    def _collect_labels(index) -> dict:
        """label -> ids (int64 array) of the items that carry it."""
        by_label: dict = {}
        ids = index.ids
        for s in range(0, ids.size, 5000):
            for i, row in zip(ids[s:s + 5000], index.metadata(ids[s:s + 5000])):
                lab = (row or {}).get("label")
                for value in (lab if isinstance(lab, list) else [] if lab is None else [lab]):
                    by_label.setdefault(str(value), []).append(int(i))
        return {lab: np.asarray(v, dtype=np.int64) for lab, v in by_label.items()}

    # -- information ---------------------------------------------------------------------------
    def labels(self, modality: str | None = None) -> list:
        return list(self._labels[self.result_modality(modality)])

    def info(self) -> dict:
        model = self.model
        return {
            "model": {"name": model.model_name, "display_name": model.display_name, "folder": Path(self.model_dir).name, "modalities": list(model.modalities_),
                      "raw_query_modalities": list(self.raw_modalities),
                      "towers": dict(getattr(model, "towers", {}) or {})},
            "indexes": {m: {"folder": Path(self.index_dirs[m]).name, "ntotal": ix.ntotal, "dim": ix.dim,
                            "spec": ix.resolved_spec, "metric": ix.metric, "labels": len(self._labels[m]),
                            "info": _public_info(ix.info)}
                        for m, ix in self.indexes.items()},
            "default_modality": self.default_modality,
            "max_k": self.max_k,
            "cache": self.cache.stats(),
            "batching": {m: b.stats() for m, b in self._batchers.items()},
        }

    def result_modality(self, modality: str | None) -> str:
        if modality is None or modality == "":
            return self.default_modality
        if modality not in self.indexes:
            raise InputError(f"modality: this server has indexes of {', '.join(self.indexes)}; got {modality!r}")
        return modality

    def check_k(self, k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= self.max_k:
            raise InputError(f"k: expected an integer from 1 to {self.max_k}, got {k!r}")
        return int(k)

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, modality: str, item, *, use_cache: bool = True) -> tuple[np.ndarray, dict]:
        """Embed one raw query item; returns the (d,) vector and timings (ms, cache hit)."""
        if modality not in self.raw_modalities:
            can = ", ".join(self.raw_modalities) or "none"
            raise InputError(f"query: this model cannot embed a raw {modality} query (it embeds raw {can} "
                             "queries)")
        key = (modality, item) if modality == "text" and use_cache else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit, {"encode_ms": 0.0, "cached": True}
        t0 = time.perf_counter()
        if modality in self._batchers:
            vec, batch = self._batchers[modality](item)
        else:
            with self._encode_lock:   # one forward pass at a time: the tower already uses every core
                vec, batch = self.model.encode(modality, [item])[0], 1
        ms = (time.perf_counter() - t0) * 1000
        if key is not None:
            self.cache.put(key, vec)
        return vec, {"encode_ms": ms, "cached": False, "batch": batch}

    def item_vector(self, modality: str, item_id: int) -> np.ndarray:
        """The stored vector of an indexed item (reconstructed by FAISS, else re-embedded); an
        :class:`InputError` where it is neither (a fast-scan index of a feature-vector model)."""
        modality = self.result_modality(modality)
        index = self.indexes[modality]
        meta = self.item(modality, item_id)
        vec = _reconstruct(index, item_id)
        if vec is not None:
            return vec
        if modality in self.raw_modalities:
            source = meta.get("text") if modality == "text" else meta.get("path")
            if source:
                try:
                    return self.model.encode(modality, [source])[0]
                except InputError as exc:   # the server's file, not the request: named by its file name only
                    if modality == "text":
                        raise
                    name = Path(source).name
                    reason = re.sub(r"^items\[0\](?: \([^)]*\))?: ", "", str(exc).replace(str(source), name))
                    raise LookupError(f"item {item_id}: its file {name} cannot be read on the server to embed it "
                                      f"again ({reason})") from None
        # what this index and model can do (a fast-scan index of a feature-vector model), not a fault: 422
        raise InputError(f"item {item_id}: its vector cannot be read back from this index "
                         f"({index.resolved_spec}) nor re-embedded")

    # -- searching -----------------------------------------------------------------------------
    def search(self, vector: np.ndarray, *, k: int, modality: str | None = None, label: str | None = None,
               exclude: int | None = None) -> tuple[list, float]:
        """The ``k`` best items for a query vector; returns (results, search ms).

        ``label`` keeps only items with that label, searched by widening ``k`` until enough
        are found; when an approximate index (HNSW, IVF) never reaches some of them, the
        label's items are scored exhaustively from their stored vectors instead (or, where it
        keeps none to read back, by the index visiting every inverted list).  ``exclude`` drops
        one id (the query item).
        """
        k = self.check_k(k)
        modality = self.result_modality(modality)
        index = self.indexes[modality]
        if label is not None and label not in self._labels[modality]:
            raise InputError(f"label: no item of this index has the label {label!r}")
        t0 = time.perf_counter()
        want = k + (exclude is not None)
        fetch = want if label is None else min(index.ntotal, max(4 * want, 64))
        query = np.asarray(vector, np.float32)[None, :]
        rows = _widening(index, query, k, fetch, label, exclude)
        if label is not None:
            members = self._label_ids[modality][label]
            if exclude is not None:
                members = members[members != exclude]
            if len(rows) < min(k, members.size):
                exact = _exact_hits(index, query, members)
                every = _every_list(index) if exact is None else None
                if every is not None:   # no vectors to read back: the index's own scores, every list visited
                    exact = _widening(index, query, k, fetch, label, exclude, params=every)
                rows = exact or rows
        ms = (time.perf_counter() - t0) * 1000
        return [self._result(modality, h["score"], h) for h in rows[:k]], ms

    def item(self, modality: str | None, item_id: int) -> dict:
        modality = self.result_modality(modality)
        index = self.indexes[modality]
        meta = None
        if 0 <= int(item_id) < 2 ** 63:
            try:
                meta = index.metadata([int(item_id)])[0]
            except InputError:
                meta = None
        if meta is None:
            raise LookupError(f"item {item_id}: no such item in the {modality} index")
        return meta

    def media_path(self, modality: str | None, item_id: int) -> Path:
        """The registered file of an item (only ever a path from the index metadata)."""
        modality = self.result_modality(modality)
        meta = self.item(modality, item_id)
        path = meta.get("path")
        if not path:
            raise LookupError(f"item {item_id}: it has no media file")
        p = Path(path)
        if not p.is_file():
            raise LookupError(f"item {item_id}: its media file is missing on the server")
        return p

    def _result(self, modality: str, score: float, meta: dict) -> dict:
        extra = meta.get("extra") or {}
        has_media = bool(meta.get("path"))
        return {"id": meta["id"], "score": score, "label": _label_text(meta.get("label")),
                "text": meta.get("text"), "title": extra.get("title") or meta.get("text"), "modality": modality,
                "item_id": extra.get("item_id"), "copies": len(extra.get("copies") or [None]),
                "media_url": f"/api/items/{meta['id']}/media?modality={modality}" if has_media else None}


def _same_folder(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _public_info(info: dict) -> dict:
    """An index's notes as clients see them: without the model folder, and a collection read
    from a file (``dataset``, also in each ``appended`` entry) named by its file name only, as
    items are: the server's file system stays private."""
    def named(entry):
        data = entry.get("dataset") if isinstance(entry, dict) else None
        if isinstance(data, str) and not entry.get("dataset_builtin") and ("/" in data or "\\" in data):
            return {**entry, "dataset": re.split(r"[/\\]", data.rstrip("/\\"))[-1]}
        return entry

    out = named({k: v for k, v in info.items() if k != "model"})
    if isinstance(out.get("appended"), list):
        out["appended"] = [named(e) for e in out["appended"]]
    return out


def _label_text(label):
    if label is None:
        return None
    if isinstance(label, list):
        return ", ".join(str(v) for v in label)
    return str(label)


def _has_label(meta: dict, label: str) -> bool:
    lab = meta.get("label")
    if isinstance(lab, list):
        return label in [str(v) for v in lab]
    return lab is not None and str(lab) == label


def _widening(index, query: np.ndarray, k: int, fetch: int, label, exclude, params=None) -> list:
    """Hits for ``query`` (1, d) that carry ``label`` (None: any) and are not ``exclude``, asking
    the index for ``fetch`` and then four times as many until ``k`` pass or every item was asked."""
    while True:
        hits = search_with_metadata(index, query, k=max(1, fetch), **({"params": params} if params else {}))[0]
        rows = [h for h in hits if h["id"] != exclude and (label is None or _has_label(h, label))]
        if len(rows) >= k or fetch >= index.ntotal:
            return rows
        fetch = min(index.ntotal, fetch * 4)


def _every_list(index) -> dict | None:
    """Search settings that visit every inverted list of an IVF index; None for other indexes."""
    import faiss

    top = getattr(index, "_faiss", None)
    ivf = None if top is None else faiss.try_extract_index_ivf(top)
    return None if ivf is None else {"nprobe": int(ivf.nlist)}


def _exact_hits(index, query: np.ndarray, ids: np.ndarray) -> list | None:
    """``ids`` ranked by their stored vectors' scores against ``query`` (1, d), in the index's
    metric and in :func:`~jointspace.index.results.search_with_metadata`'s format; None when
    the index keeps no vectors to read back."""
    vecs = [_reconstruct(index, int(i)) for i in ids]
    if any(v is None for v in vecs):
        return None
    x, q = np.vstack(vecs), query[0].astype(np.float64)
    if index.metric == "cosine":
        q = q / max(np.linalg.norm(q), 1e-12)
    scores = ((x - q) ** 2).sum(1) if index.metric == "l2" else x @ q
    order = np.argsort(-scores if index.higher_is_better else scores, kind="stable")
    return with_metadata(index, scores[order], ids[order])


def _reconstruct(index, item_id: int):
    """The stored vector of ``item_id`` where the index keeps one, else None: the exact vector
    an on-disk index keeps for re-ranking, else FAISS's (decoded from its codes for PQ / SQ),
    read from the shard holding it in a sharded index."""
    import faiss

    if callable(getattr(index, "shard_of", None)):   # a ShardedIndex: the shard that holds the id keeps its vector
        shard = index.shard_of(item_id)
        return None if shard is None else _reconstruct(shard, item_id)
    stored = getattr(index, "_stored", None)
    exact = None if stored is None else stored.vector(item_id)
    if exact is not None:
        return exact
    top = getattr(index, "_faiss", None)
    if top is None:
        return None
    try:
        if isinstance(top, faiss.IndexIDMap2):
            return np.asarray(top.reconstruct(int(item_id)), np.float32)
        ivf = faiss.try_extract_index_ivf(top)
        if ivf is not None:
            if isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFastScan):
                # FAISS's reconstruction of an IVF fast-scan index read from disk kills the
                # process (a segmentation fault, not an exception): such vectors are never read back
                return None
            with _DIRECT_MAP_LOCK:   # FAISS marks the map built before it fills it: no read meanwhile
                if ivf.direct_map.type == 0:
                    ids = index.ids   # an array map takes only the ids 0 .. n-1; other ids need a hash map
                    sequential = ids.size == ivf.ntotal and (ids.size == 0 or ids[-1] == ids.size - 1)
                    ivf.set_direct_map_type(faiss.DirectMap.Array if sequential else faiss.DirectMap.Hashtable)
                return np.asarray(top.reconstruct(int(item_id)), np.float32)
        return np.asarray(top.reconstruct(int(item_id)), np.float32)
    except (RuntimeError, AttributeError):
        return None
