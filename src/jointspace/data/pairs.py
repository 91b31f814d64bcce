"""``Pairs``: N aligned samples over two or more named modalities."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from .._validation import check_int
from ..errors import InputError
from .labels import read_keys, read_labels


def _as_items(name: str, items):
    """Keep arrays as arrays; strings (an array of str or bytes, shape (N,)), a 1-D object
    array and other sequences become lists of N items."""
    if isinstance(items, np.ndarray):
        if items.ndim == 0:
            raise InputError(f"modality {name!r}: expected an array (N, d) or a list of N items, got a scalar")
        if items.dtype.kind == "U":
            if items.ndim != 1:  # str() of a row would be the text "['x', 'y']"
                raise InputError(f"modality {name!r}: expected N strings, shape (N,), got shape {items.shape}")
            return [str(s) for s in items.tolist()]
        if items.dtype.kind == "S":  # str(b"a cat") would be the text "b'a cat'"
            if items.ndim != 1:
                raise InputError(f"modality {name!r}: expected N byte strings, shape (N,), got shape {items.shape}")
            out = []
            for i, b in enumerate(items.tolist()):
                try:
                    out.append(b.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise InputError(f"modality {name!r}: expected UTF-8 byte strings, item {i} is not "
                                     f"({exc.reason} at byte {exc.start}: {b[:40]!r})") from None
            return out
        if items.dtype == object and items.ndim == 1:  # texts, paths or waveforms (pandas' to_numpy())
            return items.tolist()
        return items
    if hasattr(items, "to_numpy") and hasattr(items, "__len__"):  # a pandas / polars Series or DataFrame
        return _as_items(name, np.asarray(items.to_numpy()))
    if isinstance(items, (str, bytes)):
        raise InputError(f"modality {name!r}: expected an array (N, d) or a list of N items, got a single string")
    if isinstance(items, Sequence):
        return list(items)
    raise InputError(f"modality {name!r}: expected an array (N, d) or a list of N items, got {type(items).__name__}")


def _check_label_names(labels: np.ndarray, names: list) -> None:
    """``label_names`` must name every column of multi-hot labels, every integer label
    ``0 .. C-1``, or as many classes as there are string labels."""
    if labels.ndim == 2:
        if len(names) != labels.shape[1]:
            raise InputError(f"label_names: expected one name per column of the multi-hot labels "
                             f"({labels.shape[1]}), got {len(names)}")
        return
    if labels.size == 0:
        return
    if labels.dtype.kind in "iufb":
        bad = (labels < 0) | (labels != np.round(labels)) if labels.dtype.kind == "f" else labels < 0
        if bad.any():
            raise InputError(f"label_names: name the integer labels 0 .. C-1 (label c is label_names[c]), but "
                             f"sample {int(np.flatnonzero(bad)[0])} has the label {labels[bad][0].item()!r}")
        high = int(labels.max())
        if high >= len(names):
            raise InputError(f"label_names: expected a name for every label 0 .. {high} ({high + 1} names), "
                             f"got {len(names)}")
        return
    classes = np.unique(labels)
    if classes.size > len(names):
        raise InputError(f"label_names: expected a name for each of the {classes.size} classes, "
                         f"got {len(names)}")


def _take(items, idx: np.ndarray):
    if isinstance(items, np.ndarray):
        return items[idx]
    return [items[i] for i in idx]


class Pairs:
    """N aligned samples across named modalities, with optional labels, ids and metadata.

    Parameters
    ----------
    modalities : mapping of str to array-like
        Modality name -> items: an array of shape (N, d) (feature vectors; any trailing
        shape is kept, e.g. images (N, H, W, C)), or a list of N strings / file paths.
        A pandas Series or DataFrame is read by position, as its ``to_numpy()``.  A numeric
        array is kept, not copied (the ``Pairs`` is a view of it: writing into one changes the
        other); a list or other sequence is copied into a new list of the same items.
    labels : array-like, shape (N,) or (N, C), or N label sets, optional
        One label per sample (int or str), a multi-hot NumPy matrix (booleans or 0/1) for
        multi-label data, or a set of labels per sample (lists, sets; stored as a multi-hot
        matrix over the sorted labels, which become ``label_names``); see
        :mod:`jointspace.data.labels`.
    ids : array-like, shape (N,), optional
        Unique sample ids; default ``0 .. N-1``.
    metadata : mapping of str to sequence of length N, optional
        Extra per-sample columns (titles, file paths, ...).
    label_names : sequence of str, optional
        Human-readable names for integer labels ``0 .. C-1``.
    name : str, optional
        Dataset name (used in reports).

    Examples
    --------
    >>> import numpy as np
    >>> p = Pairs({"image": np.zeros((4, 3)), "text": ["a", "b", "c", "d"]}, labels=[0, 1, 0, 1])
    >>> len(p), p.modalities
    (4, ('image', 'text'))
    """

    def __init__(self, modalities: Mapping, labels=None, ids=None, metadata: Mapping | None = None,
                 label_names: Sequence[str] | None = None, name: str = ""):
        if not isinstance(modalities, Mapping) or len(modalities) < 1:
            raise InputError("modalities: expected a mapping of modality name -> items with at least one entry, "
                             f"got {type(modalities).__name__}")
        data = {}
        for mod, items in modalities.items():
            if not isinstance(mod, str) or not mod:
                raise InputError(f"modalities: expected non-empty string names, got {mod!r}")
            data[mod] = _as_items(mod, items)
        counts = {mod: len(items) for mod, items in data.items()}
        n = next(iter(counts.values()))
        if len(set(counts.values())) != 1:
            detail = ", ".join(f"{m}={c}" for m, c in counts.items())
            raise InputError(f"modalities: every modality must have the same number of samples; got {detail}")
        self._data = data
        self._n = n
        self.name = name
        self.labels = None
        if label_names is not None and (isinstance(label_names, (str, bytes)) or not isinstance(label_names, Sequence)
                                        and not isinstance(label_names, np.ndarray)):
            raise InputError(f"label_names: expected a sequence of names, got {type(label_names).__name__} "
                             f"{label_names!r:.60}")
        if labels is not None:
            # label sets (lists of lists, sets) become a multi-hot matrix, never read by shape
            lab, columns = read_labels(labels, "labels", label_names)
            if columns is not None:
                label_names = [str(c) for c in columns]
            if lab.ndim not in (1, 2) or lab.shape[0] != n:
                raise InputError(f"labels: expected shape ({n},) or ({n}, C), got {lab.shape}")
            if lab.dtype.kind == "f" and not np.isfinite(lab).all():
                raise InputError("labels: expected finite values, got NaN or Inf")
            if label_names is not None and columns is None:
                _check_label_names(lab, list(label_names))
            self.labels = lab
        if ids is None:
            self.ids = np.arange(n)
        else:
            ids = read_keys(ids, "ids") if np.ndim(ids) == 1 else np.asarray(ids)
            if ids.shape != (n,):
                raise InputError(f"ids: expected shape ({n},), got {ids.shape}")
            if len(np.unique(ids)) != n:
                raise InputError("ids: expected unique ids, got duplicates")
            self.ids = ids
        self.metadata = {}
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InputError(f"metadata: expected a mapping of column name -> {n} values, "
                             f"got {type(metadata).__name__}")
        for key, col in (metadata or {}).items():
            if isinstance(col, (str, bytes)) or not (isinstance(col, (Sequence, np.ndarray))
                                                     or hasattr(col, "to_numpy")):
                raise InputError(f"metadata[{key!r}]: expected a sequence of {n} values, got "
                                 f"{type(col).__name__} {col!r:.60}")
            col = list(col) if not isinstance(col, np.ndarray) else col
            if len(col) != n:
                raise InputError(f"metadata[{key!r}]: expected {n} values, got {len(col)}")
            self.metadata[key] = col
        self.label_names = list(label_names) if label_names is not None else None

    # -- a user's collection -------------------------------------------------------------
    @classmethod
    def from_manifest(cls, path, columns="auto", **kwargs) -> "Pairs":
        """A CSV / JSON-lines manifest of file paths, texts and labels (columns guessed by
        default); see :func:`jointspace.data.manifest.read_manifest`."""
        from .manifest import read_manifest

        return read_manifest(path, columns, **kwargs)

    @classmethod
    def from_folder(cls, path, **kwargs) -> "Pairs":
        """A folder of images (or sounds) with sidecar ``.txt`` captions or file-name captions,
        sub-folders as labels, duplicates by content kept once; see
        :func:`jointspace.data.folder.read_folder`."""
        from .folder import read_folder

        return read_folder(path, **kwargs)

    @classmethod
    def from_arrays(cls, path, modalities, labels=None, **kwargs) -> "Pairs":
        """Aligned arrays of one ``.npz`` / ``.mat`` / ``.parquet`` / ``.csv`` file, e.g.
        ``Pairs.from_arrays("wiki.mat", {"image": "I_tr", "text": "T_tr"}, labels="L_tr")``;
        see :func:`jointspace.data.readers.read_arrays`."""
        from .readers import read_arrays

        return read_arrays(path, modalities, labels, **kwargs)

    # -- basic access ---------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the modalities, in the order given."""
        return tuple(self._data)

    def __getitem__(self, modality: str):
        """Items of one modality: an array (N, ...) or a list of N strings."""
        if not isinstance(modality, str):  # a row number or a slice: rows come from subset
            raise InputError(f"modality: expected a modality name ({', '.join(self.modalities)}), got "
                             f"{type(modality).__name__} {modality!r:.60}; for rows, use "
                             "pairs.subset(indices) or pairs.batches(batch_size)")
        if modality not in self._data:
            raise InputError(f"modality: expected one of {', '.join(self.modalities)}; got {modality!r}")
        return self._data[modality]

    #: not iterable: rows come from ``subset`` or ``batches``, names from ``modalities``
    __iter__ = None

    def __contains__(self, modality: str) -> bool:
        return modality in self._data

    def __repr__(self) -> str:
        parts = []
        for mod, items in self._data.items():
            desc = f"array{tuple(items.shape)}" if isinstance(items, np.ndarray) else f"list[{len(items)}]"
            parts.append(f"{mod}={desc}")
        lab = "" if self.labels is None else f", labels{tuple(self.labels.shape)}"
        nm = f"{self.name!r}, " if self.name else ""
        return f"Pairs({nm}n={self._n}, {', '.join(parts)}{lab})"

    @property
    def is_multilabel(self) -> bool:
        return self.labels is not None and self.labels.ndim == 2

    # -- derived sets ---------------------------------------------------------------------
    def subset(self, indices) -> "Pairs":
        """A new ``Pairs`` with the rows ``indices``, copied (unlike :meth:`select`, a view).

        Parameters
        ----------
        indices : array-like of int, shape (k,), or of bool, shape (N,)
            Row numbers (negative ones count from the end; each row at most once) or a
            boolean mask.  Float row numbers are refused rather than truncated.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self._n,):
                raise InputError(f"indices: boolean mask must have shape ({self._n},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1:
            raise InputError(f"indices: expected a 1-D array of row numbers or a boolean mask, got shape {idx.shape}")
        if idx.size and idx.dtype.kind not in "iu":  # an empty list comes as float64: nothing to truncate
            raise InputError(f"indices: expected integer row numbers or a boolean mask of shape ({self._n},), "
                             f"got dtype {idx.dtype} (e.g. {idx[:1].tolist()[0]!r})")
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise InputError(f"indices: expected values in [0, {self._n}), got min {idx.min()} max {idx.max()}")
        if np.unique(idx % max(self._n, 1)).size != idx.size:
            raise InputError("indices: expected each row at most once (rows keep their ids, which must stay "
                             "unique); for a bootstrap sample, index the arrays or give new ids")
        return Pairs({m: _take(v, idx) for m, v in self._data.items()},
                     labels=None if self.labels is None else self.labels[idx],
                     ids=self.ids[idx],
                     metadata={k: _take(v, idx) for k, v in self.metadata.items()},
                     label_names=self.label_names, name=self.name)

    def select(self, modalities: Sequence[str] | str) -> "Pairs":
        """A new ``Pairs`` keeping only the given modalities (a list of names, or one name;
        same rows).  A view, not a copy: it shares this one's arrays (modalities, labels, ids),
        so writing into ``selected[modality]`` changes this one too; :meth:`subset` copies."""
        if isinstance(modalities, str):
            modalities = [modalities]
        if not isinstance(modalities, (Sequence, np.ndarray)) or not len(modalities):
            raise InputError(f"modalities: expected one or more of {', '.join(self.modalities)}, got "
                             f"{type(modalities).__name__} {modalities!r:.60}")
        for m in modalities:
            self[m]
        return Pairs({m: self._data[m] for m in modalities}, labels=self.labels, ids=self.ids,
                     metadata=self.metadata, label_names=self.label_names, name=self.name)

    def with_modality(self, name: str, items) -> "Pairs":
        """A new ``Pairs`` with one modality added or replaced (``items``: N rows, as in
        the constructor).  A view, not a copy: it shares this one's arrays (modalities, labels,
        ids) and keeps an array ``items`` as given; :meth:`subset` copies."""
        if not isinstance(name, str) or not name:
            raise InputError(f"name: expected a non-empty modality name, got {name!r:.60}")
        items = _as_items(name, items)
        if len(items) != self._n:
            raise InputError(f"items: expected {self._n} items for modality {name!r}, one per row, got {len(items)}")
        data = dict(self._data)
        data[name] = items
        return Pairs(data, labels=self.labels, ids=self.ids, metadata=self.metadata,
                     label_names=self.label_names, name=self.name)

    def split(self, test_size: float = 0.2, *, seed: int = 0, stratify: bool = False,
              groups: Sequence | None = None) -> tuple["Pairs", "Pairs"]:
        """Split into (train, test).

        Parameters
        ----------
        test_size : float in (0, 1)
            Fraction of samples in the test part.
        seed : int in [0, 2**32 - 1]
            Random seed; the split is deterministic given the seed.
        stratify : bool
            Keep label proportions (single-label data only).
        groups : sequence of length N, optional
            Samples with the same group value land on the same side (e.g. repeated captions).

        Returns
        -------
        train, test : Pairs

        Raises
        ------
        InputError
            ``test_size`` outside (0, 1); fewer than 2 samples; ``stratify`` with no
            single labels, a class with one sample, or fewer test (or train) samples than
            classes; ``groups`` of the wrong length or with fewer than 2 distinct values;
            ``groups`` together with ``stratify``.
        """
        from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit, ShuffleSplit

        if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real) or not 0.0 < test_size < 1.0:
            raise InputError(f"test_size: expected a fraction in (0, 1), got {test_size!r}")
        test_size = float(test_size)
        seed = check_int(seed, "seed", low=0, high=2**32 - 1)
        if self._n < 2:
            raise InputError(f"pairs: need at least 2 samples to split, got {self._n}")
        if groups is None and self._n - math.ceil(test_size * self._n) < 1:
            raise InputError(f"test_size: {test_size} of {self._n} samples leaves none for training; expected at "
                             f"most {(self._n - 1) / self._n:.3g} here")
        if groups is not None and stratify:  # GroupShuffleSplit would drop the label proportions
            raise InputError("stratify: cannot be kept together with groups (a group's samples stay on one side); "
                             "give groups or stratify=True, not both")
        dummy = np.zeros(self._n)
        if groups is not None:
            if isinstance(groups, (str, bytes)) or np.ndim(groups) != 1:  # 'abcdef' would be one group
                raise InputError(f"groups: expected {self._n} group values, shape ({self._n},), got "
                                 f"{type(groups).__name__} of shape {np.shape(groups)}")
            if len(groups) != self._n:
                raise InputError(f"groups: expected {self._n} values, got {len(groups)}")
            distinct = np.unique(np.asarray(groups))
            if distinct.size < 2:
                raise InputError(f"groups: need at least 2 distinct groups to split, got {distinct.size} "
                                 f"(every sample is in group {distinct[:1].tolist()[0]!r})")
            splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
            try:
                tr, te = next(splitter.split(dummy, groups=np.asarray(groups)))
            except ValueError as exc:
                raise InputError(f"groups: cannot split {distinct.size} groups with test_size={test_size}: "
                                 f"{exc}") from None
        elif stratify:
            if self.labels is None or self.labels.ndim != 1:
                raise InputError("stratify: needs single labels of shape (N,), got none or multi-label")
            classes, counts = np.unique(self.labels, return_counts=True)
            if counts.min() < 2:
                few = ", ".join(repr(c.item()) for c in classes[counts < 2][:5])
                raise InputError(f"stratify: needs at least 2 samples of every class (one per side), got "
                                 f"{int((counts < 2).sum())} class(es) with a single sample: {few}; "
                                 "merge or drop them, or split without stratify")
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
            try:
                tr, te = next(splitter.split(dummy, self.labels))
            except ValueError as exc:  # e.g. fewer test samples than classes
                raise InputError(f"stratify: cannot keep {classes.size} classes on both sides of a split of "
                                 f"{self._n} samples with test_size={test_size}: {exc}") from None
        else:
            tr, te = next(ShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(dummy))
        return self.subset(np.sort(tr)), self.subset(np.sort(te))

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> Iterator["Pairs"]:
        """Iterate over the samples in ``Pairs`` batches of ``batch_size`` rows."""
        batch_size = check_int(batch_size, "batch_size", low=1)
        seed = check_int(seed, "seed", low=0, high=2**32 - 1)
        order = np.random.default_rng(seed).permutation(self._n) if shuffle else np.arange(self._n)
        stop = self._n - (self._n % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            yield self.subset(order[start:start + batch_size])

    def relevance_keys(self, by: str = "auto") -> np.ndarray:
        """Per-sample keys that decide which items are relevant to each other in evaluation.

        Parameters
        ----------
        by : {"auto", "label", "id"} or a metadata column name
            ``"label"`` uses the labels (shape (N,) or multi-hot (N, C)), ``"id"`` the pair
            identity, a metadata column its values (e.g. a normalised title); ``"auto"`` is
            ``"label"`` when labels exist, else ``"id"``.

        Returns
        -------
        keys : ndarray, shape (N,) or (N, C)
        """
        if by == "auto":
            by = "label" if self.labels is not None else "id"
        if by == "label":
            if self.labels is None:
                raise InputError("relevance: 'label' asked for but these pairs have no labels")
            return self.labels
        if by == "id":
            return self.ids
        if by in self.metadata:
            return np.asarray(self.metadata[by])
        raise InputError(f"relevance: expected 'auto', 'label', 'id' or a metadata column "
                         f"({', '.join(self.metadata) or 'none'}); got {by!r}")


def concat_pairs(parts: Sequence[Pairs], name: str | None = None) -> Pairs:
    """The rows of several ``Pairs`` one after the other (e.g. a train and a val split).

    Parameters
    ----------
    parts : sequence of Pairs
        At least one; the same modalities, each of one kind in every part (arrays with the
        same trailing shape, or lists of items); labels in all parts or in none (the same
        ``label_names``, the same width for multi-hot labels); ids of one kind (numbers
        or strings), unique across the parts.
    name : str, optional
        Name of the result (default: the parts' name when they share one).

    Returns
    -------
    Pairs
        ``sum(len(p) for p in parts)`` rows in the order given; metadata columns present in
        every part are kept, the others dropped.

    Examples
    --------
    >>> a = Pairs({"x": np.zeros((2, 3)), "t": ["a", "b"]}, ids=[0, 1])
    >>> b = Pairs({"x": np.ones((1, 3)), "t": ["c"]}, ids=[2])
    >>> c = concat_pairs([a, b])
    >>> len(c), c["t"], c.ids.tolist()
    (3, ['a', 'b', 'c'], [0, 1, 2])
    """
    if isinstance(parts, Pairs) or not isinstance(parts, Sequence) or not parts:
        raise InputError(f"parts: expected a non-empty list of Pairs, got {type(parts).__name__} "
                         f"of length {len(parts) if isinstance(parts, Sequence) else 'none'}")
    for i, p in enumerate(parts):
        if not isinstance(p, Pairs):
            raise InputError(f"parts[{i}]: expected a Pairs, got {type(p).__name__}")
    parts = list(parts)
    first = parts[0]
    for i, p in enumerate(parts[1:], start=1):
        if set(p.modalities) != set(first.modalities):
            raise InputError(f"parts[{i}]: expected the modalities {', '.join(first.modalities)}, "
                             f"got {', '.join(p.modalities)}")
        if (p.labels is None) != (first.labels is None):
            raise InputError(f"parts[{i}]: expected labels in every part or in none; parts[0] has "
                             f"{'none' if first.labels is None else 'labels'}, parts[{i}] "
                             f"{'none' if p.labels is None else 'labels'}")
        if p.label_names != first.label_names:
            raise InputError(f"parts[{i}]: expected the same label_names as parts[0]")
    data = {}
    for m in first.modalities:
        items = [p[m] for p in parts]
        if all(isinstance(v, np.ndarray) for v in items):
            shapes = {v.shape[1:] for v in items}
            if len(shapes) != 1:
                raise InputError(f"parts: modality {m!r} has rows of different shapes across the parts: "
                                 f"{sorted(shapes)}")
            data[m] = np.concatenate(items)
        elif all(isinstance(v, list) for v in items):
            data[m] = [x for v in items for x in v]
        else:
            raise InputError(f"parts: modality {m!r} is an array in some parts and a list of items in others")
    labels = None
    if first.labels is not None:
        shapes = {p.labels.shape[1:] for p in parts}
        if len(shapes) != 1:
            raise InputError(f"parts: labels of different shapes across the parts: {sorted(shapes)}")
        kinds = {"string" if p.labels.dtype.kind in "USO" else "number" for p in parts}
        if len(kinds) > 1:
            raise InputError("parts: labels are numbers in some parts and strings in others (1 and '1' would be "
                             "merged); give every part labels of one kind")
        labels = np.concatenate([p.labels for p in parts])
    id_kinds = {i: "string" if np.asarray(p.ids).dtype.kind in "USO" else "number" for i, p in enumerate(parts)}
    if len(set(id_kinds.values())) > 1:   # np.concatenate would turn the numbers into text
        other = next(i for i, k in id_kinds.items() if k != id_kinds[0])
        raise InputError(f"parts[{other}]: ids are {id_kinds[other]}s, parts[0]'s {id_kinds[0]}s (7 would become "
                         "'7', and 7 and '7' one id); give every part ids of one kind")
    ids = np.concatenate([np.asarray(p.ids) for p in parts])
    if len(np.unique(ids)) != len(ids):
        raise InputError("parts: expected ids unique across the parts, got ids present in more than one part "
                         "(give each part its own ids)")
    keys = [k for k in first.metadata if all(k in p.metadata for p in parts)]
    metadata = {k: [x for p in parts for x in list(p.metadata[k])] for k in keys}
    if name is None:
        name = first.name if all(p.name == first.name for p in parts) else ""
    return Pairs(data, labels=labels, ids=ids, metadata=metadata, label_names=first.label_names, name=name)
