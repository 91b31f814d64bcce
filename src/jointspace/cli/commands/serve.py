"""``jointspace serve``: the search service and web page over an index and a model."""

import contextlib
import errno
import math
import socket

from rich.text import Text

from .._common import console

#: the largest --max-upload-mb accepted (an upload is held in memory while it is decoded)
MAX_UPLOAD_MB = 4096


def register(sub):
    p = sub.add_parser("serve", help="serve a search page and JSON API over an index",
                       description="Load a model and one or more indexes once, then serve the search page "
                                   "(/), the JSON API (/api/...) and its documentation (/docs) with uvicorn.",
                       epilog="example: jointspace serve --index idx/clip-img --model runs/clip --port 8000")
    p.add_argument("--index", action="append", required=True, metavar="DIR",
                   help="index folder (repeat for one index per result modality; the first is the default)")
    p.add_argument("--model", metavar="RUN_DIR", help="saved model folder (default: the one the index records)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a Host name to answer besides localhost, 127.0.0.1 and [::1] (repeat; '*' answers any); "
                        "bound to loopback other names get 400, which stops DNS-rebinding pages; bound elsewhere, "
                        "the only names answered (default: any)")
    p.add_argument("--max-upload-mb", type=float, default=10.0,
                   help=f"largest upload in MB, at most {MAX_UPLOAD_MB} (default: 10)")
    p.add_argument("--plots", metavar="DIR", help="folder of map.png / gallery.png / curves.png for the "
                                                   "'about this index' panel (default: INDEX/plots)")
    p.add_argument("--cache-size", type=int, default=1024, help="text query embeddings kept (default: 1024; 0 turns the cache off)")
    p.add_argument("--max-batch", type=int, default=32,
                   help="concurrent queries encoded together, at most this many (default: 32; 1 disables)")
    p.set_defaults(handler=run, read_once=False)


def run(args) -> int:
    from ...errors import InputError
    from ...server.app import serve

    if not math.isfinite(args.max_upload_mb) or not 1 / 1024 <= args.max_upload_mb <= MAX_UPLOAD_MB:
        raise InputError(f"--max-upload-mb: expected a number in [{1 / 1024:g}, {MAX_UPLOAD_MB}] (1 KiB to "
                         f"{MAX_UPLOAD_MB} MiB), got {args.max_upload_mb}")
    for folder in args.index:   # '' would be read as the current folder
        if not folder.strip():
            raise InputError(f"--index: expected an index folder, got {folder!r}")
    if args.model is not None and not args.model.strip():   # '' would be read as not given
        raise InputError(f"--model: expected a saved model folder, got {args.model!r}")
    if args.cache_size < 0:
        raise InputError(f"--cache-size: expected an integer >= 0 (0 turns the cache off), got {args.cache_size}")
    if args.max_batch < 1:
        raise InputError(f"--max-batch: expected an integer >= 1, got {args.max_batch}")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port: expected 0..65535, got {args.port}")
    if args.plots is not None:
        from pathlib import Path

        if not str(args.plots).strip() or not Path(args.plots).expanduser().is_dir():
            raise InputError(f"--plots: expected a folder of map.png / gallery.png / curves.png, got {args.plots!r} "
                             "(not a folder)")
    from ...server.middleware import allowed_host_name

    # as the Host header is compared: lower case, no final dot, the ASCII form of a non-ASCII name
    args.allowed_host = [allowed_host_name(name) for name in args.allowed_host]
    port = _check_bindable(args.host, args.port)   # --port 0: the free port chosen, announced and served
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        console.print(Text.assemble(("warning:", "yellow"), f" binding to {args.host}: the service is reachable "
                                                            "from other machines"), highlight=False)

    def ready(url):
        console.print(f"jointspace search page: {url}  (API docs: {url}docs)", highlight=False)

    console.print("loading the model and index ...", highlight=False)
    engine = _engine(args)
    try:
        serve(args.index, engine.model_dir, host=args.host, port=port, on_ready=ready,
              max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), plots_dir=args.plots,
              engine=engine, allowed_hosts=args.allowed_host)
    except SystemExit as exc:  # uvicorn exits this way when it cannot start
        if exc.code:
            from ...errors import JointspaceError

            raise JointspaceError(f"--host/--port: the server could not start on {args.host}:{port} "
                                  f"(uvicorn exit code {exc.code})") from None
        raise
    return 0


def _engine(args):
    """The search engine over --index and --model, after checking what the first index records
    about its model: still there, not saved again since, and giving vectors of the index's width
    (a different model than recorded is served with a warning, as search does); every further
    --index is checked against the model served the same way."""
    from ...errors import InputError
    from ...index.persistence import read_index_info
    from ...server.engine import SearchEngine
    from .._common import warn
    from .._recorded import check_model_unchanged, index_model_dir, other_model, warn_other_model

    with _named_by_option():
        info = read_index_info(args.index[0])
        model_dir = index_model_dir(args, info, args.index[0])
        check_model_unchanged(args, info, model_dir)
        others = []
        for folder in args.index[1:]:
            more = read_index_info(folder)
            check_model_unchanged(args, more, model_dir)
            others.append((folder, other_model(more, model_dir)))
        engine = SearchEngine(args.index, model_dir, cache_size=args.cache_size, max_batch=args.max_batch)
        # again on what the engine loaded: a fit or an index build may have saved a folder again meanwhile
        for index in engine.indexes.values():
            check_model_unchanged(args, index.info, model_dir)
    for modality, index in engine.indexes.items():   # else every query answers no results, as if none matched
        if len(index) == 0:
            folder = engine.index_dirs[modality]
            raise InputError(f"--index: expected an index with items to search, got {folder!r} holding none; add "
                             f"some with 'jointspace index {folder} --append --data DATA'")
    # warned once everything loaded: a model or index that fails to load is its one line of error
    warn_other_model(args, info)
    for folder, recorded in others:
        if recorded:
            warn(f"--index {folder} was built with the model {recorded}, not {model_dir}, the one served; its "
                 "scores mean something only if both embed into the same space")
    return engine


@contextlib.contextmanager
def _named_by_option():
    """The index's and the engine's messages (``folder:``, ``index:``, ``model:``) naming
    --index and --model."""
    from ...errors import InputError

    try:
        yield
    except InputError as exc:
        msg = str(exc)
        for name, option in (("index", "--index"), ("folder", "--index"), ("model", "--model")):
            if msg.startswith(name + ":"):
                raise InputError(option + msg[len(name):]) from None
        raise


def _check_bindable(host: str, port: int) -> int:
    """The port a server socket binds to on ``host`` (``port``, or a free one for 0); raise
    :class:`InputError` naming --host or --port when it cannot bind.

    The socket is closed again at once; it is opened with ``SO_REUSEADDR`` as uvicorn's is,
    so a port left in TIME_WAIT by an earlier run counts as free, one with a listener does not.
    """
    from ...errors import InputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise InputError(f"--host: cannot resolve {host!r} to an address ({getattr(exc, 'strerror', None) or exc})"
                         ) from None
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            return int(sock.getsockname()[1])
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"--port: {port} is already in use on {host}; stop what listens there or choose "
                             "another --port") from None
        if exc.errno == errno.EACCES:
            raise InputError(f"--port: not allowed to bind port {port} on {host} (ports below 1024 need "
                             "privileges); choose another --port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InputError(f"--host: {host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one "
                             "of its interfaces") from None
        raise InputError(f"--host/--port: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
