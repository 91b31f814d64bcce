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


@pytest.fixture
def drawn(monkeypatch):
    """The figures the writer draws, kept open (instead of written) for the test, closed after it."""
    import matplotlib.pyplot as plt

    import jointspace.viz.attention_map as am

    figures = []
    monkeypatch.setattr(am, "save_figure", lambda fig, path: figures.append(fig) or str(path))
    yield figures
    for fig in figures:
        plt.close(fig)


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


def test_long_word_pieces_are_cut_short_so_titles_never_overlap(picture, tmp_path, drawn):
    import jointspace.viz.attention_map as am

    words = ["a", "supercalifragilisticexpialidocious", "umbrella-shaped", "thingamajig", "WWWWWWWWWWWWWWWWWWWW",
             "two\nlines", "##ing"]
    maps = np.random.default_rng(0).random((len(words), 7, 7)).astype(np.float32)
    am.write_attention_map(picture, words, maps, tmp_path / "map.png", columns=4)
    fig = drawn[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_title()][1:]   # the first is the picture itself
    assert len(panels) == len(words)
    boxes = [ax.title.get_window_extent(renderer) for ax in panels]
    for ax, title in zip(panels, boxes):   # each title within its own picture, so clear of the others
        frame = ax.get_window_extent(renderer)
        assert frame.x0 - 0.5 <= title.x0 and title.x1 <= frame.x1 + 0.5, ax.get_title()
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    for ax, word, m in zip(panels, words, maps):
        shown, note = ax.get_title().split("\n")
        assert note == f"max {m.max():.2f}"   # the brightest colour's weight, as numpy reads the map
        flat = " ".join(word.split())
        assert shown == flat or (shown.endswith("\u2026") and flat.startswith(shown[:-1]) and len(shown) > 1)
    shown = [ax.get_title().split("\n")[0] for ax in panels]
    assert shown[0] == "a" and shown[2:4] == ["umbrella-shaped", "thingamajig"]   # short pieces whole
    assert shown[1].endswith("\u2026") and len(shown[1]) > 10 and shown[5] == "two lines"


def test_the_colour_scale_is_shown_and_the_titles_clear_of_each_other(picture, tmp_path, drawn):
    import jointspace.viz.attention_map as am

    maps = np.full((1, 7, 7), 1 / 49, np.float32)
    am.write_attention_map(picture, ["one"], maps, tmp_path / "map.png", score=0.5)
    fig = drawn[0]
    fig.canvas.draw()
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1   # the PNG says what its colours mean
    assert bars[0].get_ylabel() == "weight / the word's max" and bars[0].get_ylim() == (0.0, 1.0)
    heat = [ax for ax in fig.axes if len(ax.images) == 2][0].images[1]
    assert heat.get_cmap().name == am.HEAT_CMAP and heat.get_clim() == (0.0, 1.0)
    np.testing.assert_allclose(heat.get_array(), 1.0)   # equal weights: each at the word's max
    renderer = fig.canvas.get_renderer()
    top = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        if ax.get_title():
            assert not top.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()


@pytest.mark.parametrize("fit, region", [("pad", (1, 3)), ("crop", (0, 3)), ("squash", (0, 3))])
def test_a_region_lights_the_part_of_a_wide_picture_the_tower_saw_there(tmp_path, drawn, fit, region):
    # a 100 x 50 picture, grey, with a red mark at the middle of its top edge; as the tower reads it
    # (224 x 224, 7 x 7 regions of 32 pixels), "pad" puts the picture at rows 56-167, so the mark is
    # in region row 1; "crop" keeps columns 25-74 and "squash" all of them, the mark in region row 0
    img = np.full((50, 100, 3), 128, np.uint8)
    img[0:6, 46:54] = (255, 0, 0)
    import jointspace.viz.attention_map as am

    maps = np.zeros((1, 7, 7), np.float32)
    maps[0][region] = 1.0
    am.write_attention_map(img, ["mark"], maps, tmp_path / "map.png", fit=fit)
    ax = [ax for ax in drawn[0].axes if len(ax.images) == 2][0]
    picture, heat = ax.images
    assert picture.get_extent() == heat.get_extent() == [-0.5, 223.5, 223.5, -0.5]   # one pixel grid
    heat = np.asarray(heat.get_array())
    r, c = np.unravel_index(np.argmax(heat), heat.shape)
    assert (r // 32, c // 32) == region   # the weight is drawn on its region
    assert heat[region[0] * 32 + 16, region[1] * 32 + 16] == pytest.approx(1.0, abs=0.05)
    assert heat[region[0] * 32 + 16, ((region[1] + 3) % 7) * 32 + 16] == pytest.approx(0.0, abs=1e-6)
    lit = np.asarray(picture.get_array())[heat > 0.5]
    assert (np.abs(lit.astype(int) - (255, 0, 0)).sum(axis=1) < 60).any()   # and the mark is under it
