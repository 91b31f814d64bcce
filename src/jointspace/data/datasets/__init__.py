"""Built-in datasets, one module each, created by name.

Each dataset is a :class:`Dataset` subclass registered in ``DATASETS``; ``load_dataset``
returns its splits as :class:`~jointspace.data.pairs.Pairs`.
"""

from __future__ import annotations

import inspect

from ...errors import InputError, MissingDependencyError
from ...registry import Registry
from ..pairs import Pairs

DATASETS: Registry = Registry("dataset")


class Dataset:
    """A built-in dataset.

    Subclasses set ``name``, ``description``, ``splits`` and ``modalities``, and implement
    ``_load(split, **options) -> Pairs`` and, when it needs something installed,
    ``missing() -> str | None`` (the install command, or None when available).
    """

    name: str = ""
    description: str = ""
    splits: tuple[str, ...] = ("train", "test")
    modalities: tuple[str, ...] = ()
    citation: str = ""
    #: what makes a gallery item relevant to a query in this dataset's evaluation
    #: (``Pairs.relevance_keys``): "auto" (labels, else pair identity) or a metadata column
    relevance: str = "auto"

    def missing(self) -> str | None:
        return None

    def option_names(self) -> list[str]:
        """The keyword options ``_load`` takes (e.g. ``limit``), in its order."""
        params = inspect.signature(self._load).parameters
        return [k for k, v in params.items() if k != "split"
                and v.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]

    def check_options(self, options: dict) -> None:
        """Refuse an option ``_load`` does not take, naming it and the ones it takes."""
        params = inspect.signature(self._load).parameters.values()
        if any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params):
            return
        accepted = self.option_names()
        unknown = [k for k in options if k not in accepted]
        if unknown:
            takes = f"takes the options {', '.join(accepted)}" if accepted else "takes no options"
            raise InputError(f"{unknown[0]}: dataset {self.name!r} {takes}; got {', '.join(map(repr, unknown))}")

    def load(self, split: str, **options) -> Pairs:
        if split not in self.splits:
            raise InputError(f"split: dataset {self.name!r} has splits {', '.join(self.splits)}; got {split!r}")
        self.check_options(options)
        why = self.missing()
        if why:
            raise MissingDependencyError(f"dataset {self.name!r} is not installed: {why}")
        return self._load(split, **options)

    def _load(self, split: str, **options) -> Pairs:
        raise NotImplementedError


def register_dataset(cls):
    """Class decorator registering a :class:`Dataset` subclass under its ``name``."""
    DATASETS.register(cls.name, cls.description)(cls)
    return cls


def _import_builtin() -> None:
    from . import _builtin  # noqa: F401


def get_dataset(name: str) -> Dataset:
    """The :class:`Dataset` object registered as ``name``."""
    _import_builtin()
    return DATASETS.create(name)


def load_dataset(name: str, split: str | None = None, **options):
    """Load a built-in dataset.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`.
    split : str, optional
        One split; when omitted, a dict of every split.
    **options
        Keyword options of the dataset's loader, passed on as given; each dataset takes its
        own (``get_dataset(name).option_names()`` lists them, and an option it does not take
        is refused with an :class:`~jointspace.errors.InputError` naming it).  Common ones:

        - ``root``: a folder holding the data already downloaded (fashion-mnist,
          fashion-mnist-trimodal, openclipart);
        - ``limit``: keep only the first ``limit`` samples of the split, for quick runs
          (fashion-mnist, fashion-mnist-trimodal, openclipart, spoken-words);
        - ``cache_dir``: where downloads and derived files are cached (photos, openclipart,
          spoken-words, fashion-mnist-trimodal).

        Others are particular to one dataset, e.g. ``shape="image"`` (digits as 8x8 images),
        ``channel=True`` (fashion-mnist images with a channel axis), ``text=`` and ``size=``
        (openclipart), ``words=`` and ``settings_per_accent=`` (spoken-words).  wikipedia
        takes none.

    Returns
    -------
    Pairs, or dict of str to Pairs
        With ``split`` omitted, every split is loaded with the same ``options``.
    """
    ds = get_dataset(name)
    if split is None:
        return {s: ds.load(s, **options) for s in ds.splits}
    return ds.load(split, **options)


def list_datasets() -> list[dict]:
    """One dict per built-in dataset: name, description, splits, modalities, relevance,
    available, install and citation (how to cite the data, with its licence where known)."""
    _import_builtin()
    rows = []
    for name in DATASETS.names():
        ds = DATASETS.create(name)
        why = ds.missing()
        rows.append({"name": name, "description": ds.description, "splits": list(ds.splits),
                     "modalities": list(ds.modalities), "relevance": ds.relevance,
                     "available": why is None, "install": why or "", "citation": ds.citation})
    return rows
