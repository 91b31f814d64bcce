"""write_generation_grid: a PNG of labelled image rows whose pixels show the rows' content."""

import numpy as np
import pytest
from PIL import Image

from jointspace.errors import InputError
from jointspace.viz.generation_grid import write_generation_grid


def _pixels(path) -> np.ndarray:
    img = Image.open(path)
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB"), dtype=np.int64)


def _dark_fraction(px: np.ndarray) -> float:
    return float((px.max(axis=-1) < 30).mean())


def _dark_lines(px: np.ndarray) -> np.ndarray:
    """Indices of the pixel lines that are mostly dark."""
    return np.flatnonzero((px.max(axis=-1) < 30).mean(axis=1) > 0.3)


def test_white_row_above_black_row(tmp_path):
    rows = [{"label": "white", "images": np.ones((3, 28, 28))},
            {"label": "black", "images": np.zeros((3, 28, 28), dtype=np.uint8)}]
    out = write_generation_grid(rows, tmp_path / "g.png")
    assert out == str(tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    px = _pixels(out)
    half = px.shape[0] // 2
    dark = _dark_lines(px)
    assert len(dark) > 0.3 * px.shape[0] and dark.min() > half
    assert _dark_fraction(px[:half]) < 0.05 and (px[:half].min(axis=-1) > 245).mean() > 0.8
    # swapping the rows moves the dark band to the top
    px = _pixels(write_generation_grid(rows[::-1], tmp_path / "h.png", title="two rows"))
    dark = _dark_lines(px)
    assert len(dark) > 0.3 * px.shape[0] and dark.max() < px.shape[0] * 0.6
    assert (px[-px.shape[0] // 3:].min(axis=-1) > 245).mean() > 0.8


def test_colours_grey_levels_and_cmap(tmp_path):
    red = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    red[..., 0] = 255
    grey = np.full((2, 16, 16), 0.5)
    px = _pixels(write_generation_grid([{"label": "red", "images": red}, {"label": "grey", "images": grey}],
                                       tmp_path / "c.png"))
    is_red = (px[..., 0] > 230) & (px[..., 1] < 25) & (px[..., 2] < 25)
    is_grey = (np.abs(px - 128).max(axis=-1) <= 2)
    assert is_red.mean() > 0.1 and is_grey.mean() > 0.1
    # viridis maps 0 to its dark purple end (68, 1, 84)
    px = _pixels(write_generation_grid([{"label": "zero", "images": np.zeros((1, 16, 16))}], tmp_path / "v.png",
                                       cmap="viridis"))
    assert (np.abs(px - [68, 1, 84]).max(axis=-1) <= 3).mean() > 0.3


def test_captions_ragged_rows_and_tolerance(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"label": "real image", "images": rng.random((4, 28, 28))},
            {"label": "text -> image", "images": rng.random((2, 28, 28)),
             "captions": ["a photo of a trouser", "an ankle boot on a white background, " * 5]},
            {"label": "image -> text", "images": np.stack([rng.random((3, 20, 24))] * 3, -1),
             "captions": ["a bag", "", "a coat"]},
            {"label": "almost", "images": np.array([[[1 + 5e-7, -5e-7]]])}]
    out = write_generation_grid(rows, tmp_path / "sub" / "g.PNG")
    px = _pixels(out)
    assert px.shape[0] > 200 and px.shape[1] > 300
    write_generation_grid([{"label": "wide", "images": np.zeros((64, 4, 4))}], tmp_path / "w.png")


@pytest.mark.parametrize("rows, path, options, message", [
    ([], "g.png", {}, r"^rows: expected at least one row, got an empty list"),
    ("real", "g.png", {}, r"^rows: expected a list of row dicts"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}, ("b", np.zeros((1, 4, 4)))], "g.png", {},
     r"^rows\[1\]: expected a dict"),
    ([{"label": 3, "images": np.zeros((1, 4, 4))}], "g.png", {}, r"^rows\[0\]\.label: expected a string, got int"),
    ([{"label": "a", "images": np.zeros((1, 4, 4)), "caption": ["x"]}], "g.png", {},
     r"^rows\[0\]: unknown key 'caption'"),
    ([{"label": "a"}], "g.png", {}, r"^rows\[0\]\.images: expected an array"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}, {"label": "b", "images": np.zeros((4, 4))}], "g.png", {},
     r"^rows\[1\]\.images: expected an array of shape \(n, H, W\) or \(n, H, W, 3\), got shape \(4, 4\)"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}, {"label": "b", "images": np.zeros((2, 4, 4, 2))}], "g.png",
     {}, r"^rows\[1\]\.images: expected an array of shape .* got shape \(2, 4, 4, 2\)"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}, {"label": "b", "images": np.full((2, 4, 4), 1.01)}], "g.png",
     {}, r"^rows\[1\]\.images: expected float values in \[0, 1\], got values in \[1\.01, 1\.01\]"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}, {"label": "b", "images": np.full((2, 4, 4), -0.5)}], "g.png",
     {}, r"^rows\[1\]\.images: expected float values in \[0, 1\]"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}, {"label": "b", "images": np.array([[[0.2, np.nan]]])}],
     "g.png", {}, r"^rows\[1\]\.images: expected finite values, got NaN or Inf \(first at image 0, pixel \(0, 1\)\)"),
    ([{"label": "a", "images": np.zeros((1, 4, 4), dtype=np.int64)}], "g.png", {},
     r"^rows\[0\]\.images: expected float values in \[0, 1\] or uint8, got dtype int64"),
    ([{"label": "a", "images": np.zeros((1, 4, 4), dtype=bool)}], "g.png", {},
     r"^rows\[0\]\.images: expected float values in \[0, 1\] or uint8, got dtype bool"),
    ([{"label": "a", "images": np.zeros((65, 4, 4))}], "g.png", {},
     r"^rows\[0\]\.images: expected at most 64 images per row, got 65"),
    ([{"label": "a", "images": np.zeros((2, 4, 4)), "captions": ["x"]}], "g.png", {},
     r"^rows\[0\]\.captions: expected 2 captions \(one per image\), got 1"),
    ([{"label": "a", "images": np.zeros((1, 4, 4)), "captions": "x"}], "g.png", {},
     r"^rows\[0\]\.captions: expected a list of 1 strings"),
    ([{"label": "a", "images": np.zeros((2, 4, 4)), "captions": ["x", 2]}], "g.png", {},
     r"^rows\[0\]\.captions\[1\]: expected a string, got int"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}], "g.jpg", {},
     r"^path: expected a file name ending in \.png, got '.*g\.jpg'"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}], None, {}, r"^path: expected a file path ending in \.png"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}], "g.png", {"cmap": "no-such-map"},
     r"^cmap: expected a matplotlib colormap name"),
    ([{"label": "a", "images": np.zeros((1, 4, 4))}], "g.png", {"title": 5}, r"^title: expected a string or None"),
])
def test_bad_input_names_the_argument_and_writes_nothing(tmp_path, rows, path, options, message):
    target = None if path is None else tmp_path / path
    with pytest.raises(InputError, match=message):
        write_generation_grid(rows, target, **options)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_as_path_is_refused(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(InputError, match=r"^path: expected a file to write, got the folder"):
        write_generation_grid([{"label": "a", "images": np.zeros((1, 4, 4))}], tmp_path / "d.png")


def test_long_captions_stay_under_their_own_image(tmp_path):
    """Captions were wrapped by a count of characters (22 a line): 22 wide letters ("W") ran
    under the next images; they are fitted by the width the font draws them in."""
    for name, caption in (("word", "W" * 60), ("words", "WWWW MMMM " * 8)):
        rows = [{"label": "x", "images": np.zeros((3, 16, 16)), "captions": ["", caption, ""]}]
        dark = _pixels(write_generation_grid(rows, tmp_path / f"{name}.png")).max(axis=-1) < 100
        tiles = np.flatnonzero(dark.mean(axis=1) > 0.5)   # the pixel lines through the three black images
        columns = np.flatnonzero(dark[tiles].mean(axis=0) > 0.9)
        starts = columns[np.r_[0, np.flatnonzero(np.diff(columns) > 1) + 1]]
        ends = columns[np.r_[np.flatnonzero(np.diff(columns) > 1), -1]]
        assert len(starts) == 3, starts
        ink = np.flatnonzero(dark[tiles.max() + 3:].any(axis=0))   # the caption under the middle image
        assert len(ink) > 0 and ends[0] < ink.min() and ink.max() < starts[2], (name, ink, starts, ends)
