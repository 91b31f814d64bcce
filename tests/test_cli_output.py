"""What the CLI writes besides its results: nothing on a piped stderr for progress bars and
spinners (errors stay one line), and ``--help`` epilogs that keep one example per line."""

import io
import re

import pytest
from cli_support import one_line, run
from rich.status import Status


def test_successful_fit_writes_nothing_to_stderr(tmp_path, capsys):
    code, out, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--out", tmp_path / "m")
    assert code == 0, err
    assert err == ""
    assert "saved cca" in out


def test_a_fit_over_towers_says_it_saved_the_head_over_its_towers(tmp_path, capsys):
    code, out, err = run(capsys, "fit", "photos", "--towers", "efficientnet-lite0,minilm", "--model", "cca",
                         "--param", "reg=0.5", "--n-components", "4", "--out", tmp_path / "m")
    assert code == 0, err
    assert f"saved cca over efficientnet-lite0 + minilm to {tmp_path / 'm'}." in " ".join(out.split())


def test_failing_command_writes_exactly_one_line(tmp_path, capsys):
    code, out, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--split", "nope", "--out", tmp_path / "m")
    assert code == 2
    assert one_line(err) and err.count("\n") == 1 and err.startswith("error:")
    assert not (tmp_path / "m").exists()


def test_an_error_keeps_the_spaces_of_the_names_it_quotes(tmp_path, capsys):
    from jointspace.cli._common import error

    (tmp_path / "my  photos").mkdir()
    code, _, err = run(capsys, "embed", tmp_path / "my  photos" / "gone", "--tower", "minilm", "--out",
                       tmp_path / "x.npy")
    assert code != 0 and one_line(err) and "my  photos" in err, err
    error("a message\n   over two lines,  kept as written")
    assert capsys.readouterr().err == "error: a message over two lines,  kept as written\n"


def test_a_library_warning_is_one_line(capsys, monkeypatch):
    import warnings

    from jointspace.cli.commands import datasets

    def warns(args):
        warnings.warn("embedding cache '/x' is not writable; vectors are computed but not cached",
                      RuntimeWarning, stacklevel=2)
        return 0

    monkeypatch.setattr(datasets, "run", warns)
    shown = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, _, err = run(capsys, "datasets")
    assert code == 0 and one_line(err), err
    assert err.startswith("warning: embedding cache '/x' is not writable") and ".py:" not in err
    assert warnings.showwarning is shown   # put back for the rest of the process


def test_progress_bars_and_spinners_are_silent_off_a_terminal(capsys):
    from jointspace.cli._common import console, err_console, progress
    from jointspace._progress import progress_bar
    from jointspace.train.monitor import ProgressBar

    with progress() as bar:  # rich ends a bar on a non-terminal with an empty line
        bar.advance(bar.add_task("x", total=2), 2)
    with progress_bar("towers and data", 4, enabled=True) as advance:
        advance(4)
    train = ProgressBar(4, True)
    train.update(4, 0.5, 0.07, 100.0)
    train.close()
    with err_console.status("loading") as spinner:
        spinner.update("still loading")
    with console.status("fitting"):
        pass
    assert capsys.readouterr() == ("", "")


def test_spinner_still_draws_on_a_terminal():
    from jointspace.cli._common import _Console

    assert isinstance(_Console(file=io.StringIO(), force_terminal=True).status("x"), Status)


@pytest.fixture
def columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def test_help_epilog_keeps_one_example_per_line(capsys, columns):
    code, out, _ = run(capsys, "fit", "--help")
    assert code == 0
    lines = out.splitlines()
    assert any(ln.startswith("examples: jointspace fit wikipedia --model rcca") and ln.endswith("--out runs/wiki")
               for ln in lines)
    assert any(ln.strip().startswith("jointspace fit openclipart --towers") for ln in lines)
    code, out, _ = run(capsys, "plot", "--help")
    assert code == 0
    assert sum(ln.lstrip().startswith(("examples: jointspace plot", "jointspace plot"))
               for ln in out.splitlines()) == 3


def test_help_description_still_wraps(capsys, columns):
    code, out, _ = run(capsys, "fit", "--help")
    assert code == 0
    start = out.index("Fit a joint model")
    description = out[start:out.index("\n\n", start)].splitlines()
    assert len(description) > 1 and all(len(ln) <= 80 for ln in description)
    # a one-paragraph epilog is wrapped too
    code, out, _ = run(capsys, "bench", "--help")
    assert code == 0 and all(len(ln) <= 80 for ln in out[out.index("suites:"):].splitlines())


def test_numeric_columns_survive_a_narrow_terminal(monkeypatch):
    from jointspace.cli import _common

    with _common.console.capture() as cap:
        monkeypatch.setattr(_common.console, "width", 50)
        _common.print_table("hits", ["rank", "score", "title", "path"],
                            [[1, 0.5551, "Christmas Tree with a long long title", "/a/very/long/path/to/abc.png"]])
    text = cap.get()
    assert "rank" in text and "score" in text and "0.555" in text and "│    1 │" in text


def test_square_brackets_in_names_are_printed_as_they_are(tmp_path, capsys):
    """A file name such as 'cat [draft].png' lost '[draft]' as a rich style in tables and errors
    ('cat .png'), and one holding '[/draft]' raised MarkupError instead of the one-line error."""
    from jointspace.cli._common import print_table

    for name in ("cat [draft]", "cat [/draft]", "[bold]x"):
        code, _, err = run(capsys, "embed", tmp_path / f"{name}.csv", "--tower", "minilm", "--out", tmp_path / "x.npy")
        assert code == 2 and one_line(err) and f"{name}.csv': neither" in err, err
    print_table("query: text '[red]car'", ["id", "path"], [["cat [draft].png", "/p/[/draft].png"]])
    out = capsys.readouterr().out
    assert "query: text '[red]car'" in out and "cat [draft].png" in out and "/p/[/draft].png" in out


@pytest.fixture(scope="module")
def labelled_pictures(tmp_path_factory):
    """A folder of 8 small pictures in two class sub-folders, and a model with cheap random
    towers fitted on it: (folder, model folder)."""
    import numpy as np
    from PIL import Image

    from jointspace.data.folder import read_folder
    from jointspace.models.towered import ToweredModel

    root = tmp_path_factory.mktemp("rows")
    rng = np.random.default_rng(0)
    for i in range(8):
        (root / "photos" / ("cats", "dogs")[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(
            root / "photos" / ("cats", "dogs")[i % 2] / f"p{i}.png")
    model = ToweredModel(towers={"image": "cnn", "text": "bow"}, head="cca", head_params={"n_components": 2},
                         tower_params={"image": {"image_size": 8, "widths": [4], "out_dim": 3},
                                       "text": {"out_dim": 3}}, cache=False)
    model.fit(read_folder(root / "photos"))
    model.save(root / "model")
    return root / "photos", root / "model"


def test_asking_for_more_rows_than_the_data_holds_says_all_were_used(labelled_pictures, tmp_path, capsys,
                                                                        monkeypatch):
    """'plot map --n 50', 'zeroshot --limit 50' and 'embed --limit 50' over 8 pictures used the 8
    without a word."""
    photos, model = labelled_pictures
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))
    want = "note: {} 50 is more than the 8 rows of " + re.escape(f"{photos} (all)") + "; all 8 are used"
    for option, argv in (("--n", ["plot", "map", model, "--data", photos, "--method", "pca", "--out",
                                  tmp_path / "map.png"]),
                         ("--limit", ["zeroshot", model, "--data", photos, "--templates", "single", "--json"]),
                         ("--limit", ["embed", photos, "--tower", "cnn", "--tower-param", "image_size=8",
                                      "--out", tmp_path / "e.npy", "--quiet"])):
        code, out, err = run(capsys, *argv, option, "50")
        assert code == 0 and one_line(err), err
        assert re.fullmatch(want.format(option), err.strip()), err
        code, out, err = run(capsys, *argv, option, "8")
        assert code == 0 and err == "", err
    code, out, err = run(capsys, "plot", "map", model, "--data", photos, "--method", "pca", "--out", tmp_path / "m.png")
    assert code == 0 and err == "", err   # the default 500 is no request of the user's
