"""``jointspace embed``: run one modality of a dataset through a tower and write the vectors."""

from __future__ import annotations

import io
import json
import time

from .._checks import check_not_an_input, check_tower_items
from .._common import (add_data_options, add_json_flag, console, data_source, default_split,
                       load_split, parse_params, print_json, print_table, used_all_rows)

_FORMATS = (".npy", ".safetensors")


def _ids_for_json(ids) -> list:
    """Sample ids as JSON values: integers stay integers, anything else becomes a string."""
    out = []
    for v in ids.tolist():
        if isinstance(v, bool) or not isinstance(v, int):
            v = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        out.append(v)
    return out


def _dataset_options(name: str, options: dict) -> dict:
    """``options`` after checking each is a keyword the dataset's loader takes."""
    from ...data.datasets import get_dataset
    from ...errors import InputError

    if not options:
        return options
    accepted = get_dataset(name).option_names()
    unknown = [k for k in options if k not in accepted]
    if unknown:
        takes = f"accepts {', '.join(accepted)}" if accepted else "accepts no options"
        raise InputError(f"--option: dataset {name!r} {takes}; got {', '.join(unknown)}")
    return options


def register(sub) -> None:
    p = sub.add_parser("embed", help="embed one modality of a dataset through a tower, write the vectors",
                       description="Run the items of one modality of a built-in dataset, or of your own manifest "
                                   "or folder, through a tower "
                                   "(e.g. efficientnet-lite0, minilm, mfcc) and write an (n, d) float32 array "
                                   "to a .npy or .safetensors file. Frozen towers go through the embedding cache. "
                                   "A .safetensors file holds the tensor 'vectors' and, in its metadata, 'ids' "
                                   "(the sample ids as a JSON list, row by row; integer ids are also stored "
                                   "as the int64 tensor 'ids'), with 'tower', 'tower_config', 'dataset', "
                                   "'split' and 'modality'.")
    p.add_argument("dataset", metavar="DATA",
                   help="a built-in dataset name (see 'jointspace datasets'), or your own manifest or folder")
    p.add_argument("--tower", required=True, help="tower name, e.g. efficientnet-lite0, minilm, mfcc")
    p.add_argument("--modality", help="which modality of the dataset (default: the tower's own)")
    p.add_argument("--split", help="dataset split (default: train for a built-in dataset, all of your own data)")
    p.add_argument("--out", required=True,
                   help="output file: .npy (vectors) or .safetensors (tensor 'vectors'; ids as a JSON list "
                        "in the metadata key 'ids')")
    p.add_argument("--batch-size", type=int, help="items per forward pass (default: the tower's own)")
    p.add_argument("--limit", type=int, help="only the first N items (quick looks)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="dataset loading option (repeatable), e.g. limit=100 for fashion-mnist; values are JSON")
    p.add_argument("--tower-param", action="append", metavar="KEY=VALUE", help="tower setting (repeatable)")
    p.add_argument("--cache-dir", help="embedding cache folder (default: $JOINTSPACE_CACHE/embeddings)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="embed with Ray Data: on the cluster at ADDRESS (e.g. ray://head:10001), or on a local "
                        "Ray instance when no address is given; --out is then a folder of Parquet shards "
                        "(columns row, id, vector) and a rerun resumes, skipping finished shards")
    p.add_argument("--workers", type=int, metavar="N", help="with --ray: Ray actors running the tower (default: the cluster's CPUs)")
    p.add_argument("--shard-size", type=int, metavar="N", help="with --ray: rows per Parquet shard (default 10000)")
    add_json_flag(p)
    add_data_options(p, arrays=False)
    p.set_defaults(handler=run)


def run(args) -> int:
    import numpy as np

    from ..._io import atomic_write_bytes, check_out_file
    from ..._validation import check_int
    from ...data.datasets import get_dataset, load_dataset
    from ...errors import InputError
    from ...towers import create_tower, embed_cached

    if args.ray is None and (args.workers is not None or args.shard_size is not None):
        raise InputError(f"{'--workers' if args.workers is not None else '--shard-size'}: only with --ray")
    if args.cache_dir is not None:
        if args.no_cache:
            raise InputError("--cache-dir: names the cache that --no-cache turns off; give one of them")
        if not args.cache_dir.strip():   # "" would be the default cache, " " the current folder
            raise InputError(f"--cache-dir: expected a folder, got {args.cache_dir!r}; give --no-cache for no cache")
        from ...towers.cache import _folder

        _folder(args.cache_dir, "--cache-dir")
    if args.ray is not None:
        out = _check_out_folder(args.out)
    else:
        out = check_out_file(args.out, arg="--out")  # before the work, not after it
        check_not_an_input(args, "out", "--out")
    if args.ray is None and out.suffix.lower() not in _FORMATS:
        raise InputError(f"--out: expected a file ending in {' or '.join(_FORMATS)}, got {str(out)!r}")
    tower = create_tower(args.tower, **parse_params(args.tower_param, "--tower-param"))
    tower.check_modality(args.modality)
    source = data_source(args.dataset, args)
    args.split = args.split or default_split(source, "train")
    if source.builtin:
        pairs = load_dataset(args.dataset, args.split,
                             **_dataset_options(args.dataset, parse_params(args.option, "--option")))
    elif args.option:
        raise InputError(f"--option: options of a built-in dataset's loader; {args.dataset!r} is your own data")
    else:
        pairs = load_split(args.dataset, args.split, args)
    modality = args.modality or tower.modality
    if modality not in pairs:
        raise InputError(f"--modality: dataset {args.dataset!r} has {', '.join(pairs.modalities)}; got {modality!r}"
                         + ("" if args.modality else f" (the modality of tower {tower.name!r})"))
    hint = "text items must be strings" if tower.modality == "text" else "it needs pictures, not vectors"
    options = get_dataset(args.dataset).option_names() if source.builtin else []
    check_tower_items(tower.name, modality, pairs[modality], args.dataset, "--tower",
                      f"; {hint}" + (f" (dataset options: {', '.join(options)})" if options else ""))
    if args.limit is not None:
        limit = check_int(args.limit, "--limit", low=1)
        used_all_rows("--limit", limit, len(pairs), f"{args.dataset} ({args.split})")
        pairs = pairs.subset(np.arange(min(len(pairs), limit)))
    if args.batch_size is not None:
        check_int(args.batch_size, "--batch-size", low=1)
    if args.ray is not None:
        return _run_ray(args, tower, pairs, modality, out)
    cache = False if (args.no_cache or tower.trainable) else (args.cache_dir or True)
    t0 = time.perf_counter()
    vectors = embed_cached(tower, pairs[modality], cache=cache, batch_size=args.batch_size,
                           progress=not args.quiet)
    seconds = time.perf_counter() - t0
    if out.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, vectors, allow_pickle=False)
        atomic_write_bytes(out, buf.getvalue())
    else:
        from safetensors.numpy import save

        tensors = {"vectors": np.ascontiguousarray(vectors)}
        if pairs.ids.dtype.kind in "iu":
            tensors["ids"] = np.ascontiguousarray(pairs.ids.astype(np.int64))
        meta = {"tower": tower.name, "tower_config": json.dumps(tower.config(), sort_keys=True),
                "dataset": args.dataset, "split": args.split, "modality": modality,
                "ids": json.dumps(_ids_for_json(pairs.ids))}
        atomic_write_bytes(out, save(tensors, metadata=meta))
    summary = {"dataset": args.dataset, "split": args.split, "modality": modality, "tower": tower.name,
               "n": int(vectors.shape[0]), "dim": int(vectors.shape[1]), "seconds": round(seconds, 3),
               "out": str(out)}
    if args.json:
        print_json(summary)
    else:
        print_table(f"embed {args.dataset}/{args.split} {modality} -> {out}", ["tower", "n", "dim", "seconds"],
                    [[tower.name, summary["n"], summary["dim"], summary["seconds"]]])
        console.print(f"wrote {out}", highlight=False)
    return 0


def _check_out_folder(path):
    """``--out`` with ``--ray``: a folder (new, or one an earlier run of the same command wrote)."""
    from pathlib import Path

    from ...errors import InputError

    out = Path(path)
    if out.suffix.lower() in _FORMATS or (out.exists() and not out.is_dir()):
        raise InputError(f"--out: with --ray, expected a folder for the Parquet shards, got {str(out)!r}")
    return out


def _run_ray(args, tower, pairs, modality, out) -> int:
    """``embed --ray``: the vectors as Parquet shards, through Ray Data."""
    from ..._validation import check_int
    from ...towers.ray_embed import DEFAULT_SHARD_SIZE, embed_with_ray

    workers = None if args.workers is None else check_int(args.workers, "--workers", low=1)
    shard = DEFAULT_SHARD_SIZE if args.shard_size is None else check_int(args.shard_size, "--shard-size", low=1)
    t0 = time.perf_counter()
    done = embed_with_ray(tower, pairs[modality], pairs.ids, out, batch_size=args.batch_size, shard_size=shard,
                          workers=workers, address=args.ray or None, progress=not args.quiet,
                          info={"dataset": args.dataset, "split": args.split, "modality": modality})
    seconds = time.perf_counter() - t0
    summary = {"dataset": args.dataset, "split": args.split, "modality": modality, "tower": tower.name,
               "n": done["n"], "dim": done["dim"], "shards": done["shards"], "written": done["written"],
               "skipped": done["skipped"], "seconds": round(seconds, 3), "out": str(out)}
    if args.json:
        print_json(summary)
    else:
        print_table(f"embed {args.dataset}/{args.split} {modality} -> {out} (ray)",
                    ["tower", "n", "dim", "shards", "written", "skipped", "seconds"],
                    [[tower.name, summary["n"], summary["dim"], summary["shards"], summary["written"],
                      summary["skipped"], summary["seconds"]]])
        console.print(f"wrote {out}", highlight=False)
    return 0
