"""What a labels argument means: one label per sample, a multi-hot matrix, or a set of labels.

Three readings, chosen from the type and shape of what is given, never guessed from values:

* **keys**, shape (N,): one label (int or string) per sample; two samples match when their
  labels are equal.  A list of scalars, or a 1-D array.
* **multi-hot**, shape (N, C): a NumPy 2-D array of booleans, or of numbers that are all 0 or
  1; two samples match when they share a column.
* **label sets**: a list (or 1-D object array) whose entries are lists, tuples, sets,
  frozensets or 1-D arrays of labels (ints or strings); a scalar entry is a set of one label
  and an empty entry a sample without labels.  Two samples match when their sets intersect.
  Lists of equal length are label sets too (``[[0, 2], [1, 3]]`` is {0, 2} and {1, 3}), never
  a multi-hot matrix: a multi-hot matrix is passed as a NumPy boolean array.  The rows of a
  NumPy 2-D array of strings (or objects) are label sets as well.

Refused, with a message naming the argument: a NumPy 2-D numeric array holding values other
than 0 and 1 (label ids in rows, or a multi-hot matrix with counts, cannot be told apart),
booleans inside label sets (a multi-hot row written as a list), nested sets, ``None``, NaN,
and labels (one per sample, or sets) mixing numbers with strings.  Numbers compare as numbers
(``1 == 1.0``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

#: the containers read as one sample's set of labels
SET_TYPES = (list, tuple, set, frozenset, np.ndarray)


@dataclass
class LabelSets:
    """Label sets as codes: sample ``i`` holds ``codes[indptr[i]:indptr[i + 1]]``.

    Attributes
    ----------
    indptr : ndarray of int64, shape (N + 1,)
    codes : ndarray of int64, shape (L,)
        Positions in ``vocabulary``, unique within a sample.
    vocabulary : list
        The distinct labels, in order of first appearance.
    """

    indptr: np.ndarray
    codes: np.ndarray
    vocabulary: list

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def multi_hot(self, n_columns: int | None = None) -> np.ndarray:
        """Boolean (N, n_columns) matrix, column ``c`` being ``vocabulary[c]``."""
        n_columns = len(self.vocabulary) if n_columns is None else n_columns
        out = np.zeros((len(self), n_columns), dtype=bool)
        out[np.repeat(np.arange(len(self)), np.diff(self.indptr)), self.codes] = True
        return out


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _label(value, name: str, i: int):
    """One label inside a set, as a plain int, float or str."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name}: sample {i} holds a set with the boolean {value!r}; label sets hold ints or "
                         "strings (a multi-hot matrix is passed as a NumPy boolean array of shape (N, C))")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not np.isfinite(value):
            raise InputError(f"{name}: sample {i} holds {value} among its labels; expected finite numbers or strings")
        return int(value) if value.is_integer() else value
    if isinstance(value, (str, np.str_)):
        return str(value)
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    what = "a nested set" if isinstance(value, SET_TYPES) else f"{type(value).__name__} {_shown(value)}"
    raise InputError(f"{name}: sample {i} holds {what} among its labels; expected ints or strings")


def is_label_sets(labels) -> bool:
    """Whether ``labels`` is read as label sets (see the module docstring)."""
    if hasattr(labels, "to_numpy") and not isinstance(labels, np.ndarray):  # a pandas column
        labels = labels.to_numpy()
    if isinstance(labels, np.ndarray):
        if labels.ndim == 2 and labels.dtype.kind in "USO":
            return True
        if labels.ndim != 1 or labels.dtype != object:
            return False
        return any(isinstance(v, SET_TYPES) for v in labels.tolist())
    if isinstance(labels, (list, tuple)):
        return any(isinstance(v, SET_TYPES) for v in labels)
    return False


def encode_label_sets(*sides, names: tuple[str, ...]) -> list[LabelSets]:
    """Read several label-set arguments over one shared vocabulary.

    Parameters
    ----------
    *sides : sequences of N_k entries
        Each entry a set of labels (list, tuple, set, frozenset, 1-D array) or one label.
    names : tuple of str
        Argument names, for messages.

    Returns
    -------
    list of LabelSets
        One per side, codes into one vocabulary shared by all sides.
    """
    vocab: dict = {}
    kinds: dict[str, str] = {}
    out = []
    for side, name in zip(sides, names):
        if hasattr(side, "to_numpy") and not isinstance(side, np.ndarray):
            side = side.to_numpy()
        entries = side.tolist() if isinstance(side, np.ndarray) else side
        indptr = [0]
        codes: list[int] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, np.ndarray):
                if entry.ndim > 1:
                    raise InputError(f"{name}: sample {i} holds a {entry.ndim}-D array; expected a set of labels")
                entry = entry.tolist()
            if entry is None:
                raise InputError(f"{name}: sample {i} is None; expected a label or a set of labels "
                                 "(an empty set for a sample without labels)")
            items = entry if isinstance(entry, (list, tuple, set, frozenset)) else [entry]
            seen = set()
            for v in items:
                lab = _label(v, name, i)
                kind = "string" if isinstance(lab, str) else "number"
                kinds.setdefault(kind, name)
                if len(kinds) > 1:
                    raise InputError(f"{name}: expected labels of one kind, got both numbers and strings "
                                     f"(strings in {kinds['string']}, numbers in {kinds['number']})")
                code = vocab.setdefault(lab, len(vocab))
                if code not in seen:
                    seen.add(code)
                    codes.append(code)
            indptr.append(len(codes))
        out.append(LabelSets(np.asarray(indptr, dtype=np.int64), np.asarray(codes, dtype=np.int64), []))
    vocabulary = list(vocab)
    for s in out:
        s.vocabulary = vocabulary
    return out


def multi_hot_matrix(labels: np.ndarray, name: str) -> np.ndarray:
    """A NumPy 2-D array as a boolean multi-hot matrix, refusing values other than 0 and 1."""
    if labels.dtype == bool:
        return labels
    if labels.dtype.kind not in "iuf":
        raise InputError(f"{name}: expected a multi-hot matrix (N, C) of booleans or 0/1, got dtype {labels.dtype}")
    bad = ~((labels == 0) | (labels == 1))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{name}: a 2-D numeric array is read as a multi-hot matrix of 0/1 values, got "
                         f"{labels[i, j].item()!r} at row {i}, column {j}; pass a list of label sets (e.g. "
                         f"[[0, 2], [1, 3]]) for several labels per sample, or a boolean array for a "
                         "multi-hot matrix")
    return labels != 0


def read_keys(values, name: str) -> np.ndarray:
    """One key per sample (a label, an id) as a 1-D array of numbers or of strings.

    Python objects (a list, a tuple, an object array) are read one by one, so that ``1`` and
    ``"1"`` are not both turned into the text ``"1"``.

    Parameters
    ----------
    values : array-like, shape (N,)
    name : str
        Argument name, for messages.

    Returns
    -------
    keys : ndarray, shape (N,)

    Raises
    ------
    InputError
        ``None``, NaN or Inf, a value that is neither a number nor a string, or numbers mixed
        with strings; the message names the sample.
    """
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):  # a pandas column
        values = values.to_numpy()
    if isinstance(values, (list, tuple)) or (isinstance(values, np.ndarray) and values.dtype == object
                                             and values.ndim == 1):
        items = values.tolist() if isinstance(values, np.ndarray) else list(values)
        first: dict[str, int] = {}
        for i, v in enumerate(items):
            if v is None:
                raise InputError(f"{name}: sample {i} is None; expected an int or a string for every sample")
            if isinstance(v, (numbers.Real, np.bool_)):
                kind = "number"
                if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and not np.isfinite(v):
                    raise InputError(f"{name}: sample {i} is {v}; expected finite numbers or strings")
            elif isinstance(v, (str, np.str_)):
                kind = "string"
            else:
                raise InputError(f"{name}: sample {i} is {type(v).__name__} {_shown(v)}; expected an int or a string")
            first.setdefault(kind, i)
            if len(first) > 1:
                a, b = first["number"], first["string"]
                raise InputError(f"{name}: expected keys of one kind, got both numbers and strings (sample {a} is "
                                 f"{items[a]!r}, sample {b} is {items[b]!r}); 1 and '1' would be merged")
        try:
            return np.asarray(items)
        except ValueError as exc:  # numbers too large for any dtype
            raise InputError(f"{name}: cannot read the keys as one array ({exc})") from None
    arr = np.asarray(values)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise InputError(f"{name}: expected finite values, got NaN or Inf (first at sample {i})")
    return arr


def read_labels(labels, name: str = "labels", label_names=None) -> tuple[np.ndarray, list | None]:
    """Labels as one of the two array kinds :class:`~jointspace.data.pairs.Pairs` stores.

    Parameters
    ----------
    labels : array-like
        Keys (N,), a multi-hot NumPy array (N, C) or label sets (see the module docstring).
    name : str
        Argument name, for messages.
    label_names : sequence of str, optional
        Names of the columns: label sets of ints ``0 .. C-1`` (or of these names) then fill
        column ``c`` for label ``c`` (or ``label_names[c]``).

    Returns
    -------
    labels : ndarray, shape (N,) or (N, C)
        Keys as given (``np.asarray``), or a boolean multi-hot matrix; label sets become a
        multi-hot matrix over ``label_names`` when given, else over their labels, sorted.
    columns : list or None
        The label of each column when label sets were given, else None.
    """
    if is_label_sets(labels):
        (sets,) = encode_label_sets(labels, names=(name,))
        vocab = sets.vocabulary
        if label_names is not None:
            names = [str(v) for v in label_names]
            where = {v: c for c, v in enumerate(names)}
            where.update({c: c for c in range(len(names))})
            unknown = [v for v in vocab if v not in where]
            if unknown:
                raise InputError(f"{name}: label {unknown[0]!r} is neither one of label_names nor an int "
                                 f"0 .. {len(names) - 1}")
            column = np.asarray([where[v] for v in vocab], dtype=np.int64)
            return LabelSets(sets.indptr, column[sets.codes], names).multi_hot(), names
        order = sorted(range(len(vocab)), key=lambda c: vocab[c])
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return LabelSets(sets.indptr, rank[sets.codes], vocab).multi_hot(), [vocab[c] for c in order]
    try:
        arr = read_keys(labels, name) if np.ndim(labels) == 1 else np.asarray(labels)
    except ValueError as exc:  # ragged nested sequences
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name}: expected one label per sample, a multi-hot matrix or label sets, "
                         f"got {type(labels).__name__} ({exc})") from None
    if arr.ndim == 2:
        return multi_hot_matrix(arr, name), None
    return arr, None


__all__ = ["LabelSets", "encode_label_sets", "is_label_sets", "multi_hot_matrix", "read_keys", "read_labels"]
