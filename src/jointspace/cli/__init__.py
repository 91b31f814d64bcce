"""The ``jointspace`` command line.

Each subcommand lives in its own module under ``jointspace.cli.commands`` and defines
``register(subparsers)``; the module's ``run(args) -> int`` is attached as the handler.
Exit codes: 0 success, 1 runtime failure, 2 bad input.  Errors print one line, no traceback
(``JOINTSPACE_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import threading
import warnings

from ..errors import InputError, JointspaceError


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help text whose epilog keeps its line breaks (one example per line).

    A text written as one paragraph (no newline: the descriptions, a one-line epilog) is
    wrapped to the terminal as argparse does by default; a text with newlines keeps its lines.
    """

    def _fill_text(self, text, width, indent):
        if "\n" not in text:
            return argparse.HelpFormatter._fill_text(self, text, width, indent)
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit code 2.

    Subparsers made through ``add_subparsers().add_parser`` are of the same class, so every
    subcommand reports errors the same way and formats its help with :class:`_HelpFormatter`.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        from ._common import one_line

        text = one_line(message)
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = _Parser(
        prog="jointspace",
        description="Learn one embedding space for several modalities and search across it.",
        epilog="Run 'jointspace COMMAND --help' for a command's options.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"jointspace {__version__}")
    parser.add_argument("--runtime", choices=["torch", "onnx", "torch-bf16"],
                        help="how the pretrained towers this command creates run: onnx (ONNX Runtime, the default "
                             "when installed), torch (PyTorch) or torch-bf16 (the text tower in bfloat16 on a CPU "
                             "that has it, about twice as fast on batches; the image tower then runs torch); the "
                             "same as $JOINTSPACE_RUNTIME. A saved model or index keeps the runtime it was built "
                             "with")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name)
    for info in mods:
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        mod.register(sub)
    _record_option_names(parser)
    return parser


def _record_option_names(parser: argparse.ArgumentParser) -> None:
    """Give each command's parsed arguments ``option_names``: what the user calls each argument
    (``--data`` for dest ``dataset``, ``DATA`` for a positional one), for messages."""
    names = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _record_option_names(child)
        elif action.dest != "help":
            names[action.dest] = (action.option_strings[0] if action.option_strings
                                  else action.metavar or action.dest.upper())
    parser.set_defaults(option_names=names)


def name_the_option(message: str, args) -> str:
    """A library message that starts with a parameter name (``epochs: expected ..., got 0``)
    names the command's option instead (``--epochs: ...``), where the command has an argument
    of that name and the message reports the value given to it (after ``got``, or, for a
    text, quoted anywhere in it); a parameter set by ``--param NAME=VALUE`` (and by no option
    of its own) is named ``--param NAME``."""
    import re

    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*): ", message)
    names = getattr(args, "option_names", {})
    # also a message about one entry of a dict parameter: likelihoods['image']: ...
    param = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])*: ", message)
    if param and getattr(args, param.group(1), None) is None and isinstance(getattr(args, "param", None), list) \
            and any(str(p).partition("=")[0].strip() == param.group(1) for p in args.param):
        return f"--param {message}"
    if not match or names.get(match.group(1), match.group(1)) == match.group(1):
        return message
    name = match.group(1)
    value, got = getattr(args, name, None), message.rpartition(" got ")[2]
    if value is None:
        return message
    if isinstance(value, str) and repr(value) in message[len(name):]:
        return names[name] + message[len(name):]   # the text given, quoted in the message
    spelled = "|".join(re.escape(v) for v in {str(value), repr(value)})
    if " got " not in message or not re.match(rf"(?:{spelled})(?:$|[\s;,.)(])", got):
        return message
    return names[name] + message[len(name):]


def name_the_items(message: str, args) -> str:
    """A model's message about the items of one modality (``items (image): expected 5
    features, got 7``) names where the command read them: the arrays file's
    ``--modality image=KEY``, else the data option (``--data x.npz (image): ...``); a tower's
    message about one file of the data (``items[3] ('a.png'): ...``) is named by the data
    option (``--data photos: 'a.png': ...``)."""
    import re

    data = getattr(args, "dataset", None)
    # a tower's message about one file (``items[3] ('a.png'): ...``) counts items within its
    # batch, not rows of the data: the file is named under the argument that listed it
    match = re.match(r"items\[\d+\] \(('.+?')\): (.*)", message, flags=re.S)
    if match and isinstance(data, str) and data:
        from ._checks import option_name

        return f"{option_name(args, 'dataset')} {data}: {match.group(1)}: {match.group(2)}"
    match = re.match(r"items \(([^()]+)\): (.*)", message, flags=re.S)
    if not match:
        return message
    from ._common import given_array_keys

    modality, rest = match.groups()
    try:
        keys = given_array_keys(args) or {}
    except InputError:   # malformed NAME=KEY options are reported on their own
        keys = {}
    if modality in keys:
        return f"--modality {modality}={keys[modality]}: {rest}"
    if isinstance(data, str) and data:
        from ._checks import option_name

        return f"{option_name(args, 'dataset')} {data} ({modality} items): {rest}"
    return message


def _is_utf8(text: str) -> bool:
    """Whether ``text`` came from valid UTF-8 (bytes that are not arrive as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: set by :func:`_on_sigint` while a command runs: Ctrl-C was pressed, even where a library
#: swallowed the ``KeyboardInterrupt`` (numpy's C import prints it and raises ImportError)
_SIGINT = threading.Event()


def _on_sigint(signum, frame):
    _SIGINT.set()
    raise KeyboardInterrupt


def _after_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` follows a Ctrl-C: pressed while the command ran, or a
    ``KeyboardInterrupt`` in its context or cause (at any depth), so a consequence of the
    interrupt rather than an error of its own."""
    if _SIGINT.is_set():
        return True
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the help or a one-line error
        return int(exc.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    for dest in ("text", "templates"):   # text, not a path: bytes that are not UTF-8 cannot be encoded
        value = getattr(args, dest, None)
        if isinstance(value, str) and not _is_utf8(value):
            from ._common import error

            error(f"{args.option_names.get(dest, '--' + dest)}: expected UTF-8 text, got "
                  f"{value.encode('utf-8', 'surrogateescape')!r} (not valid UTF-8)")
            return 2
    if isinstance(getattr(args, "dataset", None), str) and len(args.dataset) > 1:
        args.dataset = args.dataset.rstrip("/") or "/"   # "photos/" is the folder "photos" in every message
    from .._file_digests import read_once
    from ..towers.runtime import ENV_VAR
    from ._common import error, warn

    before = os.environ.get(ENV_VAR)
    if args.runtime:
        os.environ[ENV_VAR] = args.runtime
    shown = warnings.showwarning
    # a library warning reaches the terminal as one line, not as Python's file:line and source
    warnings.showwarning = lambda message, *_args, **_kwargs: warn(str(message))
    _SIGINT.clear()
    own_sigint = (threading.current_thread() is threading.main_thread()
                  and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if own_sigint:
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        # reading the data, finding duplicates and the embedding cache read each file once for
        # their digests; the service runs for long, and hashes as it goes
        with read_once() if getattr(args, "read_once", True) else contextlib.nullcontext():
            return int(args.handler(args) or 0)
    except (JointspaceError, OSError, MemoryError) as exc:
        if os.environ.get("JOINTSPACE_DEBUG"):
            raise
        if _after_interrupt(exc):   # e.g. an import cut short by Ctrl-C, then read as a missing package
            error("interrupted")
            return 130
        if isinstance(exc, InputError):
            error(name_the_items(name_the_option(str(exc), args), args))
            return 2
        error(str(exc) if isinstance(exc, JointspaceError) else f"{type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    finally:
        if own_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        warnings.showwarning = shown
        if args.runtime:   # main() may run again in this process (tests, notebooks)
            if before is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = before


def run() -> None:
    """Console-script entry point: exits with :func:`main`'s code, or 130 with one line when
    interrupted before a command starts (while the commands are being loaded)."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
