"""Checks that a model can read what a command is about to give it, named by option."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from ..errors import InputError


def feature_vectors(items) -> bool:
    """Whether ``items`` are feature vectors: a numeric array (n, d)."""
    return isinstance(items, np.ndarray) and items.ndim == 2 and np.issubdtype(items.dtype, np.number)


def check_tower_items(tower: str, modality: str, items, dataset: str, option: str, hint: str = "") -> None:
    """Refuse feature vectors (n, d) for a tower that reads raw image or text items;
    ``hint`` ends the message."""
    if modality in ("image", "text") and feature_vectors(items):
        raise InputError(f"{option}: {tower!r} reads raw {modality} items, but the {modality} items of "
                         f"{dataset!r} are {items.shape[1]}-d feature vectors{hint}")


def check_png_out(path, option: str, what: str):
    """``path`` as a writable file name ending in .png (``what`` is written there as a PNG image)."""
    from .._io import check_out_file

    out = check_out_file(path, arg=option)
    if out.suffix.lower() != ".png":
        raise InputError(f"{option}: {what}; expected a file ending in .png, got {str(path)!r}")
    return out


def _tower_of(model, modality: str):
    towers = getattr(model, "towers", None)
    return towers.get(modality) if isinstance(towers, dict) else None


def check_dataset_items(model, pairs, modalities, dataset: str, option: str = "--dataset") -> None:
    """Refuse a dataset whose items ``model`` cannot embed, before any work.

    Raw items (texts, file paths) need a tower for their modality; feature vectors (n, d)
    given to a modality the model reads through a tower are refused too.
    """
    for m in modalities:
        if m not in pairs:
            continue
        items = pairs[m]
        raw = not (isinstance(items, np.ndarray) and np.issubdtype(items.dtype, np.number))
        tower = _tower_of(model, m)
        if raw and model.raw_kind(m) is None:
            what = "texts" if m == "text" else "file paths"
            raise InputError(f"{option}: the model embeds {m} items only as feature vectors, but {dataset!r} gives "
                             f"raw {m} items ({what}); fit a model on {dataset!r} with --towers")
        if tower is not None and feature_vectors(items):
            raise InputError(f"{option}: the model reads raw {m} items through its {tower!r} tower, but the {m} "
                             f"items of {dataset!r} are {items.shape[1]}-d feature vectors")


def check_query_value(kind: str, value: str) -> None:
    """Refuse a --text query without visible characters, or an --image / --audio query that is
    not a readable file (an image is decoded once, so that a bad file is named by the option)."""
    from pathlib import Path

    if kind == "text":
        from ..towers.inputs import has_visible_text

        if not has_visible_text(value):
            raise InputError(f"--text: expected a query with visible characters, got {value!r}")
        return
    what = "an image" if kind == "image" else "a sound"
    if not value:
        raise InputError(f"--{kind}: expected {what} file, got ''")
    path = Path(value).expanduser()
    if path.is_dir():
        raise InputError(f"--{kind}: expected {what} file, got the folder {value!r}")
    if not path.is_file():
        raise InputError(f"--{kind}: file {value!r} does not exist")
    if kind == "image":
        from ..towers.inputs import load_image

        load_image(path, "--image")


def check_raw_query(model, kind: str, value: str, others=("--query-row",)) -> None:
    """Refuse a --text / --image / --audio query the model has no modality or tower for, or a
    bad value (see :func:`check_query_value`).

    ``others`` are the other query options of the command (``--query-row``, ``--text``, ...);
    the message suggests those the model can take, and only those.
    """
    known = getattr(model, "modalities_", None)
    usable = [o for o in others if o == "--query-row" or model.raw_kind(o[2:]) == o[2:]]
    if known is not None and kind not in known:
        raise InputError(f"--{kind}: this model has no {kind} modality (it knows {', '.join(known)})"
                         + (f"; use {_either(usable)}" if usable else ""))
    check_query_value(kind, value)
    if model.raw_kind(kind) != kind:
        raise InputError(f"--{kind}: this model has no {kind} tower (it embeds {kind} items only as feature "
                         f"vectors); use {_either([*usable, 'a model fitted with --towers'])}")


def _either(choices) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    choices = list(choices)
    return choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]


def _paths_in(value) -> list[str]:
    """The non-empty strings (or paths) ``value`` holds ("" is no path, not the current folder)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [os.fspath(v) for v in values if isinstance(v, (str, os.PathLike)) and os.fspath(v)]


def option_name(args, dest: str) -> str:
    """What the user calls the argument ``dest`` (recorded by the parser; a guess otherwise)."""
    return getattr(args, "option_names", {}).get(dest) or "--" + dest.replace("_", "-")


#: files that mark a saved model, index or matcher folder
ARTEFACT_MARKERS = ("config.json", "index.json", "shards.json")


def _reads(source: Path, out: Path, collection: bool) -> bool:
    """Whether the input ``source`` (a file or a folder) reads the existing file ``out``."""
    if source.is_file():
        return os.path.samefile(source, out)
    if not source.is_dir():
        return False
    inside = out.resolve().relative_to(source.resolve()).parts if out.resolve().is_relative_to(source.resolve()) else ()
    if not inside or collection:
        return bool(inside)   # every file of a collection folder may be one of its items
    from .._io import WRITTEN_FILE, written_names

    owned = written_names(source)   # a saved artefact: only what its writer wrote is read
    if owned is not None:
        return inside[0] == WRITTEN_FILE or inside[0] in owned
    # an artefact saved before writers listed their files: its top-level files; any other
    # folder (a cache, a run folder) is not read file by file
    return len(inside) == 1 and any((source / marker).is_file() for marker in ARTEFACT_MARKERS)


def check_not_an_input(args, dest: str, option: str) -> None:
    """Refuse an output file that would overwrite one of the command's inputs.

    The file named by ``args.<dest>`` may replace an earlier output, but not a file another
    argument reads: the same file, a file of the collection folder DATA (a picture, its
    manifest), or a file a saved model or index holds (a plot a user put inside an index
    folder may be replaced).

    Raises
    ------
    InputError
        Naming ``option``, the file and the argument that reads it.
    """
    out = Path(getattr(args, dest))
    if not out.is_file():
        return
    for name, value in vars(args).items():
        if name in (dest, "option_names"):
            continue
        for given in _paths_in(value):
            try:
                reads = _reads(Path(given), out, collection=name == "dataset")
            except (OSError, ValueError):
                continue
            if reads:
                raise InputError(f"{option}: {str(out)!r} is read by {option_name(args, name)} ({given!r}); expected "
                                 "a file name that is not one of the inputs, so they are not overwritten")


def check_not_an_item(out, option: str, *, items=(), index=None, source: str = "DATA") -> None:
    """Refuse an output file that is one of the items a command reads: a file a manifest lists
    (``items``, the item paths of a loaded collection) or a file an index holds (``index``).

    Raises
    ------
    InputError
        Naming ``option``, the file and ``source`` (the argument that lists it).
    """
    out = Path(out)
    if not out.is_file():
        return
    where = str(out.resolve())
    listed = any(isinstance(v, str) and v == where for v in items)
    if not listed and index is not None and hasattr(index, "ids_with_path"):
        listed = index.ids_with_path(where).size > 0
    if listed:
        raise InputError(f"{option}: {str(out)!r} is an item of {source}; expected a file name that is not one of "
                         "the inputs, so they are not overwritten")


@contextlib.contextmanager
def named_as(argument: str, option: str):
    """Within the block, an :class:`InputError` that starts with ``argument:`` (a library
    function's parameter) names the command's ``option`` instead."""
    try:
        yield
    except InputError as exc:
        msg = str(exc)
        if msg.startswith(argument + ":"):
            raise InputError(option + msg[len(argument):]) from None
        raise


def check_array_modalities(args, modalities, least: int = 1, purpose: str = "") -> None:
    """Refuse ``--modality NAME=KEY`` arrays of a modality the model does not embed (a typo such
    as ``txt=T`` would otherwise be left out without a word), and fewer than ``least`` of the
    model's ``modalities`` (``purpose`` says what needs them)."""
    from ._common import given_array_keys

    given = given_array_keys(args) or {}
    for name, key in given.items():
        if name not in modalities:
            raise InputError(f"--modality {name}={key}: the model embeds {', '.join(modalities)}; it has no "
                             f"modality {name!r}")
    if given and len(given) < least:
        raise InputError(f"--modality: {purpose} needs the arrays of {least} of the model's modalities "
                         f"({', '.join(modalities)}), got {', '.join(f'{n}={k}' for n, k in given.items())}")
