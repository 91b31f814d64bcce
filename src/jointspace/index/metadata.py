"""Per-vector metadata (label, text, file path, free JSON extras) in SQLite, keyed by id.

The store lives in an in-memory SQLite database while an index is in use and is copied to
``metadata.sqlite`` (SQLite's online backup) when the index is saved, so the file on disk is
always a complete database and the live index never holds it open.

Table ``items``: ``id INTEGER PRIMARY KEY``, ``label`` (JSON text: an int, a string, a list of
labels for multi-label data, ...), ``text``, ``path``, ``extra`` (a JSON object).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError

FIELDS = ("label", "text", "path")
SCHEMA_VERSION = 1
_CHUNK = 500


def _jsonable(value, where: str):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _dumps(value, where: str) -> str:
    try:
        return json.dumps(value, default=lambda v: _jsonable(v, where), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: expected JSON-serialisable values, got {value!r} ({exc})") from None


def _optional_str(value, where: str):
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, np.str_):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"{where}: expected a string or None, got {type(value).__name__} {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:   # e.g. a file name that is not UTF-8, read as lone surrogates
        raise InputError(f"{where}: expected text that UTF-8 can store, got {value!r}") from None
    return value


def normalize_metadata(metadata, n: int) -> list[tuple] | None:
    """Turn user metadata for ``n`` vectors into rows ``(label_json, text, path, extra_json)``.

    Parameters
    ----------
    metadata : None, sequence of n dicts (or None), or mapping of column -> sequence of n
        Keys ``label``, ``text`` and ``path`` fill their columns; ``extra`` (a dict) and every
        other key go into the JSON ``extra`` object.
    n : int
        Number of vectors being added.

    Returns
    -------
    list of tuples or None
    """
    if metadata is None:
        return None
    if isinstance(metadata, Mapping):
        cols = {}
        for key, col in metadata.items():
            if isinstance(col, (str, bytes)) or not hasattr(col, "__len__"):
                raise InputError(f"metadata[{key!r}]: expected a sequence of {n} values, got {type(col).__name__}")
            if len(col) != n:
                raise InputError(f"metadata[{key!r}]: expected {n} values (one per vector), got {len(col)}")
            cols[key] = col
        records = [{k: cols[k][i] for k in cols} for i in range(n)]
    elif isinstance(metadata, Sequence) or isinstance(metadata, np.ndarray):
        if len(metadata) != n:
            raise InputError(f"metadata: expected {n} entries (one per vector), got {len(metadata)}")
        records = list(metadata)
    else:
        raise InputError("metadata: expected a list of dicts or a dict of columns, "
                         f"got {type(metadata).__name__}")
    rows = []
    for i, rec in enumerate(records):
        if rec is None:
            rec = {}
        if not isinstance(rec, Mapping):
            raise InputError(f"metadata[{i}]: expected a dict, got {type(rec).__name__}")
        if "id" in rec:
            raise InputError(f"metadata[{i}]: the key 'id' is reserved (ids come from the ids argument)")
        extra = {}
        if rec.get("extra") is not None:
            if not isinstance(rec["extra"], Mapping):
                raise InputError(f"metadata[{i}]['extra']: expected a dict, got {type(rec['extra']).__name__}")
            extra.update(rec["extra"])
        extra.update({str(k): v for k, v in rec.items() if k not in FIELDS and k != "extra"})
        label = rec.get("label")
        rows.append((
            None if label is None else _dumps(label, f"metadata[{i}]['label']"),
            _optional_str(rec.get("text"), f"metadata[{i}]['text']"),
            _optional_str(rec.get("path"), f"metadata[{i}]['path']"),
            _dumps(extra, f"metadata[{i}]['extra']") if extra else None,
        ))
    return rows


def _loads(text, i: int, column: str):
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise InputError(f"metadata.sqlite: expected JSON text in column {column!r} of id {i}, "
                         f"got {str(text)[:60]!r}") from None
    if column == "extra" and not isinstance(value, dict):
        raise InputError(f"metadata.sqlite: expected a JSON object in column 'extra' of id {i}, "
                         f"got {type(value).__name__}")
    return value


def _text(value, i: int, column: str):
    if value is not None and not isinstance(value, str):
        raise InputError(f"metadata.sqlite: expected text or NULL in column {column!r} of id {i}, "
                         f"got {type(value).__name__} {value!r}")
    return value


class MetadataStore:
    """Metadata rows keyed by 64-bit id, in an in-memory SQLite database."""

    def __init__(self, conn: sqlite3.Connection | None = None):
        self._conn = conn if conn is not None else sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, label TEXT, "
                           "text TEXT, path TEXT, extra TEXT)")
        self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._conn.commit()

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def add(self, ids: np.ndarray, rows: list[tuple]) -> None:
        """Insert ``rows`` (from :func:`normalize_metadata`) for ``ids``; rows of all-None are skipped."""
        data = [(int(i),) + tuple(r) for i, r in zip(ids, rows) if any(v is not None for v in r)]
        with self._conn:
            self._conn.executemany("INSERT INTO items (id, label, text, path, extra) VALUES (?, ?, ?, ?, ?)", data)

    def remove(self, ids) -> None:
        """Delete the rows of ``ids`` (missing ones are ignored)."""
        ids = [int(i) for i in ids]
        with self._conn:
            for s in range(0, len(ids), _CHUNK):
                chunk = ids[s:s + _CHUNK]
                self._conn.execute(f"DELETE FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk)

    def get(self, ids) -> dict[int, dict]:
        """Rows for ``ids`` that have metadata, as ``{id: {"id", "label", "text", "path", "extra"}}``."""
        ids = sorted({int(i) for i in ids})
        out = {}
        for s in range(0, len(ids), _CHUNK):
            chunk = ids[s:s + _CHUNK]
            cur = self._conn.execute("SELECT id, label, text, path, extra FROM items "
                                     f"WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            for i, label, text, path, extra in cur:
                out[i] = {"id": i, "label": None if label is None else _loads(label, i, "label"),
                          "text": _text(text, i, "text"), "path": _text(path, i, "path"),
                          "extra": _loads(extra, i, "extra") if extra else {}}
        return out

    def replace(self, ids: np.ndarray, rows: list[tuple]) -> None:
        """Replace the rows of ``ids`` with ``rows`` (from :func:`normalize_metadata`), in one transaction."""
        data = [(int(i),) + tuple(r) for i, r in zip(ids, rows)]
        with self._conn:
            self._conn.executemany("DELETE FROM items WHERE id = ?", [(d[0],) for d in data])
            self._conn.executemany("INSERT INTO items (id, label, text, path, extra) VALUES (?, ?, ?, ?, ?)",
                                   [d for d in data if any(v is not None for v in d[1:])])

    def ids_with_path(self, path: str) -> list[int]:
        """Ids whose ``path`` column is ``path`` (exactly), in increasing order."""
        return [int(r[0]) for r in self._conn.execute("SELECT id FROM items WHERE path = ? ORDER BY id", (path,))]

    @staticmethod
    def empty_row(i: int) -> dict:
        """The row returned for an id that has no metadata."""
        return {"id": int(i), "label": None, "text": None, "path": None, "extra": {}}

    def save(self, path) -> None:
        """Write the whole database to ``path`` (a new file)."""
        dest = sqlite3.connect(os.fspath(path))
        try:
            self._conn.backup(dest)
        finally:
            dest.close()

    @classmethod
    def load(cls, path) -> "MetadataStore":
        """Read ``path`` into memory; raises :class:`InputError` if it is not a metadata database
        or fails SQLite's ``quick_check`` (damaged pages)."""
        path = os.fspath(path)
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                src.backup(conn)
            finally:
                src.close()
            cols = [r[1] for r in conn.execute("PRAGMA table_info(items)")]
            # damaged pages copy without complaint and fail only when a row on them is read
            problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
        except sqlite3.Error as exc:
            conn.close()
            raise InputError(f"folder: {path} is not a readable SQLite database ({exc})") from None
        if problems != ["ok"]:
            conn.close()
            lines = [line for p in problems for line in str(p).splitlines() if line and not line.startswith("***")]
            raise InputError(f"folder: {path} is corrupted (SQLite's quick_check: {(lines or ['failed'])[0]})")
        if cols[:1] != ["id"] or not set(FIELDS + ("extra",)) <= set(cols):
            conn.close()
            raise InputError(f"folder: {path} has no 'items' table with id, label, text, path, extra columns")
        return cls(conn)

    def close(self) -> None:
        self._conn.close()
