"""The openclipart suite hands its ensembles the variant validation chose, never one test chose."""

from jointspace.bench import _contrastive
from jointspace.bench import openclipart as suite


def test_the_ensembles_use_the_variant_with_the_best_validation_recall(monkeypatch):
    import jointspace.data.datasets as datasets

    # test figures favour "a", validation favours "b": the ensembles must be of "b"
    rows = [{"method": "a", "val_recall": 0.3, "text->image/R@10": 0.9},
            {"method": "b", "val_recall": 0.6, "text->image/R@10": 0.2}]
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split, **kw: [0] * 4)
    monkeypatch.setattr(suite, "embedding_rows", lambda label, z, test, *a, **kw: {"method": label})
    monkeypatch.setattr(suite, "cca_rows", lambda *a, **kw: [])
    monkeypatch.setattr(suite, "kernel_row", lambda *a, **kw: {"method": "kernel CCA"})
    monkeypatch.setattr(_contrastive, "openclipart_features", lambda **kw: {})
    monkeypatch.setattr(_contrastive, "openclipart_contrastive_rows", lambda **kw: rows)
    monkeypatch.setattr(_contrastive, "openclipart_ensemble_rows",
                        lambda variant, **kw: calls.append((variant, kw.get("refit", False))) or [])
    monkeypatch.setattr("jointspace.eval.report.make_report", lambda dataset, split, rows: rows)
    out = suite.run(quick=False)
    assert calls == [("b", False), ("b", True)]
    assert [r["method"] for r in out] == ["random", "kernel CCA", "a", "b"]
