"""Alignment maps: each word's attention over an image, drawn as heat maps."""

import numpy as np
import pytest
from PIL import Image

from jointspace.errors import InputError
from jointspace.viz.attention_map import write_attention_map


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "square.png"
    Image.fromarray(np.full((30, 30, 3), 200, np.uint8)).save(path)
    return path


def test_a_map_per_word_is_drawn(picture, tmp_path):
    maps = np.full((2, 7, 7), 1 / 49, np.float32)
    out = write_attention_map(picture, np.array(["a", "square"]), maps, tmp_path / "map.png", score=0.25)
    with Image.open(out) as im:
        assert im.format == "PNG"


@pytest.mark.parametrize("change, needle", [
    # each of these raised TypeError, ValueError or ZeroDivisionError from numpy, PIL or the layout
    ({"pieces": None}, "pieces: expected a list of word pieces (str), got NoneType"),
    ({"pieces": "ab"}, "pieces: expected a list of word pieces (str), got str"),
    ({"maps": [["x"]]}, "maps: expected (T, H, W) attention maps of numbers, got list (could not convert string"),
    ({"maps": np.zeros((2, 0, 7))}, "maps: expected (T, H, W) attention maps with T, H, W >= 1, got shape (2, 0, 7)"),
    ({"image_size": 0}, "image_size: expected an integer >= 1, got 0"),
    ({"columns": 0}, "columns: expected an integer >= 1, got 0"),
    ({"score": "high"}, "score: expected a finite number, got 'high'"),
    # these were drawn without a word: an unknown fit cropped, NaN and negative weights drew nothing
    ({"fit": "stretch"}, "fit: expected one of pad, squash, crop; got 'stretch'"),
    ({"maps": np.full((2, 7, 7), np.nan)}, "maps: expected attention weights (finite, >= 0), got NaN or infinity"),
    ({"maps": np.full((2, 7, 7), -0.5)}, "maps: expected attention weights (finite, >= 0), got a minimum of -0.5"),
])
def test_what_cannot_be_drawn_is_refused_by_name(picture, tmp_path, change, needle):
    args = {"pieces": ["a", "square"], "maps": np.full((2, 7, 7), 1 / 49, np.float32)}
    options = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    with pytest.raises(InputError) as err:
        write_attention_map(picture, args["pieces"], args["maps"], tmp_path / "map.png", **options)
    assert needle in str(err.value)
    assert not (tmp_path / "map.png").exists()
