"""Plots refuse bad inputs with messages naming the argument (curves, joint-space map, gallery)."""

import numpy as np
import pytest
from PIL import Image

from jointspace.errors import InputError


def test_curves_from_a_dict_of_columns(tmp_path):
    from jointspace.viz.curves import plot_curves

    out = plot_curves({"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0]}, tmp_path / "c.png")   # plain lists
    assert out == str(tmp_path / "c.png") and Image.open(out).size[0] > 300
    with pytest.raises(InputError, match="metrics: expected a dict of column name -> values with at least one "
                                         "column, got an empty dict"):
        plot_curves({}, tmp_path / "e.png")
    with pytest.raises(InputError, match=r"metrics\['loss'\]: expected 3 values like metrics\['step'\] "
                                         r"\(one per row\), got 2"):
        plot_curves({"step": [1, 2, 3], "loss": [3.0, 2.0]}, tmp_path / "u.png")
    with pytest.raises(InputError, match=r"metrics\['loss'\]: expected a 1-D sequence of numbers, got list"):
        plot_curves({"step": [1, 2], "loss": ["high", "low"]}, tmp_path / "t.png")
    with pytest.raises(InputError, match=r"metrics\['loss'\]: expected a non-empty 1-D sequence of numbers, "
                                         r"got shape \(2, 1\)"):
        plot_curves({"loss": [[1.0], [2.0]]}, tmp_path / "t.png")
    with pytest.raises(InputError, match="max_panels: expected an integer >= 1, got 0"):
        plot_curves({"step": [1, 2], "loss": [2.0, 1.0]}, tmp_path / "t.png", max_panels=0)
    assert not (tmp_path / "e.png").exists() and not (tmp_path / "u.png").exists()


def test_a_metrics_csv_with_a_huge_field_is_an_input_error(tmp_path):
    from jointspace.viz.curves import read_metrics

    (tmp_path / "metrics.csv").write_text("step,note\n1,ok\n2," + "x" * 200_000 + "\n")
    with pytest.raises(InputError, match=r"metrics: .*metrics.csv, line 3: not a readable metrics CSV "
                                         r"\(field larger than field limit"):
        read_metrics(tmp_path)
    (tmp_path / "latin.csv").write_bytes(b"step,loss\n1,\xe9\n")
    with pytest.raises(InputError, match="latin.csv is not UTF-8 text"):
        read_metrics(tmp_path / "latin.csv")


def test_joint_space_map_names_the_modality_and_its_row(tmp_path):
    from jointspace.viz.space_map import plot_joint_space

    rng = np.random.default_rng(0)
    emb = {"image": rng.normal(size=(6, 4)), "text": rng.normal(size=(6, 4))}
    emb["text"][2, 1] = np.nan
    with pytest.raises(InputError, match=r"embeddings\['text'\]: expected finite values, got NaN or Inf "
                                         r"\(first at row 2, column 1\)"):
        plot_joint_space(emb, tmp_path / "m.png", method="pca")
    emb["text"][2, 1] = 0.0
    with pytest.raises(InputError, match=r"labels: expected a 1-D array of 6 labels \(one per sample\), "
                                         r"got shape \(6, 2\)"):
        plot_joint_space(emb, tmp_path / "m.png", labels=np.zeros((6, 2)), method="pca")
    with pytest.raises(InputError, match="n_lines: expected an integer >= 0, got -1"):
        plot_joint_space(emb, tmp_path / "m.png", n_lines=-1, method="pca")
    with pytest.raises(InputError, match="method: expected one of umap, tsne, pca; got 'mds'"):
        plot_joint_space(emb, tmp_path / "m.png", method="mds")
    with pytest.raises(InputError, match=r"embeddings\['image'\]: expected a 2-D array"):
        plot_joint_space({"image": np.ones(6)}, tmp_path / "m.png", method="pca")
    with pytest.raises(InputError, match="embeddings: expected at least 3 points in all"):
        plot_joint_space({"image": np.ones((1, 3)), "text": np.ones((1, 3))}, tmp_path / "m.png", method="pca")
    with pytest.raises(InputError, match="label_names: expected a list of names"):
        plot_joint_space(emb, tmp_path / "m.png", labels=[0, 1, 0, 1, 0, 1], label_names="ab", method="pca")
    assert not (tmp_path / "m.png").exists()
    out = plot_joint_space(emb, tmp_path / "m.png", labels=np.array([0, "a", 1, 0, "a", 1], dtype=object),
                           method="pca", n_lines=0)
    assert Image.open(out).size[0] > 400


def test_gallery_scores_must_be_numbers(tmp_path):
    from jointspace.viz.gallery import write_gallery

    good = {"rank": 1, "id": 0, "score": 0.5, "text": "t"}
    with pytest.raises(InputError, match=r"results\[1\]\['score'\]: expected a finite number, got 'high'"):
        write_gallery([good, {"rank": 2, "id": 1, "score": "high", "text": "u"}], tmp_path / "g.png")
    with pytest.raises(InputError, match=r"results\[0\]: expected a dict with 'score'"):
        write_gallery([("t", 0.5)], tmp_path / "g.png")
    with pytest.raises(InputError, match="results: expected a list of result dicts, got dict"):
        write_gallery(good, tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()
    out = write_gallery([good, {"id": 1, "score": np.float32(0.25)}, {"id": 2, "score": None}], tmp_path / "g.png")
    assert Image.open(out).size == (3 * (160 + 8) + 8, 160 + 54 + 2 * 8)


def test_every_plot_writer_refuses_a_path_that_is_not_a_png_file_before_drawing(tmp_path, monkeypatch):
    from jointspace.viz import _mpl
    from jointspace.viz.attention_map import write_attention_map
    from jointspace.viz.curves import plot_curves
    from jointspace.viz.gallery import write_gallery
    from jointspace.viz.space_map import plot_joint_space

    rng = np.random.default_rng(0)
    emb = {"image": rng.normal(size=(6, 4)), "text": rng.normal(size=(6, 4))}
    picture = np.zeros((16, 16, 3), np.uint8)
    writers = {
        "map": lambda p: plot_joint_space(emb, p, method="pca"),
        "curves": lambda p: plot_curves({"step": [1, 2], "loss": [2.0, 1.0]}, p),
        "gallery": lambda p: write_gallery([{"score": 0.5, "text": "t"}], p),
        "attention": lambda p: write_attention_map(picture, ["a"], np.ones((1, 2, 2)), p),
    }
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file").write_text("kept")
    # a failed check must come before any figure is drawn
    monkeypatch.setattr(_mpl, "pyplot", lambda: pytest.fail("drew before checking path"))
    for name, write in writers.items():
        with pytest.raises(InputError, match=r"path: expected a file name ending in \.png, got '.*map\.svg'"):
            write(tmp_path / "map.svg")           # PNG bytes under an .svg name
        with pytest.raises(InputError, match="path: expected a file name ending in .png, got ''"):
            write("")
        with pytest.raises(InputError, match="path: expected a file to write, got the folder"):
            write(tmp_path / "folder.png")
        with pytest.raises(InputError, match=r"path: cannot create '.*x\.png': '.*file' is not a folder"):
            write(tmp_path / "file" / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.png"]
    assert (tmp_path / "file").read_text() == "kept" and not any((tmp_path / "folder.png").iterdir())


def test_a_plot_writer_that_fails_part_way_leaves_no_figure_open(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from jointspace.viz.attention_map import write_attention_map
    from jointspace.viz.curves import plot_curves
    from jointspace.viz.generation_grid import write_generation_grid
    from jointspace.viz.space_map import plot_joint_space

    rng = np.random.default_rng(0)
    writers = {
        "map": lambda p: plot_joint_space({"a": rng.normal(size=(6, 4))}, p, method="pca"),
        "curves": lambda p: plot_curves({"step": [1, 2], "loss": [2.0, 1.0]}, p),
        "attention": lambda p: write_attention_map(np.zeros((16, 16, 3), np.uint8), ["a"], np.ones((1, 2, 2)), p),
        "grid": lambda p: write_generation_grid([{"label": "real", "images": np.zeros((2, 4, 4))}], p),
    }

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    mine = plt.figure()   # a figure of the caller's stays open
    try:
        monkeypatch.setattr(Figure, "savefig", full_disk)
        for name, write in writers.items():
            with pytest.raises(OSError, match="No space left on device"):
                write(tmp_path / f"{name}.png")
            assert plt.get_fignums() == [mine.number], name
    finally:
        plt.close(mine)
    assert list(tmp_path.iterdir()) == []


def test_gallery_and_attention_map_refuse_to_write_over_a_picture_they_draw(tmp_path):
    from jointspace.viz.attention_map import write_attention_map
    from jointspace.viz.gallery import write_gallery

    picture = tmp_path / "cat.png"
    Image.fromarray(np.full((12, 12, 3), (200, 30, 30), np.uint8)).save(picture)
    kept = picture.read_bytes()
    (tmp_path / "sub").mkdir()
    same = tmp_path / "sub" / ".." / "cat.png"     # the same file under another spelling
    with pytest.raises(InputError, match=r"path: '.*cat\.png' is read as image; expected a file name that is not "
                                         r"one of the inputs"):
        write_attention_map(str(picture), ["a"], np.ones((1, 2, 2)), same)
    results = [{"score": 0.9, "text": "a dog"}, {"score": 0.5, "path": str(picture), "text": "a cat"}]
    with pytest.raises(InputError, match=r"path: '.*cat\.png' is read as results\[1\]\['path'\]; expected a file "
                                         r"name that is not one of the inputs"):
        write_gallery(results, same)
    assert picture.read_bytes() == kept
    # another name is written, the picture drawn in it
    out = write_gallery(results, tmp_path / "g.png", columns=2, thumb=40)
    tile = np.asarray(Image.open(out).convert("RGB"))[8 + 20, 8 + 48 + 20]
    assert tuple(tile) == (200, 30, 30)


def test_gallery_size_is_the_drawn_size_and_too_many_results_are_refused(tmp_path):
    from jointspace.viz.gallery import gallery_size, max_gallery_results, write_gallery

    results = [{"score": 1.0 - i / 10, "text": f"item {i}"} for i in range(7)]
    for title in ("query", None):
        out = write_gallery(results, tmp_path / "g.png", title=title, columns=3, thumb=64)
        assert Image.open(out).size == gallery_size(7, 3, 64, title=bool(title))
    most = max_gallery_results(columns=2, thumb=2048)
    many = [{"score": 0.5, "text": "x"}] * (most + 1)
    with pytest.raises(InputError, match=rf"^results: expected at most {most:,} results in 2 columns of 2048-pixel"):
        write_gallery(many, tmp_path / "big.png", columns=2, thumb=2048)
    assert not (tmp_path / "big.png").exists()


@pytest.mark.parametrize("columns", [1, 5, 10**6])
def test_the_most_results_is_the_largest_count_whose_gallery_fits(columns, tmp_path):
    """Fewer results than columns draw a narrower gallery: with a million columns, 3 results
    are one row of 3 thumbnails, well within the limit."""
    from jointspace.viz.gallery import gallery_size, max_gallery_results, write_gallery

    limit = Image.MAX_IMAGE_PIXELS
    most = max_gallery_results(columns)
    pixels = [np.prod(gallery_size(n, columns)) for n in (most, most + 1)]
    assert most >= 1 and pixels[0] <= limit < pixels[1]
    out = write_gallery([{"score": 0.5, "text": "x"}] * 3, tmp_path / "g.png", title="q", columns=columns)
    assert Image.open(out).size == gallery_size(3, columns)


def test_gallery_size_and_its_bound_refuse_layouts_they_cannot_draw():
    from jointspace.viz.gallery import gallery_size, max_gallery_results

    with pytest.raises(InputError, match="^n_results"):
        gallery_size(0)
    with pytest.raises(InputError, match="^columns"):
        gallery_size(3, columns=0)
    with pytest.raises(InputError, match="^columns"):
        max_gallery_results(columns=-1)
    with pytest.raises(InputError, match="^thumb"):
        max_gallery_results(thumb=0)
