"""``jointspace fit`` with the generative models: trains with checkpoints, evaluates coherence
on the test split, writes report.json (and, for pixel images, the grid of generations)."""

import json

import pytest

from cli_support import one_line, run


@pytest.mark.parametrize("name", ["mvae-mopoe", "ae"])
def test_fit_digits_trains_evaluates_and_reports(tmp_path, capsys, name):
    out = tmp_path / "model"
    code, stdout, err = run(capsys, "fit", "digits", "--model", name, "--epochs", "40", "--batch-size", "64", "--param", "lr=0.003", "--param", "latent_dim=8",
                            "--param", "hidden=[64]", "--out", out)
    assert code == 0, err
    assert (out / "config.json").is_file()
    report = json.loads((tmp_path / "model.train" / "report.json").read_text())
    row = report["rows"][0]
    assert report["split"] == "test"
    # 40 epochs of small batches are enough to carry the class from text to image well above chance (0.1)
    assert row["text->image/coherence"] > 0.3
    assert 0.0 <= row["joint/coherence"] <= 1.0
    assert row["classifier/text/accuracy"] == 1.0
    assert "text->image/coherence" in stdout and "report.json" in stdout
    assert (tmp_path / "model.train" / "metrics.csv").is_file()


def test_fit_generative_refuses_clip_only_options(tmp_path, capsys):
    code, _, err = run(capsys, "fit", "digits", "--model", "mvae-mopoe", "--members", "2", "--out", tmp_path / "m")
    assert code == 2 and one_line(err) and "--members" in err


@pytest.mark.parametrize("param, needle", [("latent_dim=0", "latent_dim"), ("beta=-1", "beta"),
                                           ("likelihood_weights=\"loud\"", "likelihood_weights")])
def test_fit_generative_bad_settings_are_one_line(tmp_path, capsys, param, needle):
    code, _, err = run(capsys, "fit", "digits", "--model", "mvae-mopoe", "--epochs", "1", "--param", param,
                       "--out", tmp_path / "m")
    assert code != 0 and one_line(err) and needle in err
    assert not (tmp_path / "m").exists()


def test_fit_generative_on_image_files_names_towers(tmp_path, capsys):
    """The model's own message ('image: ... (give towers={'image': NAME})') gave the Python form."""
    code, _, err = run(capsys, "fit", "photos", "--model", "aae", "--epochs", "1", "--out", tmp_path / "m")
    assert code == 2 and one_line(err)
    assert err.strip() == ("error: --towers: aae reads image as pixel arrays, feature vectors or texts, and photos "
                           "holds image files; read every modality through pretrained towers (e.g. --towers "
                           "efficientnet-lite0,minilm), or image alone (--param 'towers={\"image\": "
                           "\"efficientnet-lite0\"}')")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("param, shown", [
    ('likelihoods={"image": "poisson"}',
     "--param likelihoods['image']: expected one of bernoulli, gaussian, laplace, categorical; got 'poisson'"),
    ('likelihood_weights={"text": -1}', "--param likelihood_weights['text']: expected a number >= 0.0, got -1.0"),
])
def test_a_bad_entry_of_a_dict_setting_names_its_param(tmp_path, capsys, param, shown):
    """The message named the Python argument (likelihoods['image']: ...), not the option that gave it."""
    code, _, err = run(capsys, "fit", "digits", "--model", "aae", "--epochs", "1", "--param", param,
                       "--out", tmp_path / "m")
    assert code == 2 and one_line(err)
    assert err.strip() == f"error: {shown}"
