"""A folder of pictures (or sounds) as :class:`~jointspace.data.pairs.Pairs`.

Every image under the folder (any depth, through sub-folders that are symbolic links too;
hidden files and folders skipped) becomes one sample.  Its caption is the sidecar text file
of the same name (``cat.jpg`` + ``cat.txt``, or ``CAT.JPG`` + ``CAT.TXT``), else the words of
its file name (``red_fox-2.jpg`` -> ``"red fox 2"``).  When every file sits
in a sub-folder, the first sub-folder is its label (the layout of ``ImageFolder``).  The same
content reached by several paths is one sample, with every path kept in its metadata; its
caption is the sidecar of the first copy (in path order) that has one, else the first copy's
file name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .._validation import has_visible_text
from ..errors import InputError
from .keys import caption_key, content_hash
from .pairs import Pairs

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".svg")
#: the sounds libsndfile decodes (:func:`jointspace.towers.inputs.load_audio`) and the service plays
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
#: the suffixes of a sidecar caption file, tried in this order
SIDECAR_SUFFIXES = (".txt", ".TXT", ".Txt")
#: largest sidecar caption read (bytes); a longer one is cut there, before the character the cut splits
MAX_CAPTION_BYTES = 1 << 20


def _scan(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``root`` ending in ``suffixes``, hidden ones left out, in path order.

    A sub-folder that is a symbolic link (``cats -> /mnt/photos/cats``) is read as the folder
    it links to, as torchvision's ``ImageFolder`` reads it; a link to a folder that contains
    it (a loop) is not followed again.
    """
    found = []
    stack = [(root, frozenset({os.path.realpath(root)}))]   # a folder, and the real folders above it
    while stack:
        folder, above = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:   # a folder that cannot be listed holds nothing readable
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir():   # through a link too
                real = os.path.realpath(path)
                if real not in above:
                    stack.append((path, above | {real}))
            elif path.suffix.lower() in suffixes and entry.is_file():
                found.append(path)
    return sorted(found, key=lambda q: q.relative_to(root).as_posix())


def join_paths(paths: list[str]) -> str:
    r"""The ``paths`` metadata value of one sample: its relative paths joined by ``;``, with a
    ``;`` or ``\`` inside a file name written ``\;`` or ``\\`` (:func:`split_paths` reads it).

    >>> print(join_paths(["a.png", "red;blue.png"]))
    a.png;red\;blue.png
    """
    return ";".join(p.replace("\\", "\\\\").replace(";", "\\;") for p in paths)


def split_paths(joined: str) -> list[str]:
    r"""The relative paths of a :func:`join_paths` value.

    >>> split_paths(r"a.png;red\;blue.png")
    ['a.png', 'red;blue.png']
    """
    out, part, chars = [], [], iter(str(joined))
    for ch in chars:
        if ch == "\\":
            part.append(next(chars, "\\"))
        elif ch == ";":
            out.append("".join(part))
            part = []
        else:
            part.append(ch)
    out.append("".join(part))
    return [q for q in out if q]


def file_name_caption(path: Path) -> str:
    """The words of a file name: ``"red_fox-2.jpg"`` -> ``"red fox 2"``; a name of separators
    alone is its own caption (``"_.png"`` -> ``"_"``, not an empty text)."""
    return " ".join(re.sub(r"[_\-.]+", " ", path.stem).split()) or path.stem


def _sidecar(path: Path) -> str | None:
    # "IMG_0001.TXT" as a camera or a case-blind disk names it is a sidecar too
    txt = next((t for t in map(path.with_suffix, SIDECAR_SUFFIXES) if t.is_file()), None)
    if txt is None:
        return None
    try:
        with open(txt, "rb") as fh:
            data = fh.read(MAX_CAPTION_BYTES + 1)
        cut, data = len(data) > MAX_CAPTION_BYTES, data[:MAX_CAPTION_BYTES].removeprefix(b"\xef\xbb\xbf")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if not (cut and exc.end == len(data)):
                raise
            text = data[:exc.start].decode("utf-8")   # the cut split the last character
    except UnicodeDecodeError as exc:
        raise InputError(f"path: caption file {str(txt)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                         "save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"path: cannot read caption file {str(txt)!r}: {exc.strerror or exc}") from None
    text = " ".join(text.split())
    if not has_visible_text(text):
        held = f" (it holds only invisible characters: {text!r})" if text else ""
        raise InputError(f"path: caption file {str(txt)!r} is empty{held}; write a caption or delete it to use "
                         "the file name")
    return text


def _refuse_empty(files: list[Path], modality: str) -> None:
    """Refuse zero-byte files (an interrupted copy or download) by name, all of them at once:
    read on, they would be one sample (equal content) that no tower can decode."""
    empty = []
    for f in files:
        try:
            if f.stat().st_size == 0:
                empty.append(f)
        except OSError:   # reported by the read that follows
            continue
    if empty:
        more = ""
        if len(empty) > 1:
            listed = ", ".join(repr(str(f)) for f in empty[1:4]) + (", ..." if len(empty) > 4 else "")
            more = f" (and {len(empty) - 1} more: {listed})"
        raise InputError(f"path: expected {modality} files with content, got the empty (0-byte) file "
                         f"{str(empty[0])!r}{more}; copy it again or delete it")


def read_folder(path, *, modality: str = "auto", name: str = "") -> Pairs:
    """Read a folder of images (or WAV sounds) and their captions into :class:`Pairs`.

    Parameters
    ----------
    path : str or Path
        The folder.
    modality : {"auto", "image", "audio"}
        Which files are the samples; ``"auto"``: images, or sounds when it holds no image.
    name : str
        Name of the returned ``Pairs`` (default: the folder's name).

    Returns
    -------
    Pairs
        Modalities ``image`` (or ``audio``; N absolute paths) and ``text`` (N captions);
        labels when every file sits in a sub-folder (its first sub-folder, ``label_names``
        sorted); ids the relative path of each sample's first copy; metadata ``sha256``,
        ``paths`` (every relative path with that content, ``;``-separated:
        :func:`split_paths`), ``caption_key``
        (the normalised caption, equal for near-duplicates) and ``caption_source``
        (``sidecar`` or ``file name``).

    Raises
    ------
    InputError
        The folder does not exist or holds no image (or sound); an empty (0-byte) image or
        sound; a file that cannot be read; a file name or a sidecar caption that is not
        UTF-8; an empty caption, or one of invisible characters only.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise InputError(f"path: expected a folder, got {str(root)!r} ({'a file' if root.exists() else 'missing'})")
    if modality not in ("auto", "image", "audio"):
        raise InputError(f"modality: expected 'auto', 'image' or 'audio', got {modality!r}")
    files, mod = [], modality
    if modality in ("auto", "image"):
        files, mod = _scan(root, IMAGE_SUFFIXES), "image"
    if not files and modality in ("auto", "audio"):
        files, mod = _scan(root, AUDIO_SUFFIXES), "audio"
    if not files:
        wanted = {"image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}.get(modality, IMAGE_SUFFIXES + AUDIO_SUFFIXES)
        raise InputError(f"path: folder {str(root)!r} holds no {'images or sounds' if modality == 'auto' else modality + ' files'} "
                         f"(looked for {', '.join(wanted)} at any depth)")
    _refuse_empty(files, mod)
    first: dict[str, int] = {}
    keep: list[Path] = []
    paths: list[list[str]] = []
    hashes: list[str] = []
    for f in files:
        try:
            str(f.resolve()).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"path: the file name {str(f)!r} is not UTF-8 (the index and the service keep "
                             "names as UTF-8 text); rename the file") from None
        try:
            digest = content_hash(f)
        except OSError as exc:
            raise InputError(f"path: cannot read {str(f)!r}: {exc.strerror or exc}") from None
        rel = f.relative_to(root).as_posix()
        if digest in first:
            paths[first[digest]].append(rel)
            continue
        first[digest] = len(keep)
        keep.append(f)
        paths.append([rel])
        hashes.append(digest)
    captions, sources = [], []
    for f, copies in zip(keep, paths):
        # a caption written for any copy beats the first copy's file name ("IMG_0001.jpg" beside
        # "cats/tabby.jpg" + "cats/tabby.txt")
        side = next((c for c in (_sidecar(root / rel) for rel in copies) if c is not None), None)
        captions.append(side if side is not None else file_name_caption(f))
        sources.append("sidecar" if side is not None else "file name")
    labels = label_names = None
    rels = [f.relative_to(root) for f in keep]
    if all(len(r.parts) >= 2 for r in rels):
        folders = [r.parts[0] for r in rels]
        label_names = sorted(set(folders))
        index = {n: i for i, n in enumerate(label_names)}
        labels = np.array([index[s] for s in folders], dtype=np.int64)
    metadata = {"sha256": hashes, "paths": [join_paths(p) for p in paths],
                "caption_key": [caption_key(c) for c in captions], "caption_source": sources}
    return Pairs({mod: [str(f.resolve()) for f in keep], "text": captions}, labels=labels,
                 ids=np.array([p[0] for p in paths]), metadata=metadata, label_names=label_names,
                 name=name or root.resolve().name)
