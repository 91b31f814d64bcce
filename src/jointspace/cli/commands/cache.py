"""``jointspace cache info|prune``: what the embedding cache holds, and bounding it."""

from .._common import add_json_flag, console, print_json, print_table


def register(sub):
    p = sub.add_parser("cache", help="show the embedding cache's size, prune its least recently used chunks",
                       description="The embedding cache keeps tower outputs chunk by chunk and never deletes "
                                   "them by itself: chunks of old tower settings, weights or removed items stay "
                                   "until pruned. A chunk's time is when it was last written or read.",
                       epilog="examples: jointspace cache info\n"
                              "          jointspace cache prune --older-than 30\n"
                              "          jointspace cache prune --max-size 2G --dry-run")
    what = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    i = what.add_parser("info", help="chunks and bytes per tower folder")
    _cache_dir(i)
    add_json_flag(i)
    i.set_defaults(handler=run_info)
    r = what.add_parser("prune", help="delete the least recently used chunks",
                        description="Delete the chunks not used for --older-than days, then the least recently "
                                    "used until the cache holds at most --max-size. Safe beside a running embed, "
                                    "index or fit: a chunk being written is never deleted, and a deleted chunk "
                                    "is only computed again when next needed.")
    _cache_dir(r)
    r.add_argument("--older-than", type=float, metavar="DAYS", help="delete chunks not used for DAYS days")
    r.add_argument("--max-size", metavar="SIZE", help="then keep at most SIZE bytes, e.g. 4096, 500M, 2G")
    r.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    add_json_flag(r)
    r.set_defaults(handler=run_prune)


def _cache_dir(p) -> None:
    p.add_argument("--cache-dir", help="embedding cache folder (default: $JOINTSPACE_CACHE/embeddings)")


def _root(args):
    from ...errors import InputError
    from ...towers.cache import _folder, default_cache_dir

    if args.cache_dir is None:
        return default_cache_dir()
    if not args.cache_dir.strip():
        raise InputError(f"--cache-dir: expected a folder, got {args.cache_dir!r}")
    return _folder(args.cache_dir, "--cache-dir")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def run_info(args) -> int:
    import time

    from ...towers.cache_usage import cache_info

    root = _root(args)
    rows = cache_info(root)
    if args.json:
        print_json({"root": str(root), "folders": rows, "bytes": sum(r["bytes"] for r in rows)})
        return 0
    print_table(f"embedding cache {root}", ["tower folder", "chunks", "size", "last used"],
                [[r["folder"], r["chunks"], _size(r["bytes"]),
                  "-" if r["last_used"] is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(r["last_used"]))]
                 for r in rows])
    console.print(f"total {_size(sum(r['bytes'] for r in rows))} in {sum(r['chunks'] for r in rows)} chunks")
    return 0


def run_prune(args) -> int:
    import math

    from ...errors import InputError
    from ...towers.cache_usage import parse_size, prune_cache

    if args.older_than is None and args.max_size is None:
        raise InputError("prune: expected --older-than DAYS, --max-size SIZE or both, got neither")
    if args.older_than is not None and not (math.isfinite(args.older_than) and args.older_than >= 0):
        raise InputError(f"--older-than: expected a number of days >= 0, got {args.older_than}")
    size = None if args.max_size is None else parse_size(args.max_size, "--max-size")
    root = _root(args)
    out = prune_cache(root, args.older_than, size, dry_run=args.dry_run)
    if args.json:
        print_json({"root": str(root), "dry_run": args.dry_run, **out})
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    console.print(f"{verb} {out['removed']} chunks ({_size(out['freed'])}); "
                  f"{'would keep' if args.dry_run else 'kept'} {out['kept']} ({_size(out['bytes'])})")
    return 0
