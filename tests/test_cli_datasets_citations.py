"""jointspace datasets: every built-in dataset is listed with how to cite it."""

import json

from cli_support import run

from jointspace.data.datasets import DATASETS


def test_datasets_show_each_citation(capsys):
    code, out, _ = run(capsys, "datasets", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["datasets"]}
    assert rows["wikipedia"]["citation"].startswith("N. Rasiwasia")
    assert "public domain" in rows["openclipart"]["citation"]
    # the built-in ones (other tests register small datasets of their own)
    builtin = [n for n in rows if DATASETS.get(n).__module__.startswith("jointspace.")]
    assert len(builtin) >= 7 and all(rows[n]["citation"] for n in builtin)
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "citation" in out and "Rasiwasia" in out and "Alpaydin" in out
