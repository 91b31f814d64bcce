"""Transparent colours of grayscale and RGB pictures (a PNG tRNS key): composited on white, as an
alpha channel or a palette's transparent index is, and keyed apart in the embedding cache."""

import hashlib

import numpy as np
from PIL import Image

from jointspace.towers.cache import item_digest
from jointspace.towers.inputs import load_image


def _on_white(path):
    """The picture as PIL's own RGBA conversion reads it, composited on white by hand."""
    rgba = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float64)
    a = rgba[..., 3:] / 255.0
    return np.rint(rgba[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)


def _pictures(tmp_path):
    gray = np.zeros((6, 6), np.uint8)
    gray[2:4, 2:4] = 200
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[1:5, 1:5] = (10, 200, 30)
    Image.fromarray(gray).save(tmp_path / "gray.png", transparency=0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(0, 0, 0))
    return {"gray": (str(tmp_path / "gray.png"), gray[..., None] > 0), "rgb": (str(tmp_path / "rgb.png"),
                                                                           rgb.any(axis=2, keepdims=True))}


def test_a_transparent_colour_is_white(tmp_path):
    for name, (path, inside) in _pictures(tmp_path).items():
        assert "transparency" in Image.open(path).info
        got = load_image(path)
        assert np.array_equal(got, _on_white(path)), name
        stored = np.asarray(Image.open(path).convert("RGB"))
        assert np.array_equal(got, np.where(inside, stored, 255)), name   # only the key colour turns white
        with Image.open(path) as img:   # a PIL image reads the same as its file
            assert np.array_equal(load_image(img), got)


def test_a_picture_with_a_transparent_colour_is_keyed_apart_from_its_bytes(tmp_path):
    for path, _ in _pictures(tmp_path).values():
        with open(path, "rb") as fh:
            as_stored = hashlib.blake2b(b"file\0" + fh.read(), digest_size=16).digest()
        assert item_digest(path, "audio") == as_stored   # the bytes' digest, as every file has
        assert item_digest(path, "image") != as_stored   # not the key of vectors of the black picture
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(plain)
    with open(plain, "rb") as fh:
        assert item_digest(str(plain), "image") == hashlib.blake2b(b"file\0" + fh.read(), digest_size=16).digest()
