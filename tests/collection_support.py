"""A small real collection for the own-data tests: OpenClipart drawings rendered to a folder.

Drawings of several categories are rendered (mixed sizes, modes and formats), each with a
sidecar caption (its title), in one sub-folder per category; one drawing is copied into a
second category, as OpenClipart itself does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CATEGORIES = ("animals", "food", "buildings", "transportation", "plants", "tools")
PER_CATEGORY = 12
ROOT = Path("/usr/share/openclipart/svg")


def build_collection(folder: Path, per_category: int = PER_CATEGORY) -> dict:
    """Render ``per_category`` drawings of each category under ``folder``; return a summary."""
    from jointspace.data.keys import normalise_title
    from jointspace.data.svg import render_svg, svg_metadata

    written, titles = [], {}
    for c, category in enumerate(CATEGORIES):
        out = folder / category
        out.mkdir(parents=True, exist_ok=True)
        n = 0
        for svg in sorted((ROOT / category).rglob("*.svg")):
            if n == per_category:
                break
            data = svg.read_bytes()
            try:
                title = " ".join((svg_metadata(data).get("title") or "").split())
                img = render_svg(data, size=(64, 96, 80)[n % 3], timeout=20)
            except (ValueError, OSError):
                continue
            if len(normalise_title(title)) < 3 or normalise_title(title) in titles:
                continue
            titles[normalise_title(title)] = category
            mode, ext = [("RGB", ".png"), ("L", ".png"), ("RGB", ".jpg"), ("P", ".png")][n % 4]
            path = out / f"{svg.stem}{ext}"
            img.convert(mode).save(path)
            path.with_suffix(".txt").write_text(title + "\n", encoding="utf-8")
            written.append(path)
            n += 1
    dup = written[0]
    copy = folder / CATEGORIES[-1] / ("copy-of-" + dup.name)
    shutil.copyfile(dup, copy)
    shutil.copyfile(dup.with_suffix(".txt"), copy.with_suffix(".txt"))
    return {"files": written, "duplicate": (dup, copy), "titles": titles}
