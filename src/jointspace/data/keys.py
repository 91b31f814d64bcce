"""Keys that decide which samples are the same: a normalised caption and a content hash.

``caption_key`` groups near-duplicate captions ("Star 12", "star_13") so that a split
keeps them on one side and evaluation can count them as relevant to each other;
``normalise_title`` is its ASCII form, from which the OpenClipart splits are drawn;
``content_hash`` finds the same file reached by several paths.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import numpy as np

from .._file_digests import file_sha256


def normalise_title(title: str) -> str:
    """The grouping key of an OpenClipart title (its splits are drawn from it).

    Lower-case; every run of characters other than the ASCII letters and digits becomes one
    space (so ``"Bär"`` and ``"Bür"`` are both ``"b r"``: :func:`caption_key` keeps every
    script's letters); trailing number tokens are dropped (``"Star 12"`` and ``"star_13"`` ->
    ``"star"``); whitespace collapsed.

    >>> normalise_title("  Clipart by Nicu - jigsaw_red_10 ")
    'clipart by nicu jigsaw red'
    """
    t = re.sub(r"[^0-9a-z]+", " ", str(title).lower())
    t = re.sub(r"(?:\s+\d+)+\s*$", "", " " + t)
    return " ".join(t.split())


def caption_key(caption: str) -> str:
    """The grouping key of a caption of a user's collection.

    As :func:`normalise_title`, with the letters and digits of every script kept: the text is
    NFKC-normalised (a decomposed ``"é"``, as macOS file names store it, is one letter) and
    case-folded; every run of other characters becomes one space; trailing number tokens are
    dropped; whitespace collapsed.  A caption with no letter (``"2024"``) is its own
    case-folded text.

    >>> caption_key("Bär_12"), caption_key("BÜR 3"), caption_key("Straße")
    ('bär', 'bür', 'strasse')
    """
    text = unicodedata.normalize("NFKC", str(caption)).casefold()
    t = re.sub(r"[\W_]+", " ", text)
    t = re.sub(r"(?:\s+\d+)+\s*$", "", " " + t)
    return " ".join(t.split()) or text.strip()


def content_hash(item) -> str:
    """SHA-256 (hex) of a file's bytes, or of an array row's dtype, shape and bytes.

    Parameters
    ----------
    item : str, Path or ndarray
        A file path, or one sample of an array modality.

    Returns
    -------
    str
        64 hex digits; equal for equal content whatever the path.
    """
    h = hashlib.sha256()
    if isinstance(item, np.ndarray):
        a = np.ascontiguousarray(item)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
        return h.hexdigest()
    return file_sha256(Path(item))


def content_groups(items) -> tuple[list[str], list[list[int]]]:
    """Group equal items: the same file content under several paths, or equal array rows.

    Parameters
    ----------
    items : list of N file paths, or array of shape (N, ...)

    Returns
    -------
    hashes : list of str
        One :func:`content_hash` per group, in order of first appearance.
    groups : list of list of int
        The positions of each group's items (the first is the one to keep).
    """
    seen: dict[str, int] = {}
    hashes: list[str] = []
    groups: list[list[int]] = []
    for i, item in enumerate(items):
        digest = content_hash(item)
        if digest in seen:
            groups[seen[digest]].append(i)
        else:
            seen[digest] = len(groups)
            hashes.append(digest)
            groups.append([i])
    return hashes, groups
