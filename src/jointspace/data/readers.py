"""Readers for feature arrays.

``read_array`` loads one numeric array from ``.npy``, ``.npz``, ``.mat``, ``.parquet`` or
``.csv`` (manifests of file paths and texts are read by :mod:`jointspace.data.manifest`).
Every failure is an :class:`~jointspace.errors.InputError` naming the file and what is
wrong with it; nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import faulthandler
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from ..errors import InputError

ARRAY_SUFFIXES = (".npy", ".npz", ".mat", ".parquet", ".csv")


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


def _numeric(arr: np.ndarray, path: Path, key, text_ok: bool = False) -> np.ndarray:
    arr = np.asarray(arr)
    if text_ok:
        arr = _as_text(arr)
        if arr.dtype.kind == "U":
            return arr
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        what = f" array {key!r}" if key else ""
        raise InputError(f"path: expected numeric data in {str(path)!r}{what}, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):   # casting to float would drop the imaginary part
        what = f" array {key!r}" if key else ""
        raise InputError(f"path: expected real numbers in {str(path)!r}{what}, got dtype {arr.dtype}")
    return arr


def _as_text(arr: np.ndarray) -> np.ndarray:
    """Strings as a ``str`` array: bytes are decoded as UTF-8, and an object array whose items
    are each one string (MATLAB's cell array of strings reads as one) becomes a ``str`` array;
    anything else is returned as it is."""
    if arr.dtype.kind == "S":
        try:
            return np.char.decode(arr, "utf-8")
        except UnicodeDecodeError:
            return arr
    if arr.dtype == object and arr.size:
        items = [v.reshape(-1)[0] if isinstance(v, np.ndarray) and v.size == 1 else v for v in arr.reshape(-1)]
        items = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in items]
        if all(isinstance(v, str) for v in items):
            return np.array(items, dtype=str).reshape(arr.shape)
    return arr


def read_array(path, key: str | None = None, *, text_ok: bool = False) -> np.ndarray:
    """Read one numeric array from a file.

    Parameters
    ----------
    path : str or Path
        A ``.npy``, ``.npz``, ``.mat`` (MATLAB up to v7), ``.parquet`` or ``.csv`` file.
    key : str, optional
        Which array: the name inside a ``.npz`` / ``.mat`` file (needed when it holds more
        than one), or for ``.parquet`` / ``.csv`` a column name or a comma-separated list
        of column names (default: every column).
    text_ok : bool
        Strings are read too (labels such as class names), as a ``str`` array; by default
        only numbers are.

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
        return reader(p, key, text_ok)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, KeyError, TypeError, NotImplementedError) as exc:
        raise InputError(f"path: cannot read {str(p)!r} as {suffix[1:]}: {exc}") from None
    except Exception as exc:  # third-party readers raise their own types on corrupt files
        raise InputError(f"path: cannot read {str(p)!r} as {suffix[1:]}: {type(exc).__name__}: {exc}") from None


def _read_npy(p: Path, key, text_ok: bool = False) -> np.ndarray:
    if key is not None:
        raise InputError(f"key: a .npy file holds one array; got key={key!r} for {str(p)!r}")
    return _numeric(np.load(p, allow_pickle=False), p, None, text_ok)


def _read_npz(p: Path, key, text_ok: bool = False) -> np.ndarray:
    with np.load(p, allow_pickle=False) as z:
        named = {k: z[k] for k in z.files} if key is None else ({key: z[key]} if key in z.files else dict.fromkeys(z.files))
    return _numeric(_pick(named, key, p), p, key, text_ok)


def _crashes_in_a_child(read, path: Path) -> bool:
    """Whether ``read(path)`` kills the process (a native reader's segmentation fault on a
    damaged file), tried in a forked child; False where there is no fork."""
    if not hasattr(os, "fork"):
        return False
    pid = os.fork()
    if pid == 0:   # the child: its outcome is its exit status; it never returns
        code = 0
        try:
            faulthandler.disable()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            read(str(path))
        except BaseException:
            code = 1   # a Python exception: the parent meets it again and reports it
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def _read_mat(p: Path, key, text_ok: bool = False) -> np.ndarray:
    from scipy.io import loadmat

    # scipy's MAT reader dereferences a damaged element type natively and segfaults (a
    # single changed byte is enough): it reads the file in a child first
    if _crashes_in_a_child(loadmat, p):
        raise InputError(f"path: cannot read {str(p)!r} as mat: the file is damaged (its reader crashed on it)")
    try:
        mat = loadmat(str(p))
    except NotImplementedError:
        raise InputError(f"path: {str(p)!r} is a MATLAB v7.3 (HDF5) file; save it with -v7 or convert it to .npz") from None
    named = {k: v for k, v in mat.items() if not k.startswith("__")}
    return _numeric(_pick(named, key, p), p, key, text_ok)


def _columns_arg(key, available: list[str], p: Path) -> list[str]:
    if key is None:
        return list(available)
    wanted = [c.strip() for c in str(key).split(",") if c.strip()]
    unknown = [c for c in wanted if c not in available]
    if unknown or not wanted:
        raise InputError(f"key: expected column names among {', '.join(available)} in {str(p)!r}; "
                         f"got {key!r}")
    return wanted


def _read_parquet(p: Path, key, text_ok: bool = False) -> np.ndarray:
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
        text = _as_text(values) if text_ok else None
        if text is not None and text.dtype.kind == "U":
            blocks.append(text.reshape(len(values), -1))
            continue
        if values.dtype == object:  # list-typed column: one vector per row
            missing = [i for i, v in enumerate(values) if v is None]
            if missing:
                raise InputError(f"key: column {name!r} of {str(p)!r} has no value (null) in {len(missing)} of "
                                 f"{len(values)} rows, the first at row {missing[0]} (counting from 0)")
            try:
                values = np.stack([np.asarray(v) for v in values])
            except ValueError:
                raise InputError(f"key: column {name!r} of {str(p)!r} holds lists of different lengths") from None
        values = _numeric(values, p, name)
        blocks.append(values.reshape(len(values), -1))
    if not blocks:
        raise InputError(f"path: {str(p)!r} has no columns")
    if len({b.dtype.kind == "U" for b in blocks}) > 1:
        raise InputError(f"key: the columns {', '.join(names)} of {str(p)!r} mix text and numbers")
    return np.hstack(blocks) if len(blocks) > 1 else blocks[0]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _csv_records(source: Iterable[str], p: Path, what: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, cells)`` for each CSV record, ``line`` being where the record starts.

    ``strict`` makes an unclosed quote an error instead of swallowing every later row; a
    ``csv.Error`` becomes an InputError naming the file and the line.
    """
    reader = csv.reader(source, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            why = ("a quoted field starts in this row and is never closed"
                   if "unexpected end of data" in str(exc) else str(exc))
            raise InputError(f"{what}: cannot read CSV {str(p)!r}: line {start}: {why}") from None
        yield start, row


def _is_header(row: list[str]) -> bool:
    # a header names every column; one numeric or empty cell makes the row data, so that a
    # data row is never dropped silently (it fails loudly below if it is not numbers)
    return all(c.strip() and not _is_number(c) for c in row)


def _read_csv(p: Path, key, text_ok: bool = False) -> np.ndarray:
    with open(p, newline="", encoding="utf-8-sig") as fh:
        records = [(n, r) for n, r in _csv_records(fh, p, "path") if any(c.strip() for c in r)]
    if not records:
        raise InputError(f"path: {str(p)!r} is empty")
    header = None
    if _is_header(records[0][1]):
        header, records = [c.strip() for c in records[0][1]], records[1:]
    if not records:
        raise InputError(f"path: {str(p)!r} has a header but no data rows")
    width = len(header) if header else len(records[0][1])
    for line, r in records:
        if len(r) != width:
            raise InputError(f"path: ragged CSV {str(p)!r}: line {line} has {len(r)} values, expected {width}")
    cols = list(range(width))   # the columns read: all, or those ``key`` names
    if key is not None:
        if header is None:
            raise InputError(f"key: {str(p)!r} has no header row, so columns cannot be chosen by name")
        chosen = _columns_arg(key, header, p)
        for c in dict.fromkeys(chosen):
            where = [j + 1 for j, h in enumerate(header) if h == c]
            if len(where) > 1:   # header.index() would read the first silently
                raise InputError(f"key: column {c!r} is named {len(where)} times in the header of {str(p)!r} "
                                 f"(columns {', '.join(map(str, where))}); expected distinct column names: "
                                 "rename the others")
        cols = [header.index(c) for c in chosen]
    cells = [[r[j].strip() for j in cols] for _, r in records]
    if text_ok and key is not None and not all(_is_number(c) for row in cells for c in row):
        for (line, _), row in zip(records, cells):
            if not all(row):
                raise InputError(f"path: expected a value in every row of {key!r} in {str(p)!r}; line {line} "
                                 "is empty there")
        return np.array(cells, dtype=str)
    try:
        return np.array(cells, dtype=np.float64).reshape(len(cells), len(cols))
    except ValueError:
        for (line, _), row in zip(records, cells):
            for j, c in zip(cols, row):
                if not c:
                    raise InputError(f"path: expected numbers in {str(p)!r}; line {line}, column {j + 1} "
                                     "is empty") from None
                if not _is_number(c):
                    hint = ("; a header row needs a non-numeric name in every column"
                            if header is None and line == records[0][0] else "")
                    raise InputError(f"path: expected numbers in {str(p)!r}; line {line}, "
                                     f"column {j + 1} holds {c!r}{hint}") from None
        raise


# -- manifests -----------------------------------------------------------------------------


def read_arrays(path, modalities: Mapping[str, str], labels: str | None = None, *, name: str = ""):
    """Several aligned arrays of one file (or of files beside it) as :class:`Pairs`.

    Parameters
    ----------
    path : str or Path
        A ``.npz``, ``.mat``, ``.parquet`` or ``.csv`` file (or ``.npy`` for one modality).
    modalities : mapping of str to str
        Modality name -> key of its array in ``path`` (``{"image": "I_tr", "text": "T_tr"}``;
        for ``.parquet`` / ``.csv`` a column or comma-separated columns); a key naming an
        existing array file (relative to ``path``'s folder) reads that file instead.
    labels : str, optional
        Key of the labels: shape (N,), (N, 1) or (1, N) (flattened) or multi-hot (N, C);
        numbers, or strings such as class names (a text column of a ``.parquet`` / ``.csv``
        file, a ``str`` or bytes array, a MATLAB cell array of strings).
    name : str
        Name of the returned ``Pairs`` (default: the file's stem).

    Returns
    -------
    Pairs
        Each modality an (N, d) float32 array (a 1-D array becomes (N, 1)).

    Raises
    ------
    InputError
        No modality given; an unknown key; arrays whose first dimensions (N) disagree;
        NaN or Inf; non-numeric data.
    """
    from .pairs import Pairs

    p = _existing_file(path, "path")
    if not modalities:
        raise InputError(f"modality: expected NAME=KEY pairs naming the arrays of {str(p)!r} "
                         "(e.g. --modality image=I_tr --modality text=T_tr)")

    def source(key: str) -> Path:
        """The file ``key`` is read from: an array file beside ``path`` that it names, else ``path``."""
        other = p.parent / key
        return other if other.suffix.lower() in ARRAY_SUFFIXES and other.is_file() else p

    def load(key: str, what: str, text_ok: bool = False) -> np.ndarray:
        if source(key) != p:
            return read_array(source(key), text_ok=text_ok)
        try:
            return read_array(p, None if p.suffix.lower() == ".npy" else key, text_ok=text_ok)
        except InputError as exc:
            raise InputError(f"{what}: {exc}") from None

    data = {}
    for mod, key in modalities.items():
        a = np.asarray(load(key, f"modality {mod}={key}"), dtype=np.float32)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise InputError(f"modality {mod}={key}: expected an (N, d) array, got shape {a.shape}")
        if not np.isfinite(a).all():
            rows = np.flatnonzero(~np.isfinite(a).all(axis=1))
            raise InputError(f"modality {mod}={key}: {rows.size} of {a.shape[0]} rows hold NaN or Inf (a missing "
                             f"or unbounded value) in {str(source(key))!r}, the first at row {rows[0]} (counting "
                             "from 0); expected finite numbers")
        data[mod] = a
    lab = None
    if labels is not None:
        lab = np.asarray(load(labels, f"labels {labels}", text_ok=True))
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        elif lab.ndim == 2 and lab.shape[0] == 1 and lab.shape[1] > 1 and data:
            if lab.shape[1] == next(iter(data.values())).shape[0]:
                lab = lab[0]   # a row vector: how MATLAB (and scipy's savemat) store a 1-D array
        if lab.dtype.kind == "f" and not np.isfinite(lab).all():
            # a parquet integer column with a null reads as floats with NaN there
            rows = np.flatnonzero(~np.isfinite(lab.reshape(lab.shape[0], -1)).all(axis=1))
            raise InputError(f"labels {labels}: {rows.size} of {lab.shape[0]} rows of {str(source(labels))!r} have "
                             f"no label (NaN, a null or Inf), the first at row {rows[0]} (counting from 0); "
                             "expected a label on every row")
        if lab.dtype.kind == "f" and np.all(lab == np.round(lab)):
            lab = lab.astype(np.int64)
    counts = {f"{m}={modalities[m]}": a.shape[0] for m, a in data.items()}
    if lab is not None:
        counts[f"labels={labels}"] = lab.shape[0]
    if len(set(counts.values())) != 1:
        raise InputError(f"modality: the arrays of {str(p)!r} disagree on the number of samples N: "
                         + ", ".join(f"{k} has {v}" for k, v in counts.items()))
    return Pairs(data, labels=lab, name=name or p.stem)
