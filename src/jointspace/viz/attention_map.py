"""Alignment maps: for a text and an image, each word's attention over the image as a heat map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import check_choice, check_float, check_int
from ..errors import InputError
from ._mpl import check_not_an_input, check_png_path, figure_writer, pyplot, save_figure


#: the colours of the heat maps, and how opaque they are over the picture
HEAT_CMAP, HEAT_ALPHA = "inferno", 0.55


@figure_writer
def write_attention_map(image, pieces, maps, path, *, score: float | None = None, image_size: int = 224,
                        fit: str = "pad", columns: int = 6) -> str:
    """Write a PNG with the image as the tower saw it and one panel per word piece.

    Each word's panel shows its map over the picture: the H x W regions cover the square the
    tower reads (the white bands of ``fit="pad"`` included), each region's weight drawn at its
    centre and blended linearly between centres.  Colours are matplotlib's ``inferno``, 55%
    opaque, from 0 (black) to the word's own largest weight (pale yellow), which is written under
    the word ("max 0.31"); the colour bar at the right says so.  A map whose weights are all
    equal is therefore yellow all over: the word looks nowhere in particular.

    Parameters
    ----------
    image : path, PIL image or array
        The image (shown resized and padded as the image tower reads it, so cells line up).
    pieces : sequence of T str
        The word pieces.
    maps : array, shape (T, H, W)
        Each word's attention over the H x W regions (e.g. :meth:`CrossAttentionMatcher.explain`).
    path : path
        The PNG to write (atomically); must end in ``.png``, and not be the file ``image``.
    score : float, optional
        The matching score, shown in the title.
    image_size : int
        Side of the picture as drawn.
    fit : {"pad", "squash", "crop"}
        How the picture is brought to a square (as the image tower does).
    columns : int
        Panels per row.

    Returns
    -------
    str
        ``path``.
    """
    from PIL import Image

    from ..towers.efficientnet import resize_rgb
    from ..towers.inputs import load_image

    path = check_png_path(path)
    check_not_an_input(path, [("image", image)])
    try:
        maps = np.asarray(maps, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"maps: expected (T, H, W) attention maps of numbers, got {type(maps).__name__} "
                         f"({exc})") from None
    if maps.ndim != 3 or 0 in maps.shape:
        raise InputError(f"maps: expected (T, H, W) attention maps with T, H, W >= 1, got shape {maps.shape}")
    if not np.isfinite(maps).all() or maps.min() < 0:
        raise InputError("maps: expected attention weights (finite, >= 0), got "
                         + ("NaN or infinity" if not np.isfinite(maps).all() else f"a minimum of {maps.min():g}"))
    if isinstance(pieces, str) or not isinstance(pieces, (Sequence, np.ndarray)) \
            or not all(isinstance(p, str) for p in pieces):
        raise InputError(f"pieces: expected a list of word pieces (str), got {type(pieces).__name__}")
    if len(pieces) != maps.shape[0]:
        raise InputError(f"pieces: expected one word piece per map ({maps.shape[0]}), got {len(pieces)}")
    image_size = check_int(image_size, "image_size", low=1)
    columns = check_int(columns, "columns", low=1)
    check_choice(fit, "fit", ("pad", "squash", "crop"))
    if score is not None:
        score = check_float(score, "score")
    picture = resize_rgb(load_image(image, "image"), image_size, fit)
    plt = pyplot()
    panels = len(pieces) + 1
    cols = min(columns, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    # room above the first row for the figure's title and the panels' two-line titles (0.6 inch)
    fig.subplots_adjust(top=1.0 - 0.6 / (2.3 * rows))
    # before the titles: the bar takes its room from the panels, whose widths the titles are fitted to
    import matplotlib as mpl

    bar = fig.colorbar(mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0.0, 1.0), cmap=HEAT_CMAP),
                       ax=axes.ravel().tolist(), fraction=0.025 if cols > 1 else 0.1, pad=0.02)
    bar.set_label("weight / the word's max", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    axes[0, 0].imshow(picture)
    axes[0, 0].set_title("image", fontsize=9)
    for j, (piece, m) in enumerate(zip(pieces, maps), start=1):
        ax = axes.ravel()[j]
        heat = np.asarray(Image.fromarray(m / max(float(m.max()), 1e-12)).resize(
            (image_size, image_size), Image.Resampling.BILINEAR))
        ax.imshow(picture)
        ax.imshow(heat, cmap=HEAT_CMAP, alpha=HEAT_ALPHA, vmin=0.0, vmax=1.0)
        _panel_title(ax, piece, f"max {m.max():.2f}")
    title = "where each word looks"
    if score is not None:
        title += f" (matching score {score:.3f})"
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def _panel_title(ax, piece: str, note: str) -> None:
    """Title a panel with ``piece`` over ``note``, the piece cut short (``"supercalifr…"``)
    where it is wider than the panel, so that it never runs into its neighbours' titles."""
    renderer = ax.figure.canvas.get_renderer()
    ax.apply_aspect()   # the panel as drawn: the picture's square, not the grid cell around it
    width = ax.get_window_extent(renderer).width
    piece = " ".join(piece.split()) or piece   # one line: a newline inside a piece would push it up

    def fits(text: str) -> bool:
        return ax.set_title(f"{text}\n{note}", fontsize=9).get_window_extent(renderer).width <= width

    if fits(piece):
        return
    low, high = 0, len(piece) - 1   # the longest start of the piece that fits with an ellipsis
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(piece[:mid] + "\u2026") else (low, mid - 1)
    fits(piece[:low] + "\u2026")
