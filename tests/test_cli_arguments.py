"""Command-line arguments: one-line errors naming the option, options a model does not use,
paths that would destroy each other, and inputs that used to end in tracebacks."""

import json
import shutil
import socket

import numpy as np
import pytest

from cli_support import one_line, run
from jointspace.cli import main
from jointspace.cli._common import parse_params
from jointspace.data.manifest import parse_columns, read_manifest
from jointspace.errors import InputError
from jointspace.eval.zeroshot import resolve_templates


@pytest.fixture(scope="module")
def wiki(tmp_path_factory):
    """A CCA model of wikipedia and an index of its test images: (model_dir, index_dir)."""
    root = tmp_path_factory.mktemp("wiki")
    model, index = root / "cca", root / "idx"
    assert main(["fit", "wikipedia", "--model", "cca", "--out", str(model)]) == 0
    assert main(["index", str(model), "--dataset", "wikipedia", "--modality", "image", "--out", str(index)]) == 0
    return model, index


# -- 1. argparse errors ----------------------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (["fit", "wikipedia"], "jointspace fit: error: the following arguments are required: --out "
                           "(see jointspace fit --help)"),
    (["search", "idx", "--query-row", "abc"], "jointspace search: error: argument --query-row: invalid int"),
    (["search", "idx", "--query-row", "1", "--text", "a"], "not allowed with argument --query-row"),
    (["nonsense"], "jointspace: error: argument COMMAND: invalid choice"),
    (["eval", "m", "--dataset", "wikipedia", "--metric", "nope"], "(see jointspace eval --help)"),
])
def test_argparse_errors_are_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and needle in err and one_line(err) and "usage:" not in err and out == ""


# -- 2. --param values -----------------------------------------------------------------------


def test_param_json_objects_must_parse():
    assert parse_params(["reg=0.1", "preprocess=standard", 'tower_params={"image": {}}', "ks=[1, 2]"]) == {
        "reg": 0.1, "preprocess": "standard", "tower_params": {"image": {}}, "ks": [1, 2]}
    with pytest.raises(InputError, match=r"--param tower_params: expected valid JSON"):
        parse_params(['tower_params={"image":'])
    with pytest.raises(InputError, match=r"--param ks: expected valid JSON"):
        parse_params(["ks=[1,"])


@pytest.mark.parametrize("param, needle", [
    ("seed=abc", "--param seed: expected an integer, got 'abc'"),
    ('tower_params={"image":', "--param tower_params: expected valid JSON"),
    ('tower_params="x"', "--param tower_params: expected a mapping"),
    ("dim=1000000000", "--param dim: expected an integer <= 16384"),
    ("hidden=1000000000", "--param hidden: expected an integer <= 16384"),
    ("epochs=0", "--param epochs: expected an integer >= 1, got 0"),
    ("head=foo", "--param head: expected one of linear, mlp; got 'foo'"),
])
def test_bad_clip_params_exit_2(tmp_path, capsys, param, needle):
    epochs = [] if param.startswith("epochs=") else ["--epochs", "1"]
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "clip", *epochs, "--param", param, "--out", tmp_path / "c")
    assert code == 2 and err.startswith("error: " + needle) and one_line(err), err
    assert not (tmp_path / "c").exists()


def test_modalities_param_must_be_a_list_of_names(tmp_path, capsys):
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--param", "modalities=5",
                       "--out", tmp_path / "m")
    assert code == 2 and "--param modalities: expected a JSON list" in err and one_line(err)


# -- 3. options the model does not use ------------------------------------------------------


def test_training_options_are_refused_for_closed_form_models(tmp_path, capsys):
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--members", "-5", "--jobs", "3",
                       "--epochs", "3", "--batch-size", "7", "--resume", "/nonexistent", "--run-dir", "zz",
                       "--out", tmp_path / "m")
    assert code == 2 and one_line(err)
    for option in ("--epochs", "--batch-size", "--members", "--jobs", "--resume", "--run-dir"):
        assert option in err
    assert "model 'cca' does not use" in err and not (tmp_path / "m").exists()
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "sm", "--n-components", "3", "--out", tmp_path / "m")
    assert code == 2 and "--n-components" in err and one_line(err)


def test_n_components_sets_the_dimension_of_clip(tmp_path, capsys):
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "clip", "--n-components", "8", "--param", "dim=4",
                       "--out", tmp_path / "c")
    assert code == 2 and "--n-components" in err and "dim=4" in err and one_line(err)
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "clip", "--n-components", "4", "--epochs", "1",
                       "--batch-size", "256", "--out", tmp_path / "c")
    assert code == 0, err
    assert json.loads((tmp_path / "c" / "config.json").read_text())["params"]["dim"] == 4


# -- 4. --run-dir and --out ------------------------------------------------------------------


@pytest.mark.parametrize("extra, out, needle", [
    (["--run-dir", "c3"], "c3", "--run-dir: c3 is --out or inside it"),
    (["--run-dir", "c3/ckpt"], "c3", "--run-dir: c3/ckpt is --out or inside it"),
    (["--run-dir", "c3"], "c3/model", "--out: c3/model is inside the run folder"),
    (["--resume", "c3"], "c3", "--resume: c3 is --out or inside it"),
    (["--param", "run_dir=c3"], "c3", "--param run_dir: c3 is --out or inside it"),
])
def test_run_dir_and_out_must_not_nest(tmp_path, capsys, monkeypatch, extra, out, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "clip", "--epochs", "1", *extra, "--out", out)
    assert code == 2 and needle in err and one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_fit_refuses_an_unrelated_out_folder_before_training(tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("keep me")
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "clip", "--epochs", "1", "--out", notes)
    assert code == 2 and "--out" in err and "not a saved model" in err and one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]  # no run folder was started


def test_run_dir_must_be_new_empty_or_a_run_folder(tmp_path, capsys):
    from jointspace.models.base import create_model
    from jointspace.data.datasets import load_dataset
    from jointspace.train.checkpoint import is_run_dir

    model = tmp_path / "model"
    create_model("cca", n_components=2).fit(load_dataset("wikipedia", "train")).save(model)
    before = sorted(p.name for p in model.iterdir())
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "clip", "--epochs", "1", "--run-dir", model,
                       "--out", tmp_path / "new")
    assert code == 2 and "--run-dir" in err and "is not a saved run folder" in err and one_line(err)
    assert sorted(p.name for p in model.iterdir()) == before and not (tmp_path / "new").exists()
    # what training leaves in a run folder (also per ensemble member) may be reused
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("step,loss\n")
    (run_dir / "member0" / "tensorboard").mkdir(parents=True)
    assert is_run_dir(run_dir) and is_run_dir(run_dir / "member0")
    (run_dir / "member0" / "notes.txt").write_text("keep")
    assert not is_run_dir(run_dir) and not is_run_dir(model)


# -- 5. zero-shot templates ------------------------------------------------------------------


@pytest.mark.parametrize("templates", ["{}}", "{", "{0}", "{} and {}", "{:>9}"])
def test_zeroshot_templates_must_have_one_placeholder(tmp_path, capsys, templates):
    code, _, err = run(capsys, "zeroshot", tmp_path / "m", "--templates", templates)
    assert code == 2 and err.startswith("error: --templates:") and one_line(err)


def test_resolve_templates_accepts_escaped_braces():
    assert resolve_templates("a {{drawing}} of {}") == ("a {{drawing}} of {}",)
    with pytest.raises(InputError, match="--templates: template '{}}' is not a valid format string"):
        resolve_templates("{}}", "--templates")


# -- 6. dataset options ----------------------------------------------------------------------


def test_embed_refuses_unknown_dataset_options(tmp_path, capsys):
    code, _, err = run(capsys, "embed", "photos", "--tower", "minilm", "--split", "all", "--option", "foo=1",
                       "--out", tmp_path / "e.npy")
    assert code == 2 and "--option: dataset 'photos' accepts cache_dir; got foo" in err and one_line(err)
    code, _, err = run(capsys, "embed", "wikipedia", "--tower", "minilm", "--option", "foo=1",
                       "--out", tmp_path / "e.npy")
    assert code == 2 and "accepts no options" in err and one_line(err)


# -- 7. serve --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e-30"])   # 1e-30 MiB: a limit of 0 bytes
def test_serve_refuses_non_finite_upload_limits(tmp_path, capsys, value):
    code, out, err = run(capsys, "serve", "--index", tmp_path / "idx", "--max-upload-mb", value)
    assert code == 2 and "--max-upload-mb" in err and one_line(err) and "search page" not in out


def test_serve_on_a_busy_port_fails_before_announcing(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run(capsys, "serve", "--index", tmp_path / "idx", "--port", port)
    assert code == 2 and f"--port: {port} is already in use" in err and one_line(err)
    assert "search page" not in out
    code, out, err = run(capsys, "serve", "--index", tmp_path / "idx", "--host", "999.1.1.1")
    assert code == 2 and "--host: cannot resolve '999.1.1.1'" in err and one_line(err)
    assert "search page" not in out and "warning" not in out


def test_serve_checks_the_model_against_the_index_before_starting(tmp_path, capsys, wiki, monkeypatch):
    model, index = wiki
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("the server started"))
    other = tmp_path / "other"
    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "3", "--out", str(other)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "serve", "--index", index, "--model", other, "--port", "0")
    assert code == 2 and one_line(err) and "search page" not in out   # the error alone, as search says it
    assert "error: --index:" in err and "-d vectors but the model embeds into 3-d" in err
    copy, moved = tmp_path / "idx", tmp_path / "model"
    shutil.copytree(index, copy)
    shutil.copytree(model, moved)
    meta = json.loads((copy / "index.json").read_text())
    meta["info"]["model"] = str(moved)
    (copy / "index.json").write_text(json.dumps(meta))
    assert main(["fit", "wikipedia", "--model", "rcca", "--out", str(moved)]) == 0   # saved again
    capsys.readouterr()
    code, out, err = run(capsys, "serve", "--index", copy, "--port", "0")
    assert code == 2 and one_line(err) and "search page" not in out
    assert f"--model/--index: the model at {str(moved)!r} was saved again after this index was built" in err
    shutil.rmtree(moved)
    code, out, err = run(capsys, "serve", "--index", copy, "--port", "0")
    assert code == 2 and one_line(err) and "search page" not in out
    assert f"--index: the model index {str(copy)!r} was built with, {str(moved)!r}, is missing" in err
    assert "pass the model folder with --model RUN_DIR" in err


@pytest.mark.parametrize("extra, needle", [
    (["--port", "70000"], "--port: expected 0..65535, got 70000"),
    (["--out", "{tmp}/captions.csv"], "--out: expected a folder for the demo's models, index and galleries, got the "
                                      "file"),
    (["--out", "{tmp}/captions.csv/demo"], "is not a folder"),
    (["--out", "{tmp}/busy"], "openclipart-index exists and is a file"),
])
def test_demo_checks_its_options_before_any_work(tmp_path, capsys, monkeypatch, extra, needle):
    from jointspace.cli.commands import demo

    monkeypatch.setattr(demo, "wikipedia_table", lambda: pytest.fail("the demo started"))
    (tmp_path / "captions.csv").write_text("path,caption\n")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "openclipart-index").write_text("not an index")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, _, err = run(capsys, "demo", "--no-serve", *argv)
    assert code == 2 and needle in err and one_line(err), err


def test_a_demo_that_fails_removes_the_empty_out_folder_it_made(tmp_path, capsys, monkeypatch):
    from jointspace.cli.commands import demo
    from jointspace.errors import InputError

    def busy(*args):
        raise InputError("--port: 127.0.0.1:8000 is in use")

    monkeypatch.setattr("jointspace.cli.commands.serve._check_bindable", busy)
    code, _, err = run(capsys, "demo", "--out", tmp_path / "new" / "demo")
    assert code == 2 and "--port: 127.0.0.1:8000 is in use" in err
    assert not (tmp_path / "new" / "demo").exists()
    (tmp_path / "mine").mkdir()                     # a folder the user made stays
    code, _, err = run(capsys, "demo", "--out", tmp_path / "mine")
    assert code == 2 and (tmp_path / "mine").is_dir()
    monkeypatch.setattr(demo, "wikipedia_table", lambda: (tmp_path / "new" / "demo" / "table.txt").write_text("x"))
    monkeypatch.setattr(demo, "openclipart_space", lambda out: (_ for _ in ()).throw(InputError("openclipart: gone")))
    code, _, err = run(capsys, "demo", "--no-serve", "--out", tmp_path / "new" / "demo")
    assert code == 2 and (tmp_path / "new" / "demo" / "table.txt").exists()   # what it wrote is kept


def test_a_demo_that_fails_also_removes_the_parent_folders_it_made(tmp_path, capsys, monkeypatch):
    from jointspace.errors import InputError

    def busy(*args):
        raise InputError("--port: 127.0.0.1:8000 is in use")

    monkeypatch.setattr("jointspace.cli.commands.serve._check_bindable", busy)
    (tmp_path / "kept").mkdir()
    code, _, err = run(capsys, "demo", "--out", tmp_path / "kept" / "a" / "b" / "demo")
    assert code == 2 and "--port: 127.0.0.1:8000 is in use" in err
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any((tmp_path / "kept").iterdir())


def test_demo_port_0_serves_on_a_free_port_and_announces_that_one(tmp_path, capsys, monkeypatch):
    from jointspace.cli.commands import demo

    class Installed:
        def missing(self):
            return None

    served = []
    monkeypatch.setattr(demo, "wikipedia_table", lambda: None)
    monkeypatch.setattr("jointspace.data.datasets.get_dataset", lambda name: Installed())
    monkeypatch.setattr(demo, "openclipart_space", lambda out: (out / "model", out / "index"))
    monkeypatch.setattr(demo, "searches", lambda model_dir, index_dir, out: None)
    monkeypatch.setattr(demo, "plots", lambda model_dir, out: out / "plots")
    monkeypatch.setattr("jointspace.server.app.create_app", lambda *args, **kwargs: "app")
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.append(kw))
    code, out, err = run(capsys, "demo", "--port", "0", "--out", tmp_path / "demo")
    port = served[0]["port"]
    assert code == 0 and 1024 <= port <= 65535, err
    assert f"search page: http://127.0.0.1:{port}/  (API docs: http://127.0.0.1:{port}/docs)" in out


# -- 8. messages that named the wrong thing --------------------------------------------------


@pytest.mark.parametrize("towers", ["nosuch,minilm", "image=,minilm"])
def test_an_unknown_tower_of_fit_names_towers(tmp_path, capsys, towers):
    code, _, err = run(capsys, "fit", "photos", "--towers", towers, "--out", tmp_path / "m")
    bad = towers.split(",")[0]
    assert code == 2 and one_line(err) and err.startswith(f"error: --towers: unknown tower {bad!r}"), err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_tower_name_names_the_option(tmp_path, capsys, name):
    code, _, err = run(capsys, "embed", "digits", "--tower", name, "--limit", "2", "--out", tmp_path / "e.npy")
    assert code == 2 and one_line(err) and err.startswith(f"error: --tower: unknown tower {name!r}"), err
    assert not (tmp_path / "e.npy").exists()


def test_embed_text_tower_on_feature_vectors(tmp_path, capsys):
    code, _, err = run(capsys, "embed", "wikipedia", "--tower", "minilm", "--out", tmp_path / "e.npy")
    assert code == 2 and "text items must be strings" in err and "99 axes" not in err and one_line(err)


def test_search_messages(tmp_path, capsys, wiki):
    model, index = wiki
    code, _, err = run(capsys, "search", index, "--image", tmp_path)
    assert code == 2 and "--image: expected an image file, got the folder" in err and one_line(err)
    code, _, err = run(capsys, "search", index, "--text", "a red car")
    assert code == 2 and "--text: this model has no text tower" in err and "dtype" not in err and one_line(err)
    code, _, err = run(capsys, "search", index, "--audio", tmp_path / "q.wav")
    assert code == 2 and "--audio: this model has no audio modality (it knows image, text); use --query-row" in err
    code, _, err = run(capsys, "plot", "gallery", index, "--text", "a red car", "--out", tmp_path / "g.png")
    assert code == 2 and "--text: this model has no text tower" in err and "--query-row" not in err


def test_search_with_another_model_warns_once(tmp_path, capsys, wiki):
    model, index = wiki
    code, _, err = run(capsys, "search", index, "--model", model, "--query-row", "1", "-k", "2")
    assert code == 0 and "warning" not in err
    other = tmp_path / "other"
    shutil.copytree(model, other)
    code, out, err = run(capsys, "search", index, "--model", other, "--query-row", "1", "-k", "2", "--json")
    assert code == 0 and json.loads(out)["results"]
    assert "warning: --model" in err and "not the model this index was built with" in err and one_line(err)


def test_zeroshot_text_modality_must_be_a_text_modality(capsys, wiki):
    model, _ = wiki
    code, _, err = run(capsys, "zeroshot", model, "--text-modality", "image")
    assert code == 2 and "--text-modality: 'image' is not a text modality of this model" in err
    assert "does not exist" not in err and one_line(err)


@pytest.mark.parametrize("extra, needle", [
    (["--csls", "0"], "--csls: expected an integer >= 1"),
    (["--csls", "100000"], "--csls: expected K <= "),
    (["--csls", "3", "--bank-split", "nope"], "--bank-split: dataset 'wikipedia' has splits"),
    (["--bank-split", "train"], "--bank-split: only used with --csls"),
])
def test_eval_names_its_options(capsys, wiki, extra, needle):
    model, _ = wiki
    code, _, err = run(capsys, "eval", model, "--dataset", "wikipedia", *extra)
    assert code == 2 and needle in err and one_line(err)


# -- 9. manifests ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, body, shown", [
    (".csv", "text,label\nhello,cat\nworld,nan\n", "'nan'"),
    (".csv", "text,label\nhello,cat\nworld,N/A\n", "'N/A'"),
    (".jsonl", '{"text": "hello", "label": "cat"}\n{"text": "world", "label": NaN}\n', "nan"),
])
def test_manifest_refuses_missing_labels(tmp_path, suffix, body, shown):
    path = tmp_path / f"m{suffix}"
    path.write_text(body)
    row = 3 if suffix == ".csv" else 2
    with pytest.raises(InputError, match=rf"row {row} has no value in column 'label' \({shown} marks"):
        read_manifest(path)


def test_manifest_keeps_real_labels(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("text,label\nhello,cat\nworld,dog\n")
    pairs = read_manifest(path)
    assert pairs.label_names == ["cat", "dog"] and np.asarray(pairs.labels).tolist() == [0, 1]


def test_column_spec_names_each_modality_once():
    assert parse_columns("text=a,label") == {"text": "a", "label": "label"}
    with pytest.raises(InputError, match=r"columns: 'text' is given twice in 'text=a,text=b'"):
        parse_columns("text=a,text=b")


def test_a_library_message_names_the_option_that_gave_the_value():
    from argparse import Namespace

    from jointspace.cli import name_the_option

    args = Namespace(epochs=0, k=10, model=None, option_names={"epochs": "--epochs", "k": "-k", "model": "MODEL"})
    assert name_the_option("epochs: expected an integer >= 1, got 0", args) == \
        "--epochs: expected an integer >= 1, got 0"
    # the value came from elsewhere (k from --rerank; a model the index records): left as it is
    assert name_the_option("k: expected at most 10000, got 99", args) == "k: expected at most 10000, got 99"
    assert name_the_option("k: expected at most 10000, got 100", args) == "k: expected at most 10000, got 100"
    assert name_the_option("model: expected a saved model folder, got '/m'", args).startswith("model:")
    assert name_the_option("epochs: too few", args) == "epochs: too few"
    # a text given to the option, quoted in the message
    args = Namespace(tower="nosuch", model=None, option_names={"tower": "--tower", "model": "--model"})
    assert name_the_option("tower: unknown tower 'nosuch'; known: minilm", args) == \
        "--tower: unknown tower 'nosuch'; known: minilm"
    assert name_the_option("tower: unknown tower 'other'", args) == "tower: unknown tower 'other'"


@pytest.mark.parametrize("command", [["search"], ["plot", "gallery"]])
def test_an_index_folder_that_is_not_an_index_is_named_index(tmp_path, capsys, command):
    (tmp_path / "plain").mkdir()
    tail = ["--text", "a cat"] + (["--out", tmp_path / "g.png"] if command[0] == "plot" else [])
    code, out, err = run(capsys, *command, tmp_path / "missing", *tail)
    assert code == 2 and one_line(err) and out == ""
    assert err.startswith(f"error: INDEX: index folder '{tmp_path / 'missing'}' does not exist")
    code, _, err = run(capsys, *command, tmp_path / "plain", *tail)
    assert code == 2 and one_line(err)
    assert err.startswith(f"error: INDEX: '{tmp_path / 'plain'}' is not a jointspace index (no index.json")


def test_eval_csls_says_when_the_bank_split_it_lacks_is_the_default(tmp_path, capsys):
    code, out, err = run(capsys, "eval", tmp_path / "m", "--data", "photos", "--csls", "3")
    assert code == 2 and one_line(err) and out == ""
    assert err.strip() == ("error: --bank-split: dataset 'photos' has splits all; got 'train' (the default of --csls; "
                           "give another)")
    code, _, err = run(capsys, "eval", tmp_path / "m", "--data", "photos", "--csls", "3", "--bank-split", "val")
    assert code == 2 and err.strip() == "error: --bank-split: dataset 'photos' has splits all; got 'val'"


def test_plot_curves_of_a_model_without_a_run_says_so(tmp_path, capsys):
    from jointspace import Pairs, create_model

    rng = np.random.default_rng(0)
    create_model("cca", n_components=2).fit(Pairs({"image": rng.normal(size=(20, 4)),
                                                   "text": rng.normal(size=(20, 3))})).save(tmp_path / "m")
    code, out, err = run(capsys, "plot", "curves", tmp_path / "m", "--out", tmp_path / "c.png")
    assert code == 2 and one_line(err) and out == "" and not (tmp_path / "c.png").exists()
    assert err.startswith(f"error: RUN: '{tmp_path / 'm'}' is a saved model without training curves beside it "
                          f"(no '{tmp_path / 'm.train' / 'metrics.csv'}')"), err


def test_plot_gallery_k_is_bounded_by_the_pixels_image_readers_open(tmp_path, capsys):
    from PIL import Image

    from jointspace.viz.gallery import gallery_size, max_gallery_results

    most = max_gallery_results(5)
    width, height = gallery_size(most, 5)
    assert width * height <= Image.MAX_IMAGE_PIXELS < width * (height + 160 + 54 + 8)   # one more row is over
    code, out, err = run(capsys, "plot", "gallery", tmp_path / "idx", "--text", "a cat", "-k", "100000",
                         "--out", tmp_path / "g.png")
    assert code == 2 and one_line(err) and out == ""
    assert err.strip() == (f"error: -k: expected at most {most:,} results in 5 columns (a bigger gallery is over the "
                           "pixels image readers open), got 100,000")
    assert not (tmp_path / "g.png").exists()


def test_a_manifest_column_not_found_names_the_columns_option(tmp_path, capsys):
    """The message began 'columns:', a parameter the command does not have."""
    (tmp_path / "m.csv").write_text("path,caption\na.png,a cat\n", encoding="utf-8")
    code, _, err = run(capsys, "embed", tmp_path / "m.csv", "--tower", "minilm", "--columns", "text=words",
                       "--out", tmp_path / "x.npy")
    assert code == 2 and one_line(err)
    assert err.startswith("error: --columns: text=words not found in manifest ") and "got 'text=words'" in err


def test_a_failed_demo_keeps_an_empty_folder_it_reached_through_a_missing_one(tmp_path, capsys, monkeypatch):
    from jointspace.errors import InputError

    def busy(*args):
        raise InputError("--port: 127.0.0.1:8000 is in use")

    monkeypatch.setattr("jointspace.cli.commands.serve._check_bindable", busy)
    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "demo", "--out", "missing/../mine")   # 'mine', the user's, through a missing folder
    assert code == 2 and (tmp_path / "mine").is_dir()


def test_resume_and_run_dir_help_name_every_trained_model():
    # beta-vae trains with checkpoints and resumes, yet the help listed clip, ae, aae and mvae-* only
    from fnmatch import fnmatch

    from jointspace import list_models
    from jointspace.cli import build_parser
    from jointspace.cli.commands.fit import _is_generative

    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    trained = [m for m in list_models() if m == "clip" or _is_generative(m)]
    for option in ("--resume", "--run-dir"):
        help_text = next(a.help for a in fit._actions if option in a.option_strings)
        listed = help_text.split("(", 1)[1].split(")", 1)[0].split(", ")
        assert all(any(fnmatch(m, pattern) for pattern in listed) for m in trained), (option, trained, listed)
