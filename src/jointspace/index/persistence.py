"""Saving and loading an :class:`~jointspace.index.faiss_index.Index` as one folder.

The folder holds three files:

``index.faiss``
    the FAISS index (``faiss.write_index``), ids included;
``metadata.sqlite``
    the metadata rows (see :mod:`jointspace.index.metadata`);
``lists.ivfdata`` (on-disk indexes only)
    the inverted lists of an IVF index built by :func:`jointspace.index.ondisk.build_on_disk`;
    ``index.faiss`` then holds only the quantisers and refers to this file, which is memory-mapped
    on load (FAISS ``OnDiskInvertedLists``, read with ``IO_FLAG_ONDISK_SAME_DIR``), so the index
    can be larger than RAM;
``vectors.f32`` (on-disk indexes that keep their vectors)
    the exact vectors, float32, memory-mapped on load, by which the compressed index's
    candidates are re-ranked (see :mod:`jointspace.index.refine`);
``index.json``
    how the index was built and how to check the other two: format version, spec and resolved
    spec, dim, metric, count, removed ids, default search parameters, build parameters, free
    ``info``, and each file's size and SHA-256 (a truncated or altered file is detected on load).

The folder is written under a temporary name and moved into place only when complete
(:func:`jointspace._io.atomic_dir`), so an existing index survives a failed save.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from .._folder_reads import folder_version
from .._io import atomic_dir, atomic_write_json, read_json_object, recover_dir
from .._validation import short_json
from ..errors import InputError, JointspaceError
from . import _faiss_parts as parts
from . import _params
from .metadata import MetadataStore
from .refine import DEFAULT_K_FACTOR, VECTORS, StoredVectors
from .spec import METRICS, faiss_error_message

FORMAT = "jointspace-index"
FORMAT_VERSION = 1
FILES = ("index.faiss", "metadata.sqlite", "index.json")
LISTS = "lists.ivfdata"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def is_saved_index(path) -> bool:
    """Whether ``path`` is a folder written by :func:`save_index` (``index.json`` of this format)."""
    meta = read_json_object(Path(path) / FILES[2])
    return meta is not None and meta.get("format") == FORMAT


def is_index_folder(path) -> bool:
    """Whether ``path`` holds an index a save may replace: one written by :func:`save_index` or a
    :class:`~jointspace.index.sharded.ShardedIndex`."""
    from .sharded import is_sharded_index

    return is_saved_index(path) or is_sharded_index(path)


def check_folder(folder, what: str = "an index folder path") -> None:
    """Raise :class:`InputError` unless ``folder`` is a non-empty str or path-like."""
    if not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise InputError(f"folder: expected {what}, got {type(folder).__name__} {folder!r}")


def save_index(index, folder) -> None:
    """Write ``index`` to ``folder`` atomically (see the module docstring for the layout).

    ``folder`` must be missing, an empty folder or a saved index, sharded or not (which is
    replaced); anything else raises :class:`~jointspace.errors.InputError` and is left untouched.
    The folder the index was loaded from (or last saved to) is replaced only if no other save
    replaced it since: that save's changes would be lost.
    """
    check_folder(folder)
    if index._faiss is None:
        raise InputError(f"index: nothing to save yet (spec {index.spec!r} is resolved by the first add); "
                         "add vectors first")
    info_json = check_info(index.info)
    with atomic_dir(folder, "index", is_kind=lambda path: _unchanged(index, path) and is_index_folder(path),
                    arg="folder", keep_others=True) as tmp:
        write_folder(index, tmp, info_json)
    index._folder_version = (Path(folder).resolve(), folder_version(folder))


def _unchanged(index, path: Path) -> bool:
    """True unless ``path`` is the folder ``index`` was loaded from or saved to and another
    save has replaced it since (then :class:`InputError`)."""
    seen = getattr(index, "_folder_version", None)
    if seen is not None and seen[0] == path.resolve() and folder_version(path) not in (None, seen[1]):
        raise InputError(f"folder: expected the index folder {str(path)!r} as this index was loaded from it, but "
                         "another process saved it again since; saving would lose what that save added: load it "
                         "again and repeat the change, or save to another folder")
    return True


def write_folder(index, tmp: Path, info_json: dict, lists_written: bool = False) -> None:
    """Fill the (temporary) folder ``tmp`` with ``index``'s files.

    An on-disk index's inverted lists are copied beside ``index.faiss`` as ``lists.ivfdata``,
    unless ``lists_written`` says they are already there.
    """
    import shutil

    import faiss

    from .. import __version__

    names = list(FILES[:2])
    lists = parts.on_disk_lists(index._faiss)
    if lists is not None:
        names.append(LISTS)
        if not lists_written and Path(lists.filename).resolve() != (tmp / LISTS).resolve():
            shutil.copyfile(lists.filename, tmp / LISTS)
    stored = index._stored
    if stored is not None:
        names.append(VECTORS)
        if stored.path.resolve() != (tmp / VECTORS).resolve():
            shutil.copyfile(stored.path, tmp / VECTORS)
    try:
        faiss.write_index(index._faiss, str(tmp / "index.faiss"))
    except RuntimeError as exc:
        raise JointspaceError(f"writing index.faiss failed: {faiss_error_message(exc)}") from None
    index._metadata.save(tmp / "metadata.sqlite")
    files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)} for name in names}
    atomic_write_json(tmp / "index.json", {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": index.spec,
        "resolved_spec": index.resolved_spec,
        "dim": index.dim,
        "metric": index.metric,
        "count": index.ntotal,
        "stored": int(index._faiss.ntotal),
        "removed_ids": index._removed.tolist(),
        "next_id": index._next_id,
        "search_params": index.search_params,
        "build_params": index.build_params,
        "info": info_json,
        **({"stored_vectors": {"file": VECTORS, "dtype": "float32", "first_id": stored.first_id}}
           if stored is not None else {}),
        "files": files,
        "jointspace_version": __version__,
        "faiss_version": faiss.__version__,
    })


def _read_manifest(folder: Path) -> dict:
    if not folder.exists():
        raise InputError(f"folder: index folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise InputError(f"folder: expected an index folder, got a file: {str(folder)!r}")
    path = folder / "index.json"
    if not path.is_file():
        raise InputError(f"folder: {str(folder)!r} is not a jointspace index (no index.json; expected "
                         f"{', '.join(FILES)})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"folder: {str(path)!r} is not valid JSON ({exc}); the index folder is corrupted") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"folder: {str(path)!r} does not describe a jointspace index (format {FORMAT!r})")
    version = meta.get("format_version")
    if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise InputError(f"folder: {str(path)!r} has format_version {version!r}; this jointspace reads "
                         f"up to {FORMAT_VERSION} (upgrade jointspace)")
    _check_manifest_fields(meta, path)
    return meta


def read_index_info(folder) -> dict:
    """The ``info`` a saved index records (its model, dataset, modality ...), read from
    ``index.json`` (``shards.json`` for a :class:`~jointspace.index.sharded.ShardedIndex`) alone,
    without loading the index.

    Raises
    ------
    InputError
        ``folder`` is not a saved index (the messages of :func:`load_index`).
    """
    from .sharded import MANIFEST, is_sharded_index

    recover_dir(Path(folder))
    if is_sharded_index(folder):
        info = read_json_object(Path(folder) / MANIFEST).get("info")
        return info if isinstance(info, dict) else {}
    info = _read_manifest(Path(folder)).get("info")
    return info if isinstance(info, dict) else {}


INFO_STRING_KEYS = ("model", "dataset", "modality", "split")
"""Keys of ``info`` that jointspace itself reads back; each must be a string (or null)."""


def check_info(info, name: str = "index.info") -> dict:
    """``info`` as the JSON object a saved index keeps, checked as :func:`load_index` will read it.

    Raises
    ------
    InputError
        ``info`` is not a JSON-serialisable mapping, or one of :data:`INFO_STRING_KEYS` is not
        a string or null (a save would write a folder that cannot be loaded).
    """
    if not isinstance(info, dict):
        raise InputError(f"{name}: expected a dict, got {type(info).__name__}")
    try:
        info_json = json.loads(json.dumps(info))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected JSON-serialisable values ({exc})") from None
    for key in INFO_STRING_KEYS:
        if info_json.get(key) is not None and not isinstance(info_json[key], str):
            raise InputError(f"{name}[{key!r}]: expected a string or None, got {info_json[key]!r}")
    return info_json


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _next_id_of(meta: dict, folder) -> int:
    """``meta['next_id']`` (one past the largest id the index has held), 0 where the folder was
    written before it was saved."""
    value = meta.get("next_id", 0)
    if not _is_int(value) or not 0 <= value <= 2**63:
        raise InputError(f"folder: {str(folder / 'index.json')!r} has 'next_id' {value!r}, expected an integer in "
                         "[0, 2**63]; the index folder is corrupted")
    return value


def _check_manifest_fields(meta: dict, path: Path) -> None:
    """Check the type and range of every field of index.json that loading uses.

    Raises
    ------
    InputError
        Naming index.json, the field, what was expected and what was found.
    """

    def bad(key: str, expected: str, value) -> InputError:
        return InputError(f"folder: {str(path)!r} has a bad {key!r}: expected {expected}, got {short_json(value)}; "
                          "the index folder is corrupted")

    def missing(key: str, expected: str) -> InputError:
        return InputError(f"folder: {str(path)!r} is missing {key!r} (expected {expected}); "
                          "the index folder is corrupted")

    fields = {
        "spec": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
        "resolved_spec": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
        "dim": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
        "metric": (lambda v: v in METRICS, f"one of {', '.join(METRICS)}"),
        "count": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        "stored": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        "removed_ids": (lambda v: isinstance(v, list) and all(_is_int(i) and 0 <= i < 2**63 for i in v)
                        and len(set(v)) == len(v), "a list of distinct integer ids in [0, 2**63)"),
        "search_params": (lambda v: isinstance(v, dict) and set(v) <= set(_params.SEARCH_PARAMS)
                          and all(_is_int(x) and x >= 1 for x in v.values()),
                          f"an object with integer values >= 1 under keys from {', '.join(_params.SEARCH_PARAMS)}"),
        "build_params": (lambda v: isinstance(v, dict) and set(v) <= set(_params.BUILD_PARAMS)
                         and all(_is_int(x) and x >= 1 for x in v.values()),
                         f"an object with integer values >= 1 under keys from {', '.join(_params.BUILD_PARAMS)}"),
        "files": (lambda v: isinstance(v, dict), "an object"),
    }
    for key, (ok, expected) in fields.items():
        if key not in meta:
            raise missing(key, expected)
        if not ok(meta[key]):
            raise bad(key, expected, meta[key])
    if meta["count"] + len(meta["removed_ids"]) != meta["stored"]:
        raise InputError(f"folder: {str(path)!r} has 'count' {meta['count']} and {len(meta['removed_ids'])} "
                         f"'removed_ids', expected them to add up to 'stored' ({meta['stored']}); "
                         "the index folder is corrupted")
    for name, entry in meta["files"].items():
        if name not in (*FILES[:2], LISTS, VECTORS):
            continue
        if not isinstance(entry, dict):
            raise bad(f"files.{name}", "an object with 'bytes' and 'sha256'", entry)
        if not _is_int(entry.get("bytes")) or entry["bytes"] < 0:
            raise bad(f"files.{name}.bytes", "an integer >= 0", entry.get("bytes"))
        sha = entry.get("sha256")
        if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise bad(f"files.{name}.sha256", "64 lowercase hex digits", sha)
    info = meta.get("info")
    if info is not None:
        if not isinstance(info, dict):
            raise bad("info", "an object", info)
        for key in INFO_STRING_KEYS:
            if info.get(key) is not None and not isinstance(info[key], str):
                raise bad(f"info.{key}", "a string", info[key])


def _check_file(folder: Path, name: str, meta: dict, verify: bool) -> Path:
    path = folder / name
    if not path.is_file():
        raise InputError(f"folder: {str(folder)!r} has no {name} (expected {', '.join(FILES)})")
    want = meta["files"].get(name)
    if not isinstance(want, dict) or not isinstance(want.get("bytes"), int):
        raise InputError(f"folder: index.json in {str(folder)!r} has no size for {name}; the folder is corrupted")
    size = path.stat().st_size
    if size != want["bytes"]:
        kind = "truncated" if size < want["bytes"] else "changed"
        raise InputError(f"folder: {name} in {str(folder)!r} is {kind}: expected {want['bytes']} bytes, "
                         f"found {size}")
    if verify and want.get("sha256") and _sha256(path) != want["sha256"]:
        raise InputError(f"folder: {name} in {str(folder)!r} is corrupted: its SHA-256 does not match index.json")
    return path


def load_index(cls, folder, *, verify: bool = True):
    """Read a folder written by :func:`save_index` into a new ``cls`` instance."""
    import faiss

    folder = Path(folder)
    recover_dir(folder)   # a save killed half way leaves the previous version aside
    version = (folder.resolve(), folder_version(folder))
    meta = _read_manifest(folder)
    faiss_path = _check_file(folder, "index.faiss", meta, verify)
    sqlite_path = _check_file(folder, "metadata.sqlite", meta, verify)
    on_disk = LISTS in meta["files"]
    if on_disk:
        _check_file(folder, LISTS, meta, verify)
    stored_entry = meta.get("stored_vectors")
    if stored_entry is not None:
        if not (isinstance(stored_entry, dict) and _is_int(stored_entry.get("first_id"))
                and stored_entry["first_id"] >= 0 and VECTORS in meta["files"]):
            raise InputError(f"folder: index.json in {str(folder)!r} has a bad 'stored_vectors' "
                             f"(expected an object with an integer 'first_id' >= 0 and {VECTORS} among "
                             f"'files'), got {short_json(stored_entry)}")
        _check_file(folder, VECTORS, meta, verify)
    try:    # on-disk lists are memory-mapped from the folder itself, wherever it was moved
        with parts.quiet_stdout() if on_disk else contextlib.nullcontext():
            raw = faiss.read_index(str(faiss_path), faiss.IO_FLAG_ONDISK_SAME_DIR if on_disk else 0)
    except RuntimeError as exc:
        raise InputError(f"folder: index.faiss in {str(folder)!r} could not be read "
                         f"({faiss_error_message(exc)})") from None
    if raw.d != meta["dim"] or raw.ntotal != meta["stored"]:
        raise InputError(f"folder: index.faiss in {str(folder)!r} holds {raw.ntotal} vectors of dim {raw.d}; "
                         f"index.json says {meta['stored']} of dim {meta['dim']}")
    faiss_metric = "l2" if raw.metric_type == faiss.METRIC_L2 else "inner product"
    if faiss_metric != ("l2" if meta["metric"] == "l2" else "inner product"):
        raise InputError(f"folder: index.faiss in {str(folder)!r} compares by {faiss_metric}; index.json says "
                         f"metric {meta['metric']!r}; the folder is corrupted")
    try:
        index = cls(meta["dim"], "auto", meta["metric"], build_params=meta["build_params"])
    except InputError as exc:
        raise InputError(f"folder: {str(folder / 'index.json')!r} has a bad 'build_params' ({exc}); "
                         "the index folder is corrupted") from None
    index._spec = meta["spec"]
    index._create(meta["resolved_spec"], faiss_index=raw)
    index._ids = np.sort(parts.stored_ids(index._faiss))
    index._removed = np.asarray(sorted(int(i) for i in meta["removed_ids"]), dtype=np.int64)
    # folders written before 'next_id' was saved: one past the largest id they hold
    index._next_id = max(_next_id_of(meta, folder), int(index._ids[-1]) + 1 if index._ids.size else 0)
    if index.ntotal != meta["count"] or not np.isin(index._removed, index._ids).all():
        raise InputError(f"folder: the ids in index.faiss do not match 'count' / 'removed_ids' of index.json "
                         f"in {str(folder)!r}")
    _attach_stored_vectors(index, folder, stored_entry)
    try:
        index.set_search_params(**meta["search_params"])
    except InputError as exc:
        raise InputError(f"folder: {str(folder / 'index.json')!r} has a bad 'search_params' for the index in "
                         f"index.faiss ({exc})") from None
    index._metadata = MetadataStore.load(sqlite_path)
    index.info = meta.get("info") or {}
    index._folder_version = version   # a save back into the folder checks no other save replaced it
    return index


def _attach_stored_vectors(index, folder: Path, entry) -> None:
    """Memory-map the stored vectors for re-ranking (before the saved ``k_factor`` is applied)."""
    if entry is None:
        return
    first, ids = int(entry["first_id"]), index._ids
    # sorted distinct ids are first .. first + n - 1 when the ends are (no arange: it would pass 2**63 - 1)
    if ids.size and not (int(ids[0]) == first and int(ids[-1]) - first == ids.size - 1):
        raise InputError(f"folder: {VECTORS} in {str(folder)!r} holds ids {first} .. "
                         f"{first + index._ids.size - 1} but index.faiss holds others; the folder is corrupted")
    index._stored = StoredVectors(folder / VECTORS, int(index._ids.size), index.dim, first)
    index._k_factor = DEFAULT_K_FACTOR
