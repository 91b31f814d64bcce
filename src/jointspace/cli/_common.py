"""Output helpers shared by the subcommands: tables, JSON, progress, errors."""

from __future__ import annotations

import contextlib

import json
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text


class _NoStatus:
    """What :meth:`_Console.status` gives off a terminal: a spinner that shows nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, *args, **kwargs) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _Console(Console):
    """A rich console whose spinners (``status``) draw only on a terminal: piped or captured
    output (logs, CI) gets nothing from them, so stderr holds only real messages."""

    def status(self, *args, **kwargs):
        if not self.is_terminal:
            return _NoStatus()
        return super().status(*args, **kwargs)


# Piped output (logs, CI) gets a wide fixed width instead of rich's 80 columns, so tables
# are not squeezed.  No markup: what is printed holds file names, captions and queries, and
# "cat [draft].png" would lose "[draft]" as a style (a "[/draft]" one would raise).
console = _Console(width=None if sys.stdout.isatty() else 140, markup=False)
err_console = _Console(stderr=True, markup=False)


def one_line(message) -> str:
    """``message`` on one line: its lines joined by a space, each stripped.  Spaces within a
    line are kept, so a file name quoted in it ("a  b.png") is shown as it is."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def error(message: str) -> None:
    """One line on stderr, no traceback."""
    first = one_line(message)
    err_console.print(Text.assemble(("error:", "bold red"), f" {first}"), highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """One warning line on stderr."""
    first = one_line(message)
    err_console.print(Text.assemble(("warning:", "yellow"), f" {first}"), highlight=False, soft_wrap=True)


def note(message: str) -> None:
    """One informational line on stderr (stdout stays the command's output: ``--json`` too)."""
    first = one_line(message)
    err_console.print(Text.assemble(("note:", "cyan"), f" {first}"), highlight=False, soft_wrap=True)


def used_all_rows(option: str, asked: int, held: int, source: str) -> None:
    """Say that ``option`` asked for more rows (``asked``) than ``source`` holds (``held``), so
    every row was used, instead of passing over it."""
    if asked > held:
        note(f"{option} {asked:,} is more than the {held:,} rows of {source}; all {held:,} are used")


def print_json(obj) -> None:
    """``obj`` as strict JSON on stdout: numpy values as Python ones, NaN / Inf as null."""
    from ..eval.report import plain_json

    sys.stdout.write(json.dumps(plain_json(obj), indent=2, default=_default, allow_nan=False) + "\n")
    sys.stdout.flush()


def _default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _is_number(value) -> bool:
    import numbers

    if isinstance(value, numbers.Number):
        return True
    try:
        float(str(value))
        return str(value) not in ("", "nan")
    except ValueError:
        return str(value) == "-"


def print_table(title: str, columns: list[str], rows: list[list], *, floatfmt: str = "{:.3f}") -> None:
    """A rich table: numeric columns right-aligned and never narrowed (a narrow terminal
    shortens the text columns instead), the last column wraps, the others do not."""
    table = Table(title=title, title_justify="left")
    cells = [[floatfmt.format(v) if isinstance(v, float) else str(v) for v in row] for row in rows]
    for i, col in enumerate(columns):
        numeric = bool(rows) and all(_is_number(r[i]) for r in rows)
        last = i == len(columns) - 1
        width = max([len(col), *(len(c[i]) for c in cells)]) if numeric else None
        table.add_column(col, justify="right" if numeric else "left", no_wrap=not last, min_width=width)
    for row in cells:
        table.add_row(*row)
    console.print(table)


def progress(transient: bool = True) -> Progress:
    """A rich progress bar on stderr (used for anything that takes over a second), drawn when
    every bar of the package is (:func:`jointspace._progress.progress_console`: silent when
    stderr is not a terminal, ``JOINTSPACE_PROGRESS=0`` / ``=1`` turn it off / on)."""
    from .._progress import progress_console

    shown = progress_console()
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=shown or err_console, transient=transient,
                    disable=shown is None)


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def parse_params(pairs: list[str] | None, option: str = "--param") -> dict:
    """``["n_components=10", "reg=0.1", "preprocess=standard"]`` -> dict with JSON-parsed values.

    A value that is not JSON stays a string (``preprocess=standard``), except one that starts
    with ``{`` or ``[``: that is meant as a JSON object or array, and malformed JSON is an
    :class:`~jointspace.errors.InputError` naming the key.
    """
    from ..errors import InputError

    out = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option}: expected KEY=VALUE, got {item!r}")
        key = key.strip()
        try:
            out[key] = json.loads(value)
        except ValueError as exc:
            if value.lstrip()[:1] in ("{", "["):
                raise InputError(f"{option} {key}: expected valid JSON for a value starting with "
                                 f"{value.lstrip()[0]!r} ({getattr(exc, 'msg', exc)} at character "
                                 f"{getattr(exc, 'pos', '?')}), got {value!r}") from None
            out[key] = value
    return out


def split_names(split: str) -> list[str]:
    """The splits named by ``--split``: one name, or several joined by ``+`` (``train+val``)."""
    from ..data.sources import split_names as names
    from ..errors import InputError

    try:
        return names(split)
    except InputError as exc:
        raise InputError(f"--{exc}") from None


def add_data_options(parser, *, arrays: bool | str = True) -> None:
    """Options that read a user's own collection (a manifest, a folder or an arrays file).

    ``arrays``: True adds ``--modality NAME=KEY`` and ``--labels`` for arrays files; ``"own"``
    adds ``--labels`` only (the command's own ``--modality`` takes NAME=KEY too); False: the
    command reads no arrays file (its items go through a tower).
    """
    kinds = ("a manifest (.csv/.jsonl: file paths, captions, labels), a folder of images with sidecar .txt "
             "captions (else the file names)")
    g = parser.add_argument_group("your own data", f"DATA may be {kinds}" + (
        ", or an arrays file (.npy/.npz/.mat/.parquet/.csv) with --modality NAME=KEY" if arrays else ""))
    g.add_argument("--columns", metavar="SPEC",
                   help="manifest: which column is which, e.g. image=path,text=caption,label=category "
                        "(default: guessed from the names and contents)")
    if arrays is True:
        g.add_argument("--modality", action="append", metavar="NAME=KEY",
                       help="arrays file: the array (or columns) of one modality, repeatable, e.g. image=I_tr")
    if arrays:
        g.add_argument("--labels", metavar="KEY", help="arrays file: the array of labels (numbers or class names)")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help="share of your data held out as the 'val' split that chooses settings (default: 0.1; "
                        "near-duplicate captions, or --group-column, stay on one side)")
    g.add_argument("--split-column", metavar="COL", help="column naming each row's split (train, val, test)")
    g.add_argument("--group-column", metavar="COL", help="column whose equal values stay on one side of the split")


def array_keys(values) -> dict[str, str] | None:
    """``["image=I_tr", "text=T_tr"]`` -> ``{"image": "I_tr", "text": "T_tr"}`` (None when empty)."""
    from ..errors import InputError

    out: dict[str, str] = {}
    for item in values or []:
        name, sep, key = str(item).partition("=")
        if not sep or not name.strip() or not key.strip():
            raise InputError(f"--modality: expected NAME=KEY (e.g. image=I_tr), got {item!r}")
        if name.strip() in out:
            raise InputError(f"--modality: {name.strip()!r} is given twice")
        out[name.strip()] = key.strip()
    return out or None


def given_array_keys(args) -> dict[str, str] | None:
    """The arrays of ``args.modality`` given as NAME=KEY (a bare NAME, as ``index --modality
    image`` takes, names no array), as :func:`array_keys` reads them."""
    given = getattr(args, "modality", None)
    return array_keys([m for m in given if "=" in str(m)]) if isinstance(given, list) else None


_SOURCES: dict = {}


def _on_disk(spec: str):
    """What ``spec`` is on disk now: its absolute path with the size and modification time of the
    file, or of every file under the folder; None for a name that is no file or folder here."""
    import os
    from pathlib import Path

    path = Path(spec).expanduser()
    try:
        if path.is_dir():
            listing = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    st = os.stat(os.path.join(root, name))
                    listing.append((os.path.relpath(os.path.join(root, name), path), st.st_size, st.st_mtime_ns))
            return str(path.resolve()), tuple(listing)
        st = path.stat()
    except OSError:
        return None
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def data_source(spec: str, args=None):
    """The :class:`~jointspace.data.sources.DataSource` named by ``spec`` (read again once the file,
    or a file of the folder, it was read from changes), with the user-data options of ``args``
    (``add_data_options``); ``args.builtin_`` (True or False), when set, says whether ``spec``
    is a built-in dataset's name or a path."""
    from ..data.sources import open_data

    keys = getattr(args, "array_keys_", None)
    if keys is None and args is not None:
        keys = given_array_keys(args)
    opts = {"columns": getattr(args, "columns", None) or "auto", "modalities": keys,
            "labels": getattr(args, "labels", None),
            "val_fraction": getattr(args, "val_fraction", None),
            "split_column": getattr(args, "split_column", None), "group_column": getattr(args, "group_column", None)}
    builtin = getattr(args, "builtin_", None)   # what an index recorded: a built-in by name, or a path
    key = (str(spec), builtin, repr(sorted(opts.items(), key=lambda kv: kv[0])))
    stamp = _on_disk(str(spec))
    if key not in _SOURCES or _SOURCES[key][0] != stamp:   # an edited file replaces what was read of it
        with err_console.status(f"reading {spec}"), _data_named_as(args):
            _SOURCES[key] = (stamp, open_data(spec, **opts, builtin=builtin))
    return _SOURCES[key][1]


@contextlib.contextmanager
def _data_named_as(args):
    """Name the data argument in the reader's messages as the user gave it (``DATA`` for
    a positional one; the readers say ``--data``, or ``path`` for a folder)."""
    from ..errors import InputError

    import re

    try:
        yield
    except InputError as exc:
        msg, name = str(exc), getattr(args, "option_names", {}).get("dataset", "--data")
        for prefix in ("--data:", "path:"):
            if msg.startswith(prefix) and name != prefix[:-1]:
                raise InputError(name + ":" + msg[len(prefix):]) from None
        if msg.startswith("manifest "):   # what is wrong in the manifest DATA (files it lists, its ids)
            raise InputError(f"{name}: {msg}") from None
        # an arrays file's reader names the array it read (``modality text=T: key: ...``,
        # ``labels L: ...``); the command line gave it as --modality text=T or --labels L
        labels = getattr(args, "labels", None)
        match = re.match(r"(modality [^\s:=]+=[^\s:]+|labels [^\s:]+): (?:(?:key|path): )?(.*)", msg, flags=re.S)
        if match:
            raise InputError(f"--{match.group(1)}: {match.group(2)}") from None
        if msg.startswith("labels: ") and isinstance(labels, str):
            raise InputError(f"--labels {labels}: {msg[len('labels: '):]}") from None
        if msg.startswith("modality: the arrays of "):
            raise InputError("--" + msg) from None
        raise


def default_split(source, builtin_default: str, user_default: str = "all") -> str:
    """The split a command reads when ``--split`` is not given: ``builtin_default`` for a
    built-in dataset that has it (else its first split, e.g. ``all`` of ``photos``),
    ``user_default`` for a user's collection."""
    if not source.builtin:
        return user_default
    return builtin_default if builtin_default in source.splits else source.splits[0]


def load_split(dataset: str, split: str, args=None):
    """One split of a built-in dataset or of a user's collection (or several joined by ``+``,
    their rows one after the other), with a spinner while it loads.  When the splits number
    their samples alike, each id becomes ``"<split>/<id>"`` so the ids stay unique."""
    from ..errors import InputError

    split_names(split)
    source = data_source(dataset, args)
    with err_console.status(f"loading {dataset} ({split})"), _data_named_as(args):
        try:
            return source.load(split)
        except InputError as exc:
            msg = str(exc)
            raise InputError("--" + msg if msg.startswith("split:") else msg) from None


def print_settings(report: dict) -> None:
    """The settings each row was run with (chosen on the training or validation split), one line per row."""
    for row in report.get("rows", []):
        if row.get("settings"):
            console.print(f"  {row['method']}: {row['settings']}", highlight=False)


def show_report(report: dict) -> None:
    """Print a retrieval report: one table per direction (methods x metrics), then settings."""
    from ..eval.report import report_columns, split_key

    columns = report_columns(report)
    if not columns:  # a report without retrieval directions (e.g. zero-shot accuracy)
        keys = [k for k in report["rows"][0] if k not in ("method", "settings")] if report["rows"] else []
        print_table(f"{report['dataset']} ({report['split']})", ["method", *keys],
                    [[r["method"], *[r.get(k, "-") for k in keys]] for r in report["rows"]])
        print_settings(report)
        return
    directions = list(dict.fromkeys(split_key(k)[0] for k in columns))
    metrics = list(dict.fromkeys(split_key(k)[1] for k in columns))
    if len(metrics) == 1:  # one metric: a single table, one column per direction
        print_table(f"{report['dataset']} ({report['split']}): {metrics[0]}", ["method", *directions],
                    [[r["method"], *[r.get(k, "-") if r.get(k) is None else float(r[k]) for k in columns]]
                     for r in report["rows"]])
        print_settings(report)
        return
    for direction in directions:
        keys = [k for k in columns if split_key(k)[0] == direction]
        rows = []
        for row in report["rows"]:
            cells = []
            for k in keys:
                v = row.get(k)
                metric = split_key(k)[1]
                cells.append("-" if v is None else (f"{v:.1f}" if metric in ("medR", "meanR") else f"{v:.3f}"))
            rows.append([row["method"], *cells])
        print_table(f"{report['dataset']} ({report['split']}): {direction}",
                    ["method", *[split_key(k)[1] for k in keys]], rows)
    print_settings(report)


def open_index(index_dir: str, model_dir: str | None = None, args=None, *, model_dest: str = "model",
               index_dest: str = "index"):
    """(index, model) for a search: the model defaults to the one the index records.

    ``args`` (the parsed command line) names the options in messages; the recorded model must
    still be there, and must not have been saved again since the index was built.
    """
    import argparse

    from ._checks import named_as
    from ._recorded import check_model_unchanged, index_model_dir
    from ..index.faiss_index import Index

    if args is None:
        args = argparse.Namespace(**{model_dest: model_dir})
    names = getattr(args, "option_names", None) or {}
    with named_as("folder", names.get(index_dest, "--" + index_dest)):   # Index.load names its parameter
        index = Index.load(index_dir)
    model_dir = index_model_dir(args, index.info, index_dir, model_dest=model_dest, index_dest=index_dest)
    model = load_model_named(model_dir, (getattr(args, "option_names", None) or {}).get(model_dest, "--model"))
    check_model_unchanged(args, index.info, model_dir, model_dest=model_dest, index_dest=index_dest)
    return index, model


def load_model_named(model_dir, option: str = "--model"):
    """:func:`~jointspace.models.base.load_model`, its messages naming ``option`` (they say ``model:``)."""
    from ..errors import InputError
    from ..models.base import load_model

    try:
        return load_model(model_dir)
    except InputError as exc:
        msg = str(exc)
        if msg.startswith("model:"):
            raise InputError(option + msg[len("model"):]) from None
        raise
