"""The command line end to end: exit codes, one-line errors, JSON output."""

import json

import numpy as np
import pytest

from jointspace.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


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
    (["fit", "nope", "--out", "x"], 2, "unknown dataset 'nope'"),
    (["fit", "wikipedia", "--model", "nope", "--out", "x"], 2, "unknown model 'nope'"),
    (["fit", "wikipedia", "--n-components", "50", "--out", "x"], 2, "n_components"),
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
    code, out, err = run(capsys, "bench", "wikipedia", "--json", "--out", str(out_file))
    assert code == 0, err
    report = json.loads(out)
    assert json.loads(out_file.read_text()) == report
    rows = {r["method"]: r for r in report["rows"]}
    assert abs(rows["random"]["image->text/mAP"] - 0.118) < 0.02
    best = max((r for m, r in rows.items() if m != "random"),
               key=lambda r: r["image->text/mAP"] + r["text->image/mAP"])
    assert best["image->text/mAP"] >= 0.249 and best["text->image/mAP"] >= 0.196
    assert np.isfinite([rows[m]["text->image/mAP"] for m in rows]).all()
