"""The command line end to end: exit codes, one-line errors, JSON output."""

import json

import numpy as np
import pytest

from cli_support import one_line, run
from jointspace.cli import main


def test_help_and_no_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "fit" in out and "bench" in out
    code, out, _ = run(capsys)
    assert code == 2


def test_datasets_lists_wikipedia(capsys):
    code, out, _ = run(capsys, "datasets", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["datasets"]}
    assert rows["wikipedia"]["available"] is True
    assert rows["wikipedia"]["modalities"] == ["image", "text"]


def test_fit_eval_round_trip(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "fit", "wikipedia", "--model", "rcca", "--param", "reg=0.5",
                         "--param", "preprocess=standard", "--param", "weight=1", "--n-components", "9",
                         "--out", str(out_dir))
    assert code == 0, err
    assert (out_dir / "config.json").is_file() and (out_dir / "state.safetensors").is_file()
    code, out, err = run(capsys, "eval", str(out_dir), "--dataset", "wikipedia", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["dataset"] == "wikipedia" and report["split"] == "test"
    row = report["rows"][0]
    assert row["image->text/mAP"] > 0.25 and row["text->image/mAP"] > 0.2
    for key in ("R@1", "R@5", "R@10", "MRR", "medR", "nDCG@10"):
        assert f"image->text/{key}" in row and f"text->image/{key}" in row
    # the table form prints both directions
    code, out, _ = run(capsys, "eval", str(out_dir), "--dataset", "wikipedia")
    assert code == 0 and "image->text" in out and "text->image" in out


@pytest.mark.parametrize("argv, code, needle", [
    (["fit", "nope", "--out", "x"], 2, "DATA: unknown dataset 'nope'"),     # positional: as --help names it
    (["eval", "m", "--data", "nope"], 2, "--data: unknown dataset 'nope'"),
    (["fit", "wikipedia", "--model", "nope", "--out", "x"], 2, "model: unknown model 'nope'"),
    (["fit", "wikipedia", "--n-components", "50", "--out", "x"], 2, "--n-components: expected at most"),
    (["fit", "wikipedia", "--param", "reg", "--out", "x"], 2, "KEY=VALUE"),
    (["eval", "does/not/exist", "--dataset", "wikipedia"], 2, "not a folder"),
    (["bench", "nope"], 2, "unknown suite"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, code, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got, out, err = run(capsys, *argv)
    assert got == code
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["search", "idx", "--text", "caf\udce9 au lait"],
                                  ["plot", "gallery", "idx", "--text", "\udcff", "--out", "g.png"],
                                  ["explain", "m", "--text", "a \udcff", "--image", "x.png", "--out", "a.png"]])
def test_query_text_that_is_not_utf8_is_one_line(capsys, argv):
    # a shell passes bytes; Python reads the ones that are not UTF-8 as lone surrogates
    code, _, err = run(capsys, *argv)
    assert code == 2 and one_line(err) and "--text: expected UTF-8 text, got b'" in err and "(not valid UTF-8)" in err


def test_failed_fit_keeps_existing_model(tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert run(capsys, "fit", "wikipedia", "--n-components", "5", "--out", str(out_dir))[0] == 0
    before = (out_dir / "state.safetensors").read_bytes()
    code, _, _ = run(capsys, "fit", "wikipedia", "--n-components", "50", "--out", str(out_dir))
    assert code == 2
    assert (out_dir / "state.safetensors").read_bytes() == before


def test_bench_wikipedia_reaches_the_papers_correlation_matching(capsys, tmp_path):
    """The best unsupervised row reaches the paper's CM (0.249 / 0.196); settings from train-split CV."""
    out_file = tmp_path / "wiki.json"
    code, out, err = run(capsys, "bench", "wikipedia", "--quick", "--json", "--out", str(out_file))
    assert code == 0, err
    report = json.loads(out)
    assert json.loads(out_file.read_text()) == report
    rows = {r["method"]: r for r in report["rows"]}
    assert abs(rows["random"]["image->text/mAP"] - 0.118) < 0.02
    unsupervised = ("CCA", "regularised CCA", "PLS", "kernel CCA")
    best = max((rows[m] for m in unsupervised), key=lambda r: r["image->text/mAP"] + r["text->image/mAP"])
    assert best["image->text/mAP"] >= 0.249 and best["text->image/mAP"] >= 0.196
    # semantic correlation matching reaches the paper's SCM (0.277 / 0.226)
    scm = max((r for m, r in rows.items() if m.startswith("SCM")), key=lambda r: r["image->text/mAP"])
    assert scm["image->text/mAP"] >= 0.277 and scm["text->image/mAP"] >= 0.226
    assert np.isfinite([rows[m]["text->image/mAP"] for m in rows]).all()


@pytest.fixture
def wiki_run(tmp_path_factory):
    """A fitted Wikipedia CCA run folder (shared by the index/search tests)."""
    out = tmp_path_factory.mktemp("wiki") / "run"
    assert main(["fit", "wikipedia", "--model", "rcca", "--param", "reg=0.5", "--param", "preprocess=standard",
                 "--n-components", "9", "--out", str(out)]) == 0
    return out


def test_index_and_search(tmp_path, capsys, wiki_run):
    idx = tmp_path / "idx"
    code, out, err = run(capsys, "index", str(wiki_run), "--dataset", "wikipedia", "--modality", "image",
                         "--spec", "HNSW32", "--out", str(idx))
    assert code == 0, err
    assert "693" in out and (idx / "index.json").is_file()
    code, out, err = run(capsys, "search", str(idx), "--modality", "text", "--query-row", "17", "-k", "10",
                         "--json")
    assert code == 0, err
    res = json.loads(out)
    assert len(res["results"]) == 10 and [r["rank"] for r in res["results"]] == list(range(1, 11))
    scores = [r["score"] for r in res["results"]]
    assert scores == sorted(scores, reverse=True)
    # the same top-10 as a brute-force cosine search with the model itself
    from jointspace import load_dataset, load_model

    model, test = load_model(wiki_run), load_dataset("wikipedia", "test")
    q = model.encode("text", test["text"][17:18])
    g = model.encode("image", test["image"])
    brute = np.argsort(-(g @ q[0]), kind="stable")[:10]
    assert [r["item_id"] for r in res["results"]][:5] == [str(test.ids[i]) for i in brute][:5]
    assert res["query_label"] in test.label_names
    # table form
    code, out, _ = run(capsys, "search", str(idx), "--query-row", "17", "-k", "3")
    assert code == 0 and "rank" in out


@pytest.mark.parametrize("extra, needle", [
    (["-k", "0"], "-k: expected an integer >= 1"),
    (["--query-row", "99999"], "--query-row: expected a row number 0..692 (split 'test' of wikipedia)"),
])
def test_search_bad_input(tmp_path, capsys, wiki_run, extra, needle):
    idx = tmp_path / "idx"
    assert main(["index", str(wiki_run), "--dataset", "wikipedia", "--modality", "image", "--out", str(idx)]) == 0
    argv = ["search", str(idx)] + (extra if "--query-row" in extra else ["--query-row", "1", *extra])
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err


def test_search_missing_or_truncated_index(tmp_path, capsys, wiki_run):
    code, _, err = run(capsys, "search", str(tmp_path / "nope"), "--query-row", "1")
    assert code == 2 and "Traceback" not in err
    idx = tmp_path / "idx"
    assert main(["index", str(wiki_run), "--dataset", "wikipedia", "--modality", "image", "--out", str(idx)]) == 0
    f = idx / "index.faiss"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    code, _, err = run(capsys, "search", str(idx), "--query-row", "1")
    assert code == 2 and "index.faiss" in err


def test_search_with_a_model_of_another_dimension(tmp_path, capsys, wiki_run):
    idx = tmp_path / "idx"
    assert main(["index", str(wiki_run), "--dataset", "wikipedia", "--modality", "image", "--out", str(idx)]) == 0
    other = tmp_path / "other"
    assert main(["fit", "wikipedia", "--n-components", "3", "--out", str(other)]) == 0
    code, _, err = run(capsys, "search", str(idx), "--model", str(other), "--query-row", "1")
    assert code == 2 and "queries" in err and "9" in err and "3" in err


def _set_info(idx, **fields):
    """Edit the info an index records (as an index of an older version, or a moved one, has it)."""
    meta = json.loads((idx / "index.json").read_text())
    for key, value in fields.items():
        if value is None:
            meta["info"].pop(key, None)
        else:
            meta["info"][key] = value
    (idx / "index.json").write_text(json.dumps(meta))


def test_a_model_saved_again_after_indexing_is_refused(tmp_path, capsys):
    model, idx = tmp_path / "m", tmp_path / "idx"
    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "6", "--out", str(model)]) == 0
    assert main(["index", str(model), "--dataset", "wikipedia", "--modality", "image", "--out", str(idx)]) == 0
    code, _, err = run(capsys, "search", idx, "--query-row", "0", "-k", "2")
    assert code == 0 and "warning" not in err
    # replacing a saved model is allowed, but the index now holds vectors of another model
    assert main(["fit", "wikipedia", "--model", "rcca", "--n-components", "6", "--out", str(model)]) == 0
    capsys.readouterr()
    for argv in (["search", idx, "--query-row", "0"], ["search", idx, "--model", model, "--query-row", "0"],
                 ["plot", "gallery", idx, "--text", "a castle", "--out", tmp_path / "g.png"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and f"--model/INDEX: the model at {str(model)!r} was saved again after this index" in err
        assert "build the index again" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "index", idx, "--append", "--dataset", "wikipedia", "--split", "train")
    assert code == 2 and "--append: the model at" in err and "was saved again" in err
    _set_info(idx, model_sha256=None)   # an index that records no digest is searched as before
    code, _, err = run(capsys, "search", idx, "--query-row", "0", "-k", "2")
    assert code == 0, err


def _wiki_test_arrays(tmp_path, image_key: str, text_key: str):
    """Wikipedia's test features saved as an arrays file (features.npz) under the two keys."""
    from jointspace import load_dataset

    test = load_dataset("wikipedia", "test")
    arrays = tmp_path / "features.npz"
    np.savez(arrays, **{image_key: test["image"], text_key: test["text"]})
    return arrays


def test_a_missing_recorded_model_or_dataset_names_the_option_that_passes_it(tmp_path, capsys, wiki_run):
    arrays = _wiki_test_arrays(tmp_path, "I", "T")
    idx = tmp_path / "idx"
    assert main(["index", str(wiki_run), "--data", str(arrays), "--modality", "image", "--modality", "image=I",
                 "--modality", "text=T", "--out", str(idx)]) == 0
    code, out, err = run(capsys, "search", idx, "--query-row", "1", "-k", "2")
    assert code == 0, err
    arrays.unlink()
    code, _, err = run(capsys, "search", idx, "--query-row", "1", "-k", "2")
    assert code == 2 and f"INDEX: the dataset index {str(idx)!r} was built from, {str(arrays)!r}, is missing" in err
    assert "pass the data with --dataset DATA" in err and "unknown dataset" not in err
    moved = tmp_path / "moved"
    wiki_run.rename(moved)
    code, _, err = run(capsys, "search", idx, "--text", "a castle")
    assert code == 2 and f"INDEX: the model index {str(idx)!r} was built with, {str(wiki_run)!r}, is missing" in err
    assert "--model RUN_DIR" in err and "model: expected a saved model folder" not in err
    code, _, err = run(capsys, "search", idx, "--model", tmp_path / "nope", "--query-row", "1")
    assert code == 2 and err.count("--model: expected a saved model folder") == 1



def test_query_rows_from_an_arrays_file_without_the_query_modality(tmp_path, capsys, wiki_run):
    """An index of an arrays file read with its image array alone: --query-row said
    "modality: expected one of image; got 'text'" (no such option, no way out named)."""
    arrays = _wiki_test_arrays(tmp_path, "I", "T")
    idx = tmp_path / "idx"
    assert main(["index", str(wiki_run), "--data", str(arrays), "--modality", "image", "--modality", "image=I",
                 "--out", str(idx)]) == 0
    code, _, err = run(capsys, "search", idx, "--query-row", "1", "-k", "2")
    assert code == 2 and one_line(err)
    assert (f"--modality: the rows of {arrays} (split 'all') hold image, no text to query with; the query is text "
            "by default (the modality the index does not hold); pass the data to query from with --dataset DATA "
            "(and --modality text=KEY for an arrays file)") in err
    code, out, err = run(capsys, "search", idx, "--query-row", "1", "-k", "2", "--dataset", arrays,
                         "--modality", "text=T", "--json")
    assert code == 0 and json.loads(out)["query"] == f"text row 1 of {arrays}/all", err

def test_a_builtin_dataset_recorded_by_an_index_is_not_read_from_the_current_folder(tmp_path, capsys, wiki_run,
                                                                                   monkeypatch):
    idx = tmp_path / "idx"
    assert main(["index", str(wiki_run), "--dataset", "wikipedia", "--modality", "image", "--out", str(idx)]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("jointspace.cli._common._SOURCES", {})   # as a new process reads it
    (tmp_path / "wikipedia").mkdir()   # a folder of the same name here is not the built-in dataset
    (tmp_path / "wikipedia" / "notes.txt").write_text("not a picture")
    code, out, err = run(capsys, "search", idx, "--query-row", "17", "-k", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["query"] == "text row 17 of wikipedia/test"
    _set_info(idx, dataset_builtin=None)   # an older index: a built-in by name, a collection by absolute path
    code, out, err = run(capsys, "search", idx, "--query-row", "17", "-k", "2", "--json")
    assert code == 0, err


def test_search_query_row_of_an_arrays_file_named_by_modality_key(tmp_path, capsys, wiki_run):
    arrays = _wiki_test_arrays(tmp_path, "I_te", "T_te")
    idx = tmp_path / "idx"
    assert main(["index", str(wiki_run), "--dataset", "wikipedia", "--modality", "image", "--out", str(idx)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "search", idx, "--query-row", "17", "-k", "5", "--json")
    assert code == 0, err
    expected = [r["item_id"] for r in json.loads(out)["results"]]
    code, out, err = run(capsys, "search", idx, "--dataset", arrays, "--modality", "text=T_te", "--query-row", "17",
                         "-k", "5", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert [r["item_id"] for r in got["results"]] == expected and got["query"].endswith("features.npz/all")
    code, _, err = run(capsys, "search", idx, "--dataset", arrays, "--modality", "text", "--query-row", "17")
    assert code == 2 and "--modality text=KEY" in err and "--modality image=I_tr" not in err
    code, _, err = run(capsys, "search", idx, "--modality", "text=T_te", "--query-row", "17")
    assert code == 2 and "NAME=KEY names an array of the arrays file given as --dataset" in err


def test_bench_spoken_words_recognises_unseen_accents(capsys):
    """CCA over MFCC statistics and MiniLM: audio->text R@1 >= 0.90 on accents never heard in training."""
    code, out, err = run(capsys, "bench", "spoken-words", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert "unseen accents" in report["split"]
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["CCA"]["audio->text/R@1"] >= 0.90
    assert rows["random"]["audio->text/R@1"] < 0.2


def test_fit_clip_seed_ensemble(tmp_path, capsys):
    import jointspace as js

    out = tmp_path / "ens"
    args = ["fit", "wikipedia", "--model", "clip", "--epochs", "1", "--batch-size", "128", "--param", "dim=8",
            "--param", "progress=false", "--param", "seed=3"]
    code, stdout, err = run(capsys, *args, "--members", "2", "--jobs", "2", "--out", str(out))
    assert code == 0, err
    assert "2 members" in stdout
    model = js.load_model(out)
    assert [m.seed for m in model.members_] == [3, 4]
    assert (tmp_path / "ens.train" / "member0").is_dir() and (tmp_path / "ens.train" / "member1").is_dir()
    test = js.load_dataset("wikipedia")["test"]
    assert model.encode("text", test["text"][:5]).shape == (5, 16)
    code, _, err = run(capsys, *args, "--members", "0", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--members: expected an integer >= 1" in err and not (tmp_path / "bad").exists()
    code, _, err = run(capsys, *args, "--jobs", "2", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--jobs: fits the members of an ensemble" in err and not (tmp_path / "bad").exists()
    code, _, err = run(capsys, *args, "--members", "2", "--jobs", "0", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--jobs: expected a positive number of processes" in err and not (tmp_path / "bad").exists()
    code, _, err = run(capsys, *args, "--members", "2", "--resume", str(tmp_path / "ens.train"),
                       "--out", str(out))
    assert code == 2 and "--resume" in err and js.load_model(out).encode("text", test["text"][:5]).shape == (5, 16)


def test_eval_csls_matches_library(capsys, wiki_run):
    import jointspace as js
    from jointspace.eval.hubness import evaluate_csls

    capsys.readouterr()  # what the fixture printed
    code, out, err = run(capsys, "eval", str(wiki_run), "--dataset", "wikipedia", "--csls", "10", "--json")
    assert code == 0, err
    row = json.loads(out)["rows"][0]
    assert row["method"].endswith("+ CSLS (k=10)")
    model, data = js.load_model(wiki_run), js.load_dataset("wikipedia")
    z = {m: model.encode(m, data["test"][m]) for m in ("image", "text")}
    bank = {m: model.encode(m, data["train"][m]) for m in ("image", "text")}
    expected = evaluate_csls(z, data["test"].relevance_keys("label"), bank, 10)
    for key in ("text->image/mAP", "image->text/R@10"):
        assert row[key] == pytest.approx(expected[key])
    code, _, err = run(capsys, "eval", str(wiki_run), "--dataset", "wikipedia", "--csls", "10", "--metric", "dot")
    assert code == 2 and "--csls" in err
    code, _, err = run(capsys, "eval", str(wiki_run), "--dataset", "wikipedia", "--csls", "10", "--bank-split", "test")
    assert code == 2 and "--bank-split" in err
    code, _, err = run(capsys, "eval", str(wiki_run), "--dataset", "wikipedia", "--csls", "0")
    assert code == 2 and "--csls: expected an integer >= 1" in err


@pytest.mark.parametrize("dataset, option, message", [
    ("fashion-mnist", "root=2024", "root: expected a folder path (a string), got 2024 (int); a folder named with "
                                   "digits must be given as a JSON string, e.g. --option 'root=\"2024\"'"),
    ("openclipart", "root=5", "root: expected a folder path (a string), got 5 (int); a folder named with "
                              "digits must be given as a JSON string, e.g. --option 'root=\"5\"'"),
    ("photos", "cache_dir=7", "cache_dir: expected a folder path (a string), got 7 (int); a folder named with "
                              "digits must be given as a JSON string, e.g. --option 'cache_dir=\"7\"'"),
    ("fashion-mnist", "root=true", "root: expected a folder path (a string), got True (bool)"),
])
def test_embed_path_options_given_as_json_numbers(tmp_path, capsys, monkeypatch, dataset, option, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))
    split = "all" if dataset == "photos" else "train"
    code, _, err = run(capsys, "embed", dataset, "--tower", "cnn", "--split", split, "--option", option,
                       "--out", tmp_path / "e.npy", "--quiet")
    assert code == 2 and err.strip().endswith(message) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "e.npy").exists()


def test_embed_folder_named_with_digits_as_json_string(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "2024").mkdir()
    code, _, err = run(capsys, "embed", "fashion-mnist", "--tower", "cnn", "--option", 'root="2024"',
                       "--out", tmp_path / "e.npy", "--quiet")
    assert code == 2 and "root: train-images-idx3-ubyte(.gz) not found in '2024'" in err


def test_fit_on_splits_joined_by_plus(tmp_path, capsys, monkeypatch):
    import jointspace.data.datasets as datasets
    from jointspace.cli._common import load_split
    from jointspace.data import Pairs, concat_pairs
    from jointspace.models.base import create_model, load_model

    both = load_split("wikipedia", "train+test")
    train, test = (datasets.load_dataset("wikipedia", s) for s in ("train", "test"))
    assert len(both) == len(train) + len(test)
    assert both.ids.tolist() == train.ids.tolist() + test.ids.tolist()  # already unique: kept
    # the model the CLI saves is the one fitted on the rows of both splits
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--n-components", "4", "--split", "train+test",
                       "--out", str(tmp_path / "m"))
    assert code == 0, err
    want = create_model("cca", n_components=4).fit(concat_pairs([train, test]))
    got = load_model(tmp_path / "m")
    np.testing.assert_allclose(got.encode("image", test["image"][:5]), want.encode("image", test["image"][:5]),
                               rtol=1e-5, atol=1e-6)
    # splits numbering their samples alike get "<split>/<id>" ids
    from jointspace.data.sources import DataSource

    fake = {s: Pairs({"x": np.full((2, 1), k, np.float32)}, ids=[0, 1]) for k, s in enumerate(("a", "b"))}

    class Fake(DataSource):
        name, splits, builtin = "fake", ("a", "b"), True

        def _load(self, split):
            return fake[split]

    joined = Fake().load("a+b")
    assert joined.ids.tolist() == ["a/0", "a/1", "b/0", "b/1"] and joined["x"].ravel().tolist() == [0, 0, 1, 1]
    code, _, err = run(capsys, "fit", "wikipedia", "--split", "train+train", "--out", str(tmp_path / "n"))
    assert code == 2 and "--split: expected a split name or distinct names joined by '+'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "n").exists()


def test_fit_chooses_what_is_not_given_and_saves_the_choice(tmp_path, capsys):
    import json as _json

    from jointspace.data.datasets import load_dataset
    from jointspace.eval.retrieval import evaluate_retrieval
    from jointspace.eval.selection import select_by_cv
    from jointspace.models.base import load_model

    code, out, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "chosen by 5-fold CV" in out
    sel = _json.loads((tmp_path / "a" / "selection.json").read_text())
    assert sel["protocol"] == "5-fold CV" and sel["given"] == {}
    # an independent run of the selection over the same space chooses the same and scores the same
    train = load_dataset("wikipedia", "train")
    ref = select_by_cv("cca", {"n_components": [9]}, train, derive={"n_components": [3, 5, 7, 9], "weight": [0.0, 1.0]})
    assert sel["chosen"] == ref.best_params and sel["score"] == pytest.approx(ref.best_score, abs=1e-12)
    test = load_dataset("wikipedia", "test")
    got = evaluate_retrieval(load_model(tmp_path / "a"), test)
    want = evaluate_retrieval(ref.model, test)
    assert got["image->text/mAP"] == pytest.approx(want["image->text/mAP"], abs=1e-9)
    # a given setting is kept, the rest still chosen
    code, out, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--n-components", "5", "--out", str(tmp_path / "b"))
    assert code == 0, err
    sel = _json.loads((tmp_path / "b" / "selection.json").read_text())
    assert sel["given"] == {"n_components": 5} and sel["settings"]["n_components"] == 5
    assert load_model(tmp_path / "b").canonical_correlations_.shape == (5,)


def test_a_data_file_edited_between_two_calls_is_read_again(tmp_path, capsys, monkeypatch):
    import os

    rng = np.random.default_rng(0)
    shared = rng.normal(size=(120, 3))
    x, y = shared @ rng.normal(size=(3, 6)), shared @ rng.normal(size=(3, 5)) + 0.3 * rng.normal(size=(120, 5))
    data = tmp_path / "pairs.npz"
    np.savez(data, X=x, Y=y)
    opts = ["--modality", "image=X", "--modality", "text=Y"]
    assert run(capsys, "fit", data, *opts, "--model", "cca", "--n-components", "3", "--out", tmp_path / "m")[0] == 0

    def evaluate():
        code, out, err = run(capsys, "eval", tmp_path / "m", "--data", data, *opts, "--json")
        assert code == 0, err
        return json.loads(out)["rows"][0]["image->text/mAP"]

    before = evaluate()
    np.savez(data, X=x, Y=y[::-1])   # the same size: only the rows' content changed
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = evaluate()
    monkeypatch.setattr("jointspace.cli._common._SOURCES", {})   # as a new process reads it
    assert after == evaluate() and after != before


def test_a_folder_is_read_again_once_a_file_in_it_changes(tmp_path):
    import os

    from jointspace.cli._common import _on_disk

    (tmp_path / "cats").mkdir()
    caption = tmp_path / "cats" / "a.txt"
    caption.write_text("a cat")
    first = _on_disk(str(tmp_path))
    caption.write_text("a dog")   # the folder's own modification time stays as it was
    stat = caption.stat()
    os.utime(caption, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert _on_disk(str(tmp_path)) != first and _on_disk(str(tmp_path)) == _on_disk(str(tmp_path))
    assert _on_disk(str(tmp_path / "no such folder")) is None
