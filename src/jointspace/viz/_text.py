"""Text in pictures drawn with PIL: a font, and a text fitted to a width in pixels, on one
line or wrapped (the galleries, the generation grid and the space map's legend)."""

from __future__ import annotations

import textwrap


def font(size: int):
    """DejaVu Sans at ``size`` pixels, or PIL's default font where it is not installed."""
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def fit_text(text: str, font, width: float) -> str:
    """``text`` on one line (runs of spaces and line breaks made one space), cut short with an
    ellipsis to fit ``width`` pixels in ``font``: a word longer than the width is cut too, not
    left out whole (``textwrap.shorten`` drops it, so a file name or a text in a script written
    without spaces showed as "…")."""
    text = " ".join(str(text).split())
    if font.getlength(text) <= width:
        return text
    low, high = 0, len(text) - 1   # the longest start of the text that fits with the ellipsis
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if font.getlength(text[:mid].rstrip() + "…") <= width else (low, mid - 1)
    return text[:low].rstrip() + "…"


def wrap_text(text: str, font, width: float, max_lines: int) -> list[str]:
    """The first ``max_lines`` lines of ``text`` wrapped to ``width`` pixels in ``font`` (a word
    wider than that is broken)."""
    chars = max(1, int(width // max(font.getlength("n"), 1)))
    text = " ".join(str(text)[:2 * chars * max_lines].split())   # enough for the lines shown
    while True:
        lines = textwrap.wrap(text, chars)[:max_lines]
        if chars == 1 or all(font.getlength(line) <= width for line in lines):
            return lines
        chars -= 1
