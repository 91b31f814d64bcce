"""Plots: retrieval gallery pixels, 2-D reductions against scikit-learn, curves from a metrics CSV."""

import numpy as np
import pytest
from PIL import Image

from jointspace.cli import main
from jointspace.errors import InputError


def _solid(path, rgb, size=40):
    Image.fromarray(np.full((size, size, 3), rgb, np.uint8)).save(path)
    return str(path)


def test_gallery_draws_each_thumbnail_in_its_tile(tmp_path):
    from jointspace.viz.gallery import write_gallery

    colours = [(230, 20, 20), (20, 200, 20), (20, 20, 230), (240, 200, 0), (120, 0, 160), (0, 180, 190), (90, 90, 90)]
    results = [{"rank": i + 1, "id": i, "score": 1 - 0.1 * i, "label": "x", "text": f"item {i}",
                "path": _solid(tmp_path / f"{i}.png", c)} for i, c in enumerate(colours)]
    results.append({"rank": 8, "id": 8, "score": 0.1, "label": None, "text": "a text-only result", "path": None})
    out = write_gallery(results, tmp_path / "g.png", title="query: colours", columns=4, thumb=80)
    img = np.asarray(Image.open(out).convert("RGB"))
    pad, text_h, head = 8, 54, 34
    assert img.shape == (head + 2 * (80 + text_h + pad) + pad, 4 * (80 + pad) + pad, 3)
    for n, rgb in enumerate(colours):
        x = pad + (n % 4) * (80 + pad) + 40       # the thumbnail (40 px) is centred in its 80 px tile
        y = head + pad + (n // 4) * (80 + text_h + pad) + 40
        assert tuple(img[y, x]) == rgb, n
    with pytest.raises(InputError, match="at least one result"):
        write_gallery([], tmp_path / "empty.png")


def test_gallery_texts_fit_their_tiles_and_a_long_word_is_cut_not_dropped(tmp_path, monkeypatch):
    from PIL import ImageDraw

    from jointspace.viz.gallery import write_gallery

    drawn = []
    real = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text",
                        lambda self, xy, text, *a, **kw: drawn.append((xy, text, kw["font"])) or real(self, xy, text, *a, **kw))
    long_word = "IMG_20240101_123456_HDR_edited_final_version.jpg"
    results = [{"rank": 1, "score": 0.9, "text": long_word, "label": "Donaudampfschifffahrtsgesellschaftskapitän"},
               {"rank": 2, "score": 0.8, "text": "WWWW WWWW WWWW WWWW WWWW", "label": "x"},
               {"rank": 3, "score": 0.7, "text": "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM and more", "path": None}]
    thumb, pad = 120, 8
    write_gallery(results, tmp_path / "g.png", title="query: " + "W" * 200, columns=3, thumb=thumb)
    width = 3 * (thumb + pad) + pad
    for (x, y), text, font in drawn:
        tile_right = width - pad if y < 34 else pad + ((x - pad) // (thumb + pad) + 1) * (thumb + pad) - pad
        assert x + font.getlength(text) <= tile_right + 0.5, (text, x, tile_right)   # never into the next tile
    captions = [t for (_, y), t, _ in drawn if y == 34 + pad + thumb + 4]
    # the file name is shown as far as it fits (it was shown as "1. …": shortened at word breaks,
    # the one long word was left out whole)
    assert captions[0].startswith("1. IMG_2024") and captions[0].endswith("…")
    assert captions[2].startswith("3. MMM")
    labels = [t for (_, y), t, _ in drawn if y == 34 + pad + thumb + 36]
    assert labels[0].startswith("Donau") and labels[0].endswith("…") and labels[1] == "x"
    tile_lines = [t for (x, y), t, _ in drawn if 34 + pad < y < 34 + pad + thumb and x > 2 * (thumb + pad)]
    assert "".join(tile_lines).startswith("MMMMMMMM") and len(tile_lines) > 1


def test_search_gallery_flag_uses_write_gallery(tmp_path):
    from jointspace.viz.gallery import write_gallery

    out = write_gallery([{"rank": 1, "id": 0, "score": 0.5, "label": "a", "text": "t", "path": str(tmp_path / "no.png")}],
                        tmp_path / "one.png")
    assert Image.open(out).size[0] > 100     # a missing file becomes a text tile, not an error


def test_embed_2d_pca_matches_sklearn_and_tsne_separates_clusters():
    from sklearn.decomposition import PCA

    from jointspace.viz.space_map import embed_2d

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(30, 10)) + 6 * np.eye(10)[0], rng.normal(size=(30, 10)) - 6 * np.eye(10)[0]])
    assert np.allclose(embed_2d(x, "pca"), PCA(2).fit_transform(x), atol=1e-6)
    z = embed_2d(x, "tsne", seed=0)
    assert z.shape == (60, 2)
    a, b = z[:30].mean(0), z[30:].mean(0)
    spread = max(z[:30].std(0).max(), z[30:].std(0).max())
    assert np.linalg.norm(a - b) > 2 * spread
    with pytest.raises(InputError, match="method"):
        embed_2d(x, "mds")


def test_plot_joint_space_writes_a_png_and_checks_shapes(tmp_path):
    from jointspace.viz.space_map import plot_joint_space

    rng = np.random.default_rng(1)
    img = rng.normal(size=(40, 8))
    txt = img + 0.1 * rng.normal(size=(40, 8))
    out = plot_joint_space({"image": img, "text": txt}, tmp_path / "map.png", labels=np.arange(40) % 4,
                           label_names=["a", "b", "c", "d"], method="pca", n_lines=10)
    assert Image.open(out).size[0] > 400
    with pytest.raises(InputError, match="expected shape"):
        plot_joint_space({"image": img, "text": txt[:10]}, tmp_path / "bad.png", method="pca")
    with pytest.raises(InputError, match="labels"):
        plot_joint_space({"image": img}, tmp_path / "bad.png", labels=[1, 2], method="pca")


def _drawn_map(monkeypatch, tmp_path, **kwargs):
    """The figure plot_joint_space draws, kept open (it is closed once written otherwise)."""
    from jointspace.viz import _mpl
    from jointspace.viz.space_map import plot_joint_space

    figures = []
    monkeypatch.setattr(_mpl, "save_figure", lambda fig, path: figures.append(fig) or str(path))
    plot_joint_space(path=tmp_path / "map.png", method="pca", **kwargs)
    return figures[0]


def test_map_of_more_classes_than_colours_gives_no_colour_to_two_classes(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    rng = np.random.default_rng(2)
    labels = rng.permutation(np.repeat(np.arange(26), [2] * 24 + [6] * 2))   # classes 24, 25 most frequent
    n = len(labels)
    fig = _drawn_map(monkeypatch, tmp_path, embeddings={"image": rng.normal(size=(n, 5))},
                     labels=labels, max_legend=8)
    try:
        ax = fig.axes[0]
        colours = [tuple(c[:3]) for c in ax.collections[0].get_facecolors()]   # RGB; alpha is the points'
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        entries = {h.get_label(): h.get_color() for h in ax.get_legend().legend_handles}
    finally:
        plt.close(fig)
    by_colour = {}
    for c, label in zip(colours, labels):
        by_colour.setdefault(c, set()).add(int(label))
    black = (0.0, 0.0, 0.0)
    # 19 colours of one class each, the 7 least frequent classes (the last ones of equal count) in black
    assert sorted(len(v) for k, v in by_colour.items() if k != black) == [1] * 19
    assert by_colour[black] == set(range(17, 24))
    assert {min(by_colour[c]) for c in by_colour if c != black} == set(range(17)) | {24, 25}
    # the legend's colour of each listed class is that class's colour
    for name in texts[1:9]:
        assert by_colour[to_rgba(entries[name])[:3]] == {int(name)}
    assert texts[0] == "image" and len(texts) == 1 + 8 + 2
    assert texts[9:] == ["... 11 more classes", "7 other classes (black)"]


_EQUAL_VECTORS_MAP = """
import json, sys
import numpy as np
from jointspace.viz.space_map import embed_2d, plot_joint_space
method, path = sys.argv[1], sys.argv[2]
plot_joint_space({"image": 3 * np.ones((12, 5)), "text": np.ones((12, 5))}, path, method=method, seed=0)
print(json.dumps(embed_2d(np.tile([[0.5, -1.0, 2.0]], (12, 1)), method).tolist()))
"""


@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_map_of_equal_vectors_is_one_point(tmp_path, method):
    """Every row the same vector (a collapsed space) is one point at the origin; in a child
    process, as t-SNE used to crash the interpreter on it."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _EQUAL_VECTORS_MAP, method, str(tmp_path / "map.png")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == [[0.0, 0.0]] * 12
    assert Image.open(tmp_path / "map.png").size[0] > 400


def test_curves_of_a_csv_with_a_byte_order_mark_are_drawn_against_its_step_column(tmp_path, monkeypatch):
    import jointspace.viz._mpl as mpl_helpers
    import jointspace.viz.curves as curves

    # as a spreadsheet saves "CSV UTF-8": the mark stayed on the first name, "\ufeffstep", so
    # the steps were drawn as a metric against the row number
    (tmp_path / "m.csv").write_bytes(b"\xef\xbb\xbfstep,loss\r\n0,2.0\r\n50,1.0\r\n100,0.5\r\n")
    cols = curves.read_metrics(tmp_path / "m.csv")
    assert list(cols) == ["step", "loss"] and cols["step"].tolist() == [0.0, 50.0, 100.0]
    figures = []
    monkeypatch.setattr(mpl_helpers, "save_figure", lambda fig, path: figures.append(fig) or str(path))
    curves.plot_curves(tmp_path / "m.csv", tmp_path / "c.png")
    try:
        (ax,) = [ax for ax in figures[0].axes if ax.lines]
        assert ax.get_title() == "loss" and ax.get_xlabel() == "step"
        assert ax.lines[0].get_xdata().tolist() == [0.0, 50.0, 100.0]
    finally:
        mpl_helpers.pyplot().close(figures[0])


def test_curves_read_numeric_columns_with_gaps(tmp_path):
    from jointspace.viz.curves import plot_curves, read_metrics

    csv = tmp_path / "metrics.csv"
    csv.write_text("step,epoch,loss,lr,val_recall,note\n0,0,2.5,0.001,,start\n10,0,1.5,0.001,,\n"
                   "20,1,1.0,0.0005,0.4,\n30,1,0.8,0.0005,0.55,end\n")
    cols = read_metrics(tmp_path)
    assert set(cols) == {"step", "epoch", "loss", "lr", "val_recall"}
    assert np.allclose(cols["loss"], [2.5, 1.5, 1.0, 0.8])
    assert np.isnan(cols["val_recall"][:2]).all() and cols["val_recall"][3] == 0.55
    out = plot_curves(tmp_path, tmp_path / "curves.png")
    assert Image.open(out).size[0] > 300
    with pytest.raises(InputError, match="metrics.csv"):
        read_metrics(tmp_path / "nowhere")
    (tmp_path / "text.csv").write_text("name\nfoo\n")
    with pytest.raises(InputError, match="no numeric"):
        read_metrics(tmp_path / "text.csv")


def test_plot_cli_curves_and_map(tmp_path, capsys):
    from jointspace.data.datasets import load_dataset
    from jointspace.models.base import create_model

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("step,loss\n1,3.0\n2,2.0\n3,1.2\n")
    assert main(["plot", "curves", str(tmp_path / "run"), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").is_file()
    assert main(["plot", "curves", str(tmp_path / "none"), "--out", str(tmp_path / "x.png")]) == 2
    # a model folder saved by fit: its curves are in MODEL.train; an ensemble's in MODEL.train/memberN
    (tmp_path / "model").mkdir()
    (tmp_path / "model.train").mkdir()
    (tmp_path / "model.train" / "metrics.csv").write_text("step,loss\n1,3.0\n2,2.5\n")
    assert main(["plot", "curves", str(tmp_path / "model"), "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").is_file()
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens.train" / "member0").mkdir(parents=True)
    (tmp_path / "ens.train" / "member0" / "metrics.csv").write_text("step,loss\n1,3.0\n")
    assert main(["plot", "curves", str(tmp_path / "ens"), "--out", str(tmp_path / "e.png")]) == 2
    assert "is a seed ensemble; each member has its own curves" in capsys.readouterr().err
    assert main(["plot", "curves", str(tmp_path / "model"), "--out", str(tmp_path / "m.txt")]) == 2
    assert "--out: plots are PNG images; expected a file ending in .png" in capsys.readouterr().err
    assert not (tmp_path / "m.txt").exists()
    model = create_model("cca", n_components=6).fit(load_dataset("wikipedia", "train"))
    model.save(tmp_path / "m")
    assert main(["plot", "map", str(tmp_path / "m"), "--dataset", "wikipedia", "--n", "120", "--method", "pca",
                 "--out", str(tmp_path / "map.png")]) == 0
    assert Image.open(tmp_path / "map.png").size[0] > 400
    assert main(["plot", "map", str(tmp_path / "m"), "--dataset", "wikipedia", "--n", "1",
                 "--out", str(tmp_path / "m2.png")]) == 2


@pytest.mark.parametrize("modalities, n_lines, title", [
    (("image", "text"), 5, "joint space (PCA), 12 samples x 2 modalities; lines join true pairs"),
    (("image", "text"), 0, "joint space (PCA), 12 samples x 2 modalities"),
    (("image",), 5, "joint space (PCA), 12 samples x 1 modality"),
])
def test_map_title_says_lines_join_pairs_only_when_lines_are_drawn(tmp_path, monkeypatch, modalities, n_lines, title):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(3)
    fig = _drawn_map(monkeypatch, tmp_path, embeddings={m: rng.normal(size=(12, 4)) for m in modalities},
                     n_lines=n_lines)
    try:
        ax = fig.axes[0]
        assert len(ax.lines) == (n_lines if len(modalities) > 1 else 0)
        assert ax.get_title() == title
    finally:
        plt.close(fig)


def test_dollar_signs_in_labels_titles_and_columns_are_drawn_as_text(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from jointspace.viz.curves import plot_curves
    from jointspace.viz.generation_grid import write_generation_grid
    from jointspace.viz.space_map import plot_joint_space

    rng = np.random.default_rng(4)
    labels = ["cost $5 to $10", "$$", r"$\frac{a}$"] * 2
    # "$$" and an unfinished \frac could not be drawn as math at all
    plot_joint_space({"a": rng.normal(size=(6, 4))}, tmp_path / "m.png", labels=labels, method="pca", title="$$")
    plot_curves({"step": [1, 2], "$$": [1.0, 2.0]}, tmp_path / "c.png", title=r"$\frac{a}$")
    write_generation_grid([{"label": "$$", "images": np.zeros((1, 4, 4)), "captions": ["$x^$"]}], tmp_path / "g.png")
    assert all(Image.open(tmp_path / name).size[0] > 50 for name in ("m.png", "c.png", "g.png"))
    assert plt.get_fignums() == []
    fig = _drawn_map(monkeypatch, tmp_path, embeddings={"a": rng.normal(size=(6, 4))}, labels=labels,
                     title="price $1 and $2")
    try:
        ax = fig.axes[0]
        texts = [ax.title] + list(ax.get_legend().get_texts())
        assert [t.get_text() for t in texts] == ["price $1 and $2", "a", "$$", r"$\frac{a}$", "cost $5 to $10"]
        assert not any(t.get_parse_math() for t in texts)
    finally:
        plt.close(fig)


def test_curves_draw_every_metric_by_default_and_name_those_max_panels_leaves_out(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from jointspace.viz import _mpl
    from jointspace.viz.curves import plot_curves

    # the columns a contrastive run with a Lagrange regulariser logs: the last ones are its own
    names = ["R@10", "val_recall", "loss", "tau", "lr", "pairs_per_s", "recon", "reg/lagrange", "mu", "constraint"]
    cols = {"step": np.arange(4.0), **{n: np.arange(4.0) * (i + 1) for i, n in enumerate(names)}}
    figures = []
    monkeypatch.setattr(_mpl, "save_figure", lambda fig, path: figures.append(fig) or str(path))
    plot_curves(cols, tmp_path / "all.png")
    plot_curves(cols, tmp_path / "some.png", max_panels=8)
    try:
        every, some = ([ax.get_title() for ax in fig.axes if ax.get_title()] for fig in figures)
        assert every == names and some == names[:8]
        assert [t.get_text() for t in figures[0].texts] == []
        assert [t.get_text() for t in figures[1].texts] == ["not drawn (max_panels=8): mu, constraint"]
        np.testing.assert_array_equal(figures[0].axes[8].lines[0].get_ydata(), np.arange(4.0) * 9)   # mu
    finally:
        for fig in figures:
            plt.close(fig)


def test_characters_the_font_lacks_are_reported_in_one_warning(tmp_path):
    import warnings

    from jointspace.viz.space_map import plot_joint_space

    rng = np.random.default_rng(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_joint_space({"a": rng.normal(size=(8, 3))}, tmp_path / "m.png", labels=["猫咪", "狗", "cat", "猫咪"] * 2,
                         method="pca", title="été")
        warnings.warn("a warning of the caller's own", RuntimeWarning)
    messages = [str(w.message) for w in caught]
    # matplotlib warned once per character and drawing pass; the accented é is in the font; in order of drawing
    assert messages == ["the font (DejaVu Sans) has no glyph for 3 character(s) of the text drawn, shown as empty "
                        "boxes: 狗猫咪", "a warning of the caller's own"]
    assert caught[0].filename == __file__


def test_long_class_names_are_cut_in_the_map_legend(tmp_path, monkeypatch):
    """A class name of 300 characters made the map 16 inches wider (the legend held it whole)."""
    import matplotlib.pyplot as plt

    from jointspace.viz.space_map import plot_joint_space

    rng = np.random.default_rng(5)
    vectors = {"image": rng.normal(size=(8, 4))}
    long = "a photograph of " + "very " * 57 + "long name"
    names = ["cat", long, "W" * 80]
    plot_joint_space(vectors, tmp_path / "short.png", labels=np.arange(8) % 3, label_names=["a", "b", "c"],
                     method="pca")
    plot_joint_space(vectors, tmp_path / "long.png", labels=np.arange(8) % 3, label_names=names, method="pca")
    wider = Image.open(tmp_path / "long.png").size[0] - Image.open(tmp_path / "short.png").size[0]
    assert wider <= 2.5 * 110, wider   # at most 2.5 inches more, at 110 dots per inch (it was 16 inches more)
    fig = _drawn_map(monkeypatch, tmp_path, embeddings=vectors, labels=np.arange(8) % 3, label_names=names)
    try:
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    finally:
        plt.close(fig)
    assert texts[:2] == ["image", "cat"] and all(t.endswith("…") for t in texts[2:])
    assert long.startswith(texts[2][:-1]) and 20 < len(texts[2]) < 80 and set(texts[3][:-1]) == {"W"}
