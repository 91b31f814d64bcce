"""The retrieval report: its JSON shape, the printed table and the atomic write."""

import json
import math
import os

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.eval.report import format_table, make_report, read_json, render_table, report_columns, write_json
from jointspace.eval.retrieval import evaluate_embeddings


@pytest.fixture
def report():
    rows = [
        {"method": "random", "image->text/mAP": np.float64(0.118), "text->image/mAP": 0.1181,
         "image->text/R@1": 0.1, "image->text/medR": 312.0, "text->image/medR": 300.5},
        {"method": "cca", "image->text/mAP": 0.2491, "text->image/mAP": 0.1962, "n_components": np.int64(7),
         "image->text/R@1": 0.31, "image->text/medR": 12.0, "text->image/medR": 20.0},
    ]
    return make_report("wikipedia", "test", rows)


def test_make_report_shape_and_plain_values(report):
    assert set(report) == {"dataset", "split", "rows"}
    assert report["rows"][0]["method"] == "random"
    assert type(report["rows"][0]["image->text/mAP"]) is float
    assert type(report["rows"][1]["n_components"]) is int
    json.dumps(report)  # JSON-able as is


def test_report_from_evaluation_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    emb = {"image": rng.standard_normal((30, 4)), "text": rng.standard_normal((30, 4))}
    res = evaluate_embeddings(emb, rng.integers(0, 3, 30))
    rep = make_report("toy", "test", [{"method": "random", **res}])
    path = tmp_path / "sub" / "report.json"
    write_json(rep, path)
    assert read_json(path) == rep
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temporary left behind


def test_write_json_is_atomic_on_failure(tmp_path, report):
    path = tmp_path / "report.json"
    write_json(report, path)
    before = path.read_text()
    bad = dict(report, rows=[{"method": "x", "a->b/mAP": object()}])
    with pytest.raises(TypeError):
        write_json(bad, path)
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["report.json"]


def test_nan_becomes_null(tmp_path):
    rep = make_report("d", "s", [{"method": "m", "a->b/mAP": float("nan")}])
    assert rep["rows"][0]["a->b/mAP"] is None
    write_json(rep, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["a->b/mAP"] is None


def test_columns_grouped_by_direction_in_metric_order(report):
    assert report_columns(report) == ["image->text/mAP", "image->text/R@1", "image->text/medR",
                                      "text->image/mAP", "text->image/medR"]
    assert report_columns(report, ["medR"]) == ["image->text/medR", "text->image/medR"]


def test_table_has_one_row_per_method(report):
    table = format_table(report)
    assert table.row_count == 2 and len(table.columns) == 6
    text = render_table(report)
    assert "wikipedia (test)" in text
    lines = [ln for ln in text.splitlines() if ln.strip().startswith(("│ cca", "| cca", "cca"))]
    assert lines and "0.249" in lines[0] and "0.196" in lines[0] and "12.0" in lines[0]
    assert "-" in render_table(make_report("d", "s", [{"method": "m", "a->b/mAP": math.nan,
                                                       "a->b/R@1": 0.5}]))


@pytest.mark.parametrize("args, match", [
    (("", "test", []), "dataset: expected a non-empty string"),
    (("d", None, []), "split: expected a non-empty string"),
    (("d", "s", {"method": "m"}), "rows: expected a list of dicts"),
    (("d", "s", [{"a->b/mAP": 0.1}]), r"rows\[0\]: expected a 'method' name"),
    (("d", "s", ["x"]), r"rows\[0\]: expected a dict"),
])
def test_bad_reports(args, match):
    with pytest.raises(InputError, match=match):
        make_report(*args)


def test_read_json_errors(tmp_path):
    with pytest.raises(InputError, match="no report at"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a valid JSON report"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(InputError, match="is not a report"):
        read_json(tmp_path / "other.json")
