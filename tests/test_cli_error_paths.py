"""Error paths of the subcommands as a user meets them: options that would choose nothing,
damaged saved folders named by the argument that passed them, and interrupted runs."""

import os
import shutil

import numpy as np
import pytest

from cli_support import one_line, run
from jointspace.cli import main


@pytest.fixture(scope="module")
def wiki(tmp_path_factory):
    """A CCA model of wikipedia and an index of its test images: (model_dir, index_dir)."""
    root = tmp_path_factory.mktemp("wiki")
    model, index = root / "cca", root / "idx"
    assert main(["fit", "wikipedia", "--model", "cca", "--param", "n_components=5", "--out", str(model)]) == 0
    assert main(["index", str(model), "--dataset", "wikipedia", "--modality", "image", "--out", str(index)]) == 0
    return model, index


@pytest.fixture
def split_manifest(tmp_path):
    """A manifest of captions whose column ``split`` names each row's split."""
    path = tmp_path / "captions.csv"
    path.write_text("text,label,split\na red car,car,train\na blue car,car,train\n"
                    "a green tree,tree,test\na tall tree,tree,test\n", encoding="utf-8")
    return path


def test_val_fraction_that_would_hold_out_nothing_is_refused(tmp_path, capsys, split_manifest):
    """A built-in dataset has fixed splits and a split column names every row's: --val-fraction
    there would be ignored without a word."""
    code, _, err = run(capsys, "eval", tmp_path / "nomodel", "--data", "wikipedia", "--val-fraction", "0.3")
    assert code == 2 and one_line(err), err
    assert "--val-fraction: 'wikipedia' is a built-in dataset with fixed splits" in err, err
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--val-fraction", "0.3", "--out", tmp_path / "m")
    assert code == 2 and one_line(err) and "--val-fraction: 'wikipedia' is a built-in dataset" in err, err
    assert not (tmp_path / "m").exists()
    code, _, err = run(capsys, "eval", tmp_path / "nomodel", "--data", split_manifest, "--split-column", "split",
                       "--val-fraction", "0.3")
    assert code == 2 and one_line(err), err
    assert "--val-fraction: the split column already decides every row's split" in err, err


def test_append_to_a_damaged_index_names_the_index_argument(tmp_path, capsys, wiki):
    """With --append the positional argument is the index folder: its messages name MODEL, as
    every other message about that argument does, not the library's parameter ``folder``."""
    _, index = wiki
    damaged = tmp_path / "idx"
    shutil.copytree(index, damaged)
    with open(damaged / "index.faiss", "r+b") as f:
        f.truncate(50)
    for folder, needle in ((damaged, "index.faiss in"), (tmp_path / "nothing", "does not exist")):
        code, _, err = run(capsys, "index", folder, "--append", "--data", "wikipedia", "--modality", "image",
                           "--split", "train")
        assert code == 2 and one_line(err), err
        assert err.startswith("error: MODEL: ") and needle in err, err


def test_serve_with_a_damaged_model_says_only_that(tmp_path, capsys, wiki, monkeypatch):
    """A --model that cannot be loaded is the one line on stderr: no warning that it is not the
    index's model before it."""
    _, index = wiki
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("the server started"))
    damaged = tmp_path / "model"
    shutil.copytree(wiki[0], damaged)
    with open(damaged / "state.safetensors", "r+b") as f:
        f.truncate(100)
    code, out, err = run(capsys, "serve", "--index", index, "--model", damaged, "--port", "0")
    assert code == 2 and one_line(err) and "search page" not in out, err
    assert "error: --model: " in err and "truncated" in err, err


@pytest.mark.parametrize("argv, name", [
    (["eval", "{model}", "--data", "wikipedia"], "MODEL"),
    (["index", "{model}", "--data", "wikipedia", "--modality", "image", "--out", "{tmp}/idx"], "MODEL"),
    (["zeroshot", "{model}", "--data", "wikipedia"], "MODEL"),
    (["plot", "map", "{model}", "--data", "wikipedia", "--out", "{tmp}/map.png"], "MODEL"),
    (["fit-matcher", "openclipart", "--model", "{model}", "--out", "{tmp}/matcher"], "--model"),
])
def test_a_truncated_model_is_named_by_the_argument_that_gave_it(tmp_path, capsys, wiki, argv, name):
    """Whatever is wrong inside a saved model folder, the message names the argument as the
    command calls it (MODEL, --model), as it does for a folder that is missing."""
    damaged = tmp_path / "model"
    shutil.copytree(wiki[0], damaged)
    with open(damaged / "state.safetensors", "r+b") as f:
        f.truncate(100)
    code, _, err = run(capsys, *[a.format(model=damaged, tmp=tmp_path) for a in argv])
    assert code == 2 and one_line(err), err
    assert err.startswith(f"error: {name}: ") and "state.safetensors is unreadable or truncated" in err, err


def test_plot_gallery_with_another_model_that_cannot_take_the_query_says_only_that(tmp_path, capsys, wiki):
    """The warning that --model is not the index's model comes once the gallery is written, as
    search gives it: a refused query is the one line on stderr."""
    _, index = wiki
    other = tmp_path / "other"
    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "3", "--out", str(other)]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "plot", "gallery", index, "--model", other, "--text", "a castle",
                       "--out", tmp_path / "g.png")
    assert code == 2 and one_line(err), err
    assert "error: --text: this model has no text tower" in err and "warning" not in err, err
    assert not (tmp_path / "g.png").exists()


def test_eval_that_fails_after_reading_its_data_says_only_the_error(tmp_path, capsys):
    """Arrays whose labels are mostly one class draw a warning from eval; an option refused
    later (--hubness K above the items, --csls with --metric dot) is then the one line alone."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    np.savez(tmp_path / "a.npz", X=x, Y=x[:, :4] + 0.1 * rng.normal(size=(40, 4)), L=(np.arange(40) >= 35).astype(int))
    data = ["--data", tmp_path / "a.npz", "--modality", "image=X", "--modality", "text=Y", "--labels", "L"]
    assert main(["fit", *map(str, data[1:]), "--model", "cca", "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "eval", tmp_path / "m", *data)
    assert code == 0 and "warning: 35 of 40 items share the relevance key" in err, err
    for extra, needle in ((["--hubness", "1000"], "--hubness: expected K <= 40"),
                          (["--csls", "3", "--metric", "dot"], "--csls: ranks by cosine similarity")):
        code, _, err = run(capsys, "eval", tmp_path / "m", *data, *extra)
        assert code == 2 and one_line(err) and needle in err, err


def test_complex_arrays_are_refused_not_cast(tmp_path, capsys):
    """Casting complex features to float would drop their imaginary parts with no more than a
    numpy warning; the reader refuses them, naming the array."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    np.savez(tmp_path / "a.npz", X=x, Y=x[:, :3], Z=x[:, :3] * (1 + 1j))
    assert main(["fit", str(tmp_path / "a.npz"), "--modality", "image=X", "--modality", "text=Y", "--model", "cca",
                 "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "eval", tmp_path / "m", "--data", tmp_path / "a.npz", "--modality", "image=X",
                       "--modality", "text=Z")
    assert code == 2 and one_line(err), err
    assert "text=Z" in err and "expected real numbers" in err and "array 'Z', got dtype complex128" in err, err


@pytest.mark.parametrize("model, most", [("clip", 16384), ("ae", 4096)])
def test_n_components_out_of_a_models_range_names_the_option(tmp_path, capsys, model, most):
    """--n-components sets clip's dim and an autoencoder's latent_dim: the model's refusal names
    --n-components, the option given, not the parameter it set."""
    code, _, err = run(capsys, "fit", "wikipedia", "--model", model, "--epochs", "1", "--n-components", "1000000000",
                       "--out", tmp_path / "m")
    assert code == 2 and one_line(err), err
    assert f"error: --n-components: expected an integer <= {most}, got 1000000000" in err, err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("extra", [[], ["--param", "n_components=2"], ["--param", "n_components=2", "--epochs", "1"]],
                         ids=["cca-chosen-by-cv", "cca", "dcca"])
def test_a_cca_model_on_three_modalities_says_how_to_name_two_on_the_command_line(tmp_path, capsys, extra):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "three.npz", A=rng.normal(size=(40, 4)), B=rng.normal(size=(40, 3)), C=rng.normal(size=(40, 2)))
    data = [tmp_path / "three.npz", "--modality", "a=A", "--modality", "b=B", "--modality", "c=C"]
    model = "dcca" if "--epochs" in extra else "cca"
    code, _, err = run(capsys, "fit", *data, "--model", model, *extra, "--out", tmp_path / "m")
    assert code == 2 and one_line(err), err
    assert err.startswith("error: --param modalities: these pairs have 3 modalities (a, b, c); name the two to use, "
                          """e.g. --param 'modalities=["a", "b"]'"""), err
    # the example, as shown, is what --param takes
    code, _, err = run(capsys, "fit", *data, "--model", model, *extra, "--param", 'modalities=["a", "b"]',
                       "--out", tmp_path / "m")
    assert code == 0, err


def test_an_arrays_file_problem_names_the_option_that_chose_the_array(tmp_path, capsys):
    """The reader's messages about one array name it as it was given: --modality NAME=KEY or
    --labels KEY, without the reader's own parameter names (key:, path:)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    np.savez(tmp_path / "a.npz", X=x, Y=x[:, :3], S=np.array(["a"] * 30), H=np.full((30, 2), 0.5))
    data = ["--data", tmp_path / "a.npz", "--modality", "image=X"]
    for extra, needle in ((["--modality", "text=nope"], "error: --modality text=nope: expected one of H, S, X, Y in"),
                          (["--modality", "text=S"], "error: --modality text=S: expected numeric data in"),
                          (["--modality", "text=Y", "--labels", "nope"], "error: --labels nope: expected one of H, S,"),
                          (["--modality", "text=Y", "--labels", "H"], "error: --labels H: a 2-D numeric array is read")):
        code, _, err = run(capsys, "eval", tmp_path / "nomodel", *data, *extra)
        assert code == 2 and one_line(err), err
        assert err.startswith(needle) and "key:" not in err and "path:" not in err, err


@pytest.mark.parametrize("which, kind", [(0, "model"), (1, "index")])
def test_demo_refuses_to_fill_a_saved_model_or_index_folder(tmp_path, capsys, monkeypatch, wiki, which, kind):
    """The demo's model, index, galleries and plots/ would land inside the artefact (an index's
    plots/ is what the search page shows about that index); an empty folder is still fine."""
    from jointspace.cli.commands import demo

    monkeypatch.setattr(demo, "wikipedia_table", lambda: pytest.fail("the demo started"))
    folder = tmp_path / kind
    shutil.copytree(wiki[which], folder)
    before = sorted(p.name for p in folder.iterdir())
    code, _, err = run(capsys, "demo", "--no-serve", "--out", folder)
    assert code == 2 and one_line(err), err
    assert f"--out: {str(folder)!r} is a saved {kind}; expected a new or empty folder" in err, err
    assert sorted(p.name for p in folder.iterdir()) == before
    (tmp_path / "empty").mkdir()
    assert demo.check_out(tmp_path / "empty") == tmp_path / "empty"


def test_bench_figures_that_cannot_be_written_are_refused_before_the_suite_runs(tmp_path, capsys, monkeypatch):
    """The figures are drawn minutes into a suite; a --figures folder that cannot be made (under
    a file) or written in (/proc) is refused first."""
    from jointspace.cli.commands import bench

    monkeypatch.setattr(bench, "run_with_progress", lambda *a, **k: pytest.fail("the suite started"))
    (tmp_path / "notes.txt").write_text("mine")
    folders = [(tmp_path / "notes.txt" / "figs", "is not a folder")]
    if os.path.isdir("/proc/self"):   # Linux's read-only /proc, which says yes to os.access for root
        folders.append(("/proc/jointspace-figures", "--figures: cannot write in '/proc'"))
    for folder, needle in folders:
        code, _, err = run(capsys, "bench", "generative", "--quick", "--figures", folder)
        assert code == 2 and one_line(err) and err.startswith("error: --figures: ") and needle in err, err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_manifest_that_lists_missing_files_is_named_by_the_data_argument(tmp_path, capsys):
    """The manifest's own problems (files it lists that are gone, repeated ids) name the argument
    that gave it, as its other problems (empty, not UTF-8) do."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,caption\nnope.png,a cat\n", encoding="utf-8")
    for argv, name in ((["embed", manifest, "--tower", "efficientnet-lite0", "--out", tmp_path / "e.npy"], "DATA"),
                       (["eval", tmp_path / "nomodel", "--data", manifest], "--data")):
        code, _, err = run(capsys, *argv)
        assert code == 2 and one_line(err), err
        assert err.startswith(f"error: {name}: manifest ") and "1 of 1 image files do not exist" in err, err


def test_a_picture_of_the_data_that_cannot_be_read_is_named_by_the_data_argument(tmp_path, capsys):
    """The tower counts items within its batch (``items[0]``), which is no row of the folder: the
    message names the folder's argument and the file."""
    from PIL import Image

    folder = tmp_path / "pics"
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    code, _, err = run(capsys, "embed", folder, "--tower", "efficientnet-lite0", "--no-cache", "--quiet",
                       "--out", tmp_path / "e.npy")
    assert code == 2 and one_line(err), err
    assert err.startswith(f"error: DATA {folder}: {str(folder / 'b.png')!r}: cannot read the image"), err
    assert "items[" not in err and not (tmp_path / "e.npy").exists()


def test_an_index_that_recorded_a_val_fraction_beside_a_split_column_is_read_as_it_was(tmp_path, capsys,
                                                                                        monkeypatch):
    """Indexes built before the two options were refused together recorded both; the fraction
    had no effect then, so search --query-row reads the rows by the split column alone."""
    import json

    from jointspace.cli.commands import search
    from jointspace.errors import InputError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    np.savez(tmp_path / "a.npz", X=x, Y=x[:, :3])
    arrays = ["--modality", "image=X", "--modality", "text=Y"]
    assert main(["fit", str(tmp_path / "a.npz"), *arrays, "--model", "cca", "--out", str(tmp_path / "m")]) == 0
    assert main(["index", str(tmp_path / "m"), "--data", str(tmp_path / "a.npz"), *arrays, "--modality", "image",
                 "--out", str(tmp_path / "idx")]) == 0
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    meta["info"]["data_options"].update(split_column="part", val_fraction=0.3)
    (tmp_path / "idx" / "index.json").write_text(json.dumps(meta))
    read = []

    def load_split(dataset, split, args):
        read.append(vars(args))
        raise InputError("read")

    monkeypatch.setattr(search, "load_split", load_split)
    capsys.readouterr()
    code, _, err = run(capsys, "search", tmp_path / "idx", "--query-row", "0")
    assert code == 2 and "read" in err, err
    assert read[0]["split_column"] == "part" and "val_fraction" not in read[0], read


def test_an_error_raised_by_an_interrupt_is_reported_as_the_interrupt(tmp_path, capsys, monkeypatch):
    """Ctrl-C in the middle of an import leaves a half-imported package that the clean-up then
    reads as missing: that error comes from the interrupt, so the exit is 130, one line."""
    from jointspace.cli.commands import cache as cache_cmd
    from jointspace.errors import InputError, MissingDependencyError

    def interrupted(error):
        def handler(args):
            try:
                raise KeyboardInterrupt
            finally:
                raise error
        return handler

    for error in (MissingDependencyError("runtime 'onnx' needs ONNX Runtime"), InputError("items: cut short"),
                  OSError("read cut short")):
        monkeypatch.setattr(cache_cmd, "run_info", interrupted(error))
        code, _, err = run(capsys, "cache", "info", "--cache-dir", tmp_path)
        assert code == 130 and err.strip() == "error: interrupted", err
    # the same errors without an interrupt are reported as themselves
    monkeypatch.setattr(cache_cmd, "run_info", lambda args: (_ for _ in ()).throw(MissingDependencyError("no x")))
    code, _, err = run(capsys, "cache", "info", "--cache-dir", tmp_path)
    assert code == 1 and "error: no x" in err, err


def test_an_interrupt_before_the_command_starts_exits_130_in_one_line(capsys, monkeypatch):
    import jointspace.cli as cli

    def build_parser():
        raise KeyboardInterrupt   # Ctrl-C while the commands' modules load

    monkeypatch.setattr(cli, "build_parser", build_parser)
    with pytest.raises(SystemExit) as exit_:
        cli.run()
    assert exit_.value.code == 130 and capsys.readouterr().err.strip() == "error: interrupted"


def test_an_interrupt_a_library_swallowed_is_still_reported_as_the_interrupt(tmp_path, capsys, monkeypatch):
    """numpy's C import prints a KeyboardInterrupt and raises ImportError without it: the error
    that follows (a package read as missing) is reported as the interrupt it comes from."""
    import signal
    import time

    from jointspace.cli.commands import cache as cache_cmd
    from jointspace.errors import MissingDependencyError

    def handler(args):
        try:
            signal.raise_signal(signal.SIGINT)   # Ctrl-C, caught and dropped as a C import does
            time.sleep(5)   # not reached: the handler raises KeyboardInterrupt in raise_signal
        except KeyboardInterrupt:
            pass
        raise MissingDependencyError("runtime 'onnx' needs ONNX Runtime")

    monkeypatch.setattr(cache_cmd, "run_info", handler)
    # as from a terminal: a suite started in the background inherits Ctrl-C ignored, and the
    # command then rightly leaves it ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code, _, err = run(capsys, "cache", "info", "--cache-dir", tmp_path)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # put back after the command
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130 and err.strip() == "error: interrupted", err


@pytest.mark.parametrize("model", ["clip", "ae"])
def test_a_learning_rate_that_overflows_the_optimiser_is_refused_in_one_line(tmp_path, capsys, model):
    """lr=1e300 overflowed float32 in Adam's step: torch's RuntimeError traceback, after setup."""
    code, _, err = run(capsys, "fit", "digits", "--model", model, "--param", "lr=1e300", "--param", "epochs=1",
                       "--out", tmp_path / "m")
    assert code != 0 and one_line(err), err
    assert "lr: expected a learning rate <= 1e+30, got 1e+300" in err, err
    assert not (tmp_path / "m").exists()
