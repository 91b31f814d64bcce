"""Retrieval galleries: a grid of result thumbnails with rank, title and score (PIL, no matplotlib)."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import InputError
from ._text import fit_text as _fit
from ._text import font as _font
from ._text import wrap_text as _wrap

_BG = (255, 255, 255)
_INK = (30, 35, 43)
_MUTED = (95, 105, 118)
_MATCH = (30, 140, 60)


def _thumb(result: dict, side: int):
    """The result's image fitted in a ``side`` square, or None when it has no readable image."""
    from PIL import Image

    from ..towers.inputs import load_image

    path = result.get("path")
    if not path or not Path(path).is_file():
        return None
    try:
        img = Image.fromarray(load_image(path))
    except Exception:   # a missing or unreadable file is drawn as a text tile instead
        return None
    img.thumbnail((side, side))
    return img


_PAD, _TEXT_H, _HEAD_H = 8, 54, 34


def _check_layout(columns, thumb) -> tuple[int, int]:
    from .._validation import check_int

    return check_int(columns, "columns", low=1), check_int(thumb, "thumb", low=16, high=2048)


def gallery_size(n_results: int, columns: int = 5, thumb: int = 160, title: bool = True) -> tuple[int, int]:
    """Width and height in pixels of the gallery :func:`write_gallery` draws for
    ``n_results`` results (at least 1) in ``columns`` columns (at least 1) of ``thumb``-pixel
    thumbnails (16 to 2048)."""
    from .._validation import check_int

    n_results = check_int(n_results, "n_results", low=1)
    columns, thumb = _check_layout(columns, thumb)
    cols = min(columns, n_results)
    rows = -(-n_results // cols)
    return cols * (thumb + _PAD) + _PAD, (_HEAD_H if title else 0) + rows * (thumb + _TEXT_H + _PAD) + _PAD


def max_gallery_results(columns: int = 5, thumb: int = 160, title: bool = True) -> int | None:
    """The most results a gallery can show within the pixels image readers open (PIL's
    ``Image.MAX_IMAGE_PIXELS``; None when that limit is off)."""
    from PIL import Image

    columns, thumb = _check_layout(columns, thumb)
    limit = Image.MAX_IMAGE_PIXELS
    if not limit:
        return None

    def fits(n: int) -> bool:
        width, height = gallery_size(n, columns, thumb, title)
        return width * height <= limit

    # fewer results than columns make a narrower gallery, so search the count itself (the pixels grow with it)
    if not fits(1):
        return 0
    low, high = 1, 2
    while fits(high):
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def write_gallery(results, path, *, title: str | None = None, columns: int = 5, thumb: int = 160,
                  query_label=None) -> str:
    """Draw retrieval results as a grid of thumbnails with titles and scores; write a PNG.

    Parameters
    ----------
    results : list of dict
        In rank order, each with ``score`` (a finite number, or None for none) and optionally
        ``rank``, ``id``, ``label``, ``text`` and ``path`` (an image file; items without one
        are drawn as their text).
    path : str or path-like
        The PNG file to write (atomically); must end in ``.png``, and not be the image of a
        result.
    title : str, optional
        A heading, e.g. the query.
    columns : int
        Tiles per row.
    thumb : int
        Side of each thumbnail in pixels.
    query_label : optional
        When given, results with this label get their label in green.

    Returns
    -------
    str
        The written path.
    """
    from PIL import Image, ImageDraw

    from collections.abc import Mapping

    from .._io import atomic_write_bytes
    from .._validation import check_float, check_int
    from ._mpl import check_not_an_input, check_png_path

    path = check_png_path(path)
    if isinstance(results, (str, bytes, Mapping)):
        raise InputError(f"results: expected a list of result dicts, got {type(results).__name__}")
    results = list(results)
    if not results:
        raise InputError("results: expected at least one result to draw, got none")
    scores = []
    for i, res in enumerate(results):
        if not isinstance(res, Mapping):
            raise InputError(f"results[{i}]: expected a dict with 'score' (and 'text', 'path', ...), "
                             f"got {type(res).__name__}")
        score = res.get("score")
        scores.append(None if score is None else check_float(score, f"results[{i}]['score']"))
    check_not_an_input(path, [(f"results[{i}]['path']", res.get("path")) for i, res in enumerate(results)])
    columns = check_int(columns, "columns", low=1)
    thumb = check_int(thumb, "thumb", low=16, high=2048)
    most = max_gallery_results(columns, thumb, bool(title))
    if most is not None and len(results) > most:
        raise InputError(f"results: expected at most {most:,} results in {columns} columns of {thumb}-pixel "
                         f"thumbnails (a bigger PNG is over the pixels image readers open), got {len(results):,}")
    cols = min(columns, len(results))
    pad, text_h, head_h = _PAD, _TEXT_H, _HEAD_H if title else 0
    width, height = gallery_size(len(results), columns, thumb, bool(title))
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    f_title, f_text, f_small = _font(16), _font(12), _font(11)
    if title:
        draw.text((pad, 8), _fit(title, f_title, width - 2 * pad), fill=_INK, font=f_title)
    for n, res in enumerate(results):
        x = pad + (n % cols) * (thumb + pad)
        y = head_h + pad + (n // cols) * (thumb + text_h + pad)
        draw.rectangle([x - 1, y - 1, x + thumb, y + thumb], outline=(220, 224, 230))
        img = _thumb(res, thumb)
        if img is not None:
            canvas.paste(img, (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
        else:
            draw.rectangle([x, y, x + thumb - 1, y + thumb - 1], fill=(240, 242, 245))
            lines = _wrap(res.get("text") or f"item {res.get('id', n)}", f_text, thumb - 12, thumb // 16)
            for i, line in enumerate(lines):
                draw.text((x + 6, y + 6 + 15 * i), line, fill=_INK, font=f_text)
        rank = res.get("rank", n + 1)
        caption = _fit(f"{rank}. {res.get('text') or res.get('id', '')}", f_text, thumb)
        draw.text((x, y + thumb + 4), caption, fill=_INK, font=f_text)
        score = scores[n]
        label = res.get("label")
        draw.text((x, y + thumb + 21), "" if score is None else f"score {score:.3f}", fill=_MUTED, font=f_small)
        if label is not None:
            match = query_label is not None and str(label) == str(query_label)
            draw.text((x, y + thumb + 36), _fit(label, f_small, thumb), fill=_MATCH if match else _MUTED,
                      font=f_small)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return str(path)
