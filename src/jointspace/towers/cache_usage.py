"""What the embedding cache holds, and bounding it: its size per tower folder, and pruning the
chunks least recently used.

The cache never deletes a chunk by itself: chunks of old tower settings, old weights or items
since removed stay until pruned.  A chunk file's modification time is the last time it was
written or read (:class:`~jointspace.towers.cache.EmbeddingCache` refreshes it on every hit), so
pruning by age or by size removes the chunks least recently used.  Pruning is safe beside a
running ``embed``, ``index`` or ``fit``: it deletes only finished chunk files (a write in
progress is a temporary file, renamed into place when complete, and is never touched; one
a killed writer left is deleted once an hour old, as the cache itself does), it checks a
file's time again just before deleting it, and a chunk deleted under a reader is only
computed again.  Folders are kept, even empty, as a writer may be about to write into one.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from .._io import remove_stale_temporaries
from .._validation import check_float, check_int
from ..errors import InputError
from .cache import _folder, default_cache_dir

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text, name: str = "max_size") -> int:
    """Bytes from ``"500M"``, ``"2G"``, ``"1.5GB"``, ``"4096"`` (binary units: K = 1024).

    Parameters
    ----------
    text : str or int
    name : str
        The argument named in the error.

    Returns
    -------
    int, >= 0
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return check_int(text, name, low=0)
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", str(text), re.IGNORECASE)
    if not isinstance(text, str) or not m:
        raise InputError(f"{name}: expected a size in bytes such as 4096, 500M or 2G, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _root(root) -> Path:
    return default_cache_dir() if root is None else _folder(root, "root")


def _chunks(folder: Path) -> list[tuple[float, int, Path]]:
    """(modification time, bytes, path) of each finished chunk file in a tower folder."""
    out = []
    for path in folder.glob("*.safetensors"):
        try:
            st = path.stat()
        except OSError:   # deleted meanwhile
            continue
        out.append((st.st_mtime, st.st_size, path))
    return out


def _tower_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def cache_info(root=None) -> list[dict]:
    """The size of each tower folder of an embedding cache.

    Parameters
    ----------
    root : str or path, optional
        The cache folder (default :func:`~jointspace.towers.cache.default_cache_dir`).

    Returns
    -------
    list of dict
        One per tower folder, by name: ``folder`` (tower name and settings digest),
        ``chunks``, ``bytes`` and ``last_used`` (POSIX time of the chunk used last, None
        when it holds none).
    """
    rows = []
    for folder in _tower_folders(_root(root)):
        chunks = _chunks(folder)
        rows.append({"folder": folder.name, "chunks": len(chunks), "bytes": sum(c[1] for c in chunks),
                     "last_used": max((c[0] for c in chunks), default=None)})
    return rows


def prune_cache(root=None, older_than_days=None, max_size=None, dry_run: bool = False) -> dict:
    """Delete the chunks of an embedding cache least recently used.

    Parameters
    ----------
    root : str or path, optional
        The cache folder (default :func:`~jointspace.towers.cache.default_cache_dir`).
    older_than_days : float, optional
        Delete every chunk not used for this many days.
    max_size : int or str, optional
        Then delete the least recently used chunks until the cache holds at most this many
        bytes (``"500M"``, ``"2G"`` as :func:`parse_size`).
    dry_run : bool
        Count what would be deleted, delete nothing.

    Returns
    -------
    dict
        ``removed`` and ``freed`` (chunks and bytes deleted), ``kept`` and ``bytes`` (what
        the cache holds after).
    """
    if older_than_days is None and max_size is None:
        raise InputError("prune_cache: expected older_than_days, max_size or both, got neither")
    cutoff = None
    if older_than_days is not None:
        cutoff = time.time() - 86400.0 * check_float(older_than_days, "older_than_days", low=0)
    limit = None if max_size is None else parse_size(max_size, "max_size")
    root = _root(root)
    chunks = []
    for folder in _tower_folders(root):
        if not dry_run:
            remove_stale_temporaries(folder)
        chunks += _chunks(folder)
    chunks.sort(key=lambda c: c[0])   # least recently used first
    total = sum(c[1] for c in chunks)
    removed = freed = 0
    for mtime, size, path in chunks:
        old = cutoff is not None and mtime < cutoff
        if not old and (limit is None or total - freed <= limit):
            break
        if not dry_run and not _remove_if_unused_since(path, mtime):
            continue
        removed += 1
        freed += size
    return {"removed": removed, "freed": freed, "kept": len(chunks) - removed, "bytes": total - freed}


def _remove_if_unused_since(path: Path, mtime: float) -> bool:
    """Delete ``path`` unless it was used (read or rewritten) after ``mtime``, or is gone."""
    try:
        if path.stat().st_mtime > mtime:
            return False
        os.unlink(path)
    except OSError:
        return False
    return True
