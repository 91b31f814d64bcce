"""Matplotlib with the Agg backend (no display needed), imported on first use."""

from __future__ import annotations

import contextlib
import functools


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or MissingDependencyError with the install command."""
    try:
        import matplotlib
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("plots need matplotlib: pip install 'jointspace[server]' "
                                     "(or pip install matplotlib)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def check_png_path(path, name: str = "path"):
    """``path`` as a writable file name ending in ``.png``, checked before any drawing.

    Parameters
    ----------
    path : str or path-like
    name : str
        The argument name used in messages.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        ``path`` is not a path, does not end in ``.png`` (the writers encode PNG whatever the
        suffix), is a folder, or its parent cannot be created.
    """
    import os

    from .._io import check_out_file
    from ..errors import InputError

    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"{name}: expected a file path ending in .png, got {type(path).__name__}")
    if not os.fspath(path).lower().endswith(".png"):
        raise InputError(f"{name}: expected a file name ending in .png, got {os.fspath(path)!r}")
    return check_out_file(path, name)


def check_not_an_input(path, inputs, name: str = "path") -> None:
    """Refuse to write ``path`` over a file the drawing reads.

    Parameters
    ----------
    path : pathlib.Path
        The file to write (checked by :func:`check_png_path`).
    inputs : iterable of (str, object)
        ``(argument name, value)`` of each input; values that are not paths of existing files
        (arrays, images in memory, None) are skipped.
    name : str
        The argument name of ``path`` in messages.

    Raises
    ------
    InputError
        ``path`` is the same file as one of the inputs.
    """
    import os

    from ..errors import InputError

    if not path.is_file():
        return
    for arg, value in inputs:
        if not isinstance(value, (str, os.PathLike)) or not os.path.isfile(value):
            continue
        if os.path.samefile(value, path):
            raise InputError(f"{name}: {str(path)!r} is read as {arg}; expected a file name that is not one of "
                             "the inputs, so they are not overwritten")


#: texts are measured in a font this many times their size, so that widths are precise
MEASURE_SCALE = 10


def measuring_font(points: float):
    """A PIL font of matplotlib's text font at ``points`` x :data:`MEASURE_SCALE` pixels: it
    measures texts in points x :data:`MEASURE_SCALE` as matplotlib draws them, for the text
    helpers of :mod:`jointspace.viz._text`."""
    from matplotlib import font_manager
    from PIL import ImageFont

    from ._text import font as _font

    try:
        return ImageFont.truetype(font_manager.findfont(font_manager.FontProperties()),
                                  round(points * MEASURE_SCALE))
    except OSError:   # a font PIL cannot open: the gallery's font measures near enough
        return _font(round(points * MEASURE_SCALE))


def save_figure(fig, path) -> str:
    """Write ``fig`` as PNG atomically and close it; returns the path."""
    import io

    from .._io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def figure_writer(write):
    """Decorate a function that draws matplotlib figures and writes them with :func:`save_figure`.

    Text is drawn as given: labels, class names, captions and column names come from the
    user's data, where a ``$`` is a dollar sign, not the start of mathtext (``"$5 to $10"``
    would be set as math, and ``"$$"`` would fail to draw).  When the writer fails part way
    (a full disk), the figures it opened are closed, not left in pyplot's registry for the
    rest of the process.  Characters the font lacks (matplotlib warns once per character and
    drawing pass) are reported in one warning.
    """

    @functools.wraps(write)
    def wrapper(*args, **kwargs):
        import contextlib
        import sys

        try:
            import matplotlib

            literal = matplotlib.rc_context({"text.parse_math": False})
        except ImportError:   # the writer's pyplot() says how to install it
            literal = contextlib.nullcontext()
        plt = sys.modules.get("matplotlib.pyplot")
        before = set(plt.get_fignums()) if plt is not None else set()
        try:
            with literal, _glyphs_reported_once():
                return write(*args, **kwargs)
        except BaseException:
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                for num in set(plt.get_fignums()) - before:
                    plt.close(num)
            raise

    return wrapper


@contextlib.contextmanager
def _glyphs_reported_once():
    """Within the block, matplotlib's "Glyph N missing from font(s) F" warnings are gathered into
    one warning naming the characters; other warnings pass on as they came."""
    import re
    import warnings

    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:   # the recording is over: the caller's filters apply to what is passed on
        missing, fonts = {}, set()
        for w in caught:
            found = re.match(r"Glyph (\d+) \(.*\) missing from font\(s\) (.+?)\.?$", str(w.message))
            if found and issubclass(w.category, UserWarning):
                missing.setdefault(chr(int(found.group(1))), None)
                fonts.add(found.group(2))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        if missing:
            shown = "".join(list(missing)[:20]) + ("..." if len(missing) > 20 else "")
            warnings.warn(f"the font ({', '.join(sorted(fonts))}) has no glyph for {len(missing)} character(s) of "
                          f"the text drawn, shown as empty boxes: {shown}", UserWarning, stacklevel=4)
