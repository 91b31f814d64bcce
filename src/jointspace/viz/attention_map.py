"""Alignment maps: for a text and an image, each word's attention over the image as a heat map."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._mpl import pyplot, save_figure


def write_attention_map(image, pieces, maps, path, *, score: float | None = None, image_size: int = 224,
                        fit: str = "pad", columns: int = 6) -> str:
    """Write a PNG with the image as the tower saw it and one panel per word piece.

    Parameters
    ----------
    image : path, PIL image or array
        The image (shown resized and padded as the image tower reads it, so cells line up).
    pieces : sequence of T str
        The word pieces.
    maps : array, shape (T, H, W)
        Each word's attention over the H x W regions (e.g. :meth:`CrossAttentionMatcher.explain`).
    path : path
        The PNG to write (atomically).
    score : float, optional
        The matching score, shown in the title.

    Returns
    -------
    str
        ``path``.
    """
    from PIL import Image

    from ..towers.efficientnet import resize_rgb
    from ..towers.inputs import load_image

    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise InputError(f"maps: expected (T, H, W) attention maps with T >= 1, got shape {maps.shape}")
    if len(pieces) != maps.shape[0]:
        raise InputError(f"pieces: expected one word piece per map ({maps.shape[0]}), got {len(pieces)}")
    picture = resize_rgb(load_image(image, "image"), image_size, fit)
    plt = pyplot()
    panels = len(pieces) + 1
    cols = min(columns, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(picture)
    axes[0, 0].set_title("image", fontsize=9)
    for j, (piece, m) in enumerate(zip(pieces, maps), start=1):
        ax = axes.ravel()[j]
        heat = np.asarray(Image.fromarray(m / max(float(m.max()), 1e-12)).resize(
            (image_size, image_size), Image.Resampling.BILINEAR))
        ax.imshow(picture)
        ax.imshow(heat, cmap="inferno", alpha=0.55, vmin=0.0, vmax=1.0)
        ax.set_title(f"{piece}  (max {m.max():.2f})", fontsize=9)
    title = "where each word looks"
    if score is not None:
        title += f" (matching score {score:.3f})"
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
