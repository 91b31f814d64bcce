"""A grid of images, one row per kind: real images, reconstructions, cross-modal generations.

Each row has a label at its left (``"real image"``, ``"reconstruction"``, ``"text -> image"``)
and optional captions under its images (the text an image was generated from, or the text
generated from an image).  Rows may hold different numbers of images; shorter rows end in
blank cells.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError
from ._mpl import MEASURE_SCALE, figure_writer, measuring_font
from ._text import wrap_text as _wrap_to_width

MAX_COLUMNS = 64
ROW_KEYS = ("label", "images", "captions")
#: float images may stray this far outside [0, 1] (rounding), and are then clipped
TOLERANCE = 1e-6
CAPTION_LINES = 3
CAPTION_POINTS = 6.5


def _check_images(images, name: str) -> np.ndarray:
    """``images`` as float64 (n, H, W) or (n, H, W, 3) in [0, 1], or InputError naming ``name``."""
    try:
        arr = np.asarray(images)
    except Exception as exc:   # ragged nested lists and the like
        raise InputError(f"{name}: expected an array (n, H, W) or (n, H, W, 3), "
                         f"got {type(images).__name__} ({exc})") from None
    if arr.dtype == object or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name}: expected float values in [0, 1] or uint8, got dtype {arr.dtype}")
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3):
        raise InputError(f"{name}: expected an array of shape (n, H, W) or (n, H, W, 3), got shape {arr.shape}")
    if min(arr.shape[:3]) < 1:
        raise InputError(f"{name}: expected at least one image of at least 1x1 pixels, got shape {arr.shape}")
    if arr.shape[0] > MAX_COLUMNS:
        raise InputError(f"{name}: expected at most {MAX_COLUMNS} images per row, got {arr.shape[0]}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{name}: expected float values in [0, 1] or uint8, got dtype {arr.dtype}; "
                         f"convert 0..255 integers with .astype(np.uint8)")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(f"{name}: expected finite values, got NaN or Inf (first at image {first[0]}, "
                         f"pixel {first[1:]})")
    low, high = float(arr.min()), float(arr.max())
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        raise InputError(f"{name}: expected float values in [0, 1], got values in [{low:.6g}, {high:.6g}]; "
                         f"rescale them (e.g. with a sigmoid or (x - min) / (max - min)) before drawing")
    return np.clip(arr, 0.0, 1.0)


def _check_captions(captions, n: int, name: str) -> list[str] | None:
    if captions is None:
        return None
    if isinstance(captions, (str, bytes)) or not isinstance(captions, (Sequence, np.ndarray)):
        raise InputError(f"{name}: expected a list of {n} strings (one per image), got {type(captions).__name__}")
    captions = list(captions)
    if len(captions) != n:
        raise InputError(f"{name}: expected {n} captions (one per image), got {len(captions)}")
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise InputError(f"{name}[{i}]: expected a string, got {type(c).__name__}")
    return captions


def check_rows(rows) -> list[dict]:
    """Validate the rows of :func:`write_generation_grid`.

    Parameters
    ----------
    rows : list of dict
        See :func:`write_generation_grid`.

    Returns
    -------
    list of dict
        ``{"label": str, "images": float64 array (n, H, W) or (n, H, W, 3) in [0, 1],
        "captions": list of n str or None}`` per row.

    Raises
    ------
    InputError
        Naming the row and its key, e.g. ``rows[1].images``.
    """
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise InputError(f"rows: expected a list of row dicts with 'label' and 'images', got {type(rows).__name__}")
    if not rows:
        raise InputError("rows: expected at least one row, got an empty list")
    out = []
    for r, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InputError(f"rows[{r}]: expected a dict with 'label', 'images' and optionally 'captions', "
                             f"got {type(row).__name__}")
        unknown = [k for k in row if k not in ROW_KEYS]
        if unknown:
            raise InputError(f"rows[{r}]: unknown key {unknown[0]!r}; expected {', '.join(ROW_KEYS)}")
        label = row.get("label")
        if not isinstance(label, str):
            raise InputError(f"rows[{r}].label: expected a string, got {type(label).__name__}")
        if "images" not in row:
            raise InputError(f"rows[{r}].images: expected an array (n, H, W) or (n, H, W, 3), got none")
        images = _check_images(row["images"], f"rows[{r}].images")
        captions = _check_captions(row.get("captions"), len(images), f"rows[{r}].captions")
        out.append({"label": label, "images": images, "captions": captions})
    return out


def _check_cmap(cmap):
    import matplotlib

    if isinstance(cmap, matplotlib.colors.Colormap):
        return cmap
    if not isinstance(cmap, str) or cmap not in matplotlib.colormaps:
        raise InputError(f"cmap: expected a matplotlib colormap name such as 'gray' or 'viridis', got {cmap!r}")
    return matplotlib.colormaps[cmap]


def _fit_caption(text: str, font, width: float, lines: int) -> str:
    """``text`` wrapped to ``width`` (points x :data:`MEASURE_SCALE`) in ``font``, at most ``lines``
    lines, the last one cut with an ellipsis when the text goes on."""
    out = _wrap_to_width(text, font, width, lines + 1) or [""]
    if len(out) > lines:
        out = out[:lines]
        last = out[-1]
        while last and font.getlength(last.rstrip() + "…") > width:
            last = last[:-1]
        out[-1] = last.rstrip() + "…"
    return "\n".join(out)


def _wrap(text: str, width: int, lines: int) -> str:
    out = textwrap.wrap(text, width) or [""]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: width - 1].rstrip() + "…"
    return "\n".join(out)


@figure_writer
def write_generation_grid(rows, path, *, title: str | None = None, cmap="gray") -> str:
    """Draw rows of images (real, reconstructed, generated from another modality); write a PNG.

    Parameters
    ----------
    rows : list of dict
        Top to bottom, each with
        ``label`` (str, drawn at the row's left),
        ``images`` (array (n, H, W) grey or (n, H, W, 3) RGB; float in [0, 1] or uint8;
        at most 64 per row; rows may differ in n and in image size) and optionally
        ``captions`` (list of n str, drawn under the images, cut to three lines).
        Floats outside [0, 1] by more than 1e-6 are refused, not clipped.
    path : str or path-like
        The PNG file to write (atomically); must end in ``.png``.
    title : str, optional
        A heading above the grid.
    cmap : str or matplotlib Colormap
        Colormap of grey images (RGB images are drawn as they are); 0 maps to its low end
        and 1 to its high end.

    Returns
    -------
    str
        The written path.

    Raises
    ------
    InputError
        A bad argument, named in the message (``rows[1].images``, ``path``, ``cmap``, ...);
        nothing is written then.
    """
    from ._mpl import check_png_path, pyplot, save_figure

    checked = check_rows(rows)
    path = check_png_path(path)
    if title is not None and not isinstance(title, str):
        raise InputError(f"title: expected a string or None, got {type(title).__name__}")
    plt = pyplot()
    colormap = _check_cmap(cmap)

    # fixed sizes in inches, so every cell is the same size whatever the row's captions
    n_cols = max(len(row["images"]) for row in checked)
    cell = 1.1 if n_cols <= 16 else 0.75
    gap, line, left = 0.08, 0.12, 1.5
    # fitted by the width the font draws them in, not by a count of characters: "WWWW" is
    # three times as wide as "iiii", and a caption wider than its cell ran under the next ones
    font = measuring_font(CAPTION_POINTS)
    captions = [[_fit_caption(c, font, cell * 72 * MEASURE_SCALE, CAPTION_LINES) for c in row["captions"]]
                if row["captions"] else [] for row in checked]
    below = [0.06 + line * max(c.count("\n") + 1 for c in caps) if any(caps) else 0.0 for caps in captions]
    head = 0.45 if title else 0.05
    width = left + n_cols * (cell + gap)
    height = head + sum(cell + b + gap for b in below)
    fig = plt.figure(figsize=(width, height))
    top = height - head
    for row, caps, room in zip(checked, captions, below):
        y = top - cell
        for c, img in enumerate(row["images"]):
            x = left + c * (cell + gap)
            ax = fig.add_axes((x / width, y / height, cell / width, cell / height))
            if img.ndim == 2:
                ax.imshow(img, cmap=colormap, vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("#c8ccd2")
            if caps and caps[c]:
                fig.text((x + cell / 2) / width, (y - 0.03) / height, caps[c], ha="center", va="top",
                         fontsize=CAPTION_POINTS, linespacing=1.1)
        fig.text((left - 0.1) / width, (y + cell / 2) / height, _wrap(row["label"], 18, 3), ha="right",
                 va="center", fontsize=9)
        top = y - room - gap
    if title:
        fig.text(0.5, (height - 0.1) / height, _wrap(title, max(30, int(width * 11)), 2), ha="center", va="top",
                 fontsize=11)
    return save_figure(fig, path)


__all__ = ["write_generation_grid", "check_rows", "MAX_COLUMNS"]
