"""A user's own collection end to end through the command line: a folder of 72 real drawings
(rendered from the installed OpenClipart package) with sidecar captions, fitted, indexed,
extended, searched and served; a manifest and an arrays file as data."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cli_support import one_line, run
from collection_support import CATEGORIES, build_collection

from jointspace.data.keys import content_hash


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("collection")
    info = build_collection(root / "photos")
    assert len(info["files"]) >= 60
    return root, info


@pytest.fixture(scope="module")
def fitted(collection, tmp_path_factory):
    """The folder fitted with the pretrained towers (settings chosen by 5-fold CV on all of it) and indexed."""
    from jointspace.cli import main

    root, _ = collection
    out = tmp_path_factory.mktemp("runs")
    assert main(["fit", str(root / "photos"), "--towers", "efficientnet-lite0,minilm", "--model", "rcca",
                 "--out", str(out / "mine")]) == 0
    assert main(["index", str(out / "mine"), "--data", str(root / "photos"), "--modality", "image",
                 "--out", str(out / "idx")]) == 0
    return out


def test_folder_fit_index_search(collection, fitted, capsys):
    from jointspace.index.faiss_index import Index

    root, info = collection
    index = Index.load(fitted / "idx")
    # 73 files, one of them a copy of another under a second category: 72 vectors
    assert index.ntotal == len(info["files"]) == 72
    dup, copy = info["duplicate"]
    rows = [r for r in index.metadata(index.ids) if len(r["extra"]["paths"]) > 1]
    assert len(rows) == 1
    assert sorted(rows[0]["extra"]["paths"]) == sorted(p.relative_to(root / "photos").as_posix() for p in (dup, copy))
    # each title finds its own drawing well above chance (1/72) among the 72
    titles = {p: p.with_suffix(".txt").read_text(encoding="utf-8").strip() for p in info["files"]}
    hits = 0
    for path, title in list(titles.items())[::6]:
        code, out, err = run(capsys, "search", fitted / "idx", "--text", title, "-k", "10", "--json")
        assert code == 0, err
        got = [Path(r["path"]).name for r in json.loads(out)["results"]]
        hits += path.name in got
    assert hits >= 4, hits   # of 12 queries; a random ranking puts about 1.7 in the top 10
    code, out, err = run(capsys, "search", fitted / "idx", "--text", titles[dup], "-k", "3", "--json")
    top = json.loads(out)["results"]
    assert sum(Path(r["path"]).name in (dup.name, copy.name) for r in top) <= 1   # never the same drawing twice


def test_tower_head_settings_chosen_by_cross_validation(collection, fitted):
    """With no settings, fit chooses the head by 5-fold CV on the towers' features of every
    pair (no validation split is held out), saves the choice, and the choice is the one
    ``choose_settings`` makes on those features independently."""
    from jointspace import Pairs
    from jointspace.eval.selection import choose_settings
    from jointspace.models.base import load_model
    from jointspace.models.towered import ToweredModel

    root, info = collection
    record = json.loads((fitted / "mine" / "selection.json").read_text())
    # folds of 12-15 drawings: Recall@10 would be near 1 for every setting, so mAP chooses
    assert record["protocol"] == "5-fold CV" and record["metric"] == "mAP" and record["n_tried"] > 1
    pairs = Pairs.from_folder(root / "photos")
    feats = ToweredModel(towers={"image": "efficientnet-lite0", "text": "minilm"}, head="rcca").embed_pairs(
        pairs, progress=False)
    assert len(feats) == len(info["files"])   # every distinct drawing, none held out
    assert "caption_key" in pairs.metadata   # a folder's relevance: the same normalised caption
    res = choose_settings("rcca", feats, relevance="caption_key",
                          score_key="mAP", directions=[("text", "image"), ("image", "text")], refit=False)
    assert record["chosen"] == json.loads(json.dumps(res.best_params))
    assert record["score"] == pytest.approx(res.best_score, abs=1e-12)
    model = load_model(fitted / "mine")
    assert {k: v for k, v in model.head_params.items() if k in res.best_params} == \
        json.loads(json.dumps(res.best_params))


def test_eval_on_the_folder_and_on_a_manifest(collection, fitted, capsys, tmp_path):
    root, info = collection
    code, out, err = run(capsys, "eval", fitted / "mine", "--data", f"{root / 'photos'}/", "--json")
    assert code == 0, err
    assert json.loads(out)["dataset"] == str(root / "photos")   # a trailing slash is the same folder
    row = json.loads(out)["rows"][0]
    assert row["image->text/R@10"] > 0.3 and row["text->image/R@10"] > 0.3   # chance: 10/72
    # the same pairs as a manifest (relative paths, guessed columns) give the same numbers
    lines = ["file,caption,category"]
    for p in info["files"]:
        cap = p.with_suffix(".txt").read_text(encoding="utf-8").strip().replace('"', '""')
        lines.append(f'{p.relative_to(root).as_posix()},"{cap}",{p.parent.name}')
    (root / "held_out.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out2, err = run(capsys, "eval", fitted / "mine", "--data", root / "held_out.csv", "--json")
    assert code == 0, err
    row2 = json.loads(out2)["rows"][0]
    for k in ("image->text/mAP", "text->image/mAP", "text->image/R@1"):
        assert row2[k] == pytest.approx(row[k], abs=1e-9)


def test_camera_file_names_index_and_eval_with_a_warning(collection, fitted, capsys, tmp_path):
    """Pictures named IMG_0001.jpg ... (no captions): their file-name captions all read "img".
    They index (nothing is held out for that), and eval warns that its scores say little."""
    root, info = collection
    cam = tmp_path / "cam"
    cam.mkdir()
    for i, p in enumerate(info["files"][:5]):
        shutil.copy(p, cam / f"IMG_{i + 1:04d}{p.suffix}")
    code, out, err = run(capsys, "index", fitted / "mine", "--data", cam, "--modality", "image", "--out", tmp_path / "i")
    assert code == 0 and "indexed 5 image vectors" in out, err
    code, out, err = run(capsys, "eval", fitted / "mine", "--data", cam, "--json")
    assert code == 0, err
    assert "warning: 5 of 5 items share the relevance key 'img' (caption_key)" in " ".join(err.split())


def test_a_split_column_keeps_the_test_rows_out_of_fit_and_in_eval(collection, capsys, tmp_path):
    """With --split-column, a closed-form fit learns from the train rows only (it read every row,
    test included), and eval reads the test rows."""
    root, info = collection
    files = info["files"]
    lines = ["file,caption,part"]
    for i, p in enumerate(files):
        cap = p.with_suffix(".txt").read_text(encoding="utf-8").strip().replace('"', '""')
        lines.append(f'{p.relative_to(root).as_posix()},"{cap}",{"test" if i % 4 == 0 else "train"}')
    manifest = root / "split.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "fit", manifest, "--split-column", "part", "--towers", "efficientnet-lite0,minilm",
                         "--model", "rcca", "--param", "reg=0.1", "--out", tmp_path / "m")
    assert code == 0, err
    assert "chosen by 5-fold CV on" in out and "split.csv/train (mean" in " ".join(out.split())
    code, out, err = run(capsys, "eval", tmp_path / "m", "--data", manifest, "--split-column", "part", "--json")
    assert code == 0, err
    assert json.loads(out)["split"] == "test"


def test_append_skips_known_content_and_refuses_another_space(collection, fitted, capsys, tmp_path):
    from jointspace.index.faiss_index import Index

    root, info = collection
    more = tmp_path / "more"
    more.mkdir()
    shutil.copyfile(info["files"][5], more / "again.png")      # already indexed: skipped
    for i, f in enumerate(info["files"][6:9]):                   # new content: a mirrored drawing
        from PIL import Image, ImageOps

        with Image.open(f) as img:
            ImageOps.mirror(img.convert("RGB")).save(more / f"mirrored-{i}.png")
    before = Index.load(fitted / "idx")
    code, out, err = run(capsys, "index", fitted / "idx", "--append", "--data", more, "--out", tmp_path / "idx2")
    assert code == 0, err
    said = " ".join(out.split())   # the console wraps long lines
    assert "added 3" in said and "1 already in the index (1 under new paths, added to their items)" in said
    after = Index.load(tmp_path / "idx2")
    assert after.ntotal == before.ntotal + 3 and Index.load(fitted / "idx").ntotal == before.ntotal
    # the known drawing keeps its first path and gains the one it was met under again
    old_path = info["files"][5].relative_to(root / "photos").as_posix()
    item = next(r for r in after.metadata(after.ids) if old_path in r["extra"]["paths"])
    # paths of the appended folder, which is not inside the first, are absolute: its "again.png" is
    # told apart from one of the first folder
    again = (more / "again.png").resolve().as_posix()
    assert item["extra"]["paths"] == sorted([old_path, again]) and "again.png" in item["extra"]["copies"]
    added = [r for r in after.metadata(after.ids) if r["id"] not in set(before.ids.tolist())]
    assert sorted(p for r in added for p in r["extra"]["paths"]) == [
        (more / f"mirrored-{i}.png").resolve().as_posix() for i in range(3)]
    unchanged = next(r for r in before.metadata(before.ids) if r["id"] == item["id"])
    assert (item["label"], item["text"], item["path"]) == (unchanged["label"], unchanged["text"], unchanged["path"])
    # appending the same folder again: nothing new, no path to add
    code, out, err = run(capsys, "index", tmp_path / "idx2", "--append", "--data", more)
    assert code == 0 and "nothing to add: all 4 image items" in " ".join(out.split()), err
    # a folder inside the first one: its paths are relative to the first, with the sub-folder
    inner = next(p for p in (root / "photos").iterdir() if p.is_dir())
    code, out, err = run(capsys, "index", tmp_path / "idx2", "--append", "--data", inner, "--out", tmp_path / "idx3")
    assert code == 0, err
    known = [r["extra"]["paths"] for r in Index.load(tmp_path / "idx3").metadata(after.ids)]
    first_name = sorted(f.name for f in inner.iterdir() if f.suffix == ".png")[0]
    assert any(f"{inner.name}/{first_name}" in paths for paths in known)
    assert not any(first_name in paths for paths in known)
    # a model folder given where the index belongs, and a model of another dimension
    code, _, err = run(capsys, "index", fitted / "mine", "--append", "--data", more)
    assert code == 2 and one_line(err) and "is a saved model" in err
    code, _, err = run(capsys, "fit", root / "photos", "--towers", "efficientnet-lite0,minilm", "--model", "rcca",
                       "--n-components", "3", "--out", tmp_path / "small")
    assert code == 0, err
    info_file = tmp_path / "idx2" / "index.json"
    meta = json.loads(info_file.read_text())
    meta["info"]["model"] = str(tmp_path / "small")
    del meta["info"]["model_sha256"]   # as an index that records no digest of its model
    info_file.write_text(json.dumps(meta))
    digest = (tmp_path / "idx2" / "index.faiss").read_bytes()
    code, _, err = run(capsys, "index", tmp_path / "idx2", "--append", "--data", more / "..")
    assert code == 2 and one_line(err) and "--append:" in err and "3-d" in err
    assert (tmp_path / "idx2" / "index.faiss").read_bytes() == digest   # nothing damaged



def test_append_replaces_the_item_of_a_file_changed_in_place(collection, fitted, capsys, tmp_path):
    """A file edited in place kept its old item beside the new one, under the same path, so a search
    for the old picture's title returned the new picture at the old score."""
    from jointspace.index.faiss_index import Index

    root, info = collection
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, f in (("a.png", info["files"][0]), ("b.png", info["files"][20]), ("c.png", info["files"][40])):
        shutil.copyfile(f, folder / name)
    code, _, err = run(capsys, "index", fitted / "mine", "--data", folder, "--modality", "image", "--out",
                       tmp_path / "idx")
    assert code == 0, err
    old_a = Index.load(tmp_path / "idx").ids_with_path(str((folder / "a.png").resolve())).tolist()
    shutil.copyfile(info["files"][60], folder / "a.png")        # same path, other picture
    code, out, err = run(capsys, "index", tmp_path / "idx", "--append", "--data", folder)
    assert code == 0 and err == "", err
    assert "added 1" in out and "1 replaced (their files changed since they were indexed)" in " ".join(out.split())
    after = Index.load(tmp_path / "idx")
    now_a = after.ids_with_path(str((folder / "a.png").resolve())).tolist()
    assert after.ntotal == 3 and len(now_a) == 1 and now_a != old_a
    assert after.metadata(now_a)[0]["extra"]["sha256"] == content_hash(folder / "a.png")
    # changed into a picture the index holds already: its old item goes, nothing is added
    shutil.copyfile(folder / "c.png", folder / "b.png")
    code, out, err = run(capsys, "index", tmp_path / "idx", "--append", "--data", folder)
    assert code == 0 and err == "", err
    said = " ".join(out.split())   # the console wraps long lines
    assert "added 0" in said and "1 replaced" in said
    final = Index.load(tmp_path / "idx")
    assert final.ntotal == 2
    held = {r["extra"]["sha256"] for r in final.metadata(final.ids)}
    assert held == {content_hash(folder / n) for n in ("a.png", "c.png")}


def test_a_changed_file_of_an_item_with_other_copies_keeps_the_item():
    from jointspace.cli.commands.index import _drop_changed_files
    from jointspace.index.faiss_index import Index

    vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    index = Index.build(vectors, spec="Flat", metadata={
        "path": ["/d/a.png", "/d/b.png", "/d/c.png"], "sha256": ["A", "B", "C"],
        "paths": [["a.png"], ["b.png", "b2.png"], ["c.png"]]})
    stored = index.metadata(index.ids)
    now = {"/d/a.png": "X", "/d/b.png": "Y", "/d/c.png": "C", "/d/new.png": "A"}
    removed, kept = _drop_changed_files(index, stored, now)
    assert (removed, kept) == (1, ["/d/b.png"])          # a.png's item goes; b.png's stands for b2.png too
    assert sorted(index.ids.tolist()) == [1, 2]          # c.png holds what it held
    assert _drop_changed_files(index, index.metadata(index.ids), {"/d/new.png": "N"}) == (0, [])

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_the_collection(collection, fitted):
    root, info = collection
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JOINTSPACE_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "jointspace", "serve", "--index", str(fitted / "idx"),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, body = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=5) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, proc.stdout.read().decode() if proc.poll() is not None else "no answer"
        title = info["files"][0].with_suffix(".txt").read_text(encoding="utf-8").strip()
        q = urllib.parse.urlencode({"text": title, "k": 5})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?{q}", timeout=60) as r:
            results = json.loads(r.read())["results"]
        assert len(results) == 5
        assert {r["copies"] for r in results} <= {1, 2}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{results[0]['media_url']}", timeout=30) as r:
            assert r.status == 200 and len(r.read()) > 100
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_arrays_file_fit_eval(tmp_path, capsys):
    from jointspace.data.datasets import load_dataset

    train, test = load_dataset("wikipedia", "train"), load_dataset("wikipedia", "test")
    np.savez(tmp_path / "wiki.npz", I_tr=train["image"], T_tr=train["text"], L_tr=train.labels,
             I_te=test["image"], T_te=test["text"], L_te=test.labels)
    code, _, err = run(capsys, "fit", tmp_path / "wiki.npz", "--modality", "image=I_tr", "--modality", "text=T_tr",
                       "--labels", "L_tr", "--model", "cca", "--n-components", "9", "--out", tmp_path / "m")
    assert code == 0, err
    code, out, err = run(capsys, "eval", tmp_path / "m", "--data", tmp_path / "wiki.npz", "--modality", "image=I_te",
                         "--modality", "text=T_te", "--labels", "L_te", "--relevance", "label", "--json")
    assert code == 0, err
    mine = json.loads(out)["rows"][0]
    # the same model fitted on the built-in split: the same numbers
    from jointspace.models.base import create_model
    from jointspace.eval.retrieval import evaluate_retrieval

    want = evaluate_retrieval(create_model("cca", n_components=9).fit(train), test)
    assert mine["image->text/mAP"] == pytest.approx(want["image->text/mAP"], abs=1e-6)
    # an index of the arrays file records how it was read: search --query-row reads the same rows
    code, _, err = run(capsys, "index", tmp_path / "m", "--data", tmp_path / "wiki.npz", "--modality", "image",
                       "--modality", "image=I_te", "--modality", "text=T_te", "--out", tmp_path / "idx")
    assert code == 0, err
    code, out, err = run(capsys, "search", tmp_path / "idx", "--query-row", "3", "-k", "5", "--json")
    assert code == 0, err
    model = create_model("cca", n_components=9).fit(train)
    z_img, z_txt = model.encode("image", test["image"]), model.encode("text", test["text"][3:4])
    cos = (z_txt / np.linalg.norm(z_txt)) @ (z_img / np.linalg.norm(z_img, axis=1, keepdims=True)).T
    assert [str(r["id"]) for r in json.loads(out)["results"]] == [str(i) for i in np.argsort(-cos[0])[:5]]
    # keys that disagree on N: one line, nothing written
    code, _, err = run(capsys, "fit", tmp_path / "wiki.npz", "--modality", "image=I_tr", "--modality", "text=T_te",
                       "--out", tmp_path / "bad")
    assert code == 2 and one_line(err) and "disagree on the number of samples" in err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("make, needle", [
    (lambda d: (d / "m.csv").write_text("path,caption\nx.png,a cat\n"), "do not exist"),
    (lambda d: (d / "m.csv").write_text("path,caption\n../outside.png,a cat\n"), "outside the manifest's folder"),
    (lambda d: (d / "empty").mkdir(), "DATA: folder '.*' holds no images"),
    (lambda d: [(d / "empty").mkdir(), (d / "empty" / "a.png").write_bytes(b"x"), (d / "empty" / "a.txt").write_text(" ")],
     "DATA: caption file"),
])
def test_bad_collections_are_one_line(tmp_path, capsys, make, needle):
    make(tmp_path)
    (tmp_path.parent / "outside.png").write_bytes(b"not really")
    target = tmp_path / ("empty" if (tmp_path / "empty").exists() else "m.csv")
    code, _, err = run(capsys, "fit", target, "--towers", "efficientnet-lite0,minilm", "--out", tmp_path / "out")
    assert code == 2 and one_line(err) and re.search(needle, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--model", "cca", "--val-fraction", "0.5"], "--val-fraction: cca fits on all of your data"),
    (["--model", "cca", "--columns", "image=path"], "--columns: names the columns of a manifest"),
])
def test_options_a_fit_would_not_use_are_refused(tmp_path, capsys, extra, needle):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", I=rng.normal(size=(40, 5)), T=rng.normal(size=(40, 4)))
    code, _, err = run(capsys, "fit", tmp_path / "f.npz", "--modality", "image=I", "--modality", "text=T", *extra,
                       "--out", tmp_path / "out")
    assert code == 2 and one_line(err) and needle in err, err
    assert not (tmp_path / "out").exists()


def test_columns_are_refused_for_a_folder_and_a_builtin_dataset(tmp_path, capsys, collection):
    root, _ = collection
    for data, needle in ((root / "photos", "is a folder"), ("wikipedia", "'wikipedia' is a built-in dataset")):
        code, _, err = run(capsys, "eval", tmp_path / "nomodel", "--data", data, "--columns", "image=path")
        assert code == 2 and one_line(err) and needle in err, err


def test_a_folder_without_towers_names_the_option(collection, capsys, tmp_path):
    root, _ = collection
    code, _, err = run(capsys, "fit", root / "photos", "--out", tmp_path / "m")
    assert code == 2 and one_line(err) and "--towers: rcca is fitted on feature vectors" in err, err
    assert not (tmp_path / "m").exists()


def test_a_bad_relevance_names_the_option(collection, fitted, capsys):
    root, _ = collection
    code, _, err = run(capsys, "eval", fitted / "mine", "--data", root / "photos", "--relevance", "bogus")
    assert code == 2 and one_line(err) and "--relevance: expected 'auto', 'label', 'id' or a metadata column" in err


def test_the_text_modality_indexes_its_captions(collection, fitted, capsys, tmp_path):
    """Captions are the items themselves (they were read as file paths)."""
    root, info = collection
    code, out, err = run(capsys, "index", fitted / "mine", "--data", root / "photos", "--modality", "text",
                         "--out", tmp_path / "t")
    assert code == 0 and "text vectors" in out, err
    from jointspace.index import Index

    idx = Index.load(tmp_path / "t")
    texts = {p.with_suffix(".txt").read_text(encoding="utf-8").strip() for p in info["files"]}
    assert idx.ntotal == len(texts)   # equal captions are one item


def test_a_gallery_or_plot_over_a_picture_of_the_query_or_collection_is_refused(collection, fitted, capsys):
    root, info = collection
    picture = next(p for p in info["files"] if p.suffix == ".png")
    before = picture.read_bytes()
    code, _, err = run(capsys, "search", fitted / "idx", "--image", picture, "--gallery", picture)
    assert code == 2 and one_line(err) and "--gallery:" in err and "is read by --image" in err, err
    code, _, err = run(capsys, "plot", "map", fitted / "mine", "--data", root / "photos", "--out", picture)
    assert code == 2 and one_line(err) and "--out:" in err and "is read by --data" in err, err
    # a picture the index holds, and one a manifest lists (the folder itself is not an argument)
    code, _, err = run(capsys, "search", fitted / "idx", "--text", "a cat", "--gallery", picture)
    assert code == 2 and one_line(err) and "--gallery:" in err and "is an item of INDEX" in err, err
    code, _, err = run(capsys, "plot", "gallery", fitted / "idx", "--text", "a cat", "--out", picture)
    assert code == 2 and one_line(err) and "is an item of INDEX" in err, err
    pngs = [p for p in info["files"] if p.suffix == ".png"][:6]
    (root / "one.csv").write_text("path,caption\n" + "".join(f"{p.relative_to(root).as_posix()},c{i}\n"
                                                           for i, p in enumerate(pngs)))
    code, _, err = run(capsys, "plot", "map", fitted / "mine", "--data", root / "one.csv", "--method", "pca",
                       "--out", pngs[2])
    assert code == 2 and one_line(err) and "is an item of --data" in err, err
    assert picture.read_bytes() == before


def test_a_query_file_that_is_not_a_picture_names_the_option(fitted, capsys, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    code, _, err = run(capsys, "search", fitted / "idx", "--image", tmp_path / "notes.png")
    assert code == 2 and one_line(err), err
    assert "--image (" in err and "notes.png'): cannot read the image (corrupt or not an image" in err


def test_a_long_query_is_shortened_in_the_table_title_only(fitted, capsys):
    query = "a red fox " * 5000   # 50,000 characters
    code, out, err = run(capsys, "search", fitted / "idx", "--text", query, "-k", "2")
    assert code == 0, err
    assert len(out) < 5000 and "query: text 'a red fox" in out and "…" in out
    code, out, err = run(capsys, "search", fitted / "idx", "--text", query, "-k", "2", "--json")
    assert code == 0 and len(json.loads(out)["query"]) > len(query.strip()), err


def test_plot_gallery_with_another_model_warns_as_search_does(fitted, capsys, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(fitted / "mine", other)
    code, _, err = run(capsys, "plot", "gallery", fitted / "idx", "--text", "a red car", "-k", "3",
                       "--out", tmp_path / "g.png")
    assert code == 0 and "warning" not in err, err
    code, out, err = run(capsys, "plot", "gallery", fitted / "idx", "--model", other, "--text", "a red car", "-k", "3",
                         "--out", tmp_path / "g2.png")
    assert code == 0 and (tmp_path / "g2.png").is_file()
    assert f"warning: --model {other} is not the model this index was built with" in err and one_line(err)


def test_arrays_of_the_wrong_width_name_the_modality_option(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", I=rng.normal(size=(40, 5)), T=rng.normal(size=(40, 4)), I7=rng.normal(size=(40, 7)))
    code, _, err = run(capsys, "fit", tmp_path / "f.npz", "--modality", "image=I", "--modality", "text=T",
                       "--model", "cca", "--out", tmp_path / "m")
    assert code == 0, err
    for command, extra in (("eval", []), ("index", ["--modality", "image", "--out", tmp_path / "ix"]),
                           ("plot", ["--out", tmp_path / "map.png"])):
        head = ["plot", "map"] if command == "plot" else [command]
        code, _, err = run(capsys, *head, tmp_path / "m", "--data", tmp_path / "f.npz", *extra,
                           "--modality", "image=I7", "--modality", "text=T")
        assert code == 2 and one_line(err), err
        assert "--modality image=I7: expected 5 features, got 7" in err, err
    code, _, err = run(capsys, "eval", tmp_path / "m", "--dataset", "wikipedia")
    assert code == 2 and "--data wikipedia (image items): expected 5 features, got 128" in err, err


def test_arrays_of_a_modality_the_model_lacks_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", I=rng.normal(size=(40, 5)), T=rng.normal(size=(40, 4)))
    code, _, err = run(capsys, "fit", tmp_path / "f.npz", "--modality", "image=I", "--modality", "text=T",
                       "--model", "cca", "--out", tmp_path / "m")
    assert code == 0, err
    for head, extra in ((["eval"], []), (["index"], ["--modality", "image", "--out", tmp_path / "ix"]),
                        (["plot", "map"], ["--out", tmp_path / "map.png"])):
        code, _, err = run(capsys, *head, tmp_path / "m", "--data", tmp_path / "f.npz", *extra,
                           "--modality", "image=I", "--modality", "txt=T")
        assert code == 2 and one_line(err), err
        assert "--modality txt=T: the model embeds image, text; it has no modality 'txt'" in err, err
    assert not (tmp_path / "ix").exists() and not (tmp_path / "map.png").exists()
    code, _, err = run(capsys, "eval", tmp_path / "m", "--data", tmp_path / "f.npz", "--modality", "image=I")
    assert code == 2 and "--modality: cross-modal retrieval needs the arrays of 2 of the model's modalities " \
                         "(image, text), got image=I" in err, err


def test_raw_items_for_a_feature_model_name_the_data_option_as_given(tmp_path, capsys, collection):
    root, _ = collection
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", I=rng.normal(size=(40, 5)), T=rng.normal(size=(40, 4)))
    code, _, err = run(capsys, "fit", tmp_path / "f.npz", "--modality", "image=I", "--modality", "text=T",
                       "--model", "cca", "--out", tmp_path / "m")
    assert code == 0, err
    for head in (["eval"], ["plot", "map"]):
        extra = ["--out", tmp_path / "map.png"] if head == ["plot", "map"] else []
        code, _, err = run(capsys, *head, tmp_path / "m", "--data", root / "photos", *extra)
        assert code == 2 and one_line(err), err
        assert err.startswith("error: --data: the model embeds image items only as feature vectors"), err
