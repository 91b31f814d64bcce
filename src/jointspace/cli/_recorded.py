"""What an index records about the model and the data it was built from, checked before use.

``jointspace index`` records the model folder (and a digest of the saved model) and the
dataset (a built-in name, or the absolute path of the user's collection) in the index's
info.  A command that later reads them (search, serve, plot gallery, index --append) finds
out here whether they are still there and still the same, and says so naming the option that
passes them instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError

#: the index info field holding :func:`~jointspace.models.base.saved_model_digest` of its model
MODEL_DIGEST = "model_sha256"
#: the index info field saying whether the recorded dataset is a built-in one (else a path)
DATASET_BUILTIN = "dataset_builtin"


def _name(args, dest: str, default: str) -> str:
    return (getattr(args, "option_names", None) or {}).get(dest) or default


def model_record(model_dir) -> dict:
    """The info fields an index records about the model folder it is built with."""
    from ..models.base import saved_model_digest

    record = {"model": str(Path(model_dir).resolve())}
    digest = saved_model_digest(model_dir)
    if digest:
        record[MODEL_DIGEST] = digest
    return record


def same_folder(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def index_model_dir(args, info: dict, index_dir, *, model_dest: str = "model", index_dest: str = "index") -> str:
    """The model folder to search the index ``index_dir`` with: ``args.<model_dest>`` or the
    one the index records.

    Raises
    ------
    InputError
        The index records no model and none is given; the recorded model folder is gone
        (and none is given); or the recorded folder was saved again after the index was
        built (its digest differs from the recorded one), named by the model and index options.
    """
    model_opt, index_opt = _name(args, model_dest, "--model"), _name(args, index_dest, "INDEX")
    given = getattr(args, model_dest, None)
    recorded = info.get("model")
    if not given:
        if not recorded:
            raise InputError(f"{model_opt}: index {str(index_dir)!r} does not record its model; pass "
                             f"{model_opt} RUN_DIR")
        if not Path(str(recorded)).is_dir():
            raise InputError(f"{index_opt}: the model index {str(index_dir)!r} was built with, {str(recorded)!r}, "
                             f"is missing (moved or deleted); pass the model folder with {model_opt} RUN_DIR")
    return str(given or recorded)


def check_model_unchanged(args, info: dict, model_dir, *, model_dest: str = "model",
                          index_dest: str = "index") -> None:
    """Refuse ``model_dir`` when it is the folder the index records but was saved again since
    (indexes that record no digest are not checked)."""
    from ..models.base import saved_model_digest

    recorded, digest = info.get("model"), info.get(MODEL_DIGEST)
    if not recorded or not isinstance(digest, str) or not same_folder(model_dir, recorded):
        return
    if saved_model_digest(model_dir) != digest:
        model_opt, index_opt = _name(args, model_dest, "--model"), _name(args, index_dest, "INDEX")
        raise InputError(f"{model_opt}/{index_opt}: the model at {str(recorded)!r} was saved again after this index "
                         f"was built, so its vectors no longer match the index's; build the index again with "
                         f"'jointspace index', or pass the model it was built with as {model_opt} RUN_DIR")


def other_model(info: dict, model_dir) -> str | None:
    """The model the index records when ``model_dir`` names a different folder, else None."""
    recorded = info.get("model")
    if not model_dir or not recorded:
        return None
    return None if same_folder(model_dir, recorded) else str(recorded)


def warn_other_model(args, info: dict, model_dest: str = "model") -> None:
    """A warning on stderr when the model given is not the one the index was built with."""
    from ._common import warn

    given = getattr(args, model_dest, None)
    recorded = other_model(info, given)
    if recorded:
        warn(f"{_name(args, model_dest, '--model')} {given} is not the model this index was built with "
             f"({recorded}); the scores mean something only if both embed into the same space")


def recorded_dataset(args, info: dict, index_dir, *, index_dest: str = "index",
                     dataset_dest: str = "dataset") -> tuple[str | None, bool]:
    """(dataset, builtin) the index records, for reading its rows again.

    ``builtin`` is True for a built-in dataset (opened as one even when the current folder
    holds a file or folder of that name), False for a user's collection (an absolute path).
    An index that does not say records a built-in by its bare name and a collection by its
    absolute path, which tells them apart.

    Raises
    ------
    InputError
        The recorded collection is no longer there, or the recorded built-in dataset is not
        one of this version's, naming the index and the option that passes the data instead.
    """
    from ..data.datasets import DATASETS, _import_builtin

    dataset = info.get("dataset")
    builtin = info.get(DATASET_BUILTIN)
    if not isinstance(builtin, bool):
        builtin = bool(dataset) and not os.path.isabs(str(dataset))
    if not dataset:
        return None, builtin
    index_opt, data_opt = _name(args, index_dest, "INDEX"), _name(args, dataset_dest, "--dataset")
    if builtin:
        _import_builtin()
        if str(dataset) not in DATASETS.names():
            raise InputError(f"{index_opt}: index {str(index_dir)!r} was built from the built-in dataset "
                             f"{str(dataset)!r}, which this jointspace does not have ({', '.join(DATASETS.names())}); "
                             f"pass the data with {data_opt} DATA")
    elif not Path(str(dataset)).exists():
        raise InputError(f"{index_opt}: the dataset index {str(index_dir)!r} was built from, {str(dataset)!r}, is "
                         f"missing (moved or deleted); pass the data with {data_opt} DATA")
    return str(dataset), builtin
