"""Manifests: CSV or JSON-lines tables of file paths, texts and labels.

``read_manifest`` turns one into :class:`~jointspace.data.pairs.Pairs`; ``parse_columns``
reads the ``modality=column`` mapping the command line takes.  Every failure is an
:class:`~jointspace.errors.InputError` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._validation import has_visible_text, lone_surrogate, short_json
from ..errors import InputError
from .pairs import Pairs
from .readers import _csv_records, _existing_file

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")
FILE_MODALITIES = ("image", "audio", "video")
#: label values (compared in lower case) that mark a missing label, as in pandas' CSV reader
MISSING_LABELS = frozenset({"nan", "-nan", "na", "n/a", "#n/a", "null", "none", "<na>"})
#: largest CSV cell a manifest may hold (captions can be long; the csv module's default is 128 KiB)
MANIFEST_FIELD_LIMIT = 16 * 1024 * 1024


@contextmanager
def _field_limit(limit: int):
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, limit))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def parse_columns(spec) -> dict[str, str]:
    """Parse ``"image=path,text=caption,label=category"`` into ``{"image": "path", ...}``.

    A bare name (``"text"``) maps to the column of the same name.  A mapping is returned
    as a plain dict after checking it.
    """
    if isinstance(spec, Mapping):
        out = {str(k): str(v) for k, v in spec.items()}
    elif isinstance(spec, str):
        out = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, _, col = part.partition("=")
            name, col = name.strip(), (col.strip() or name.strip())
            if not name:
                raise InputError(f"columns: expected NAME=COLUMN pairs separated by commas; got {spec!r}")
            if name in out:
                raise InputError(f"columns: {name!r} is given twice in {spec!r} ({name}={out[name]}, {name}={col}); "
                                 "expected each name once")
            out[name] = col
    else:
        raise InputError(f"columns: expected a string like 'image=path,text=caption' or a mapping; got {type(spec).__name__}")
    if not out:
        raise InputError(f"columns: expected at least one NAME=COLUMN pair; got {spec!r}")
    return out


def _read_rows(p: Path) -> tuple[list[str], list[dict], list[int]]:
    """Header, rows (one dict each) and the line each row starts on."""
    suffix = p.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise InputError(f"path: expected a manifest ending in {', '.join(MANIFEST_SUFFIXES)}; got {str(p)!r}")
    try:
        # bytes decoded, not read_text: universal newlines would turn a "\r\n" or "\r" inside a
        # quoted CSV cell into "\n" (the csv module reads the line endings itself)
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"path: cannot read manifest {str(p)!r}: {exc}") from None
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise InputError(f"path: manifest {str(p)!r} is not UTF-8 text: line {line} holds the byte "
                         f"0x{body[exc.start]:02x} ({exc.reason}); save it as UTF-8") from None
    if suffix == ".csv":
        return _csv_rows(text, p)
    header: list[str] = []
    rows: list[dict] = []
    lines: list[int] = []
    # split on line ends only: str.splitlines() also breaks at U+2028, \x85, \x0c ..., which are
    # legal inside a JSON string (a raw CR or LF is not)
    for i, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_distinct_keys)
        except json.JSONDecodeError as exc:
            raise InputError(f"path: manifest {str(p)!r} line {i} is not valid JSON: {exc.msg}") from None
        except _RepeatedKey as exc:
            raise InputError(f"path: manifest {str(p)!r} line {i} gives the key {str(exc)!r} twice in one JSON "
                             "object; expected each key once (a JSON reader keeps the last value and loses the "
                             "first)") from None
        if not isinstance(obj, dict):
            got = "null" if obj is None else f"a JSON {_JSON_TYPES.get(type(obj), 'string')} {short_json(obj)}"
            raise InputError(f"path: manifest {str(p)!r} line {i}: expected a JSON object ({{\"image\": ...}}), "
                             f"got {got}")
        for k in obj:
            if k not in header:
                header.append(k)
        rows.append(obj)
        lines.append(i)
    if not rows:
        raise InputError(f"path: manifest {str(p)!r} is empty")
    return header, rows, lines


class _RepeatedKey(Exception):
    """A JSON object names the same key twice (the key is the message)."""


def _distinct_keys(pairs: list) -> dict:
    """``json.loads``'s object hook: the object as a dict, or :class:`_RepeatedKey`."""
    out = {}
    for k, v in pairs:
        if k in out:
            raise _RepeatedKey(k)
        out[k] = v
    return out


def _csv_rows(text: str, p: Path) -> tuple[list[str], list[dict], list[int]]:
    def other_separator(header: list[str]) -> None:
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            sep = "semicolons" if ";" in header[0] else "tabs"
            raise InputError(f"path: manifest {str(p)!r} separates its columns with {sep} ({header[0]!r}); a .csv "
                             "manifest separates them with commas: save it as comma-separated CSV")

    # newline="" keeps the newlines inside quoted cells (multi-line captions)
    with _field_limit(MANIFEST_FIELD_LIMIT):
        records = []
        try:
            for n, r in _csv_records(io.StringIO(text, newline=""), p, "path"):
                if any(c.strip() for c in r):
                    records.append((n, r))
        except InputError:
            # a quoted cell followed by ';' is not CSV (`"a cat";1`): the separator is what is wrong
            first = records[0][1] if records else [re.split(r"\r\n|\r|\n", text.lstrip(), maxsplit=1)[0]]
            if "," not in "".join(first):
                other_separator([c.strip() for c in first])
            raise
    if not records:
        raise InputError(f"path: manifest {str(p)!r} is empty")
    header = [c.strip() for c in records[0][1]]
    other_separator(header)
    if len(set(header)) != len(header) or not all(header):
        raise InputError(f"path: manifest {str(p)!r} needs a header row of distinct, non-empty column names; "
                         f"got {header}")
    if len(records) == 1:
        raise InputError(f"path: manifest {str(p)!r} has a header but no data rows")
    rows, lines = [], []
    for line, r in records[1:]:
        if len(r) != len(header):
            raise InputError(f"path: ragged CSV {str(p)!r}: line {line} has {len(r)} values, expected {len(header)}")
        rows.append(dict(zip(header, r)))
        lines.append(line)
    return header, rows, lines


def read_manifest(path, columns=None, *, file_modalities=None, check_files: bool = True,
                  name: str = "") -> Pairs:
    """Read a CSV (with a header) or JSON-lines manifest into :class:`Pairs`.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.jsonl`` or ``.ndjson``; one row per sample.
    columns : str or mapping, optional
        Which column feeds which modality, e.g. ``"image=path,text=caption,label=category"``.
        The names ``label`` and ``id`` are special: they become the labels and the ids (each
        read without the spaces around it).
        ``"auto"``: guessed from the column names and contents (:func:`guess_columns`).
        Default: every column under its own name.  Unused columns are kept as metadata.
    file_modalities : sequence of str, optional
        Modalities whose values are file paths (default: ``image``, ``audio``, ``video``),
        read without the spaces around them.  Relative paths are resolved against the
        manifest's folder.
    check_files : bool
        Raise when a listed file does not exist.
    name : str
        Name given to the returned ``Pairs``.

    Returns
    -------
    Pairs
        Modalities as lists of N strings (absolute paths for file modalities).  Labels that
        are all integers (``3``, ``" 3"``, ``"3.0"``, a JSON ``3.0``) are kept as those
        integers; otherwise every label is a name, and the names (sorted) become integers
        ``0 .. C-1`` with ``label_names``.

    Raises
    ------
    InputError
        A used column missing from the manifest, a name given twice in ``columns``, or a
        row with no value in a used column: empty, JSON ``null`` or ``NaN``, and for the
        label column also a missing-value marker (:data:`MISSING_LABELS`: ``nan``, ``NA``,
        ``N/A``, ``null``, ``None``, ...); a JSON array or object in a used column, and a
        JSON number or boolean where a file path or text is expected (labels may be
        numbers or booleans); a text of invisible characters only (a zero-width space); a CSV
        manifest with an unclosed quote, a cell over
        :data:`MANIFEST_FIELD_LIMIT` characters, or a header and no data rows.
    """
    p = _existing_file(path, "path")
    header, rows, lines = _read_rows(p)
    if columns is None:
        mapping = {c: c for c in header}
    elif isinstance(columns, str) and columns == "auto":
        mapping = guess_columns(header, rows)
    else:
        mapping = parse_columns(columns)
    missing = [f"{k}={c}" for k, c in mapping.items() if c not in header]
    if missing:
        given = f"; got {columns!r}" if isinstance(columns, str) and columns != "auto" else ""
        raise InputError(f"columns: {', '.join(missing)} not found in manifest {str(p)!r}; "
                         f"its columns are {', '.join(header)}{given}")
    file_mods = set(FILE_MODALITIES if file_modalities is None else file_modalities)

    def column(col: str, mod: str) -> list:
        markers = MISSING_LABELS if mod == "label" else ()
        out = []
        for line, r in zip(lines, rows):
            v = r.get(col)
            if (v is None or (isinstance(v, str) and (not v.strip() or v.strip().lower() in markers))
                    or (isinstance(v, float) and not np.isfinite(v))):
                blank = v is None or (isinstance(v, str) and not v.strip())
                raise InputError(f"manifest {str(p)!r}: row {line} has no value in column {col!r}"
                                 + ("" if blank else f" ({v!r} marks a missing value)"))
            _check_cell(v, mod in file_mods, mod == "label", p, line, col)
            at = lone_surrogate(v) if isinstance(v, str) else None
            if at is not None:   # a JSON "\udce9" escape: no UTF-8 text holds it
                raise InputError(f"manifest {str(p)!r}: row {line} column {col!r} holds a lone surrogate "
                                 f"U+{ord(v[at]):04X} (an escape no UTF-8 text can hold); expected text")
            if isinstance(v, str) and mod not in file_mods and mod not in ("label", "id") and not has_visible_text(v):
                raise InputError(f"manifest {str(p)!r}: row {line} column {col!r} holds only invisible characters "
                                 f"({v!r}); expected a text")
            out.append(v)
        return out

    modalities, labels, ids, raw = {}, None, None, {}
    for mod, col in mapping.items():
        values = column(col, mod)
        if mod == "label":
            labels = values
        elif mod == "id":
            # stripped, as labels and paths are: "a, s1" (a space after the comma) has the id "s1"
            ids = [str(v).strip() for v in values]
            first: dict[str, int] = {}
            for line, v in zip(lines, ids):
                if v in first:
                    raise InputError(f"manifest {str(p)!r}: rows {first[v]} and {line} have the same id {v!r} in "
                                     f"column {col!r}; expected a unique id per row")
                first[v] = line
        elif mod in file_mods:
            # stripped as the column guess reads them: "a cat, photos/a.png" names "photos/a.png"
            raw[mod] = [str(v).strip() for v in values]
            modalities[mod] = [str(_resolve(p.parent, v, f'{str(p)!r} row {line} column {col!r}'))
                                for line, v in zip(lines, raw[mod])]
        else:
            modalities[mod] = [str(v) for v in values]
    if not modalities:
        raise InputError(f"columns: expected at least one modality besides label/id; got {', '.join(mapping)}")
    if check_files:
        for mod in modalities:
            if mod in file_mods:
                gone = [(line, f, v) for line, f, v in zip(lines, modalities[mod], raw[mod])
                        if not Path(f).is_file()]
                if gone:
                    slashed = [_slashed(p.parent, v) for _, _, v in gone[:3]]
                    shown = "; ".join(f"row {r}: {f}" + (" (a folder)" if Path(f).is_dir() else "")
                                      + (f" ({s} exists)" if s else "") for (r, f, _), s in zip(gone, slashed))
                    what = (f"{mod} paths are folders, not files" if all(Path(f).is_dir() for _, f, _ in gone)
                            else f"{mod} files do not exist")
                    fix = ("; the paths are written with '\\' (as on Windows): write them with '/'"
                           if any(slashed) else "")
                    raise InputError(f"manifest {str(p)!r}: {len(gone)} of {len(rows)} {what} "
                                     f"({shown}{' ...' if len(gone) > 3 else ''}){fix}")
    label_names = None
    if labels is not None:
        ints = [_int64(v) for v in labels]
        if all(i is not None for i in ints):
            labels = np.asarray(ints, dtype=np.int64)
        else:
            # stripped, as the integer labels are: "cat" and " cat" (after a comma and a space) are one class
            names = [str(v).strip() if i is None else str(i) for v, i in zip(labels, ints)]
            label_names = sorted(set(names))
            index = {n: i for i, n in enumerate(label_names)}
            labels = np.array([index[n] for n in names], dtype=np.int64)
    # the label column stays a column too (by its name): --group-column and --relevance may name it
    used = {c for m, c in mapping.items() if m != "label"}
    metadata = {c: [r.get(c) for r in rows] for c in header if c not in used}
    return Pairs(modalities, labels=labels, ids=ids, metadata=metadata, label_names=label_names,
                 name=name or p.stem)


_JSON_TYPES = {list: "array", dict: "object", bool: "boolean", int: "number", float: "number"}


def _check_cell(v, is_file: bool, is_label: bool, p: Path, line: int, col: str) -> None:
    """Refuse JSON values that ``str()`` would turn into nonsense (``"['x', 'y']"``, ``"True"``)."""
    if isinstance(v, str):
        return
    if is_label:
        if isinstance(v, (int, float)):  # bool is an int: a binary label
            return
        expected = "a label (a string or a number)"
    elif is_file:
        expected = "a file path (a string)"
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        return  # a number as text or id reads the same as in a CSV manifest
    else:
        expected = "a string"
    shown = json.dumps(v, ensure_ascii=False, default=str)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise InputError(f"manifest {str(p)!r}: row {line} column {col!r}: expected {expected}, "
                     f"got a JSON {_JSON_TYPES.get(type(v), type(v).__name__)} {shown}")


def _int64(v) -> int | None:
    """``v`` as an int when it is an integer label that fits in int64, else None (a name)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, np.integer)):
        n = int(v)
    elif isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        n = int(v)   # a JSON 1.0 is the label 1
    # not str.isdigit(): it accepts "²" and other digits that int() refuses; at most 19 digits,
    # so that int() never meets a string beyond its digit limit.  "3.0" is 3, as a JSON 3.0 is
    # (pandas writes an integer column that once held a gap so)
    elif isinstance(v, str) and (m := re.fullmatch(r"([+-]?[0-9]{1,19})(?:\.0*)?", v.strip())) is not None:
        n = int(m.group(1))
    else:
        return None
    return n if -2**63 <= n < 2**63 else None


def _resolve(folder: Path, value, where: str = "") -> Path:
    """An absolute path as given; a relative one under the manifest's folder (a relative path
    that climbs out of it with ``..`` is refused; a sub-folder that is a symbolic link to
    another disk is under it).  A path holding a NUL character, which no file name can, is
    refused, and so is a URL (``https://...``: the path would be read as folders "https:" ...)."""
    if "\x00" in str(value):
        raise InputError(f"manifest {where}: path {str(value)!r} holds a NUL character (\\x00), which no file "
                         "name can hold; expected a file path")
    url = re.match(r"([A-Za-z][A-Za-z0-9+.-]+)://", str(value))   # not one letter: C:/photos is a drive
    if url:
        fix = ("write it as a path (file:///photos/a.png is /photos/a.png)" if url.group(1).lower() == "file"
               else "nothing is downloaded: download the files and list their paths")
        raise InputError(f"manifest {where}: {str(value)!r} is a URL; expected the path of a local file: {fix}")
    f = Path(str(value)).expanduser()
    if f.is_absolute():
        return f
    climbs = os.path.normpath(f)   # by name, before links are followed
    if climbs == os.pardir or climbs.startswith(os.pardir + os.sep):
        raise InputError(f"manifest {where}: path {str(value)!r} leads outside the manifest's folder "
                         f"({str(folder.resolve())!r}); move the file under it or write its absolute path")
    return (folder / f).resolve()


def _slashed(folder: Path, value: str) -> str | None:
    r"""The file ``value`` names when its ``\`` are read as ``/`` (``photos\cat.jpg`` written on
    Windows), when that file exists; else None.  Only a hint: on POSIX a file name may hold a
    ``\``, so the path as written is never rewritten."""
    if "\\" not in value:
        return None
    try:
        f = _resolve(folder, value.replace("\\", "/"))
    except InputError:   # it climbs out of the manifest's folder
        return None
    return str(f) if f.is_file() else None


#: column names read as each modality by ``columns="auto"`` (first match wins)
GUESSED_NAMES = {
    "image": ("image", "image_path", "img", "picture", "photo", "path", "file", "filename", "filepath"),
    "audio": ("audio", "audio_path", "sound", "wav"),
    "text": ("text", "caption", "captions", "title", "description", "sentence", "prompt"),
    "label": ("label", "category", "class", "labels", "target"),
    "id": ("id",),
}


def guess_columns(header: list[str], rows: list[dict]) -> dict[str, str]:
    """``columns="auto"``: which column is which modality, by name and by content.

    A column whose values end in an image (audio) file suffix is the image (audio) column
    whatever its name, one named like the modality (:data:`GUESSED_NAMES`, case-insensitive)
    first; when none does, a column named ``image`` (``audio``) is that modality's (files of
    another suffix, ``.aiff`` sounds).  Text, label and id columns are read by name.  Every
    other column is kept as metadata.
    """
    from .folder import AUDIO_SUFFIXES, IMAGE_SUFFIXES

    out: dict[str, str] = {}
    sample = rows[:50]

    def files_like(col, suffixes):
        vals = [str(r.get(col, "")).strip().lower() for r in sample]
        vals = [v for v in vals if v]
        return bool(vals) and all(v.endswith(suffixes) for v in vals)

    lower = {c.lower(): c for c in header}
    for mod, suffixes in (("image", IMAGE_SUFFIXES), ("audio", AUDIO_SUFFIXES)):
        by_content = [c for c in header if files_like(c, suffixes)]
        named = [lower[n] for n in GUESSED_NAMES[mod] if n in lower and lower[n] in by_content]
        pick = (named or by_content)[:1]
        if not pick and mod in lower and lower[mod] not in out.values():
            pick = [lower[mod]]   # named so, files of another suffix (.aiff sounds)
        if pick:
            out[mod] = pick[0]
    taken = set(out.values())
    for mod in ("text", "label", "id"):
        for n in GUESSED_NAMES[mod]:
            if n in lower and lower[n] not in taken:
                out[mod] = lower[n]
                taken.add(lower[n])
                break
    if not [m for m in out if m not in ("label", "id")]:
        raise InputError(f"columns: cannot tell which columns hold the images, sounds or texts among "
                         f"{', '.join(header)}; name them, e.g. columns='image=path,text=caption,label=category' "
                         "(--columns on the command line)")
    return out
