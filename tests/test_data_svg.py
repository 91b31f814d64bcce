"""SVG drawings are rendered from their own bytes: no file or host they name is read."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from jointspace.data import svg as svgmod
from jointspace.errors import InputError
from jointspace.towers.inputs import load_image

pytest.importorskip("resvg_py")

RED, WHITE = (255, 0, 0), (255, 255, 255)


def _drawing(href, element="image"):
    """A 100 x 100 drawing: a black square in the top-left corner, and ``href`` over the rest."""
    if element == "feImage":
        shown = (f'<filter id="f"><feImage href="{href}" width="100" height="100"/></filter>'
                 '<rect x="20" y="20" width="80" height="80" filter="url(#f)"/>')
    else:
        shown = f'<image xlink:href="{href}" x="20" y="20" width="80" height="80"/>'
    return ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="100" height="100"><rect width="10" height="10" fill="black"/>{shown}</svg>').encode()


@pytest.fixture
def secret(tmp_path):
    """A red picture outside the drawings' folder, which no drawing may show."""
    path = tmp_path / "private" / "secret.png"
    path.parent.mkdir()
    Image.new("RGB", (8, 8), RED).save(path)
    (tmp_path / "drawings").mkdir()
    return path


def _hrefs(secret):
    return {"absolute path": (str(secret), "image"), "file URL": (secret.as_uri(), "image"),
            "relative to the working folder": ("private/secret.png", "image"),
            "filter image": (str(secret), "feImage")}


@pytest.mark.parametrize("case", ["absolute path", "file URL", "relative to the working folder", "filter image"])
def test_a_drawing_does_not_show_a_local_file_it_names(secret, monkeypatch, case):
    monkeypatch.chdir(secret.parent.parent)   # where a relative name would be looked up
    href, element = _hrefs(secret)[case]
    svg = secret.parent.parent / "drawings" / "d.svg"
    svg.write_bytes(_drawing(href, element))
    # the tower's reader (longest side 256) and the dataset's renderer (224) draw the same:
    # the black square, and white where the named file would be
    for img, side in ((load_image(str(svg)), 256), (np.asarray(svgmod.render_svg(svg.read_bytes(), 224)), 224)):
        assert img.shape == (side, side, 3)
        corner = round(side * 0.05)
        assert tuple(img[corner, corner]) == (0, 0, 0)
        assert tuple(img[side // 2, side // 2]) == WHITE and tuple(img[-2, -2]) == WHITE


def test_a_picture_carried_in_the_drawing_is_still_shown(secret):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), RED).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    data = _drawing(url).replace(b"</svg>", b'<use href="#sq" x="50"/></svg>').replace(
        b'fill="black"/>', b'fill="black" id="sq"/>', 1)
    assert svgmod.without_external_references(data) is data   # nothing to remove: the bytes as given
    svg = secret.parent.parent / "drawings" / "d.svg"
    svg.write_bytes(data)
    img = load_image(str(svg))
    assert tuple(img[128, 128]) == RED and tuple(img[12, 12]) == (0, 0, 0)
    assert tuple(img[12, 12 + 128]) == (0, 0, 0)   # the <use> of #sq, 50 units (128 pixels) to the right


def test_a_reference_reached_through_an_entity_is_removed_too(secret):
    data = (f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY p "{secret}">]>'.encode()
            + _drawing("&p;"))
    cleaned = svgmod.without_external_references(data)
    assert str(secret).encode() not in cleaned
    svg = secret.parent.parent / "drawings" / "d.svg"
    svg.write_bytes(data)
    assert tuple(load_image(str(svg))[128, 128]) == WHITE


def test_a_drawing_that_is_not_xml_is_still_refused_with_its_name(tmp_path):
    bad = tmp_path / "bad.svg"
    bad.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'><rect width=")
    with pytest.raises(InputError, match=r"bad\.svg.*cannot render the SVG"):
        load_image(str(bad))
    with pytest.raises(ValueError, match="not well-formed XML"):
        svgmod.render_svg(bad.read_bytes(), 32)
