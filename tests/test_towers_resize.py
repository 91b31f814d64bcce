"""How the image towers make a picture square (``resize_rgb``), against PIL run by hand."""

import numpy as np
import pytest
from PIL import Image

from jointspace.towers.efficientnet import resize_rgb


def _resized_then_cropped(arr, size):
    """Centre crop as written out by hand: the short side resized to ``size`` (bicubic), then
    the middle ``size`` x ``size`` square cut out of that whole resized picture."""
    h, w = arr.shape[:2]
    s = size / min(h, w)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    big = Image.fromarray(arr).resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(big.crop((left, top, left + size, top + size)))


@pytest.mark.parametrize("shape", [(400, 600, 3), (600, 400, 3), (37, 500, 3), (100, 101, 3), (2, 900, 3)])
def test_crop_is_the_centre_of_the_resized_picture(shape):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    got = resize_rgb(arr, 64, "crop")
    want = _resized_then_cropped(arr, 64)
    assert got.shape == (64, 64, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.002   # the same pixels, bar float rounding


def test_crop_of_a_thin_strip_never_makes_the_whole_strip_large(monkeypatch):
    # a 1 x 20,000 strip resized whole would be 224 x 4,480,000 pixels (3 GB) before the crop
    sizes = []
    resize = Image.Image.resize

    def spy(self, size, *args, **kwargs):
        sizes.append(tuple(size))
        return resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    strip = np.random.default_rng(1).integers(0, 256, (1, 20_000, 3), dtype=np.uint8)
    strip[0, 9_990:10_010] = (200, 10, 50)   # the centre square shows about one pixel of the strip
    out = resize_rgb(strip, 224, "crop")
    assert sizes and max(w * h for w, h in sizes) <= 224 * 224
    assert out.shape == (224, 224, 3) and (out == (200, 10, 50)).all()
