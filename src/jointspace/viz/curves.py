"""Training curves from a run's ``metrics.csv`` (whatever numeric columns it has)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ._mpl import figure_writer

X_COLUMNS = ("step", "epoch")


def read_metrics(path) -> dict:
    """Numeric columns of a metrics CSV, as float arrays with NaN where a row has no value.

    Parameters
    ----------
    path : str or path-like
        A ``metrics.csv`` file or a run folder holding one.

    Returns
    -------
    dict of str to ndarray, shape (n_rows,)
        Only columns with at least one number; text columns are dropped.  A UTF-8 byte-order
        mark at the start of the file is not part of the first column's name.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise InputError(f"metrics: expected a metrics.csv file or a run folder holding one, got {str(path)!r}")
    try:
        # utf-8-sig: a spreadsheet's "Save as CSV UTF-8" begins with a byte-order mark, which
        # would stay on the first column's name ("\ufeffstep": no step column)
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
    except csv.Error as exc:   # e.g. a field over the csv module's size limit (128 KiB)
        # DictReader's own line_num lags behind on the line that failed; its reader's does not
        line = reader.reader.line_num
        raise InputError(f"metrics: {path}, line {line}: not a readable metrics CSV ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"metrics: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not rows:
        raise InputError(f"metrics: {path} has no rows")
    out = {}
    for col in rows[0].keys():
        if col is None:
            continue
        vals = []
        for r in rows:
            v = (r.get(col) or "").strip()
            try:
                vals.append(float(v) if v else math.nan)
            except ValueError:
                vals.append(None)
        if any(v is None for v in vals):
            continue
        arr = np.array(vals, dtype=np.float64)
        if np.isfinite(arr).any():
            out[col] = arr
    if not out:
        raise InputError(f"metrics: {path} has no numeric columns")
    return out


def _check_columns(metrics: dict) -> dict:
    """A dict of columns as equally long 1-D float arrays (NaN = no value)."""
    if not metrics:
        raise InputError("metrics: expected a dict of column name -> values with at least one column, "
                         "got an empty dict")
    out, first = {}, None
    for name, values in metrics.items():
        label = f"metrics[{name!r}]"
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{label}: expected a 1-D sequence of numbers, got {type(values).__name__}") from None
        if arr.ndim != 1 or arr.size == 0:
            raise InputError(f"{label}: expected a non-empty 1-D sequence of numbers, got shape {arr.shape}")
        if first is None:
            first = (name, arr.size)
        elif arr.size != first[1]:
            raise InputError(f"{label}: expected {first[1]} values like metrics[{first[0]!r}] (one per row), "
                             f"got {arr.size}")
        out[str(name)] = arr
    return out


@figure_writer
def plot_curves(metrics, path, *, title: str | None = None, x: str | None = None,
                max_panels: int | None = None) -> str:
    """One panel per numeric metric against ``step`` (or ``epoch``, or the row number); a PNG.

    Parameters
    ----------
    metrics : str, path-like or dict
        A run folder, a metrics CSV, or columns as :func:`read_metrics` returns them (name ->
        1-D numbers, all of one length; NaN where a row has no value).
    path : str or path-like
        The PNG to write (atomically); must end in ``.png``.
    x : str, optional
        The x column (default: ``step`` if present, else ``epoch``, else the row number).
    max_panels : int, optional
        At most this many metrics are drawn (in column order), >= 1; the names of the others
        are written under the panels.  Default: every metric.

    Returns
    -------
    str
        The written path.
    """
    from .._validation import check_int
    from ._mpl import check_png_path, pyplot, save_figure

    path = check_png_path(path)
    if max_panels is not None:
        max_panels = check_int(max_panels, "max_panels", low=1)
    cols = read_metrics(metrics) if not isinstance(metrics, dict) else _check_columns(metrics)
    if x is not None and x not in cols:
        raise InputError(f"x: expected one of the columns {', '.join(cols)}, got {x!r}")
    xname = x or next((c for c in X_COLUMNS if c in cols), None)
    n = len(next(iter(cols.values())))
    xs = cols[xname] if xname else np.arange(n, dtype=np.float64)
    names = [c for c in cols if c not in X_COLUMNS and c != xname]
    names, left_out = names[:max_panels], names[len(names) if max_panels is None else max_panels:]
    if not names:
        raise InputError(f"metrics: no metric columns besides {', '.join(cols)}")
    plt = pyplot()
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        y = cols[name]
        ok = np.isfinite(y) & np.isfinite(xs)
        ax.plot(xs[ok], y[ok], marker="o" if ok.sum() < 30 else None, ms=3, lw=1.4)
        ax.set_title(name)
        ax.set_xlabel(xname or "row")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if left_out:
        fig.text(0.01, 0.0, f"not drawn (max_panels={max_panels}): {', '.join(left_out)}", ha="left", va="top",
                 fontsize=8, wrap=True)
    return save_figure(fig, path)
