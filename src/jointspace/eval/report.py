"""The retrieval report every ``bench`` and ``eval`` prints, as a table or as JSON.

A report is one JSON-able object::

    {"dataset": "wikipedia", "split": "test",
     "rows": [{"method": "cca", "image->text/mAP": 0.25, "text->image/mAP": 0.20, ...,
               "n_components": 7}, ...]}

Metric keys are ``"<query modality>-><target modality>/<metric>"`` (as returned by
:func:`jointspace.eval.retrieval.evaluate_retrieval`); any other key of a row is a method
setting and is kept as is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .._io import atomic_write_text
from ..errors import InputError

#: metrics shown by default, in this order (those present in the report)
DEFAULT_METRICS = ("mAP", "R@1", "R@5", "R@10", "MRR", "medR", "meanR", "nDCG@10")

#: metrics where lower is better (shown with one decimal)
RANK_METRICS = ("medR", "meanR")


def plain_json(value):
    """Numpy scalars and arrays to Python values; NaN/Inf to None (valid JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return [plain_json(v) for v in value.tolist()]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    return value


def make_report(dataset: str, split: str, rows: Sequence[Mapping]) -> dict:
    """Build a report.

    Parameters
    ----------
    dataset : str
        Dataset name.
    split : str
        Split evaluated (``"test"``, ...).
    rows : sequence of mappings
        One per method; each needs a ``"method"`` name, then metric keys
        ``"<q>-><t>/<metric>"`` and any settings.

    Returns
    -------
    dict
        ``{"dataset": str, "split": str, "rows": [dict, ...]}`` with plain Python values.
    """
    if not isinstance(dataset, str) or not dataset:
        raise InputError(f"dataset: expected a non-empty string, got {dataset!r}")
    if not isinstance(split, str) or not split:
        raise InputError(f"split: expected a non-empty string, got {split!r}")
    if isinstance(rows, Mapping) or not isinstance(rows, Sequence):
        raise InputError(f"rows: expected a list of dicts, got {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InputError(f"rows[{i}]: expected a dict, got {type(row).__name__}")
        if not isinstance(row.get("method"), str) or not row["method"]:
            raise InputError(f"rows[{i}]: expected a 'method' name (string), got {row.get('method')!r}")
        clean = {"method": row["method"]}
        clean.update({str(k): plain_json(v) for k, v in row.items() if k != "method"})
        out.append(clean)
    return {"dataset": dataset, "split": split, "rows": out}


def split_key(key: str) -> tuple[str, str] | None:
    """``"image->text/mAP"`` -> ``("image->text", "mAP")``; None for a non-metric key."""
    if "/" not in key:
        return None
    direction, metric = key.rsplit("/", 1)
    if "->" not in direction:
        return None
    return direction, metric


def report_columns(report: Mapping, metrics: Sequence[str] | None = None) -> list[str]:
    """Metric keys to show, grouped by direction (in order of first appearance)."""
    directions: list[str] = []
    present: set[str] = set()
    for row in report["rows"]:
        for key in row:
            parts = split_key(key)
            if parts is None:
                continue
            if parts[0] not in directions:
                directions.append(parts[0])
            present.add(key)
    if metrics is None:
        metrics = DEFAULT_METRICS
    return [f"{d}/{m}" for d in directions for m in metrics if f"{d}/{m}" in present]


def _fmt(metric: str, value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.1f}" if metric in RANK_METRICS else f"{value:.3f}"
    return str(value)


def _abbreviations(directions: Sequence[str]) -> dict[str, str]:
    """Shortest prefix of each modality name that no other modality name starts with."""
    names = sorted({m for d in directions for m in d.split("->")})
    short = {}
    for name in names:
        others = [o for o in names if o != name]
        k = 1
        while k < len(name) and any(o.startswith(name[:k]) for o in others):
            k += 1
        short[name] = name[:k]
    return short


def format_table(report: Mapping, metrics: Sequence[str] | None = None, *, title: str | None = None,
                 width: int | None = None):
    """A rich table of the report: one row per method, one column per direction and metric.

    Parameters
    ----------
    report : dict
        As made by :func:`make_report`.
    metrics : sequence of str, optional
        Metric names to show (default :data:`DEFAULT_METRICS`, those present).
    title : str, optional
        Default ``"<dataset> (<split>)"``.
    width : int, optional
        Width available; when full direction names (``image->text``) would not fit, the
        headers use the shortest distinct prefixes of the modality names (``i->t``), spelled
        out in the caption.

    Returns
    -------
    rich.table.Table
    """
    from rich.table import Table

    columns = report_columns(report, metrics)
    directions = list(dict.fromkeys(split_key(k)[0] for k in columns))
    method_width = max([6] + [len(str(r["method"])) for r in report["rows"]])
    needed = method_width + 4 + sum(max(len(split_key(k)[0]), 7) + 3 for k in columns)
    short = None
    if width is not None and needed > width:
        short = _abbreviations(directions)
    table = Table(title=title or f"{report['dataset']} ({report['split']})", title_justify="left")
    if short:
        table.caption = ", ".join(f"{v} = {k}" for k, v in short.items())
        table.caption_justify = "left"
    table.add_column("method", justify="left", no_wrap=True)
    for key in columns:
        direction, metric = split_key(key)
        if short:
            q, t = direction.split("->")
            direction = f"{short[q]}->{short[t]}"
        table.add_column(f"{direction}\n{metric}", justify="right", no_wrap=True)
    for row in report["rows"]:
        table.add_row(str(row["method"]), *[_fmt(split_key(k)[1], row.get(k)) for k in columns])
    return table


def render_table(report: Mapping, metrics: Sequence[str] | None = None, *, width: int = 160) -> str:
    """The table of :func:`format_table` as plain text (no colours), ``width`` characters wide."""
    from rich.console import Console

    console = Console(width=width, color_system=None, force_terminal=False)
    with console.capture() as cap:
        console.print(format_table(report, metrics, width=width))
    return cap.get()


def print_report(report: Mapping, metrics: Sequence[str] | None = None, console=None) -> None:
    """Print the table to ``console`` (default: standard output)."""
    from rich.console import Console

    console = console or Console()
    console.print(format_table(report, metrics, width=console.width))


def write_json(report: Mapping, path) -> None:
    """Write the report as JSON to ``path`` atomically (a reader never sees half a file)."""
    text = json.dumps(plain_json(report), indent=2, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path) -> dict:
    """Read a report written by :func:`write_json`."""
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"path: no report at {str(path)!r}") from None
    except ValueError as exc:
        raise InputError(f"path: {str(path)!r} is not a valid JSON report ({exc})") from None
    if not isinstance(report, dict) or not {"dataset", "split", "rows"} <= set(report):
        raise InputError(f"path: {str(path)!r} is not a report (needs dataset, split and rows)")
    return report
