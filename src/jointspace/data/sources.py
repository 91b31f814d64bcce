"""What a data argument names: a built-in dataset, a manifest, a folder or an arrays file.

:func:`open_data` turns ``"wikipedia"``, ``"captions.csv"``, ``"photos/"`` or
``"features.mat"`` (with ``modalities={"image": "I_tr", ...}``) into a :class:`DataSource`
whose splits load as :class:`~jointspace.data.pairs.Pairs`.  A user's collection has the
split ``all`` (every row), ``train`` and ``val`` (a seeded split that keeps near-duplicate
captions, or a group column, on one side) or the splits its split column names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._validation import check_float, check_int
from ..errors import InputError
from .keys import caption_key
from .manifest import MANIFEST_SUFFIXES, read_manifest
from .pairs import Pairs, concat_pairs
from .readers import ARRAY_SUFFIXES, read_arrays

#: fraction of a user's collection held out to choose settings when no split column is given
DEFAULT_VAL_FRACTION = 0.1


class DataSource:
    """A collection whose splits load as :class:`Pairs`.

    Attributes
    ----------
    name : str
        The dataset name, or the path the user gave.
    splits : tuple of str
    modalities : tuple of str
    relevance : str
        The ``Pairs.relevance_keys`` rule evaluation uses by default.
    builtin : bool
    """

    name: str
    splits: tuple[str, ...]
    modalities: tuple[str, ...]
    relevance: str
    builtin: bool

    def load(self, split: str) -> Pairs:
        """One split, or several joined by ``+`` (``"train+val"``), their rows one after the other."""
        names = split_names(split)
        unknown = [s for s in names if s not in self.splits]
        if unknown:
            whose = f"dataset {self.name!r}" if self.builtin else "your data"
            raise InputError(f"split: {whose} has splits {', '.join(self.splits)}; got {unknown[0]!r}")
        parts = [self._load(s) for s in names]
        if len(parts) == 1:
            return parts[0]
        ids = np.concatenate([np.asarray(p.ids) for p in parts])
        if len(np.unique(ids)) != len(ids):
            parts = [Pairs({m: p[m] for m in p.modalities}, labels=p.labels,
                           ids=np.array([f"{s}/{i}" for i in p.ids.tolist()]), metadata=p.metadata,
                           label_names=p.label_names, name=p.name) for s, p in zip(names, parts)]
        return concat_pairs(parts)

    def _load(self, split: str) -> Pairs:
        raise NotImplementedError


def split_names(split: str) -> list[str]:
    """The splits named by ``split``: one name, or several joined by ``+`` (``train+val``)."""
    names = [s.strip() for s in str(split).split("+")]
    if not all(names) or len(set(names)) != len(names):
        raise InputError(f"split: expected a split name or distinct names joined by '+' (e.g. train+val), "
                         f"got {split!r}")
    return names


class BuiltinData(DataSource):
    """A built-in dataset (``jointspace datasets`` lists them)."""

    builtin = True

    def __init__(self, name: str):
        from .datasets import get_dataset

        self._ds = get_dataset(name)
        self.name = name
        self.splits = tuple(self._ds.splits)
        self.modalities = tuple(self._ds.modalities)
        self.relevance = self._ds.relevance

    def _load(self, split: str) -> Pairs:
        return self._ds.load(split)


class UserData(DataSource):
    """A user's collection, split into ``train`` / ``val`` (or by a split column).

    Parameters
    ----------
    pairs : Pairs
        Every row of the collection.
    val_fraction : float in [0, 0.9], optional
        Share held out as ``val`` when no split column is given (0: ``train`` is everything;
        default 0.1).  Refused with ``split_column``, which already names every row's split.
    split_column : str, optional
        Metadata column whose values (``train``, ``val``, ``test``, ...) name each row's split.
    group_column : str, optional
        Metadata column whose equal values stay on one side of the random split; default:
        the normalised caption when there is a ``text`` modality.
    seed : int
    """

    builtin = False

    def __init__(self, pairs: Pairs, *, val_fraction: float | None = None, split_column: str | None = None,
                 group_column: str | None = None, seed: int = 0):
        self.name = pairs.name
        self.pairs = _with_caption_key(pairs)
        self.modalities = tuple(m for m in pairs.modalities)
        self.relevance = "caption_key" if "caption_key" in self.pairs.metadata else "auto"
        self._parts: dict[str, np.ndarray] = {"all": np.arange(len(pairs))}
        #: the metadata column that names each row's split, if any
        self.split_column = split_column
        if split_column is not None and val_fraction is not None:
            raise InputError(f"--val-fraction: the split column already decides every row's split; give one of "
                             f"--split-column and --val-fraction (got --val-fraction {val_fraction!r})")
        val_fraction = check_float(DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction, "--val-fraction",
                                   low=0.0, high=0.9)
        seed = check_int(seed, "seed")
        if split_column is not None:
            if group_column is not None:
                raise InputError("--group-column: the split column already decides every row's split; give one of "
                                 "--split-column and --group-column")
            values = np.asarray([str(v).strip() for v in _column(self.pairs, split_column, "--split-column")])
            if "" in set(values.tolist()):
                raise InputError(f"--split-column: column {split_column!r} is empty on "
                                 f"{int((values == '').sum())} rows; expected a split name (train, val, test) on each")
            for s in sorted(set(values.tolist())):
                if s == "all":
                    raise InputError(f"--split-column: 'all' is reserved for every row; rename that split in "
                                     f"column {split_column!r}")
                self._parts[s] = np.flatnonzero(values == s)
            if "train" not in self._parts:
                raise InputError(f"--split-column: column {split_column!r} holds {', '.join(sorted(set(values)))}; "
                                 "expected a 'train' split among them")
        elif val_fraction > 0:
            if group_column is not None:
                groups = np.asarray([str(v) for v in _column(self.pairs, group_column, "--group-column")])
            elif "caption_key" in self.pairs.metadata:
                groups = np.asarray(self.pairs.metadata["caption_key"])
            else:
                groups = np.asarray([str(i) for i in self.pairs.ids.tolist()])
            # drawn when train or val is first read: commands that read every row (index, embed,
            # eval, a closed-form fit) work on a collection that cannot be split
            self._groups, self._val_fraction, self._seed = groups, val_fraction, seed
            self._parts["train"] = self._parts["val"] = None
        else:
            self._parts["train"] = np.arange(len(pairs))
        self.splits = tuple(self._parts)

    def _load(self, split: str) -> Pairs:
        if self._parts[split] is None:
            groups = self._groups
            if np.unique(groups).size < 2:
                raise InputError(f"--val-fraction: every row is in one group ({str(groups[0])!r}), so none can be "
                                 f"held out for {split}; give --val-fraction 0, a --group-column, or a --split-column")
            self._parts["train"], self._parts["val"] = _group_split(groups, self._val_fraction, self._seed)
        idx = self._parts[split]
        return self.pairs if idx.size == len(self.pairs) else self.pairs.subset(idx)


def _group_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): whole groups drawn at random until ``fraction`` of the rows are held out."""
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(uniq.size)
    target = max(1, int(round(fraction * groups.size)))
    held, total = np.zeros(uniq.size, dtype=bool), 0
    for g in order:
        if total >= target or held.sum() == uniq.size - 1:
            break
        held[g] = True
        total += counts[g]
    val = held[inverse]
    return np.flatnonzero(~val), np.flatnonzero(val)


def _column(pairs: Pairs, column: str, option: str) -> list:
    if column not in pairs.metadata:
        raise InputError(f"{option}: no column {column!r}; the collection has "
                         f"{', '.join(pairs.metadata) or 'no extra columns'}")
    return list(pairs.metadata[column])


def _with_caption_key(pairs: Pairs) -> Pairs:
    """``pairs`` with metadata ``caption_key`` (the normalised caption) when it has texts."""
    if "caption_key" in pairs.metadata or "text" not in pairs.modalities or not isinstance(pairs["text"], list):
        return pairs
    keys = [caption_key(t) for t in pairs["text"]]
    return Pairs({m: pairs[m] for m in pairs.modalities}, labels=pairs.labels, ids=pairs.ids,
                 metadata={**pairs.metadata, "caption_key": keys}, label_names=pairs.label_names, name=pairs.name)


def read_collection(spec, *, columns="auto", modalities: Mapping[str, str] | None = None,
                    labels: str | None = None) -> Pairs:
    """Every row of a manifest, folder or arrays file as :class:`Pairs`.

    Parameters
    ----------
    spec : str or Path
        ``.csv`` / ``.jsonl`` / ``.ndjson`` manifest, a folder, or an arrays file
        (``.npy .npz .mat .parquet .csv``, with ``modalities``).
    columns : str or mapping
        Manifest columns (see :func:`~jointspace.data.manifest.read_manifest`); default guessed.
    modalities : mapping of str to str, optional
        Arrays file: modality name -> key; a ``.csv`` with ``modalities`` is read as arrays.
    labels : str, optional
        Arrays file: key of the labels.
    """
    from .folder import read_folder

    p = Path(str(spec)).expanduser()
    manifest = not p.is_dir() and not modalities and p.suffix.lower() in MANIFEST_SUFFIXES
    if columns not in (None, "auto") and p.exists() and not manifest:
        raise InputError(f"--columns: names the columns of a manifest ({', '.join(MANIFEST_SUFFIXES)}); "
                         f"{str(p)!r} is {'a folder' if p.is_dir() else 'read as an arrays file'}")
    if p.is_dir():
        if modalities:
            raise InputError(f"--modality: {str(p)!r} is a folder of files; NAME=KEY pairs name the arrays of an "
                             "arrays file (.npz .mat .parquet .csv .npy)")
        return read_folder(p)
    if not p.exists():
        raise InputError(f"--data: {str(spec)!r} is neither a built-in dataset nor an existing file or folder")
    suffix = p.suffix.lower()
    if modalities:
        if suffix not in ARRAY_SUFFIXES:
            raise InputError(f"--modality: expected an arrays file ({', '.join(ARRAY_SUFFIXES)}), got {str(p)!r}")
        return read_arrays(p, modalities, labels)
    if labels is not None:
        raise InputError("--labels: names the labels of an arrays file read with --modality NAME=KEY; for a "
                         "manifest use --columns label=COLUMN")
    if suffix in MANIFEST_SUFFIXES:
        return read_manifest(p, columns)
    if suffix in ARRAY_SUFFIXES:
        raise InputError(f"--modality: {str(p)!r} holds arrays; name them, e.g. --modality image=I_tr "
                         "--modality text=T_tr (--labels L_tr)")
    raise InputError(f"--data: expected a built-in dataset, a folder, a manifest ({', '.join(MANIFEST_SUFFIXES)}) "
                     f"or an arrays file ({', '.join(ARRAY_SUFFIXES)}); got {str(p)!r}")


def open_data(spec, *, columns="auto", modalities: Mapping[str, str] | None = None, labels: str | None = None,
              val_fraction: float | None = None, split_column: str | None = None,
              group_column: str | None = None, seed: int = 0, builtin: bool | None = None) -> DataSource:
    """A built-in dataset by name, else the user's collection at path ``spec``.

    Parameters are those of :func:`read_collection` and :class:`UserData`; for a built-in
    dataset only ``spec`` is used (its splits are fixed), and the options of a collection
    are refused.  A name that is both a built-in dataset and a file or folder here is read
    as the file or folder, unless ``builtin`` is True (e.g. what an index recorded);
    ``builtin=False`` reads ``spec`` as a path.
    """
    from .datasets import DATASETS, _import_builtin

    _import_builtin()
    name = str(spec)
    if builtin and name not in DATASETS.names():
        raise InputError(f"builtin: {name!r} is not a built-in dataset (they are {', '.join(DATASETS.names())})")
    if name in DATASETS.names() and builtin is not False and (builtin or not Path(name).exists()):
        user_only = [o for o, v in (("--modality", modalities), ("--labels", labels), ("--split-column", split_column),
                                    ("--group-column", group_column), ("--columns", columns not in (None, "auto")),
                                    ("--val-fraction", val_fraction is not None))
                     if v]
        if user_only:
            raise InputError(f"{', '.join(user_only)}: {name!r} is a built-in dataset with fixed splits; these "
                             "options are for your own files")
        return BuiltinData(name)
    if not Path(name).expanduser().exists():
        raise InputError(f"--data: unknown dataset {name!r}: neither a built-in dataset "
                         f"({', '.join(DATASETS.names())}) nor an existing file or folder")
    pairs = read_collection(spec, columns=columns, modalities=modalities, labels=labels)
    return UserData(pairs, val_fraction=val_fraction, split_column=split_column, group_column=group_column, seed=seed)
