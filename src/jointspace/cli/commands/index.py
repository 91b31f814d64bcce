"""``jointspace index``: embed one modality of a dataset or of your own data and build (or extend)
a search index; the same content reached by several paths is stored once."""

from .._checks import check_array_modalities, named_as, option_name
from .._common import add_data_options, array_keys, console, data_source, default_split, load_split, warn
from .._recorded import DATASET_BUILTIN, model_record


def register(sub):
    p = sub.add_parser("index", help="build a FAISS index of one modality of a dataset or of your own data",
                       description="Encode one modality with a saved model and store the vectors in a FAISS index "
                                   "folder, with labels, texts and paths as metadata. Items with the same content "
                                   "(one file under several paths) are stored once, every path kept. With "
                                   "--append, MODEL is an existing index folder and the new items are added to it "
                                   "(with the model it was built with); the item of a file edited in place since "
                                   "is replaced. Tower embeddings are cached chunk by "
                                   "chunk, so an interrupted run resumes where it stopped.",
                       epilog="examples: jointspace index runs/wiki-cca --data wikipedia --modality image "
                              "--spec HNSW32 --out idx/wiki-img\n"
                              "          jointspace index runs/mine --data photos/ --modality image --out idx/mine\n"
                              "          jointspace index idx/mine --append --data more_photos/")
    p.add_argument("model", help="folder of a saved model (with --append: the index folder to extend)")
    p.add_argument("--data", "--dataset", dest="dataset", required=True, metavar="DATA",
                   help="a built-in dataset name, or your own manifest, folder or arrays file")
    p.add_argument("--split", help="split to index (default: test for a built-in dataset, all of your own data)")
    p.add_argument("--modality", action="append", metavar="NAME",
                   help="modality to index (e.g. image; default with --append: the index's); for an arrays file "
                        "also NAME=KEY pairs naming its arrays")
    p.add_argument("--spec", default="auto",
                   help="FAISS factory string: Flat, HNSW32, IVF1024,PQ32, ... or auto (by size; default)")
    p.add_argument("--metric", default="cosine", choices=["cosine", "ip", "l2"],
                   help="cosine (vectors normalised, then inner product), ip (inner product) or l2 "
                        "(euclidean distance); default: cosine")
    p.add_argument("--append", action="store_true",
                   help="add to the index folder given as MODEL instead of building a new one")
    p.add_argument("--out", help="index folder to write (default with --append: the index itself, replaced "
                                 "atomically)")
    p.add_argument("--on-disk", action="store_true",
                   help="build an IVF index whose inverted lists live in a file (memory-mapped when searched): "
                        "items are embedded and added --batch-rows at a time, never all vectors in memory; "
                        "--spec must be IVF (default with auto: IVF<4*sqrt(n)>,PQ<d/8>, or IVF<4*sqrt(n)>,Flat "
                        "below 256 items)")
    p.add_argument("--batch-rows", type=int, default=50_000, metavar="N",
                   help="with --on-disk: items embedded and added per batch (default: 50000)")
    p.add_argument("--train-size", type=int, default=100_000, metavar="N",
                   help="with --on-disk: the first N vectors train the quantisers (default: 100000)")
    p.add_argument("--no-keep-vectors", dest="keep_vectors", action="store_false",
                   help="with --on-disk: keep no exact copy of the vectors (4*d bytes each on disk); by default "
                        "a PQ/SQ (or PCA-reduced) index keeps one and re-ranks 10*k candidates by the exact score")
    add_data_options(p, arrays="own")
    p.set_defaults(handler=run)


def item_metadata(pairs, modality: str) -> dict:
    """Metadata columns for the index: label (name), text, file path and the dataset id."""
    n = len(pairs)
    meta = {"item_id": [str(i) for i in pairs.ids.tolist()]}
    if pairs.labels is not None and pairs.labels.ndim == 1:
        names = pairs.label_names
        meta["label"] = [names[int(v)] if names and str(v).lstrip("-").isdigit() and 0 <= int(v) < len(names)
                         else str(v) for v in pairs.labels.tolist()]
    texts = None
    for mod in pairs.modalities:
        items = pairs[mod]
        if isinstance(items, list) and items and isinstance(items[0], str) and mod == "text":
            texts = items
    if texts is None and "title" in pairs.metadata:
        texts = [str(t) for t in pairs.metadata["title"]]
    if texts is not None:
        meta["text"] = list(texts)
    items = pairs[modality]
    if isinstance(items, list) and items and isinstance(items[0], str) and modality != "text":
        meta["path"] = list(items)
    for key in ("title", "title_key"):
        if key in pairs.metadata and key not in meta:
            meta[key] = [str(v) for v in pairs.metadata[key]]
    assert all(len(v) == n for v in meta.values())
    return meta


def _source_paths(pairs, i: int, modality: str) -> list[str]:
    """Where sample ``i`` came from: its original file(s) when the dataset records them."""
    if "paths" in pairs.metadata:   # a folder: every relative path with this content
        from ...data.folder import split_paths

        return split_paths(pairs.metadata["paths"][i])
    if "svg_path" in pairs.metadata:
        return [str(pairs.metadata["svg_path"][i])]
    items = pairs[modality]
    return [str(items[i])] if isinstance(items, list) else []


def unique_items(pairs, modality: str, known: set[str] | None = None):
    """``pairs`` with one row per distinct content of ``modality``, and its index metadata.

    Every copy's id and source paths are kept in the metadata of the row kept (``copies``,
    ``paths``), with the content hash (``sha256``).  Rows whose content is in ``known`` (the
    hashes already in an index) are dropped.

    Returns
    -------
    pairs : Pairs
    metadata : dict of str to list
    n_duplicates : int
        Rows merged into another row.
    n_known : int
        Rows dropped because ``known`` holds their content.
    known_copies : dict
        For each content in ``known`` met here: ``{sha256: (copies, paths, files)}`` of its rows:
        ids and source paths to add to the stored item's metadata, and the files read (empty
        when the items are not files).
    """
    import numpy as np

    from ...data.keys import content_groups

    items = pairs[modality]
    if modality == "text" and isinstance(items, list):   # the texts themselves, not files: hash their bytes
        rows = [np.frombuffer(str(t).encode("utf-8"), dtype=np.uint8) for t in items]
    else:
        rows = items if isinstance(items, list) else [np.asarray(items[i]) for i in range(len(pairs))]
    hashes, groups = content_groups(rows)
    keep = [(h, g) for h, g in zip(hashes, groups) if not known or h not in known]
    n_known = sum(len(g) for h, g in zip(hashes, groups) if known and h in known)
    sub = pairs.subset(np.array([g[0] for _, g in keep], dtype=np.int64)) if len(keep) != len(pairs) else pairs
    meta = item_metadata(sub, modality)
    ids = [str(i) for i in pairs.ids.tolist()]
    meta["sha256"] = [h for h, _ in keep]
    meta["copies"] = [[ids[j] for j in g] for _, g in keep]
    meta["paths"] = [sorted({p for j in g for p in _source_paths(pairs, j, modality)}) for _, g in keep]
    files = items if modality != "text" and isinstance(items, list) else None
    known_copies = {h: ([ids[j] for j in g], sorted({p for j in g for p in _source_paths(pairs, j, modality)}),
                        [str(files[j]) for j in g] if files is not None else [])
                    for h, g in zip(hashes, groups) if known and h in known}
    return sub, meta, len(pairs) - len(keep) - n_known, n_known, known_copies


def _merge_known_copies(index, stored: list, known_copies: dict) -> int:
    """Add the ids and paths under which content already in ``index`` was met again to the
    stored items' ``copies`` and ``paths``; returns how many items gained a path or an id."""
    changed_ids, rows = [], []
    for row in stored:
        extra = (row or {}).get("extra") or {}
        if extra.get("sha256") not in known_copies:
            continue
        copies, paths, _ = known_copies[extra["sha256"]]
        new_copies = sorted(set(extra.get("copies") or []) | set(copies))
        new_paths = sorted(set(extra.get("paths") or []) | set(paths))
        if new_copies == sorted(extra.get("copies") or []) and new_paths == sorted(extra.get("paths") or []):
            continue
        changed_ids.append(row["id"])
        rows.append({"label": row["label"], "text": row["text"], "path": row["path"],
                     "extra": {**extra, "copies": new_copies, "paths": new_paths}})
    if changed_ids:
        index.set_metadata(changed_ids, rows)
    return len(changed_ids)


def _drop_changed_files(index, stored: list, current: dict) -> tuple[int, list[str]]:
    """Remove the items whose file now holds other content: the data holds the very file an item
    was indexed from, with another SHA-256, so that item's vector is of content no file holds
    any more.  An item found under several paths keeps its vector for the other copies.

    Parameters
    ----------
    index : Index
    stored : list of dict
        The index's metadata rows.
    current : dict of str to str
        Each file of the data (as items store their ``path``) -> the SHA-256 of its content now.

    Returns
    -------
    removed : int
    kept : list of str
        Paths of the changed files whose items were kept (other copies, or an index that
        cannot remove vectors).
    """
    from ...errors import InputError

    stale = [row for row in stored if row and row.get("path") in current
             and (row.get("extra") or {}).get("sha256") not in (None, current[row["path"]])]
    single = [row["id"] for row in stale if len((row.get("extra") or {}).get("paths") or []) <= 1]
    kept = sorted({row["path"] for row in stale if row["id"] not in single})
    if single:
        try:
            index.remove(single)
        except InputError:   # an index type FAISS can neither delete from nor filter
            return 0, sorted({row["path"] for row in stale})
    return len(single), kept


def _index_modality(args, model_modalities, default=None) -> str:
    from ...errors import InputError

    names = [m for m in (args.modality or []) if "=" not in str(m)]
    if len(names) > 1:
        raise InputError(f"--modality: expected one modality to index, got {', '.join(names)}")
    modality = names[0] if names else default
    if modality is None:
        raise InputError(f"--modality: name the modality to index, one of {', '.join(model_modalities)}")
    if modality not in model_modalities:
        raise InputError(f"--modality: the model knows {', '.join(model_modalities)}; got {modality!r}")
    return modality


def run(args) -> int:
    args.array_keys_ = array_keys([m for m in (args.modality or []) if "=" in str(m)])
    _check_on_disk_options(args)
    if args.append and args.on_disk:
        from ...errors import InputError

        raise InputError("--on-disk: an on-disk index is built in one pass and cannot be appended to; "
                         "build it again with all the data")
    if args.append:
        return _append(args)
    from ..._folder_reads import read_whole
    from ..._io import check_replaceable
    from ...errors import InputError
    from ...index.faiss_index import Index
    from ...index.persistence import is_index_folder
    from .._common import load_model_named

    if not args.out:
        raise InputError("--out: expected the index folder to write (or --append to extend an index)")
    check_replaceable(args.out, "index", is_kind=is_index_folder, arg="--out")
    # the digest recorded is that of the model the vectors come from, even if a fit saves it again meanwhile
    option = option_name(args, "model")
    model, record = read_whole(args.model, lambda: (load_model_named(args.model, option), model_record(args.model)),
                               "saved model", option)
    check_array_modalities(args, model.modalities_)
    modality = _index_modality(args, model.modalities_)
    source, split, pairs = _read_items(args, model, modality)
    with console.status(f"finding duplicate {modality} items"):
        pairs, metadata, n_dup, _, _ = unique_items(pairs, modality)
    info = {**record, "modality": modality, "dataset": _dataset_name(args.dataset, source),
            DATASET_BUILTIN: bool(source.builtin), "split": split, "unique_by": "sha256"}
    if not source.builtin:   # how the collection was read, so that search --query-row reads it again
        options = {"modality": [m for m in (getattr(args, "modality", None) or []) if "=" in str(m)] or None,
                   **{k: getattr(args, k, None) for k in ("labels", "columns", "val_fraction", "split_column",
                                                          "group_column")}}
        info["data_options"] = {k: v for k, v in options.items() if v is not None}
    if args.on_disk:
        index = _build_on_disk(args, model, modality, pairs, metadata, info)
    else:
        vectors = _encode(model, modality, pairs)
        with console.status(f"building index ({args.spec})"):
            index = Index.build(vectors, spec=args.spec, metric=args.metric, metadata=metadata)
        index.info.update(info)
        index.save(args.out)
    dup = f"; {n_dup} duplicate{'s' if n_dup != 1 else ''} by content stored once" if n_dup else ""
    console.print(f"indexed {index.ntotal} {modality} vectors (dim {index.dim}, {index.resolved_spec}, "
                  f"{index.metric}) in {args.out}{dup}", highlight=False)
    return 0


def _check_on_disk_options(args) -> None:
    from ...errors import InputError

    for name in ("batch_rows", "train_size"):
        value = getattr(args, name)
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')}: expected an integer >= 1, got {value}")
    if not args.on_disk and (args.batch_rows != 50_000 or args.train_size != 100_000 or not args.keep_vectors):
        raise InputError("--batch-rows/--train-size/--no-keep-vectors: these apply to --on-disk builds; add --on-disk")


def _build_on_disk(args, model, modality: str, pairs, metadata: dict, info: dict):
    """Embed ``pairs[modality]`` --batch-rows at a time and stream the vectors into an on-disk index."""
    from ...index.ondisk import build_on_disk
    from ...index.spec import on_disk_spec

    items, n, rows = pairs[modality], len(pairs), args.batch_rows

    def batches():
        for start in range(0, n, rows):
            with console.status(f"embedding and adding {modality} items {start}..{min(start + rows, n)} of {n}"):
                vectors = model.encode(modality, items[start:start + rows])
            yield vectors, {key: column[start:start + rows] for key, column in metadata.items()}

    stream = batches()
    first = next(stream)
    spec = on_disk_spec(n, first[0].shape[1]) if args.spec == "auto" else args.spec

    def everything():
        yield first
        yield from stream

    return build_on_disk(everything(), args.out, spec=spec, metric=args.metric,
                         train_size=min(args.train_size, n), info=info,
                         keep_vectors=None if args.keep_vectors else False)


def _read_items(args, model, modality: str):
    """(source, split, pairs) of --data, checked to hold ``modality`` in a form ``model`` embeds."""
    from ...errors import InputError
    from .._checks import check_dataset_items

    source = data_source(args.dataset, args)
    split = args.split or default_split(source, "test")
    pairs = load_split(args.dataset, split, args)
    if modality not in pairs.modalities:
        raise InputError(f"--modality: {args.dataset!r} has {', '.join(pairs.modalities)}; got {modality!r}")
    check_dataset_items(model, pairs, [modality], args.dataset, "--data")
    return source, split, pairs


def _dataset_name(spec: str, source) -> str:
    from pathlib import Path

    return spec if source.builtin else str(Path(spec).expanduser().resolve())


def _rerooted(pairs, folder, index_folder):
    """``pairs`` read from ``folder`` with its copies' ``paths`` (relative to ``folder``) made
    relative to ``index_folder``, the folder the index was built from, or absolute when
    ``folder`` is not inside it: an appended folder's ``b.png`` and the first folder's are told
    apart."""
    import os
    from pathlib import Path

    from ...data.folder import join_paths, split_paths
    from ...data.pairs import Pairs

    folder, index_folder = Path(folder).resolve(), Path(index_folder).resolve()
    if folder == index_folder or "paths" not in pairs.metadata:
        return pairs
    prefix = Path(os.path.relpath(folder, index_folder)) if index_folder in folder.parents else folder
    paths = [join_paths([(prefix / p).as_posix() for p in split_paths(v)]) for v in pairs.metadata["paths"]]
    return Pairs({m: pairs[m] for m in pairs.modalities}, labels=pairs.labels, ids=pairs.ids,
                 metadata={**pairs.metadata, "paths": paths}, label_names=pairs.label_names, name=pairs.name)


def _encode(model, modality: str, pairs):
    """Embeddings of ``pairs[modality]``; a towered model draws its own progress bar."""
    if getattr(model, "towers", None):
        return model.encode(modality, pairs[modality])
    with console.status(f"encoding {len(pairs)} {modality} items"):
        return model.encode(modality, pairs[modality])


def _check_recorded_model(index_dir, info: dict) -> None:
    """Refuse to extend an index whose recorded model is gone or was saved again since."""
    from pathlib import Path

    from ...errors import InputError
    from ...models.base import saved_model_digest
    from .._recorded import MODEL_DIGEST

    recorded = str(info["model"])
    if not Path(recorded).is_dir():
        raise InputError(f"--append: the model index {str(index_dir)!r} was built with, {recorded!r}, is missing "
                         "(moved or deleted); put it back there, or build a new index")
    digest = info.get(MODEL_DIGEST)
    if isinstance(digest, str) and saved_model_digest(recorded) != digest:
        raise InputError(f"--append: the model at {recorded!r} was saved again after index {str(index_dir)!r} was "
                         "built, so new vectors would not match the old ones; build the index again with all the data")


def _append(args) -> int:
    from pathlib import Path

    from ...errors import InputError
    from ...index.faiss_index import Index
    from ...models.base import load_model

    if args.spec != "auto" or args.metric != "cosine":
        raise InputError("--spec/--metric: an appended index keeps its own spec and metric; drop them")
    from ..._io import check_replaceable
    from ...index.persistence import is_index_folder
    from ...index.sharded import is_sharded_index
    from ...models.base import is_saved_model

    if is_saved_model(args.model):
        raise InputError(f"--append: {args.model!r} is a saved model; with --append give the index folder to "
                         "extend (it records its model)")
    if args.out:
        check_replaceable(args.out, "index", is_kind=is_index_folder, arg="--out")
    if is_sharded_index(args.model):
        raise InputError(f"--append: {args.model!r} is a sharded index; --append extends one index folder "
                         "(from 'jointspace index'), so build the index again with all the data")
    # the index extended is the argument MODEL (the library names its parameter "folder"), and
    # is written in place unless --out is given: refused there before any item is embedded
    given = option_name(args, "model")
    written = "--out" if args.out else given
    with named_as("folder", given):
        index = Index.load(args.model)
    if not args.out:
        check_replaceable(args.model, "index", is_kind=is_index_folder, arg=given)
    info = index.info
    if not info.get("model"):
        raise InputError(f"--append: index {args.model!r} does not record the model it was built with")
    _check_recorded_model(args.model, info)
    model = load_model(info["model"])
    _check_recorded_model(args.model, info)   # again on the model loaded: a fit may have saved it again meanwhile
    modality = _index_modality(args, model.modalities_, default=info.get("modality"))
    if info.get("modality") and modality != info["modality"]:
        raise InputError(f"--modality: index {args.model!r} holds {info['modality']} vectors; got {modality!r}")
    source, split, pairs = _read_items(args, model, modality)
    first = info.get("dataset")
    if not source.builtin and first and Path(first).is_dir() and Path(args.dataset).expanduser().is_dir():
        pairs = _rerooted(pairs, Path(args.dataset).expanduser(), first)
    probe = model.encode(modality, pairs[modality][:1])
    if probe.shape[1] != index.dim:
        raise InputError(f"--append: the model gives {probe.shape[1]}-d vectors, index {args.model!r} holds "
                         f"{index.dim}-d ones; build a new index for another space")
    stored = index.metadata(index.ids)
    known = {(row.get("extra") or {}).get("sha256") for row in stored if row} - {None}
    with console.status(f"finding duplicate {modality} items"):
        pairs, metadata, n_dup, n_known, known_copies = unique_items(pairs, modality, known)
    current = dict(zip(metadata.get("path") or [], metadata["sha256"]))
    for digest, (_, _, files) in known_copies.items():
        current.update(dict.fromkeys(files, digest))
    n_merged = _merge_known_copies(index, stored, known_copies)
    n_replaced, kept = _drop_changed_files(index, stored, current)
    if kept:
        warn(f"{len(kept)} file{'s' if len(kept) != 1 else ''} changed since indexed kept the old item of "
             f"{'their' if len(kept) != 1 else 'its'} content (e.g. {kept[0]}: the item stands for other copies "
             "too, or this index type cannot remove vectors); build the index again to drop it")
    if len(pairs) == 0 and not n_merged and not n_replaced:
        console.print(f"nothing to add: all {n_known} {modality} items of {args.dataset} are already in "
                      f"{args.model}", highlight=False)
        return 0
    if len(pairs) and index.on_disk:   # before embedding them all
        raise InputError(f"--append: {args.model!r} is an on-disk index, whose lists are read-only, and {len(pairs)} "
                         f"{modality} items are new; build it again with all the data (--on-disk)")
    if len(pairs):
        index.add(_encode(model, modality, pairs), metadata=metadata)
    sources = list(info.get("appended", []))
    sources.append({"dataset": _dataset_name(args.dataset, source), DATASET_BUILTIN: bool(source.builtin),
                    "split": split, "added": int(len(pairs))})
    index.info["appended"] = sources
    out = args.out or args.model
    with named_as("folder", written):
        index.save(out)
    skipped = (f"; {n_known} already in the index" + (f" ({n_merged} under new paths, added to their items)"
                                                      if n_merged else "")) if n_known else ""
    dup = f"; {n_dup} duplicates by content stored once" if n_dup else ""
    if n_replaced:
        dup += f"; {n_replaced} replaced (their files changed since they were indexed)"
    console.print(f"added {len(pairs)} {modality} vectors to {out} ({index.ntotal} in all){skipped}{dup}",
                  highlight=False)
    return 0
