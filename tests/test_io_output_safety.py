"""Output paths: a save never destroys unrelated files, bad --out values are refused up front."""

import os

import numpy as np
import pytest

from cli_support import one_line, run
from jointspace._io import atomic_dir, check_out_file, check_replaceable
from jointspace.cli import main
from jointspace.errors import InputError
from jointspace.index.persistence import is_saved_index
from jointspace.models.base import is_saved_model


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "wiki-cca"
    assert main(["fit", "wikipedia", "--model", "cca", "--out", str(out)]) == 0
    return out


def notes_folder(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    return folder


# -- atomic_dir and check_replaceable ------------------------------------------------------


def test_atomic_dir_refuses_a_folder_of_unrelated_files(tmp_path):
    folder = notes_folder(tmp_path)
    with pytest.raises(InputError, match=r"out: .*notes exists and is not a saved model \(it holds notes.txt\); "
                                         r"expected a new or empty folder or a model to replace"):
        with atomic_dir(folder, "model") as tmp:
            (tmp / "config.json").write_text("{}")
    assert (folder / "notes.txt").read_text() == "keep me"
    assert listing(tmp_path) == ["notes"]


def _is_art(p):
    return (p / "art.txt").is_file()


def test_replacing_an_artefact_keeps_what_its_writer_did_not_write(tmp_path):
    """Plots saved into an index folder, notes beside a model: a new save of the artefact keeps
    them; what the old save wrote and the new one does not is gone."""
    folder = tmp_path / "a"
    with atomic_dir(folder, "artefact", is_kind=_is_art, keep_others=True) as tmp:
        (tmp / "art.txt").write_text("v1")
        (tmp / "old-only.bin").write_text("stale")
    (folder / "plots").mkdir()
    (folder / "plots" / "map.png").write_text("png")
    (folder / "notes.txt").write_text("keep me")
    with atomic_dir(folder, "artefact", is_kind=_is_art, keep_others=True) as tmp:
        (tmp / "art.txt").write_text("v2")
    assert listing(folder) == [".jointspace-written.json", "art.txt", "notes.txt", "plots"]
    assert (folder / "art.txt").read_text() == "v2" and (folder / "plots" / "map.png").read_text() == "png"
    # a failed save leaves everything where it was
    with pytest.raises(RuntimeError):
        with atomic_dir(folder, "artefact", is_kind=_is_art, keep_others=True) as tmp:
            (tmp / "art.txt").write_text("v3")
            raise RuntimeError("boom")
    assert listing(folder) == [".jointspace-written.json", "art.txt", "notes.txt", "plots"]
    assert (folder / "art.txt").read_text() == "v2" and listing(tmp_path) == ["a"]


def test_a_failed_move_puts_the_kept_files_back(tmp_path, monkeypatch):
    import jointspace._io as io

    folder = tmp_path / "a"
    with atomic_dir(folder, "artefact", is_kind=_is_art, keep_others=True) as tmp:
        (tmp / "art.txt").write_text("v1")
    (folder / "notes.txt").write_text("keep me")

    def fail(tmp, path, check=None):
        raise OSError("disk full")

    monkeypatch.setattr(io, "_move_into_place", fail)
    with pytest.raises(OSError, match="disk full"):
        with atomic_dir(folder, "artefact", is_kind=_is_art, keep_others=True) as tmp:
            (tmp / "art.txt").write_text("v2")
    assert listing(folder) == [".jointspace-written.json", "art.txt", "notes.txt"]
    assert (folder / "art.txt").read_text() == "v1" and listing(tmp_path) == ["a"]


def test_an_index_append_keeps_the_plots_saved_in_the_index_folder(tmp_path):
    from jointspace.index import Index

    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    Index.build(x[:10], spec="Flat", metric="cosine").save(tmp_path / "idx")
    (tmp_path / "idx" / "plots").mkdir()
    (tmp_path / "idx" / "plots" / "map.png").write_text("png")
    idx = Index.load(tmp_path / "idx")
    idx.add(x[10:], ids=np.arange(10, 20))
    idx.save(tmp_path / "idx")
    assert Index.load(tmp_path / "idx").ntotal == 20
    assert (tmp_path / "idx" / "plots" / "map.png").read_text() == "png"


def test_atomic_dir_without_a_kind_replaces_only_empty_folders(tmp_path):
    (tmp_path / "d").mkdir()
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "x").write_text("1")
    assert (tmp_path / "d" / "x").read_text() == "1"
    with pytest.raises(InputError, match="is not empty"):
        with atomic_dir(tmp_path / "d"):
            pass
    assert listing(tmp_path) == ["d"]


def test_atomic_dir_refuses_a_file_and_leaves_no_stray(tmp_path):
    target = tmp_path / "existing_file.txt"
    target.write_text("data")
    with pytest.raises(InputError, match="is a file, not a folder"):
        with atomic_dir(target, "index"):
            pass
    assert target.read_text() == "data"
    assert listing(tmp_path) == ["existing_file.txt"]


def test_atomic_dir_replaces_the_same_kind_with_a_custom_test(tmp_path):
    def is_box(path):
        return (path / "box.txt").is_file()

    with atomic_dir(tmp_path / "b", "box", is_kind=is_box) as tmp:
        (tmp / "box.txt").write_text("1")
    with atomic_dir(tmp_path / "b", "box", is_kind=is_box) as tmp:
        (tmp / "box.txt").write_text("2")
    assert (tmp_path / "b" / "box.txt").read_text() == "2"
    assert listing(tmp_path) == ["b"]


@pytest.mark.parametrize("bad", [".", "", "..", "./", "sub/.."])
def test_bad_folder_names_are_refused_before_anything_is_created(tmp_path, monkeypatch, bad):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match=r"out: expected a folder name, got"):
        with atomic_dir(bad, "model"):
            pass
    with pytest.raises(InputError, match="expected a folder name"):
        check_replaceable(bad, "model", arg="--out")
    assert listing(tmp_path) == ["sub"] and listing(tmp_path / "sub") == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs the read-only /proc of Linux")
def test_a_folder_that_cannot_be_written_in_is_refused_before_the_work():
    # os.access says yes to root here: the check writes a probe file instead
    with pytest.raises(InputError, match=r"^--out: cannot write in '/proc' \("):
        check_out_file("/proc/map.png", arg="--out")
    with pytest.raises(InputError, match=r"^--out: cannot write in '/proc' \("):
        check_replaceable("/proc/new-model", "model", arg="--out")


def test_parent_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is not a folder"):
        check_replaceable(tmp_path / "f" / "model", "model")
    with pytest.raises(InputError, match="is not a folder"):
        check_out_file(tmp_path / "f" / "a" / "r.json")


def test_symlink_is_refused(tmp_path, model_dir):
    link = tmp_path / "link"
    link.symlink_to(model_dir)
    with pytest.raises(InputError, match="symbolic link"):
        check_replaceable(link, "model")
    assert is_saved_model(model_dir)


def test_no_temp_folder_left_on_any_failure(tmp_path, monkeypatch):
    target = tmp_path / "d"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("1")
            raise RuntimeError("boom")
    assert listing(tmp_path) == []

    # something appears at the target while the folder is being written
    with pytest.raises(InputError, match="is not empty"):
        with atomic_dir(target) as tmp:
            target.mkdir()
            (target / "other.txt").write_text("theirs")
    assert listing(tmp_path) == ["d"] and listing(target) == ["other.txt"]

    # the final rename fails: the old folder is put back, the temporary one removed
    (target / "other.txt").unlink()
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("new")
    monkeypatch.undo()
    assert listing(tmp_path) == ["d"] and listing(target) == []


def test_check_out_file(tmp_path):
    assert check_out_file(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    (tmp_path / "old.json").write_text("{}")
    check_out_file(tmp_path / "old.json")
    with pytest.raises(InputError, match=r"--out: expected a file to write, got the folder"):
        check_out_file(tmp_path, arg="--out")
    with pytest.raises(InputError, match=r"--out: expected a file name, got '\.'"):
        check_out_file(".", arg="--out")


# -- model and index saves ----------------------------------------------------------------


def test_model_and_index_resave_in_place(tmp_path, model_dir):
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import load_model

    model = load_model(model_dir)
    model.save(tmp_path / "m")
    model.save(tmp_path / "m")
    assert is_saved_model(tmp_path / "m") and listing(tmp_path) == ["m"]
    idx = Index.build(np.random.default_rng(0).normal(size=(20, 4)).astype("float32"), spec="Flat")
    idx.save(tmp_path / "i")
    idx.save(tmp_path / "i")
    assert is_saved_index(tmp_path / "i") and listing(tmp_path) == ["i", "m"]
    with pytest.raises(InputError, match=r"folder: .* is not a saved index"):
        idx.save(tmp_path / "m")
    with pytest.raises(InputError, match=r"path: .* is not a saved model"):
        model.save(tmp_path / "i")
    assert is_saved_model(tmp_path / "m") and is_saved_index(tmp_path / "i")


def test_checkpoint_refuses_a_foreign_folder(tmp_path):
    import torch

    from jointspace.train.checkpoint import save_checkpoint

    module = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    path = save_checkpoint(tmp_path, 1, module, opt, {}, {"a": 1})
    assert save_checkpoint(tmp_path, 1, module, opt, {}, {"a": 1}) == path
    foreign = tmp_path / "checkpoints" / "step-00000002"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="is not a saved checkpoint"):
        save_checkpoint(tmp_path, 2, module, opt, {}, {"a": 1})
    assert listing(foreign) == ["notes.txt"]
    assert listing(tmp_path / "checkpoints") == ["step-00000001", "step-00000002"]


# -- the command line ---------------------------------------------------------------------


def test_fit_into_a_folder_of_notes_exits_2_and_keeps_them(tmp_path, capsys):
    folder = notes_folder(tmp_path)
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--out", folder)
    assert code == 2 and "notes.txt" in err and "not a saved model" in err and one_line(err)
    assert listing(folder) == ["notes.txt"] and listing(tmp_path) == ["notes"]


def test_fit_into_a_file_exits_2_and_keeps_it(tmp_path, capsys):
    target = tmp_path / "existing_file.txt"
    target.write_text("data")
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--out", target)
    assert code == 2 and "is a file" in err and one_line(err)
    assert target.read_text() == "data" and listing(tmp_path) == ["existing_file.txt"]


@pytest.mark.parametrize("bad", [".", "", ".."])
def test_fit_with_a_nameless_out_exits_2(tmp_path, capsys, monkeypatch, bad):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--out", bad)
    assert code == 2 and "expected a folder name" in err and one_line(err)
    assert listing(tmp_path) == []


def test_fit_twice_into_the_same_folder_replaces_the_model(tmp_path, capsys):
    out = tmp_path / "m"
    assert run(capsys, "fit", "wikipedia", "--model", "cca", "--out", out)[0] == 0
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--n-components", "3", "--out", out)
    assert code == 0, err
    assert '"n_components": 3' in (out / "config.json").read_text()
    assert listing(tmp_path) == ["m"]


def test_index_refuses_to_replace_a_model_before_embedding(tmp_path, capsys, monkeypatch, model_dir):
    import jointspace.models.base as base

    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}

    def no_load(*_):
        raise AssertionError("the model was loaded before --out was checked")

    with monkeypatch.context() as m:
        m.setattr(base, "load_model", no_load)
        code, _, err = run(capsys, "index", model_dir, "--dataset", "wikipedia", "--modality", "image",
                           "--out", model_dir)
    assert code == 2 and "--out" in err and "not a saved index" in err and one_line(err)
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before

    out = tmp_path / "idx"
    for _ in range(2):
        code, _, err = run(capsys, "index", model_dir, "--dataset", "wikipedia", "--modality", "image",
                           "--out", out)
        assert code == 0, err
    assert is_saved_index(out) and listing(tmp_path) == ["idx"]

    folder = notes_folder(tmp_path)
    code, _, err = run(capsys, "index", model_dir, "--dataset", "wikipedia", "--modality", "image",
                       "--out", folder)
    assert code == 2 and "notes.txt" in err and one_line(err)
    assert listing(folder) == ["notes.txt"]


def test_bench_checks_out_before_running(tmp_path, capsys, monkeypatch):
    import jointspace.cli.commands.bench as bench

    def no_run(*_, **__):
        raise AssertionError("the suite ran before --out was checked")

    monkeypatch.setattr(bench, "run_with_progress", no_run)
    code, _, err = run(capsys, "bench", "wikipedia", "--quick", "--out", tmp_path)
    assert code == 2 and "--out" in err and "folder" in err and one_line(err)
    (tmp_path / "f").write_text("x")
    code, _, err = run(capsys, "bench", "wikipedia", "--quick", "--out", tmp_path / "f" / "r.json")
    assert code == 2 and "--out" in err and one_line(err)
    (tmp_path / "data.npz").write_bytes(b"PK arrays")   # not a report: never replaced by one
    code, _, err = run(capsys, "bench", "wikipedia", "--quick", "--out", tmp_path / "data.npz")
    assert code == 2 and one_line(err) and "--out: the report is written as JSON; expected a file ending in .json" \
        in err, err
    assert (tmp_path / "data.npz").read_bytes() == b"PK arrays"


def test_plot_map_bad_options(tmp_path, capsys, model_dir):
    base = ["plot", "map", model_dir, "--dataset", "wikipedia", "--method", "pca", "--n", "50"]
    code, _, err = run(capsys, *base, "--out", tmp_path)
    assert code == 2 and "--out" in err and ".tmp" not in err and one_line(err)
    code, _, err = run(capsys, *base, "--lines", "-1", "--out", tmp_path / "m.png")
    assert code == 2 and "--lines" in err and one_line(err)
    for seed in ("-1", str(2**32)):   # the reductions take seeds 0 .. 2**32 - 1
        code, _, err = run(capsys, *base, "--seed", seed, "--out", tmp_path / "m.png")
        assert code == 2 and f"--seed: expected an integer in 0 .. 4294967295, got {seed}" in err and one_line(err)
    assert listing(tmp_path) == []
    code, _, err = run(capsys, *base, "--lines", "0", "--out", tmp_path / "m.png")
    assert code == 0, err
    assert (tmp_path / "m.png").is_file()


def test_plot_curves_on_a_non_utf8_file(tmp_path, capsys):
    bad = tmp_path / "metrics.csv"
    bad.write_bytes(b"step,loss\n1,\xff\xfe0.5\n")
    code, _, err = run(capsys, "plot", "curves", bad, "--out", tmp_path / "c.png")
    assert code == 2 and "metrics.csv" in err and "UTF-8" in err and one_line(err)
    code, _, err = run(capsys, "plot", "curves", tmp_path, "--out", tmp_path / "c.png")
    assert code == 2 and "metrics.csv" in err and one_line(err)
    code, _, err = run(capsys, "plot", "curves", bad, "--out", tmp_path)
    assert code == 2 and "--out" in err and one_line(err)
    bad.write_text("step,loss\n")
    code, _, err = run(capsys, "plot", "curves", bad, "--out", tmp_path / "c.png")
    assert code == 2 and one_line(err) and err.startswith(f"error: RUN: {bad} has no rows"), err


def test_failed_replace_keeps_the_old_folder(tmp_path):
    def is_box(path):
        return (path / "x").is_file()

    with atomic_dir(tmp_path / "d", "box", is_kind=is_box) as d:
        (d / "x").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d", "box", is_kind=is_box) as d:
            (d / "x").write_text("new")
            raise RuntimeError("boom")
    assert (tmp_path / "d" / "x").read_text() == "old"
    assert listing(tmp_path) == ["d"]


# -- an output file never overwrites an input ------------------------------------------------


def test_an_output_file_that_is_an_input_is_refused(tmp_path, monkeypatch):
    from argparse import Namespace

    from jointspace.cli._checks import check_not_an_input

    photo = tmp_path / "photos" / "cats" / "a.png"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"picture")
    # the same file under another spelling, and a file inside the collection folder DATA
    for args, name in [(Namespace(image=str(photo), out=str(tmp_path / "photos/cats/../cats/a.png")), "--image"),
                       (Namespace(dataset=str(tmp_path / "photos"), out=str(photo), option_names={"dataset": "DATA"}), "DATA")]:
        with pytest.raises(InputError, match=rf"--out: '.*a.png' is read by {name} \(.*\); expected a file name "
                                             "that is not one of the inputs"):
            check_not_an_input(args, "out", "--out")
    assert photo.read_bytes() == b"picture"
    # a saved artefact folder: its own files are inputs, a plot a user put inside is not
    with atomic_dir(tmp_path / "idx", kind="index", is_kind=lambda p: True, keep_others=True) as tmp:
        (tmp / "vectors.npy").write_bytes(b"v")
    (tmp_path / "idx" / "plots").mkdir()
    (tmp_path / "idx" / "plots" / "map.png").write_bytes(b"old plot")
    check_not_an_input(Namespace(index=str(tmp_path / "idx"), out=str(tmp_path / "idx/plots/map.png")), "out", "--out")
    with pytest.raises(InputError, match=r"--out: .* is read by --index"):
        check_not_an_input(Namespace(index=str(tmp_path / "idx"), out=str(tmp_path / "idx/vectors.npy")), "out", "--out")
    # a new file, or an earlier output that no argument reads, is fine
    check_not_an_input(Namespace(image=str(photo), out=str(tmp_path / "new.png")), "out", "--out")
    (tmp_path / "old.png").write_bytes(b"earlier output")
    check_not_an_input(Namespace(image=str(photo), out=str(tmp_path / "old.png"), k=5), "out", "--out")
    # an empty option is no path (not the current folder), and a folder that is neither the
    # collection nor a saved artefact (an embedding cache) is not read file by file
    monkeypatch.chdir(tmp_path)
    check_not_an_input(Namespace(tower="", split="", out="old.png"), "out", "--out")
    check_not_an_input(Namespace(cache_dir=".", out="old.png"), "out", "--out")
