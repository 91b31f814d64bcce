"""``jointspace fit-matcher``, ``search --rerank`` and ``explain`` through the CLI."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_support import one_line, run
from jointspace.data.datasets import DATASETS, Dataset, register_dataset
from jointspace.data.pairs import Pairs

pytestmark = pytest.mark.usefixtures("one_thread")
_FOLDER = Path(tempfile.mkdtemp(prefix="jointspace-drawings-"))
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


class TinyDrawings(Dataset):
    """Eight PNG files of coloured squares with captions (for the CLI tests only)."""

    name = "tiny-drawings-test"
    modalities = ("image", "text")

    def _load(self, split):
        paths, texts = [], []
        for i, (name, rgb) in enumerate(list(COLOURS.items()) * 2):
            path = _FOLDER / f"{split}-{i}.png"
            if not path.exists():
                img = np.full((40, 40, 3), 250, np.uint8)
                img[5 + i:30 + i, 5:30] = rgb
                Image.fromarray(img).save(path)
            paths.append(str(path))
            texts.append(f"a {name} square")
        return Pairs({"image": paths, "text": texts}, ids=np.array([f"d{i}" for i in range(8)]))


if TinyDrawings.name not in DATASETS:
    register_dataset(TinyDrawings)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerank")
    from jointspace.cli import main

    assert main(["fit-matcher", TinyDrawings.name, "--out", str(root / "matcher"), "--epochs", "3",
                 "--dim", "16", "--val-split", "none"]) == 0
    assert main(["fit", TinyDrawings.name, "--model", "cca", "--param", "reg=0.5", "--towers", "efficientnet-lite0,minilm",
                 "--out", str(root / "run")]) == 0
    assert main(["fit-matcher", TinyDrawings.name, "--out", str(root / "matcher-chosen"), "--epochs", "3",
                 "--dim", "16", "--model", str(root / "run"), "--candidates", "4", "--val-split", "test"]) == 0
    assert main(["index", str(root / "run"), "--dataset", TinyDrawings.name, "--split", "test", "--modality",
                 "image", "--out", str(root / "idx")]) == 0
    return root


def test_rerank_reorders_the_first_stage_candidates(built, capsys):
    code, out, err = run(capsys, "search", built / "idx", "--text", "a red square", "-k", "8", "--json")
    assert code == 0, err
    first = json.loads(out)["results"]
    code, out, err = run(capsys, "search", built / "idx", "--text", "a red square", "-k", "3", "--rerank", "5",
                         "--matcher", built / "matcher", "--rerank-weight", "0.5", "--json")
    assert code == 0, err
    got = json.loads(out)["results"]
    top5 = {r["id"] for r in first[:5]}
    assert len(got) == 3 and {r["id"] for r in got} <= top5  # nothing invented, only the top 5 re-ordered
    scores = [r["score"] for r in got]
    assert scores == sorted(scores, reverse=True)
    from jointspace.models.rerank import CrossAttentionMatcher

    m = CrossAttentionMatcher.load(built / "matcher")
    # the blend of the five candidates' standardised scores, by hand (weight 0.5)
    f5 = np.array([r["score"] for r in first[:5]])
    c5 = m.score([r["path"] for r in first[:5]], ["a red square"])[:, 0].astype(np.float64)
    blend = 0.5 * (f5 - f5.mean()) / f5.std() + 0.5 * (c5 - c5.mean()) / c5.std()
    by_id = {r["id"]: (f, c, b) for r, f, c, b in zip(first[:5], f5, c5, blend)}
    for r in got:
        f, c, b = by_id[r["id"]]
        assert r["first_score"] == pytest.approx(f, abs=1e-6)
        assert r["cross_score"] == pytest.approx(c, abs=1e-5)
        assert r["score"] == pytest.approx(b, abs=1e-4)
    assert [r["id"] for r in got] == [i for _, i in sorted(((-b, i) for i, (_, _, b) in by_id.items()))][:3]


def test_rerank_reorders_only_its_n_candidates_whatever_k(built, capsys):
    code, out, err = run(capsys, "search", built / "idx", "--text", "a red square", "-k", "8", "--json")
    assert code == 0, err
    first = [r["id"] for r in json.loads(out)["results"]]
    # -k above N re-ordered the top -k instead (here all 8), not the N asked for
    code, out, err = run(capsys, "search", built / "idx", "--text", "a red square", "-k", "8", "--rerank", "3",
                         "--matcher", built / "matcher", "--rerank-weight", "1", "--json")
    assert code == 0, err
    got = json.loads(out)["results"]
    assert len(got) == 3 and sorted(r["first_rank"] for r in got) == [1, 2, 3]
    assert {r["id"] for r in got} == set(first[:3]) and [r["rank"] for r in got] == [1, 2, 3]
    code, out, err = run(capsys, "search", built / "idx", "--text", "a red square", "--rerank", "3",
                         "--matcher", built / "matcher", "--rerank-weight", "1")
    assert code == 0 and "re-ranked the top 3 with the matcher" in out, err


def test_rerank_above_what_an_index_can_give_names_rerank(built, capsys):
    # the message named 'k', which search has not (its option is -k, and -k was not the cause)
    code, _, err = run(capsys, "search", built / "idx", "--text", "a red square", "-k", "3", "--rerank", 10 ** 9,
                       "--matcher", built / "matcher", "--rerank-weight", "0.5")
    assert code == 2 and one_line(err), err
    assert err.startswith("error: --rerank: expected at most 10000 results per query (the index holds 8 vectors"), err


def test_fit_matcher_with_a_model_chooses_the_weight_on_val(built, capsys):
    from jointspace.models.base import load_model
    from jointspace.models.rerank import RERANK_WEIGHTS, CrossAttentionMatcher, choose_rerank_weight

    m = CrossAttentionMatcher.load(built / "matcher-chosen")
    assert m.rerank_weight in RERANK_WEIGHTS and m.weight_choice_["candidates"] == 4
    assert m.weight_choice_["weight"] == m.rerank_weight
    # the same choice recomputed from the first stage's and the matcher's scores on the val pairs
    val = TinyDrawings().load("test")   # the split fit-matcher was given as --val-split
    first_stage = load_model(built / "run")
    first = first_stage.encode("text", val["text"]) @ first_stage.encode("image", val["image"]).T
    top = np.argsort(-first, axis=1, kind="stable")[:, :4]
    full = m.score(list(val["image"]), list(val["text"]))     # (images, texts)
    cross = np.take_along_axis(full.T, top, 1)
    keys = val.relevance_keys("auto")
    again = choose_rerank_weight(top, np.take_along_axis(first, top, 1), cross, keys)
    assert again["weight"] == m.rerank_weight
    for w, r in again["recall@1"].items():
        assert m.weight_choice_["recall@1"][w] == pytest.approx(r, abs=1e-9)
    # search uses the chosen weight: the same results as giving it explicitly
    outs = []
    for extra in ([], ["--rerank-weight", f"{m.rerank_weight}"]):
        code, out, err = run(capsys, "search", built / "idx", "--text", "a red square", "-k", "4", "--rerank", "6",
                             "--matcher", built / "matcher-chosen", "--json", *extra)
        assert code == 0, err
        outs.append([r["id"] for r in json.loads(out)["results"]])
    assert outs[0] == outs[1]


def test_rerank_and_explain_refuse_bad_arguments(built, capsys, tmp_path):
    code, _, err = run(capsys, "search", built / "idx", "--text", "a red square", "--rerank", "5",
                       "--matcher", built / "matcher")
    assert code == 2 and "--rerank-weight: the matcher" in err and "fit-matcher --model" in err and one_line(err)
    code, _, err = run(capsys, "search", built / "idx", "--text", "a red square", "--rerank", "5",
                       "--matcher", built / "matcher", "--rerank-weight", "1.5")
    assert code == 2 and "--rerank-weight: expected a number in [0, 1], got 1.5" in err
    code, _, err = run(capsys, "search", built / "idx", "--text", "a red square", "--rerank", "5",
                       "--matcher", built / "run")   # a saved model, not a matcher
    assert code == 2 and one_line(err) and err.startswith(f"error: --matcher: {built / 'run'} is not a saved "
                                                          "cross-attention matcher"), err
    code, _, err = run(capsys, "search", built / "idx", "--text", "a red square", "--rerank-weight", "0.5")
    assert code == 2 and "--rerank-weight: only used with --rerank" in err and one_line(err)
    code, _, err = run(capsys, "fit-matcher", TinyDrawings.name, "--out", tmp_path / "m", "--val-split", "nosuch")
    assert code == 2 and one_line(err) and err.startswith("error: --val-split:") and "got 'nosuch'" in err, err
    code, _, err = run(capsys, "fit-matcher", TinyDrawings.name, "--out", tmp_path / "m", "--model", built / "run",
                       "--val-split", "none")
    assert code == 2 and "--model: choosing the re-ranking weight needs a validation split" in err
    assert not (tmp_path / "m").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    code, _, err = run(capsys, "fit-matcher", TinyDrawings.name, "--out", tmp_path / "notes", "--epochs", "1")
    assert code == 2 and "--out" in err and one_line(err)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"   # refused before any training
    code, _, err = run(capsys, "search", built / "idx", "--text", "a red square", "--rerank", "5")
    assert code == 2 and "--matcher: --rerank needs a cross-attention matcher" in err and one_line(err)
    code, _, err = run(capsys, "search", built / "idx", "--text", "a", "--rerank", "0", "--matcher", built / "matcher")
    assert code == 2 and "--rerank: expected an integer >= 1" in err
    code, _, err = run(capsys, "search", built / "idx", "--text", "a", "--rerank", "3", "--matcher", built / "idx")
    assert code == 2 and "is not a saved cross-attention matcher" in err and one_line(err)
    img = _FOLDER / "test-0.png"
    for text in ("  ", "\u200b"):   # nothing visible, a zero-width space included
        code, _, err = run(capsys, "explain", built / "matcher", "--text", text, "--image", img,
                           "--out", tmp_path / "m.png")
        assert code == 2 and one_line(err) and "--text: expected a query with visible characters" in err, err
    (tmp_path / "notes.png").write_text("not a picture")
    for image, needle in ((tmp_path / "notes.png", "--image ('"), (tmp_path / "none.png", "--image: file"),
                          ("", "--image: expected an image file, got ''"),
                          (tmp_path, "--image: expected an image file, got the folder")):
        code, _, err = run(capsys, "explain", built / "matcher", "--text", "red", "--image", image,
                           "--out", tmp_path / "m.png")
        assert code == 2 and one_line(err) and needle in err, err
    code, _, err = run(capsys, "explain", built / "matcher", "--text", "red", "--image", img, "--out", tmp_path / "m.txt")
    assert code == 2 and "--out" in err and not (tmp_path / "m.txt").exists()
    code, _, err = run(capsys, "fit-matcher", TinyDrawings.name, "--out", tmp_path / "m", "--candidates", "0")
    assert code == 2 and one_line(err) and err.startswith("error: --candidates: only used with --model"), err
    assert not (tmp_path / "m").exists()
    code, _, err = run(capsys, "search", built / "idx", "--image", img, "--rerank", "3", "--matcher", built / "matcher")
    assert code == 2 and "got an image query" in err, err


def test_fit_matcher_refuses_a_model_without_towers_before_training(capsys, tmp_path):
    from jointspace.cli import main

    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "4", "--out", str(tmp_path / "flat")]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "fit-matcher", TinyDrawings.name, "--out", tmp_path / "matcher", "--epochs", "1",
                         "--dim", "8", "--model", tmp_path / "flat", "--val-split", "test")
    assert code == 2 and one_line(err), err
    assert f"--model: {str(tmp_path / 'flat')!r} reads only feature vectors of image and text" in err
    assert "needs a model fitted with --towers" in err and not (tmp_path / "matcher").exists()


def test_fit_matcher_names_a_dataset_of_feature_vectors(capsys, tmp_path):
    # it loaded the towers and said 'items: expected an array with one image per row'
    code, _, err = run(capsys, "fit-matcher", "wikipedia", "--out", tmp_path / "m", "--epochs", "1",
                       "--val-split", "none")
    assert code == 2 and one_line(err), err
    assert err.startswith("error: DATASET: the matcher reads pictures and texts through its towers; 'wikipedia' "
                          "has image and text only as feature vectors")
    assert not (tmp_path / "m").exists()


def test_explain_writes_one_map_per_word(built, capsys, tmp_path):
    out_png = tmp_path / "map.png"
    code, out, err = run(capsys, "explain", built / "matcher", "--text", "a red square", "--image",
                         _FOLDER / "test-0.png", "--out", out_png, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["pieces"] == ["a", "red", "square"] and -1 <= info["score"] <= 1
    assert all(0 <= p < 49 for p in info["peak_region"])
    with Image.open(out_png) as im:
        assert im.format == "PNG" and im.size[0] > 300
    from jointspace.models.rerank import CrossAttentionMatcher

    maps = CrossAttentionMatcher.load(built / "matcher").explain(str(_FOLDER / "test-0.png"), "a red square")["maps"]
    assert maps.shape == (3, 7, 7)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)  # each word's attention over the regions


def test_fit_matcher_settings_are_named_by_their_options(capsys, tmp_path):
    for option, value in (("--epochs", "0"), ("--dim", "-3")):
        code, _, err = run(capsys, "fit-matcher", TinyDrawings.name, "--out", tmp_path / "m", option, value,
                           "--val-split", "none")
        assert code == 2 and one_line(err) and err.startswith(f"error: {option}: expected an integer >= 1"), err


def test_explain_names_matcher_when_the_folder_is_not_a_matcher(capsys, tmp_path):
    img = tmp_path / "red.png"
    Image.fromarray(np.full((8, 8, 3), COLOURS["red"], np.uint8)).save(img)
    (tmp_path / "plain").mkdir()
    for folder in (tmp_path / "plain", tmp_path / "missing"):
        code, out, err = run(capsys, "explain", folder, "--text", "red", "--image", img, "--out", tmp_path / "m.png")
        assert code == 2 and one_line(err) and out == ""
        assert err.startswith(f"error: MATCHER: {folder} is not a saved cross-attention matcher"), err
    assert not (tmp_path / "m.png").exists()


def test_rerank_on_an_l2_index_reads_its_distances_as_dissimilarities(built, capsys, tmp_path):
    # an l2 index's scores are squared distances, the nearest first: weight 0 keeps that order
    # (the distances were blended as similarities, so weight 0 put the farthest candidate first)
    from jointspace.cli import main

    assert main(["index", str(built / "run"), "--dataset", TinyDrawings.name, "--split", "test", "--modality",
                 "image", "--metric", "l2", "--out", str(tmp_path / "idx-l2")]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "search", tmp_path / "idx-l2", "--text", "a red square", "-k", "5", "--json")
    assert code == 0, err
    first = json.loads(out)["results"]
    d5 = np.array([r["score"] for r in first])
    assert (np.diff(d5) >= 0).all()
    code, out, err = run(capsys, "search", tmp_path / "idx-l2", "--text", "a red square", "-k", "5", "--rerank", "5",
                         "--matcher", built / "matcher", "--rerank-weight", "0", "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)["results"]] == [r["id"] for r in first]
    code, out, err = run(capsys, "search", tmp_path / "idx-l2", "--text", "a red square", "-k", "5", "--rerank", "5",
                         "--matcher", built / "matcher", "--rerank-weight", "0.5", "--json")
    assert code == 0, err
    got = json.loads(out)["results"]
    from jointspace.models.rerank import CrossAttentionMatcher

    c5 = CrossAttentionMatcher.load(built / "matcher").score([r["path"] for r in first], ["a red square"])[:, 0]
    c5 = c5.astype(np.float64)
    # the first stage's similarity is minus the distance
    blend = 0.5 * (-d5 - (-d5).mean()) / d5.std() + 0.5 * (c5 - c5.mean()) / c5.std()
    assert [r["id"] for r in got] == [first[i]["id"] for i in np.argsort(-blend, kind="stable")]
    assert [r["score"] for r in got] == pytest.approx(np.sort(blend)[::-1].tolist(), abs=1e-4)
    assert [r["first_score"] for r in got] == pytest.approx([first[i]["score"] for i in np.argsort(-blend, kind="stable")],
                                                            abs=1e-6)


def test_fit_matcher_with_a_model_chooses_the_epoch_on_training_pairs_and_the_weight_on_val(
        built, tmp_path, capsys, monkeypatch):
    # one split choosing both the epoch and the weight would score the weight on pairs that
    # had already chosen the matcher
    from jointspace.models.rerank import CrossAttentionMatcher

    seen = {}
    fit, choose = CrossAttentionMatcher.fit, CrossAttentionMatcher.choose_weight

    def spy_fit(self, train, val=None, **kw):
        seen["train"], seen["epoch_val"] = list(train.ids), list(val.ids)
        return fit(self, train, val, **kw)

    def spy_choose(self, first_stage, val, **kw):
        seen["weight_val"] = list(val["image"])
        return choose(self, first_stage, val, **kw)

    monkeypatch.setattr(CrossAttentionMatcher, "fit", spy_fit)
    monkeypatch.setattr(CrossAttentionMatcher, "choose_weight", spy_choose)
    code, out, err = run(capsys, "fit-matcher", TinyDrawings.name, "--out", tmp_path / "m", "--epochs", "2",
                         "--dim", "8", "--model", built / "run", "--candidates", "4", "--val-split", "test")
    assert code == 0, err
    assert len(seen["epoch_val"]) == 1 and len(seen["train"]) == 7   # a tenth of the 8 training pairs, at least one
    assert sorted(seen["train"] + seen["epoch_val"]) == sorted(TinyDrawings().load("train").ids.tolist())
    assert seen["weight_val"] == list(TinyDrawings().load("test")["image"])
    assert "held-out training pairs MRR" in " ".join(out.split())


def test_fit_matcher_learns_from_the_only_split_of_a_dataset_without_train(capsys, tmp_path):
    # photos has one split, 'all': it was refused with "--split: ... got 'train'", an option fit-matcher lacks
    code, out, err = run(capsys, "fit-matcher", "photos", "--out", tmp_path / "m", "--epochs", "1", "--dim", "8",
                         "--val-split", "none")
    assert code == 0, err
    assert "22 training pairs" in out and (tmp_path / "m" / "config.json").exists()


def test_rerank_names_the_candidate_whose_image_moved_or_broke(built, capsys, tmp_path):
    import shutil

    from jointspace.cli import main

    rows = ["image,text"]
    for i, name in enumerate(COLOURS):
        shutil.copy(_FOLDER / f"test-{i}.png", tmp_path / f"{name}.png")
        rows.append(f"{tmp_path / f'{name}.png'},a {name} square")
    (tmp_path / "drawings.csv").write_text("\n".join(rows) + "\n")
    assert main(["index", str(built / "run"), "--data", str(tmp_path / "drawings.csv"), "--modality", "image",
                 "--out", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "search", tmp_path / "idx", "--text", "a red square", "-k", "4", "--json")
    assert code == 0, err
    paths = [r["path"] for r in json.loads(out)["results"]]
    # the matcher's own argument names (images[i]) were printed, and a broken file's place in its chunk
    Path(paths[2]).unlink()
    code, _, err = run(capsys, "search", tmp_path / "idx", "--text", "a red square", "--rerank", "4",
                       "--matcher", built / "matcher", "--rerank-weight", "0.5")
    assert code == 2 and one_line(err), err
    assert err.strip() == (f"error: --rerank: the matcher cannot read the image of the index's candidate 3: file "
                           f"{paths[2]!r} does not exist")
    Path(paths[2]).write_bytes(b"not a picture")
    code, _, err = run(capsys, "search", tmp_path / "idx", "--text", "a red square", "--rerank", "4",
                       "--matcher", built / "matcher", "--rerank-weight", "0.5")
    assert code == 2 and one_line(err), err
    assert err.startswith(f"error: --rerank: the matcher cannot read the image of the index's candidate 3 "
                          f"({paths[2]!r}): cannot read the image"), err


def test_rerank_of_an_index_of_texts_says_it_holds_texts(built, capsys, tmp_path):
    from jointspace.cli import main

    assert main(["index", str(built / "run"), "--dataset", TinyDrawings.name, "--split", "test", "--modality",
                 "text", "--out", str(tmp_path / "idx-text")]) == 0
    capsys.readouterr()
    # it said the items have no image paths in their metadata, as if the index had lost them
    code, _, err = run(capsys, "search", tmp_path / "idx-text", "--text", "a red square", "--rerank", "4",
                       "--matcher", built / "matcher", "--rerank-weight", "0.5")
    assert code == 2 and one_line(err), err
    assert err.strip() == (f"error: --rerank: re-ranking scores text queries against images; INDEX "
                           f"{str(tmp_path / 'idx-text')!r} holds text vectors (index the images to re-rank them)")


def test_a_refit_matcher_drops_the_weight_chosen_for_its_former_weights(built, tmp_path):
    from jointspace.errors import InputError
    from jointspace.models.rerank import CrossAttentionMatcher

    m = CrossAttentionMatcher.load(built / "matcher-chosen")
    assert m.rerank_weight is not None and m.weight_choice_["candidates"] == 4
    rng = np.random.default_rng(0)
    r, t = rng.normal(size=(4, 3, 1280)).astype(np.float32), rng.normal(size=(4, 2, 384)).astype(np.float32)
    m.fit_parts(r, np.ones((4, 3), bool), t, np.ones((4, 2), bool), np.arange(4))
    # the weight chosen against the former network was kept, saved and used by search --rerank
    assert m.rerank_weight is None and m.weight_choice_ is None
    with pytest.raises(InputError, match="^rerank_weight: not chosen yet"):
        m.rerank(np.arange(3)[None], np.array([[0.3, 0.2, 0.1]]), np.array([[0.1, 0.2, 0.3]]))
    m.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["rerank_weight"] is None and "weight_choice" not in config
    given = CrossAttentionMatcher(dim=8, epochs=1, batch_size=2, rerank_weight=0.25, progress=False)
    given.fit_parts(r, np.ones((4, 3), bool), t, np.ones((4, 2), bool), np.arange(4))
    ids, _ = given.rerank(np.arange(3)[None], np.array([[0.3, 0.2, 0.1]]), np.array([[0.0, 0.1, 0.9]]))
    assert given.rerank_weight == 0.25 and ids.tolist() == [[0, 1, 2]]   # 0.75 * z(first) outweighs 0.25 * z(cross)
