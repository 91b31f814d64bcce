"""Readers for feature arrays and manifests.

``read_array`` loads one numeric array from ``.npy``, ``.npz``, ``.mat``, ``.parquet`` or
``.csv``; ``read_manifest`` turns a CSV or JSON-lines table of file paths, texts and labels
into :class:`~jointspace.data.pairs.Pairs`.  Every failure is an
:class:`~jointspace.errors.InputError` naming the file and what is wrong with it; nothing
is ever unpickled.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import InputError
from .pairs import Pairs

ARRAY_SUFFIXES = (".npy", ".npz", ".mat", ".parquet", ".csv")
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")
FILE_MODALITIES = ("image", "audio", "video")
#: label values (compared in lower case) that mark a missing label, as in pandas' CSV reader
MISSING_LABELS = frozenset({"nan", "-nan", "na", "n/a", "#n/a", "null", "none", "<na>"})


def _existing_file(path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{what}: file {str(p)!r} does not exist")
    if not p.is_file():
        raise InputError(f"{what}: expected a file, got a folder or special file at {str(p)!r}")
    return p


def _pick(named: Mapping, key, path: Path) -> np.ndarray:
    if not named:
        raise InputError(f"path: {str(path)!r} holds no arrays")
    if key is None:
        if len(named) != 1:
            raise InputError(f"key: {str(path)!r} holds several arrays ({', '.join(sorted(named))}); "
                             "name the one to read with key=")
        return next(iter(named.values()))
    if key not in named:
        raise InputError(f"key: expected one of {', '.join(sorted(named))} in {str(path)!r}; got {key!r}")
    return named[key]


def _numeric(arr: np.ndarray, path: Path, key) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        what = f" array {key!r}" if key else ""
        raise InputError(f"path: expected numeric data in {str(path)!r}{what}, got dtype {arr.dtype}")
    return arr


def read_array(path, key: str | None = None) -> np.ndarray:
    """Read one numeric array from a file.

    Parameters
    ----------
    path : str or Path
        A ``.npy``, ``.npz``, ``.mat`` (MATLAB up to v7), ``.parquet`` or ``.csv`` file.
    key : str, optional
        Which array: the name inside a ``.npz`` / ``.mat`` file (needed when it holds more
        than one), or for ``.parquet`` / ``.csv`` a column name or a comma-separated list
        of column names (default: every column).

    Returns
    -------
    ndarray
        As stored for ``.npy`` / ``.npz`` / ``.mat``; shape (n_rows, n_columns) for
        ``.parquet`` / ``.csv``.  A parquet column of fixed-length lists becomes
        (n_rows, list_length).

    Raises
    ------
    InputError
        Missing or unreadable file, unsupported extension, unknown key or column,
        non-numeric values, ragged CSV rows.
    """
    p = _existing_file(path, "path")
    suffix = p.suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise InputError(f"path: expected a file ending in {', '.join(ARRAY_SUFFIXES)}; got {str(p)!r}")
    reader = {".npy": _read_npy, ".npz": _read_npz, ".mat": _read_mat,
              ".parquet": _read_parquet, ".csv": _read_csv}[suffix]
    try:
        return reader(p, key)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, KeyError, TypeError, NotImplementedError) as exc:
        raise InputError(f"path: cannot read {str(p)!r} as {suffix[1:]}: {exc}") from None
    except Exception as exc:  # third-party readers raise their own types on corrupt files
        raise InputError(f"path: cannot read {str(p)!r} as {suffix[1:]}: {type(exc).__name__}: {exc}") from None


def _read_npy(p: Path, key) -> np.ndarray:
    if key is not None:
        raise InputError(f"key: a .npy file holds one array; got key={key!r} for {str(p)!r}")
    return _numeric(np.load(p, allow_pickle=False), p, None)


def _read_npz(p: Path, key) -> np.ndarray:
    with np.load(p, allow_pickle=False) as z:
        named = {k: z[k] for k in z.files} if key is None else ({key: z[key]} if key in z.files else dict.fromkeys(z.files))
    return _numeric(_pick(named, key, p), p, key)


def _read_mat(p: Path, key) -> np.ndarray:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(p))
    except NotImplementedError:
        raise InputError(f"path: {str(p)!r} is a MATLAB v7.3 (HDF5) file; save it with -v7 or convert it to .npz") from None
    named = {k: v for k, v in mat.items() if not k.startswith("__")}
    return _numeric(_pick(named, key, p), p, key)


def _columns_arg(key, available: list[str], p: Path) -> list[str]:
    if key is None:
        return list(available)
    wanted = [c.strip() for c in str(key).split(",") if c.strip()]
    unknown = [c for c in wanted if c not in available]
    if unknown or not wanted:
        raise InputError(f"key: expected column names among {', '.join(available)} in {str(p)!r}; "
                         f"got {key!r}")
    return wanted


def _read_parquet(p: Path, key) -> np.ndarray:
    import pyarrow.parquet as pq

    table = pq.read_table(p)
    names = _columns_arg(key, table.column_names, p)
    blocks = []
    for name in names:
        col = table.column(name)
        try:
            values = col.to_numpy(zero_copy_only=False)
        except Exception as exc:
            raise InputError(f"key: column {name!r} of {str(p)!r} is not numeric ({exc})") from None
        if values.dtype == object:  # list-typed column: one vector per row
            try:
                values = np.stack([np.asarray(v) for v in values])
            except ValueError:
                raise InputError(f"key: column {name!r} of {str(p)!r} holds lists of different lengths") from None
        values = _numeric(values, p, name)
        blocks.append(values.reshape(len(values), -1))
    if not blocks:
        raise InputError(f"path: {str(p)!r} has no columns")
    return np.hstack(blocks) if len(blocks) > 1 else blocks[0]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _read_csv(p: Path, key) -> np.ndarray:
    with open(p, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"path: {str(p)!r} is empty")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise InputError(f"path: {str(p)!r} has a header but no data rows")
    width = len(header) if header else len(rows[0])
    first_line = 2 if header else 1
    for i, r in enumerate(rows):
        if len(r) != width:
            raise InputError(f"path: ragged CSV {str(p)!r}: line {i + first_line} has {len(r)} values, "
                             f"expected {width}")
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        for i, r in enumerate(rows):
            for j, c in enumerate(r):
                if not _is_number(c):
                    raise InputError(f"path: expected numbers in {str(p)!r}; line {i + first_line}, "
                                     f"column {j + 1} holds {c!r}") from None
        raise
    if key is not None:
        if header is None:
            raise InputError(f"key: {str(p)!r} has no header row, so columns cannot be chosen by name")
        cols = _columns_arg(key, header, p)
        arr = arr[:, [header.index(c) for c in cols]]
    return arr


# -- manifests -----------------------------------------------------------------------------

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


def _read_rows(p: Path) -> tuple[list[str], list[dict]]:
    suffix = p.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise InputError(f"path: expected a manifest ending in {', '.join(MANIFEST_SUFFIXES)}; got {str(p)!r}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"path: cannot read manifest {str(p)!r}: {exc}") from None
    rows: list[dict] = []
    if suffix == ".csv":
        reader = csv.reader(text.splitlines())
        lines = [r for r in reader if r and any(c.strip() for c in r)]
        if not lines:
            raise InputError(f"path: manifest {str(p)!r} is empty")
        header = [c.strip() for c in lines[0]]
        if len(set(header)) != len(header) or not all(header):
            raise InputError(f"path: manifest {str(p)!r} needs a header row of distinct, non-empty column names; "
                             f"got {header}")
        for i, r in enumerate(lines[1:], start=2):
            if len(r) != len(header):
                raise InputError(f"path: ragged CSV {str(p)!r}: line {i} has {len(r)} values, expected {len(header)}")
            rows.append(dict(zip(header, r)))
        return header, rows
    header: list[str] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"path: manifest {str(p)!r} line {i} is not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise InputError(f"path: manifest {str(p)!r} line {i}: expected a JSON object, got {type(obj).__name__}")
        for k in obj:
            if k not in header:
                header.append(k)
        rows.append(obj)
    if not rows:
        raise InputError(f"path: manifest {str(p)!r} is empty")
    return header, rows


def read_manifest(path, columns=None, *, file_modalities=None, check_files: bool = True,
                  name: str = "") -> Pairs:
    """Read a CSV (with a header) or JSON-lines manifest into :class:`Pairs`.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.jsonl`` or ``.ndjson``; one row per sample.
    columns : str or mapping, optional
        Which column feeds which modality, e.g. ``"image=path,text=caption,label=category"``.
        The names ``label`` and ``id`` are special: they become the labels and the ids.
        Default: every column under its own name.  Unused columns are kept as metadata.
    file_modalities : sequence of str, optional
        Modalities whose values are file paths (default: ``image``, ``audio``, ``video``).
        Relative paths are resolved against the manifest's folder.
    check_files : bool
        Raise when a listed file does not exist.
    name : str
        Name given to the returned ``Pairs``.

    Returns
    -------
    Pairs
        Modalities as lists of N strings (absolute paths for file modalities); string
        labels become integers ``0 .. C-1`` with ``label_names`` sorted.

    Raises
    ------
    InputError
        A used column missing from the manifest, a name given twice in ``columns``, or a
        row with no value in a used column: empty, JSON ``null`` or ``NaN``, and for the
        label column also a missing-value marker (:data:`MISSING_LABELS`: ``nan``, ``NA``,
        ``N/A``, ``null``, ``None``, ...).
    """
    p = _existing_file(path, "path")
    header, rows = _read_rows(p)
    mapping = parse_columns(columns) if columns is not None else {c: c for c in header}
    missing = [f"{k}={c}" for k, c in mapping.items() if c not in header]
    if missing:
        raise InputError(f"columns: {', '.join(missing)} not found in manifest {str(p)!r}; "
                         f"its columns are {', '.join(header)}")
    file_mods = set(FILE_MODALITIES if file_modalities is None else file_modalities)
    lines_offset = 2 if p.suffix.lower() == ".csv" else 1

    def column(col: str, markers=()) -> list:
        out = []
        for i, r in enumerate(rows):
            v = r.get(col)
            if (v is None or (isinstance(v, str) and (not v.strip() or v.strip().lower() in markers))
                    or (isinstance(v, float) and not np.isfinite(v))):
                blank = v is None or (isinstance(v, str) and not v.strip())
                raise InputError(f"manifest {str(p)!r}: row {i + lines_offset} has no value in column {col!r}"
                                 + ("" if blank else f" ({v!r} marks a missing value)"))
            out.append(v)
        return out

    modalities, labels, ids = {}, None, None
    for mod, col in mapping.items():
        values = column(col, MISSING_LABELS if mod == "label" else ())
        if mod == "label":
            labels = values
        elif mod == "id":
            ids = [str(v) for v in values]
        elif mod in file_mods:
            modalities[mod] = [str(_resolve(p.parent, v)) for v in values]
        else:
            modalities[mod] = [str(v) for v in values]
    if not modalities:
        raise InputError(f"columns: expected at least one modality besides label/id; got {', '.join(mapping)}")
    if check_files:
        for mod in modalities:
            if mod in file_mods:
                gone = [(i + lines_offset, f) for i, f in enumerate(modalities[mod]) if not Path(f).is_file()]
                if gone:
                    shown = "; ".join(f"row {r}: {f}" for r, f in gone[:3])
                    raise InputError(f"manifest {str(p)!r}: {len(gone)} of {len(rows)} {mod} files do not exist "
                                     f"({shown}{' ...' if len(gone) > 3 else ''})")
    label_names = None
    if labels is not None:
        if all(_is_int(v) for v in labels):
            labels = np.asarray([int(v) for v in labels], dtype=np.int64)
        else:
            label_names = sorted({str(v) for v in labels})
            index = {n: i for i, n in enumerate(label_names)}
            labels = np.array([index[str(v)] for v in labels], dtype=np.int64)
    used = set(mapping.values())
    metadata = {c: [r.get(c) for r in rows] for c in header if c not in used}
    return Pairs(modalities, labels=labels, ids=ids, metadata=metadata, label_names=label_names,
                 name=name or p.stem)


def _is_int(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, str) and v.strip().lstrip("-").isdigit()


def _resolve(folder: Path, value) -> Path:
    f = Path(str(value)).expanduser()
    return f if f.is_absolute() else (folder / f).resolve()
