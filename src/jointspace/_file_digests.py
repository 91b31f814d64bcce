"""The digests a file's bytes are keyed by, read once while a command works through a collection.

A file of a collection is keyed twice: by the SHA-256 of its bytes (which files hold the same
content: :func:`jointspace.data.keys.content_hash`) and by a BLAKE2b digest of them (the
content part of its key in the embedding cache: :func:`jointspace.towers.cache.item_digest`).
Indexing a folder asks for the first twice (reading the folder, finding duplicates) and for
the second once.  Inside :func:`read_once` the first request reads the file once for both
digests and later requests reuse them while the file's size, inode and modification and change
times are unchanged; outside it each request reads the file (nothing is held in a long-running
process).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading

#: bytes read at a time
_BLOCK = 1 << 20
#: the digests of the files hashed inside :func:`read_once`: real path -> (stat, sha256, blake2b)
_remembered: dict | None = None
_depth = 0
_lock = threading.Lock()


@contextlib.contextmanager
def read_once():
    """Within this block each file is read at most once for its digests (while it is unchanged).

    The digests are forgotten when the outermost block ends; blocks may nest.
    """
    global _remembered, _depth
    with _lock:
        _depth += 1
        if _remembered is None:
            _remembered = {}
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _remembered = None


def hash_file(path, *hashers):
    """Feed a file's bytes to each of ``hashers`` (``hashlib`` objects), reading it once, a
    block at a time; returns ``hashers``."""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            for h in hashers:
                h.update(block)
    return hashers


def file_state(path) -> tuple[str, tuple]:
    """``(real path, (size, inode, modification and change times))``: a digest of the file
    kept under the real path stays valid while the second part is unchanged.  A missing file
    raises ``FileNotFoundError`` naming ``path`` as given."""
    st = os.stat(path)
    return os.path.realpath(path), (st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _read(path) -> tuple[str, "hashlib.blake2b"]:
    sha, blake = hash_file(path, hashlib.sha256(), _cache_hasher())
    return sha.hexdigest(), blake


def _cache_hasher():
    h = hashlib.blake2b(digest_size=16)
    h.update(b"file\0")
    return h


def _digests(path, which: str):
    memo = _remembered
    if memo is None:   # not remembered: only the digest asked for
        (h,) = hash_file(path, hashlib.sha256() if which == "sha256" else _cache_hasher())
        return h.hexdigest() if which == "sha256" else h
    real, seen = file_state(path)
    got = memo.get(real)
    if got is None or got[0] != seen:
        got = (seen, *_read(path))
        memo[real] = got
    return got[1] if which == "sha256" else got[2].copy()


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    return _digests(path, "sha256")


def file_cache_hasher(path):
    """A BLAKE2b hasher (16-byte digest) that has been given ``b"file\\0"`` and a file's bytes:
    the embedding cache adds what else decides an image's vector before taking its digest.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    hashlib.blake2b
        A fresh object the caller may update.
    """
    return _digests(path, "blake2b")
