"""SVG files: their Dublin Core metadata, and rendering to a square RGB PNG on white.

Metadata is read with the standard library's expat parser with entity declarations
restricted (no external entities, no entities that reference other entities, short
values), which rules out entity-expansion attacks while still reading the few drawings
that declare namespace shortcuts as entities.

A drawing is rendered from its own bytes only: references to other files or hosts
(``<image href="/home/me/photo.jpg">``, ``<feImage href="../x.png">``) are removed first
(:func:`without_external_references`), since the renderer would otherwise read any local
file a drawing names, and show it.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import MissingDependencyError

DC = "{http://purl.org/dc/elements/1.1/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
MAX_ENTITY_CHARS = 4096
RENDER_VERSION = 2  # bump when the rendering recipe changes, so cached PNGs are redone
#: 2: references to other files or hosts are removed before rendering


class UnsafeXMLError(ValueError):
    """The file declares an entity this reader refuses to expand."""


def _entity_guard(name, is_parameter, value, base, system_id, public_id, notation):
    if is_parameter or system_id or public_id or notation:
        raise UnsafeXMLError(f"external or parameter entity {name!r} refused")
    if value is None or "&" in value or "%" in value or len(value) > MAX_ENTITY_CHARS:
        raise UnsafeXMLError(f"entity {name!r} refused (nested or too long)")


def parse_xml(data: bytes) -> ET.Element:
    """Parse XML bytes into an element tree, refusing dangerous entity declarations."""
    if b"<!ENTITY" in data:
        # only an internal DTD subset can declare entities (expat never fetches external
        # ones): vet those declarations with a bare expat pass before building the tree
        from xml.parsers import expat

        guard = expat.ParserCreate()
        guard.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        guard.EntityDeclHandler = _entity_guard
        try:
            guard.Parse(data, True)
        except expat.ExpatError as exc:
            # the same error the tree parser raises on malformed XML, for one except clause
            err = ET.ParseError(str(exc))
            err.code, err.position = exc.code, (exc.lineno, exc.offset)
            raise err from None
    parser = ET.XMLParser()
    parser.feed(data)
    return parser.close()


def _is_local_reference(value: str) -> bool:
    """A reference inside the document (``#id``) or data carried in it (a ``data:`` URL)."""
    value = value.strip()
    return value.startswith("#") or value[:5].lower() == "data:"


def without_external_references(data: bytes) -> bytes:
    """SVG bytes with every ``href`` that points outside the document removed.

    Parameters
    ----------
    data : bytes
        An SVG document.

    Returns
    -------
    bytes
        ``data`` itself when every ``href`` / ``xlink:href`` is a fragment (``#id``) or a
        ``data:`` URL; otherwise the document without the other ones (a file path, a
        ``file:`` or ``http:`` URL), re-serialised as UTF-8, so that what they named is
        drawn as nothing.

    Raises
    ------
    xml.etree.ElementTree.ParseError, UnsafeXMLError
        Not well-formed XML or a refused entity (see :func:`parse_xml`).
    """
    root = parse_xml(data)
    dropped = False
    for el in root.iter():
        # href in no namespace (SVG 2) or in the XLink one (SVG 1.1), as the renderer reads either
        for name in [k for k in el.attrib if k == "href" or k.endswith("}href")]:
            if not _is_local_reference(el.attrib[name]):
                del el.attrib[name]
                dropped = True
    return ET.tostring(root, encoding="utf-8") if dropped else data


def _text(el) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def svg_metadata(data: bytes) -> dict:
    """Title, keywords and description of an SVG document.

    Reads the RDF / Dublin Core block (``cc:Work`` with ``dc:title``, ``dc:subject`` bag,
    ``dc:description``); falls back to the SVG ``<title>`` element for the title.

    Returns
    -------
    dict
        ``title`` (str, may be empty), ``keywords`` (list of str, de-duplicated, in
        order), ``description`` (str, may be empty), ``width`` / ``height`` / ``viewbox``
        (the root's raw attributes, or "").

    Raises
    ------
    xml.etree.ElementTree.ParseError, UnsafeXMLError
        Not well-formed XML or a refused entity.
    ValueError
        The root element is not ``<svg>``.
    """
    root = parse_xml(data)
    if not root.tag.endswith("svg"):
        raise ValueError(f"root element is <{root.tag}>, not <svg>")
    work = next((el for el in root.iter() if isinstance(el.tag, str) and el.tag.endswith("}Work")), None)
    title = description = ""
    keywords: list[str] = []
    if work is not None:
        title = _text(work.find(DC + "title"))
        description = _text(work.find(DC + "description"))
        subject = work.find(DC + "subject")
        if subject is not None:
            items = [_text(li) for li in subject.iter(RDF + "li")] or [_text(subject)]
            seen = set()
            for kw in items:
                for part in (kw.split(",") if "," in kw else [kw]):
                    part = part.strip()
                    if part and part.lower() not in seen:
                        seen.add(part.lower())
                        keywords.append(part)
    if not title:
        title = _text(root.find("{http://www.w3.org/2000/svg}title"))
    return {"title": title, "keywords": keywords, "description": description,
            "width": root.get("width", ""), "height": root.get("height", ""), "viewbox": root.get("viewBox", "")}


_NUM = re.compile(r"^\s*([0-9.eE+-]+)\s*(px|pt|pc|mm|cm|in)?\s*$")
_UNIT = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}


def aspect_ratio(width: str, height: str, viewbox: str) -> float | None:
    """Width / height of the drawing from its root attributes (a positive finite number), or
    None when unknown or unusable."""
    try:
        mw, mh = _NUM.match(width or ""), _NUM.match(height or "")
        if mw and mh:
            w, h = float(mw.group(1)) * _UNIT[mw.group(2)], float(mh.group(1)) * _UNIT[mh.group(2)]
            if _usable(w, h):
                return w / h
        parts = [float(v) for v in re.split(r"[\s,]+", (viewbox or "").strip()) if v]
        if len(parts) == 4 and _usable(parts[2], parts[3]):
            return parts[2] / parts[3]
    except ValueError:
        pass
    return None


def _usable(w: float, h: float) -> bool:
    """Both sizes positive and finite, and so is their ratio ("1e999" reads as infinity)."""
    return 0 < w < math.inf and 0 < h < math.inf and 0 < w / h < math.inf


def renderer_name() -> str:
    """``"resvg-py <version>"``, ``"rsvg-convert"``, or raise when neither is installed."""
    try:
        import importlib.metadata as md

        import resvg_py  # noqa: F401

        return f"resvg-py {md.version('resvg_py')}"
    except ImportError:
        pass
    except Exception:
        return "resvg-py"
    if shutil.which("rsvg-convert"):
        return "rsvg-convert"
    raise MissingDependencyError("rendering SVG needs resvg-py (pip install resvg-py) or rsvg-convert "
                                 "(apt-get install -y librsvg2-bin)")


def _raster(data: bytes, width: int | None, height: int | None, timeout: float) -> bytes:
    try:
        data = without_external_references(data)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    try:
        import resvg_py
    except ImportError:
        resvg_py = None
    if resvg_py is not None:
        # dpi=96 so that pt / mm / in sizes resolve (resvg's default dpi of 0 rejects them)
        return resvg_py.svg_to_bytes(svg_string=data.decode("utf-8", errors="replace"), width=width,
                                     height=height, background="#ffffff", dpi=96)
    cmd = ["rsvg-convert", "-f", "png", "-b", "white"]
    if width and height:   # fit inside the box, as resvg does when given both
        cmd += ["-w", str(width), "-h", str(height), "--keep-aspect-ratio"]
    else:
        cmd += ["-w", str(width)] if width else ["-h", str(height)]
    proc = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise ValueError(proc.stderr.decode(errors="replace").strip() or f"rsvg-convert exit {proc.returncode}")
    return proc.stdout


def render_svg(data: bytes, size: int = 224, aspect: float | None = None, timeout: float = 60.0):
    """Render SVG bytes to a ``size`` x ``size`` RGB PIL image, centred on white.

    The drawing is scaled to fit the square (aspect ratio kept).  References to other files
    or hosts are not followed (:func:`without_external_references`).

    Raises
    ------
    ValueError
        Not well-formed XML or a refused entity, the renderer rejects the file, or the
        result is blank (nothing drawn).
    """
    from PIL import Image, ImageChops

    if aspect is None:
        # unknown aspect: both sides given, the renderer fits the drawing inside the square (a
        # width alone made a 1:300 drawing 224 x 67,200 pixels before it could be refitted)
        png = _raster(data, size, size, timeout)
    elif aspect < 1:
        png = _raster(data, None, size, timeout)
    else:
        png = _raster(data, size, None, timeout)
    img = Image.open(io.BytesIO(png))
    img.load()
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("RGB")
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    if ImageChops.difference(canvas, Image.new("RGB", canvas.size, (255, 255, 255))).getbbox() is None:
        raise ValueError("rendering is blank (nothing drawn)")
    return canvas


def render_job(svg_path: str, out_path: str, size: int, aspect: float | None, max_bytes: int,
               timeout: float) -> tuple[str, str]:
    """Render one file to ``out_path`` (atomically); never raises.

    Returns ``("ok", "")`` or ``(reason, message)`` with reason ``too_large``,
    ``render_error`` or ``blank``.
    """
    from .._io import atomic_write_bytes

    try:
        p = Path(svg_path)
        if p.stat().st_size > max_bytes:
            return "too_large", f"{p.stat().st_size} bytes > max_bytes={max_bytes}"
        img = render_svg(p.read_bytes(), size, aspect, timeout)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False)
        atomic_write_bytes(out_path, buf.getvalue())
        return "ok", ""
    except ValueError as exc:
        reason = "blank" if "blank" in str(exc) else "render_error"
        return reason, str(exc)[:200]
    except Exception as exc:  # a renderer may raise anything on hostile input
        return "render_error", f"{type(exc).__name__}: {exc}"[:200]
