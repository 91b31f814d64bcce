"""The per-user cache folder for derived files (renderings, synthesised speech, ...).

The folder is ``$JOINTSPACE_CACHE`` or ``~/.cache/jointspace``.  File names are content
keys (a hash of everything the file depends on), so a changed input or setting makes a new
file instead of reusing a stale one.  Each namespace keeps an index of the byte size of
every file it wrote; a file missing from the index, or whose size differs (truncated,
half-copied), is not trusted and is made again.  Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

from .._io import atomic_write_json
from ..errors import InputError

ENV_VAR = "JOINTSPACE_CACHE"
INDEX_NAME = "_index.json"


def cache_root() -> Path:
    """The cache folder: ``$JOINTSPACE_CACHE`` if set, else ``~/.cache/jointspace``."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "jointspace"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
        return True
    except OSError:
        return False


def cache_dir(namespace: str) -> Path:
    """A writable folder ``<cache root>/<namespace>``.

    When the configured cache cannot be written (read-only disk or folder), a folder under
    the system temporary directory is used instead, with a warning, so work still runs.
    """
    if not namespace or "/" in namespace or namespace.startswith("."):
        raise InputError(f"namespace: expected a plain folder name, got {namespace!r}")
    folder = cache_root() / namespace
    if _writable(folder):
        return folder
    fallback = Path(tempfile.gettempdir()) / f"jointspace-cache-{os.getuid()}" / namespace
    if not _writable(fallback):
        raise InputError(f"{ENV_VAR}: cache folder {str(folder)!r} is not writable and neither is "
                         f"{str(fallback)!r}; set {ENV_VAR} to a writable folder")
    warnings.warn(f"cache folder {folder} is not writable; using {fallback}", RuntimeWarning, stacklevel=2)
    return fallback


def check_folder_arg(value, name: str) -> Path:
    """``value`` as a :class:`~pathlib.Path` (``~`` expanded) if it is a str or path-like.

    Options given as JSON on the command line turn a bare number into an int
    (``--option root=2024``); that is refused here with a message naming ``name`` rather
    than failing later inside :class:`pathlib.Path`.

    Raises
    ------
    InputError
        ``value`` is not a str or ``os.PathLike``, or is an empty string.
    """
    if not isinstance(value, (str, os.PathLike)):
        hint = ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            hint = (f"; a folder named with digits must be given as a JSON string, "
                    f"e.g. --option '{name}=\"{value}\"'")
        raise InputError(f"{name}: expected a folder path (a string), got {value!r} ({type(value).__name__}){hint}")
    if isinstance(value, str) and not value.strip():
        raise InputError(f"{name}: expected a folder path, got an empty string")
    return Path(value).expanduser()


def content_key(*parts, length: int = 20) -> str:
    """A short hex SHA-256 key of ``parts`` (bytes, str, numbers, or JSON-able values).

    Each part is length-prefixed so that ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            b = part
        elif isinstance(part, str):
            b = part.encode("utf-8")
        else:
            b = json.dumps(part, sort_keys=True, default=str).encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:length]


def file_digest(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


class FileCache:
    """Content-keyed files in one namespace of the cache, with a size index.

    Parameters
    ----------
    namespace : str
        Sub-folder of the cache root (e.g. ``"openclipart-png"``).
    folder : str or path-like, optional
        Use this folder instead of the cache root (tests, explicit ``cache_dir=`` options);
        anything else (an int from a JSON option) is an :class:`InputError` naming ``cache_dir``.
    """

    def __init__(self, namespace: str, folder=None):
        if folder is None:
            self.folder = cache_dir(namespace)
        else:
            self.folder = check_folder_arg(folder, "cache_dir")
            if not _writable(self.folder):
                raise InputError(f"cache_dir: folder {str(self.folder)!r} is not writable")
        self._index = self._read_index()
        self._dirty = False

    def _read_index(self) -> dict:
        try:
            data = json.loads((self.folder / INDEX_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, int)}

    def path(self, key: str, suffix: str) -> Path:
        """Where the file for ``key`` lives (it may not exist yet)."""
        return self.folder / f"{key}{suffix}"

    def is_valid(self, path) -> bool:
        """True when ``path`` was written by this cache and still has the recorded size."""
        path = Path(path)
        size = self._index.get(path.name)
        if size is None:
            return False
        try:
            return path.stat().st_size == size and path.is_file()
        except OSError:
            return False

    def record(self, path) -> None:
        """Record a complete file written into the folder (by this process or a worker)."""
        path = Path(path)
        self._index[path.name] = path.stat().st_size
        self._dirty = True

    def forget(self, path) -> None:
        """Drop ``path`` from the index and delete it if possible (an untrusted file)."""
        path = Path(path)
        if self._index.pop(path.name, None) is not None:
            self._dirty = True
        try:
            path.unlink()
        except OSError:
            pass

    def flush(self) -> None:
        """Write the index (merged with what other processes recorded meanwhile)."""
        if not self._dirty:
            return
        merged = self._read_index()
        merged.update(self._index)
        try:
            atomic_write_json(self.folder / INDEX_NAME, merged)
        except OSError as exc:
            warnings.warn(f"could not write cache index in {self.folder}: {exc}", RuntimeWarning, stacklevel=2)
        self._index = merged
        self._dirty = False

    def __len__(self) -> int:
        return len(self._index)
