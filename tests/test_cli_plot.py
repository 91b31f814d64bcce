"""``jointspace plot``: which files and folders it reads, and what it draws from them."""

import pytest

from cli_support import one_line, run

METRICS = "step,epoch,loss,val_recall\n10,0,5.25,\n20,1,4.5,0.25\n30,2,4.0,0.5\n"


@pytest.fixture()
def drawn(monkeypatch):
    """The panels each written figure holds: (title, x label, [(x values, y values)])."""
    import jointspace.viz._mpl as mpl

    figures, save = [], mpl.save_figure

    def grab(fig, path):
        figures.append([(ax.get_title(), ax.get_xlabel(), [(list(line.get_xdata()), list(line.get_ydata()))
                                                          for line in ax.lines]) for ax in fig.axes])
        figures[-1].append(fig.get_suptitle())
        return save(fig, path)

    monkeypatch.setattr(mpl, "save_figure", grab)
    return figures


def test_plot_curves_of_an_empty_run_name_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "plot", "curves", "", "--out", tmp_path / "c.png")
    assert code == 2 and one_line(err) and out == "" and not (tmp_path / "c.png").exists()
    assert err.strip() == "error: RUN: expected a run folder or its metrics.csv, got ''"


def test_plot_curves_of_the_current_folder_reads_its_run_folder_beside_it(tmp_path, capsys, monkeypatch, drawn):
    """'.' in a model folder saved by fit is that folder: its curves are in MODEL.train beside it."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m.train").mkdir()
    (tmp_path / "m.train" / "metrics.csv").write_text(METRICS)
    monkeypatch.chdir(tmp_path / "m")
    code, out, err = run(capsys, "plot", "curves", ".", "--out", tmp_path / "c.png")
    assert code == 0 and err == "" and (tmp_path / "c.png").stat().st_size > 0
    assert out.strip() == f"curves written to {tmp_path / 'c.png'}"
    panels = [p for p in drawn[0][:-1] if p[0]]
    assert drawn[0][-1] == "m"
    assert panels == [("loss", "step", [([10.0, 20.0, 30.0], [5.25, 4.5, 4.0])]),
                      ("val_recall", "step", [([20.0, 30.0], [0.25, 0.5])])]


def test_plot_gallery_with_a_model_of_another_width_names_model(tmp_path, capsys):
    import server_support as sup

    colours, tones = sup.towered_setup(), sup.audio_setup()   # 12-d and 4-d spaces, both with a text tower
    code, out, err = run(capsys, "plot", "gallery", colours["index"], "--model", tones["model"], "--text", "a red disc",
                         "--out", tmp_path / "g.png")
    assert code == 2 and one_line(err) and out == "" and not (tmp_path / "g.png").exists()
    assert err.strip() == (f"error: --model: {tones['model']} embeds into 4-d vectors, but index "
                           f"{str(colours['index'])!r} holds 12-d ones; pass the model it was built with")


@pytest.mark.parametrize("lines, note", [("3", "; lines join true pairs"), ("0", "")])
def test_plot_map_title_says_what_the_grey_lines_are(tmp_path, capsys, monkeypatch, lines, note):
    import matplotlib.pyplot as plt

    import jointspace.viz._mpl as mpl

    figures = []
    monkeypatch.setattr(mpl, "save_figure", lambda fig, path: figures.append(fig) or str(path))
    assert run(capsys, "fit", "wikipedia", "--model", "cca", "--n-components", "4", "--out", tmp_path / "m")[0] == 0
    code, _, err = run(capsys, "plot", "map", tmp_path / "m", "--dataset", "wikipedia", "--n", "30", "--method",
                       "pca", "--lines", lines, "--out", tmp_path / "map.png")
    try:
        ax = figures[0].axes[0]
        assert code == 0 and err == "" and len(ax.lines) == int(lines)
        assert ax.get_title() == f"wikipedia/test: 30 samples, pca{note}"
    finally:
        plt.close(figures[0])


def test_plot_gallery_of_an_index_without_items_names_index(tmp_path, capsys):
    """It said 'results: expected at least one result to draw, got none', naming no argument."""
    import server_support as sup
    from jointspace.index.faiss_index import Index

    colours = sup.towered_setup()
    empty = Index(dim=12)
    empty.info.update(model=str(colours["model"]), modality="image")
    empty.save(tmp_path / "empty")
    code, out, err = run(capsys, "plot", "gallery", tmp_path / "empty", "--text", "a red disc",
                         "--out", tmp_path / "g.png")
    assert code == 2 and one_line(err) and out == "" and not (tmp_path / "g.png").exists()
    assert err.strip() == (f"error: INDEX: expected an index with items to draw, got {str(tmp_path / 'empty')!r} "
                           f"holding none; add some with 'jointspace index {tmp_path / 'empty'} --append --data DATA'")


def test_plot_curves_of_a_metrics_file_is_titled_by_its_run_folder(tmp_path, capsys, drawn):
    """It was titled 'metrics.csv', whichever run it was."""
    (tmp_path / "clip.train").mkdir()
    (tmp_path / "clip.train" / "metrics.csv").write_text(METRICS)
    code, _, err = run(capsys, "plot", "curves", tmp_path / "clip.train" / "metrics.csv", "--out", tmp_path / "c.png")
    assert code == 0 and err == "" and drawn[0][-1] == "clip.train"
    assert [p[2] for p in drawn[0][:-1] if p[0] == "loss"] == [[([10.0, 20.0, 30.0], [5.25, 4.5, 4.0])]]
