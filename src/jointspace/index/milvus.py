"""A Milvus collection behind the :class:`~jointspace.index.faiss_index.Index` surface.

``MilvusIndex("vectors.db", dim=512)`` keeps the vectors in a Milvus Lite file (nothing to run
beside Python); ``MilvusIndex("http://milvus:19530", dim=512, token=...)`` talks to a Milvus
server or cluster through the same client (:class:`pymilvus.MilvusClient`).  The data lives in
Milvus, so there is no ``save``: reopening the same URI and collection is loading it.

Each entity holds ``id`` (int64, the primary key), ``vector``, ``label`` (the label as a
string, so it can be filtered), ``label_json`` (the label as given, as JSON), ``text``,
``path`` and ``extra`` (a JSON object).  :meth:`MilvusIndex.search` takes ``where`` (field ->
value or list of values, e.g. ``{"label": "cat"}``) or a raw Milvus ``filter`` expression.
Default ids follow every id the collection has held, as those of
:class:`~jointspace.index.faiss_index.Index` do: one past the largest id removed is kept in the
collection's properties (``jointspace.next_id``), so a removed item's id is never given to another.

Scores follow :meth:`Index.search`: cosine and inner product decrease, l2 (squared
distances) increase; missing results are padded with id -1.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping

import numpy as np

from .._validation import check_int
from ..errors import InputError, JointspaceError, MissingDependencyError
from ._inputs import as_id_list, as_ids, as_vectors, check_k, next_ids
from .metadata import normalize_metadata

#: jointspace metric -> Milvus metric type
METRICS = {"cosine": "COSINE", "ip": "IP", "l2": "L2"}
_FIELDS = ("label", "text", "path")
_STR_MAX = 65_535
_CHUNK = 1_000
#: the collection property holding one past the largest id removed
_NEXT_ID = "jointspace.next_id"


def _client(uri: str, token: str | None):
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise MissingDependencyError("MilvusIndex needs pymilvus (and milvus-lite for a local .db file): "
                                     "pip install 'jointspace[scale]'") from None
    try:
        return MilvusClient(uri=uri, token=token or "")
    except Exception as exc:  # pymilvus raises its own MilvusException, ConnectionError, ...
        raise JointspaceError(f"uri: could not open Milvus at {uri!r}: {str(exc).splitlines()[0]}") from None


def _literal(value, where: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer, float, np.floating)):
        return repr(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, str):
        return json.dumps(value)  # a double-quoted string with backslash escapes, as Milvus reads it
    raise InputError(f"{where}: expected a string or a number, got {type(value).__name__} {value!r}")


def where_expression(where: Mapping) -> str:
    """A Milvus filter expression from ``{field: value or list of values}`` (all must hold).

    ``label`` values are compared as strings (labels are stored as strings), so
    ``{"label": 3}`` matches an integer label 3.
    """
    if not isinstance(where, Mapping) or not where:
        raise InputError(f"where: expected a non-empty mapping of field -> value, got {where!r}")
    parts = []
    for field, value in where.items():
        if field not in ("id", *_FIELDS):
            raise InputError(f"where: expected fields among id, {', '.join(_FIELDS)}; got {field!r}")
        values = list(value) if isinstance(value, (list, tuple, set, np.ndarray)) else [value]
        if not values:
            raise InputError(f"where[{field!r}]: expected a value or a non-empty list of values, got {value!r}")
        if field == "label":
            values = [str(v.item() if isinstance(v, np.generic) else v) for v in values]
        lits = [_literal(v, f"where[{field!r}]") for v in values]
        parts.append(f"{field} == {lits[0]}" if len(lits) == 1 else f"{field} in [{', '.join(lits)}]")
    return " and ".join(parts)


def _check_lengths(rows: list) -> None:
    """Refuse a label (as stored: JSON), text or path longer than the VARCHAR fields hold."""
    for i, row in enumerate(rows):
        for field, value in zip(("label", "text", "path"), row[:3]):
            if value is not None and len(value) > _STR_MAX:
                what = "characters as JSON" if field == "label" else "characters"
                raise InputError(f"metadata[{i}][{field!r}]: expected at most {_STR_MAX} characters (a Milvus "
                                 f"VARCHAR field), got {len(value)} {what}")


class MilvusIndex:
    """Vectors, ids and metadata in a Milvus collection; searched with optional metadata filters.

    Parameters
    ----------
    uri : str or path
        A Milvus Lite file (``*.db``) or a server address (``http://host:19530``).
    dim : int, optional
        Vector dimension; needed only to create the collection (an existing one says its own).
    collection : str
        Collection name.
    metric : {"cosine", "ip", "l2"}
        Used when the collection is created.
    index_type : str
        Milvus index type when created (``"AUTOINDEX"``, ``"FLAT"``, ``"HNSW"``, ``"IVF_FLAT"`` …).
    token : str, optional
        Credentials for a server (``"user:password"`` or an API key).
    """

    def __init__(self, uri, dim: int | None = None, *, collection: str = "jointspace", metric: str = "cosine",
                 index_type: str = "AUTOINDEX", token: str | None = None):
        if metric not in METRICS:
            raise InputError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
        if not isinstance(collection, str) or not collection:
            raise InputError(f"collection: expected a non-empty name, got {collection!r}")
        self.uri, self.collection = str(uri), collection
        self._client = _client(self.uri, token)
        if self._client.has_collection(collection):
            self._dim, self._metric, self._index_type = self._describe()
            if dim is not None and check_int(dim, "dim", low=1) != self._dim:
                raise InputError(f"dim: collection {collection!r} holds {self._dim}-d vectors, got dim={dim}")
            return
        if dim is None:
            raise InputError(f"dim: collection {collection!r} does not exist at {self.uri!r}; give dim to create it")
        self._dim, self._metric, self._index_type = check_int(dim, "dim", low=1), metric, str(index_type)
        self._create()

    def _create(self) -> None:
        from pymilvus import DataType

        c = self._client
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dim)
        for name in ("label", "label_json", "text", "path"):
            schema.add_field(name, DataType.VARCHAR, max_length=_STR_MAX, nullable=True)
        schema.add_field("extra", DataType.JSON, nullable=True)
        params = c.prepare_index_params()
        params.add_index(field_name="vector", index_type=self._index_type, metric_type=METRICS[self._metric])
        try:
            c.create_collection(self.collection, schema=schema, index_params=params, consistency_level="Strong")
        except Exception as exc:
            raise JointspaceError(f"index_type: Milvus could not create {self.collection!r} with index "
                                  f"{self._index_type!r}: {str(exc).splitlines()[0]}") from None

    def _describe(self) -> tuple[int, str, str]:
        info = self._client.describe_collection(self.collection)
        fields = {f["name"]: f for f in info["fields"]}
        if "vector" not in fields or "label_json" not in fields:
            raise InputError(f"collection: {self.collection!r} at {self.uri!r} was not made by MilvusIndex "
                             f"(fields {', '.join(fields)})")
        dim = int(fields["vector"]["params"]["dim"])
        index = self._client.describe_index(self.collection, "vector")
        metric = {v: k for k, v in METRICS.items()}.get(str(index.get("metric_type", "")).upper())
        if metric is None:
            raise InputError(f"collection: {self.collection!r} has the Milvus metric {index.get('metric_type')!r}; "
                             f"expected one of {', '.join(METRICS.values())}")
        return dim, metric, str(index.get("index_type", "AUTOINDEX"))

    # --- the Index surface -------------------------------------------------------------------
    @classmethod
    def build(cls, vectors, uri, *, metric: str = "cosine", ids=None, metadata=None, **kwargs) -> "MilvusIndex":
        """A new collection at ``uri`` holding ``vectors`` (as :meth:`Index.build`)."""
        x = as_vectors(vectors, "vectors")
        index = cls(uri, x.shape[1], metric=metric, **kwargs)
        index.add(x, ids=ids, metadata=metadata)
        return index

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def spec(self) -> str:
        """``"Milvus:<index type>"``."""
        return f"Milvus:{self._index_type}"

    @property
    def higher_is_better(self) -> bool:
        return self._metric != "l2"

    @property
    def ntotal(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return f"MilvusIndex(uri={self.uri!r}, collection={self.collection!r}, dim={self._dim}, metric={self._metric!r})"

    def _existing(self, ids: np.ndarray) -> np.ndarray:
        found = []
        for s in range(0, ids.size, _CHUNK):
            rows = self._client.get(self.collection, ids=ids[s:s + _CHUNK].tolist(), output_fields=["id"])
            found += [int(r["id"]) for r in rows]
        return np.asarray(sorted(found), dtype=np.int64)

    def add(self, vectors, ids=None, metadata=None) -> np.ndarray:
        """Add vectors with ids and metadata (as :meth:`Index.add`).

        Parameters
        ----------
        vectors : array-like, shape (n, dim)
        ids : array-like of int, shape (n,), optional
            Distinct non-negative ids not yet stored; default: consecutive after the largest id
            the collection has held, so that a removed item's id is not given to another (as
            :meth:`Index.add`).
        metadata : list of n dicts or dict of columns, optional
            ``label``, ``text``, ``path``; other keys go into ``extra``.

        Returns
        -------
        numpy.ndarray of int64, shape (n,)
        """
        x = as_vectors(vectors, "vectors", self._dim)
        n = x.shape[0]
        if ids is None:
            ids = next_ids(max(self._max_id() + 1, self._recorded_next_id()), n)
        else:
            ids = as_ids(ids, n)
            clash = self._existing(ids)
            if clash.size:
                raise InputError(f"ids: {clash.size} already stored in {self.collection!r} "
                                 f"(e.g. {clash[:3].tolist()}); remove them first")
        rows = normalize_metadata(metadata, n) or [(None, None, None, None)] * n
        _check_lengths(rows)   # before the first insert: Milvus would refuse a chunk after earlier ones were stored
        for s in range(0, n, _CHUNK):
            batch = []
            for i in range(s, min(n, s + _CHUNK)):
                label_json, text, path, extra = rows[i]
                label = None if label_json is None else json.loads(label_json)
                batch.append({"id": int(ids[i]), "vector": x[i].tolist(),
                              "label": None if label is None else (label if isinstance(label, str) else
                                                                   json.dumps(label)),
                              "label_json": label_json, "text": text, "path": path,
                              "extra": json.loads(extra) if extra else None})
            self._client.insert(self.collection, batch)
        return ids

    def _max_id(self) -> int:
        # Milvus has no max(); ids are walked in pages (only when the caller gives no ids).  The
        # iterator warns on Milvus Lite that it takes the client's timestamp, which is right there.
        log = logging.getLogger("pymilvus")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            it = self._client.query_iterator(self.collection, batch_size=10_000, filter="", output_fields=["id"])
        finally:
            log.setLevel(level)
        best = -1
        try:
            while True:
                page = it.next()
                if not page:
                    return best
                best = max(best, max(int(r["id"]) for r in page))
        finally:
            it.close()

    def _recorded_next_id(self) -> int:
        """One past the largest id removed from the collection (0 when none was), recorded in its
        properties by :meth:`remove`."""
        props = self._client.describe_collection(self.collection).get("properties") or {}
        try:
            return int(props.get(_NEXT_ID, 0))
        except (TypeError, ValueError):
            return 0

    def remove(self, ids) -> int:
        """Delete ``ids``; returns how many were stored.

        One past the largest id removed is recorded in the collection's properties first, so the
        default ids of later :meth:`add` calls never give a removed id to another item.
        """
        arr = as_id_list(ids)
        present = self._existing(np.unique(arr))
        if present.size:
            after = int(present[-1]) + 1
            if after > self._recorded_next_id():
                try:
                    self._client.alter_collection_properties(self.collection, properties={_NEXT_ID: str(after)})
                except Exception as exc:  # noqa: BLE001 - a server that keeps no properties of its own
                    warnings.warn(f"Milvus collection {self.collection!r} could not record the ids removed "
                                  f"({str(exc).splitlines()[0]}); default ids may give a removed id to a new item",
                                  RuntimeWarning, stacklevel=2)
            self._client.delete(self.collection, ids=present.tolist())
        return int(present.size)

    def search(self, queries, k: int = 10, *, where: Mapping | None = None, filter: str | None = None,
               params: dict | None = None):
        """The ``k`` best stored items for each query, optionally among those matching a filter.

        Parameters
        ----------
        queries : array-like, shape (nq, dim) or (dim,)
        k : int
        where : mapping, optional
            ``{field: value or list of values}`` over ``id``, ``label``, ``text``, ``path``.
        filter : str, optional
            A raw Milvus boolean expression (e.g. ``'label in ["cat", "dog"] and id > 10'``);
            joined with ``where`` by ``and``.
        params : dict, optional
            Milvus search parameters (``{"nprobe": 16}``, ``{"ef": 64}``).

        Returns
        -------
        scores : numpy.ndarray of float32, shape (nq, k)
        ids : numpy.ndarray of int64, shape (nq, k)
        """
        q = as_vectors(queries, "queries", self._dim, allow_1d=True)
        k = check_k(k, lambda: self.ntotal)
        if filter is not None and not isinstance(filter, str):
            raise InputError(f"filter: expected a Milvus expression string, got {type(filter).__name__}")
        expr = " and ".join(f"({e})" for e in (filter, where_expression(where) if where is not None else None) if e)
        nq = q.shape[0]
        fill = -np.inf if self.higher_is_better else np.inf
        scores = np.full((nq, k), fill, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        if nq == 0:
            return scores, ids
        try:
            hits = self._client.search(self.collection, data=q.tolist(), limit=k, filter=expr,
                                       search_params={"metric_type": METRICS[self._metric], "params": params or {}},
                                       anns_field="vector", output_fields=[])
        except Exception as exc:
            raise JointspaceError(f"search in Milvus collection {self.collection!r} failed: "
                                  f"{str(exc).splitlines()[0]}") from None
        for r, row in enumerate(hits):
            for j, h in enumerate(row):
                scores[r, j], ids[r, j] = h["distance"], h["id"]
        return scores, ids

    def metadata(self, ids) -> list:
        """Metadata of ``ids`` in order: dicts with ``id``, ``label``, ``text``, ``path``, ``extra``
        (None for the padding id -1; an id not stored raises :class:`InputError`)."""
        arr = as_id_list(ids)
        want = np.unique(arr[arr != -1])
        got = {}
        for s in range(0, want.size, _CHUNK):
            for r in self._client.get(self.collection, ids=want[s:s + _CHUNK].tolist(),
                                      output_fields=["label_json", "text", "path", "extra"]):
                got[int(r["id"])] = r
        missing = [int(i) for i in want if int(i) not in got]
        if missing:
            raise InputError(f"ids: not in the collection {self.collection!r}: {missing[:5]}")
        out = []
        for i in arr.tolist():
            if i == -1:
                out.append(None)
                continue
            r = got[i]
            out.append({"id": i, "label": None if r.get("label_json") is None else json.loads(r["label_json"]),
                        "text": r.get("text"), "path": r.get("path"), "extra": r.get("extra") or {}})
        return out

    def close(self) -> None:
        """Release the client (a Milvus Lite file may then be opened by another process)."""
        self._client.close()

    def __enter__(self) -> "MilvusIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
