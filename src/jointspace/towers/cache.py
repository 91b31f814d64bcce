"""On-disk cache of tower outputs: a dataset goes through a frozen tower once.

Layout::

    <root>/<tower name>-<settings digest>/<chunk digest>.safetensors

Items are split into chunks by their content (content-defined chunking): a chunk ends after
an item whose digest, read as an integer, is a multiple of a divisor set by ``chunk_size``,
provided the chunk holds at least ``chunk_size // 4`` items, and in any case once it holds
``4 * chunk_size`` items, so chunks hold ``chunk_size`` items on average (see
:func:`chunk_bounds`).  A boundary therefore stays where it was when items are inserted,
removed or reordered elsewhere: adding a file that sorts first in a folder, or deleting one
in the middle, recomputes only the chunk around it (two when the item inserted or removed is
one that ends a chunk), not every chunk after it.  A chunk's digest hashes the
tower's key (name, settings and the pretrained weights files it loads, see
:meth:`~jointspace.towers.base.Tower.cache_key`; the current weights for trainable towers)
and the *content* of its items (file bytes for paths, UTF-8 text for strings, pixels /
samples for arrays), so a renamed file still hits and an edited one misses.  A chunk file
holds the tower's output for exactly the items its digest names, whatever rule cut them, so
the file format carries no version: a cache written when chunks were runs of ``chunk_size``
consecutive items is still read correctly, but only its chunks the new rule cuts again are
hits (every collection of at most ``chunk_size // 4`` items); larger collections miss
once and are cached again.  Each chunk file is written atomically as
soon as it is computed, so an interrupted run resumes where it stopped.  A chunk file is
trusted only if it loads, names the same chunk digest, has the expected shape and its data
checksum matches; otherwise it is recomputed.  The temporary file a run killed mid-write
leaves behind is deleted by the next run that writes to the folder, once it is an hour old.
If the folder cannot be written (read-only, full disk) the vectors are still computed and
returned, with one warning.  A hit sets the chunk file's modification time to now, so the
chunks least recently used are the ones :func:`~jointspace.towers.cache_usage.prune_cache`
(``jointspace cache prune``) removes; nothing is ever deleted otherwise.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from .._file_digests import file_cache_hasher
from .._io import atomic_write_bytes, remove_stale_temporaries
from .._validation import check_int
from ..errors import InputError
from .._progress import progress_bar
from .base import Tower
from .inputs import SVG_RENDERING, _is_pil, check_items, load_image


def default_cache_dir() -> Path:
    """``$JOINTSPACE_CACHE/embeddings``, default ``~/.cache/jointspace/embeddings``."""
    env = os.environ.get("JOINTSPACE_CACHE", "").strip()
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "jointspace"
    return base / "embeddings"


def item_digest(item, modality: str = "image", where: str = "item") -> bytes:
    """A 16-byte digest of one item's content (not its name).

    Strings are texts for the ``"text"`` modality and file paths otherwise.  PIL images are
    hashed by their decoded RGB pixels (:func:`~jointspace.towers.inputs.load_image`, what
    the image towers see), so palette and transparency count; ``where`` names the item in
    the error raised for an image that cannot be decoded.
    """
    h = hashlib.blake2b(digest_size=16)
    if isinstance(item, str) and modality == "text":
        h.update(b"text\0" + item.encode("utf-8"))
    elif isinstance(item, (str, os.PathLike)):
        h = file_cache_hasher(item)   # b"file\0" and the bytes, read once inside read_once()
        if modality == "image":
            # keyed apart from vectors cached when the picture was read as stored: turned upright
            # (EXIF), its transparent colour key (tRNS) composited on white
            turn, keyed = _file_header(item)
            if turn != 1:
                h.update(f"\0upright-{turn}".encode())
            if keyed:
                h.update(b"\0transparent-colour-on-white")
            if Path(item).suffix.lower() == ".svg":
                h.update(f"\0{SVG_RENDERING}".encode())
    elif isinstance(item, np.ndarray):
        arr = np.ascontiguousarray(item)
        h.update(f"array\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
        if modality == "image" and arr.ndim == 3 and arr.shape[2] == 4 and arr.dtype.kind in "fb":
            h.update(b"\0alpha-fraction")   # keyed apart from vectors cached when its alpha was read as 0-255
    elif _is_pil(item):
        # the pixels the towers see: a palette image's raw bytes are only palette indices,
        # so two images with other palettes (or transparency) would otherwise share a key
        arr = load_image(item, where)
        h.update(f"pil-rgb\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    else:
        h.update(b"repr\0" + repr(item).encode())
    return h.digest()


def _file_header(path) -> tuple[int, bool]:
    """The EXIF orientation of an image file (1 when it has none, or is not an image PIL opens),
    and whether it is a grayscale or RGB image with a transparent colour (a tRNS key)."""
    from PIL import Image

    from .inputs import exif_orientation

    try:
        with Image.open(path) as img:   # reads the header only
            keyed = img.mode in ("L", "RGB") and "transparency" in img.info
            if img.format == "PNG" and "exif" not in img.info:
                return 1, keyed   # PIL would decode every pixel looking for an eXIf chunk after the image data
            return exif_orientation(img), keyed
    except Exception:  # noqa: BLE001 - not an image: load_image names the problem when it decodes it
        return 1, False


def chunk_bounds(digests, chunk_size: int) -> list[tuple[int, int]]:
    """Where the cache cuts a sequence of items into chunks, from their digests alone.

    A chunk ends after an item whose digest, read as a big-endian integer, is a multiple of
    ``chunk_size - low + 1`` once the chunk holds at least ``low = max(1, chunk_size // 4)``
    items, and in any case once it holds ``4 * chunk_size`` items; the last chunk ends with
    the items.  The expected length of a chunk is ``chunk_size``; a chunk is cut at the bound
    (a boundary that depends on position) with probability about ``exp(-5)``.

    Parameters
    ----------
    digests : sequence of n bytes
        :func:`item_digest` of each item, in order.
    chunk_size : int
        Average items per chunk, >= 1.

    Returns
    -------
    list of (start, stop)
        Consecutive half-open ranges covering ``range(n)``.

    Examples
    --------
    >>> chunk_bounds([bytes([i]) for i in range(6)], chunk_size=1)
    [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    """
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    low = max(1, chunk_size // 4)
    divisor, high = chunk_size - low + 1, 4 * chunk_size
    bounds, start = [], 0
    for i, d in enumerate(digests):
        length = i + 1 - start
        if length >= high or (length >= low and int.from_bytes(d, "big") % divisor == 0):
            bounds.append((start, i + 1))
            start = i + 1
    if start < len(digests):
        bounds.append((start, len(digests)))
    return bounds


class EmbeddingCache:
    """Cache of tower outputs in a folder.

    Parameters
    ----------
    root : str or path, optional
        Folder of the cache (default :func:`default_cache_dir`).
    chunk_size : int
        Average items per chunk file, the unit of resuming an interrupted run: chunks are cut
        by their items' content and hold between ``chunk_size // 4`` (at least 1) and
        ``4 * chunk_size`` items, except the last (see :func:`chunk_bounds`).

    Examples
    --------
    >>> cache = EmbeddingCache("/tmp/emb")                        # doctest: +SKIP
    >>> x = cache.embed(create_tower("minilm"), ["a cat", "a dog"])  # doctest: +SKIP
    """

    def __init__(self, root=None, chunk_size: int = 512):
        self.root = _folder(root, "root") if root is not None else default_cache_dir()
        self.chunk_size = check_int(chunk_size, "chunk_size", low=1)
        self._warned = False
        self._swept: set = set()
        self.hits = 0
        self.misses = 0

    def folder(self, tower: Tower, key: str | None = None) -> Path:
        """The folder holding one tower-and-settings' chunks (``key``: ``tower.cache_key()``,
        when already computed; a trainable tower's key hashes all its weights)."""
        return self.root / f"{tower.name}-{(key or tower.cache_key())[:16]}"

    def embed(self, tower: Tower, items, batch_size: int | None = None, progress: bool = True) -> np.ndarray:
        """Tower outputs for ``items``, read from the cache where present, computed otherwise.

        Parameters
        ----------
        tower : Tower
        items : sequence of n raw items (as :meth:`Tower.embed`)
        batch_size : int, optional
        progress : bool

        Returns
        -------
        vectors : ndarray of float32, shape (n, tower.out_dim)
            ``tower.embed`` of each chunk (:func:`chunk_bounds`) in turn, as computed when the
            chunk was cached: identical to ``tower.embed(items)`` when each item's vector
            depends on that item alone; a tower whose batches are composed from all the
            items it is given (MiniLM sorts texts by length and pads each batch to its
            longest) can differ from ``tower.embed(items)`` by rounding (below 1e-6).
        """
        items = check_items(tower.modality, items)
        if tower.modality == "features":
            items = list(items)
        tower_key = tower.cache_key()
        key = tower_key.encode()
        digests = [item_digest(it, tower.modality, f"items[{i}]") for i, it in enumerate(items)]
        n = len(items)
        out = np.empty((n, tower.out_dim), dtype=np.float32)
        folder = self.folder(tower, tower_key)
        with progress_bar(tower.name, n, enabled=progress and n > self.chunk_size) as advance:
            for start, stop in chunk_bounds(digests, self.chunk_size):
                h = hashlib.blake2b(key, digest_size=20)
                for d in digests[start:stop]:
                    h.update(d)
                chunk_key = h.hexdigest()
                path = folder / f"{chunk_key}.safetensors"
                vec = self._read(path, chunk_key, (stop - start, tower.out_dim))
                if vec is None:
                    self.misses += 1
                    chunk = items[start:stop]
                    if isinstance(chunk, list) and tower.modality == "features":
                        chunk = np.stack(chunk)
                    vec = tower.embed(chunk, batch_size=batch_size, progress=False)
                    self._write(path, chunk_key, vec)
                else:
                    self.hits += 1
                    _mark_used(path)
                out[start:stop] = vec
                advance(stop - start)
        return out

    # -- one chunk file --------------------------------------------------------------------
    @staticmethod
    def _read(path: Path, chunk_key: str, shape) -> np.ndarray | None:
        if not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                vec = fh.get_tensor("vectors")
        except Exception:
            return None  # truncated or not a safetensors file: recompute
        if (meta.get("chunk") != chunk_key or vec.shape != tuple(shape) or vec.dtype != np.float32
                or meta.get("sha256") != hashlib.sha256(vec.tobytes()).hexdigest()):
            return None
        return vec

    def _write(self, path: Path, chunk_key: str, vec: np.ndarray) -> None:
        if self._warned:
            return
        from safetensors.numpy import save

        vec = np.ascontiguousarray(vec, dtype=np.float32)
        meta = {"chunk": chunk_key, "sha256": hashlib.sha256(vec.tobytes()).hexdigest()}
        try:
            atomic_write_bytes(path, save({"vectors": vec}, metadata=meta))
            if path.parent not in self._swept:   # once per folder: what killed runs left
                self._swept.add(path.parent)
                remove_stale_temporaries(path.parent)
        except OSError as exc:
            self._warned = True
            warnings.warn(f"embedding cache {str(self.root)!r} is not writable ({exc.strerror or exc}); "
                          "vectors are computed but not cached", RuntimeWarning, stacklevel=3)


def _mark_used(path: Path) -> None:
    """Set a chunk's modification time to now: pruning removes the chunks least recently used."""
    try:
        os.utime(path)
    except OSError:   # a read-only cache is still read
        pass


def _folder(value, name: str) -> Path:
    """A cache folder given by its name; an empty or blank name would be the current folder, and
    an existing file cannot hold one."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, os.PathLike)):
        raise InputError(f"{name}: expected True (the default folder), False (no cache), a folder or an "
                         f"EmbeddingCache, got {value!r}")
    if not str(value).strip():
        raise InputError(f"{name}: expected a folder, got {str(value)!r}; pass False for no cache")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():   # nothing could be cached in it
        raise InputError(f"{name}: expected a folder, got the file {str(value)!r}")
    return path


def embed_cached(tower: Tower, items, cache=True, batch_size: int | None = None,
                 progress: bool = True) -> np.ndarray:
    """Embed ``items`` through ``tower``, through the on-disk cache unless ``cache`` is False.

    Parameters
    ----------
    tower : Tower
    items : sequence of n raw items
    cache : bool, str, path or EmbeddingCache
        True: the default cache folder; a path: that folder; False/None: no cache.

    Returns
    -------
    ndarray of float32, shape (n, tower.out_dim)
    """
    if isinstance(cache, (bool, np.bool_)):
        cache = bool(cache)
    if cache is None or cache is False:
        return tower.embed(items, batch_size=batch_size, progress=progress)
    if not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache(None if cache is True else _folder(cache, "cache"))
    return cache.embed(tower, items, batch_size=batch_size, progress=progress)
