"""``jointspace fit`` and the training lifecycle: run folders, resuming, what a fit leaves on disk."""

import numpy as np
import pytest

from cli_support import run

pytestmark = pytest.mark.usefixtures("one_thread")

CLIP = ["fit", "wikipedia", "--model", "clip", "--epochs", "3", "--batch-size", "256", "--param", "dim=8",
        "--param", "progress=false"]


def test_resume_from_a_checkpoint_folder_continues_in_its_run_folder(tmp_path, capsys):
    import jointspace as js
    from jointspace.train.checkpoint import checkpoint_dirs

    code, _, err = run(capsys, *CLIP, "--out", tmp_path / "ref")
    assert code == 0, err
    run_dir = tmp_path / "ref.train"
    first, last = checkpoint_dirs(run_dir)   # keep_checkpoints=2: the last two epochs
    code, _, err = run(capsys, *CLIP, "--resume", first, "--out", tmp_path / "resumed")
    assert code == 0, err
    # nothing written inside the checkpoint resumed from: it continues in ref.train
    assert sorted(p.name for p in first.iterdir()) == ["extra.safetensors", "model.safetensors",
                                                       "optimizer.safetensors", "rng.safetensors", "trainer.json"]
    assert [p.name for p in checkpoint_dirs(run_dir)] == [first.name, last.name]
    test = js.load_dataset("wikipedia")["test"]
    ref, resumed = js.load_model(tmp_path / "ref"), js.load_model(tmp_path / "resumed")
    np.testing.assert_array_equal(ref.encode("image", test["image"]), resumed.encode("image", test["image"]))


def test_deep_cca_trains_in_a_run_folder_and_resumes_from_it(tmp_path, capsys):
    import jointspace as js
    from jointspace.train.checkpoint import checkpoint_dirs

    dcca = ["fit", "wikipedia", "--model", "dccae", "--epochs", "2", "--batch-size", "512", "--param",
            "hidden=[16]", "--n-components", "4"]
    code, _, err = run(capsys, *dcca, "--out", tmp_path / "ref")
    assert code == 0, err
    run_dir = tmp_path / "ref.train"   # beside --out, as for the other trained models
    first, last = checkpoint_dirs(run_dir)
    assert (run_dir / "metrics.csv").is_file()
    assert int(last.name[5:]) == 2 * int(first.name[5:])   # one checkpoint at the end of each epoch
    code, _, err = run(capsys, *dcca, "--resume", first, "--out", tmp_path / "resumed")
    assert code == 0, err
    test = js.load_dataset("wikipedia")["test"]
    ref, resumed = js.load_model(tmp_path / "ref"), js.load_model(tmp_path / "resumed")
    np.testing.assert_array_equal(ref.encode("text", test["text"]), resumed.encode("text", test["text"]))
    code, _, err = run(capsys, "fit", "photos", "--towers", "efficientnet-lite0,minilm", "--model", "dcca",
                       "--run-dir", tmp_path / "r", "--out", tmp_path / "t")
    assert code == 2 and "--run-dir: with --towers, only clip trains with checkpoints" in err


def test_fit_defaults_to_the_only_split_of_a_builtin_dataset_without_train(tmp_path, capsys):
    # photos has one split, "all": the default --split must not be a "train" it lacks
    args = ["fit", "photos", "--towers", "efficientnet-lite0,minilm", "--model", "rcca", "--n-components", "2"]
    code, out, err = run(capsys, *args, "--out", tmp_path / "default")
    assert code == 0, err
    assert "photos/all" in out
    code, _, err = run(capsys, *args, "--split", "all", "--out", tmp_path / "explicit")
    assert code == 0, err
    for name in ("state.safetensors", "config.json"):
        assert (tmp_path / "default" / name).read_bytes() == (tmp_path / "explicit" / name).read_bytes()


def test_refit_without_a_choice_drops_the_earlier_fits_selection(tmp_path, capsys):
    out = tmp_path / "m"
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--n-components", "3", "--out", out)
    assert code == 0, err
    assert (out / "selection.json").is_file()   # weight and preprocess were chosen by cross-validation
    code, _, err = run(capsys, "fit", "wikipedia", "--model", "cca", "--n-components", "2", "--param", "weight=1.0",
                       "--param", "preprocess=null", "--param", "reg=0", "--out", out)
    assert code == 0, err
    # every setting given: nothing was chosen, so no record of a choice made for the model replaced
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["config.json",
                                                                                   "state.safetensors"]


def test_a_new_run_without_a_test_report_drops_the_earlier_runs_report(tmp_path, capsys):
    args = ["fit", "wikipedia", "--model", "ae", "--epochs", "1", "--param", "latent_dim=4", "--param", "hidden=[16]",
            "--param", "progress=false", "--out", tmp_path / "ae"]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert (tmp_path / "ae.train" / "report.json").is_file()   # evaluated on the test split
    code, _, err = run(capsys, *args, "--split", "train+test")   # the test split is trained on: no report
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "ae.train").iterdir()) == ["checkpoints", "metrics.csv"]


def test_n_components_sets_the_latent_size_of_an_autoencoder(tmp_path, capsys):
    import jointspace as js

    args = ["fit", "wikipedia", "--model", "ae", "--epochs", "1", "--param", "hidden=[16]", "--param", "progress=false",
            "--split", "train+test", "--out", tmp_path / "ae"]
    code, _, err = run(capsys, *args, "--n-components", "3", "--param", "latent_dim=5")
    assert code == 2 and "--n-components: 3 disagrees with --param latent_dim=5" in err
    code, _, err = run(capsys, *args, "--n-components", "3")
    assert code == 0, err
    model = js.load_model(tmp_path / "ae")
    assert model.latent_dim == 3
    assert model.encode("text", js.load_dataset("wikipedia", "test")["text"][:4]).shape == (4, 3)


def test_a_resume_that_cannot_continue_names_the_option(tmp_path, capsys):
    code, _, err = run(capsys, *CLIP, "--out", tmp_path / "ref")
    assert code == 0, err
    args = [a if a != "3" else "4" for a in CLIP]   # another number of epochs: another schedule
    code, _, err = run(capsys, *args, "--resume", tmp_path / "ref.train", "--out", tmp_path / "more")
    assert code == 2 and err.startswith("error: --resume: checkpoint ") and "train.epochs: checkpoint 3 vs now 4" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "more").exists()
    code, _, err = run(capsys, *CLIP, "--resume", tmp_path / "nothing", "--out", tmp_path / "more")
    assert code == 2 and err.startswith("error: --resume: ") and "holds no checkpoint" in err
    # a damaged checkpoint is bad input too: the option is named, the exit status is 2
    from jointspace.train.checkpoint import checkpoint_dirs

    first, last = checkpoint_dirs(tmp_path / "ref.train")
    (last / "model.safetensors").write_bytes(b"0123456789")
    (first / "trainer.json").write_text("{bad")
    for ckpt, needle in ((last, "is truncated or corrupt: model.safetensors"),
                         (first, "is incomplete or corrupt: trainer.json unreadable")):
        code, _, err = run(capsys, *CLIP, "--resume", ckpt, "--out", tmp_path / "more")
        assert code == 2 and err.startswith("error: --resume: checkpoint ") and needle in err, err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "more").exists()


def test_resume_from_a_copied_checkpoint_writes_beside_out(tmp_path, capsys):
    import shutil

    import jointspace as js
    from jointspace.train.checkpoint import checkpoint_dirs

    code, _, err = run(capsys, *CLIP, "--out", tmp_path / "ref")
    assert code == 0, err
    copy = tmp_path / "kept"
    shutil.copytree(checkpoint_dirs(tmp_path / "ref.train")[0], copy)
    before = sorted(p.name for p in copy.iterdir())
    code, _, err = run(capsys, *CLIP, "--resume", copy, "--out", tmp_path / "resumed")
    assert code == 0, err
    assert sorted(p.name for p in copy.iterdir()) == before   # the copy is read, never written into
    assert checkpoint_dirs(tmp_path / "resumed.train")
    test = js.load_dataset("wikipedia")["test"]
    ref, resumed = js.load_model(tmp_path / "ref"), js.load_model(tmp_path / "resumed")
    np.testing.assert_array_equal(ref.encode("text", test["text"]), resumed.encode("text", test["text"]))
