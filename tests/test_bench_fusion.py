"""The fusion suite's classification and robustness rows, on a small synthetic stand-in."""

import numpy as np
import pytest

from jointspace.data.pairs import Pairs

pytestmark = pytest.mark.usefixtures("one_thread")


def _pairs(n, seed):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(5)
    ci, ct = centres.normal(size=(3, 6)) * 2, centres.normal(size=(3, 4)) * 2
    y = rng.integers(0, 3, n)
    return Pairs({"image": (ci[y] + rng.normal(size=(n, 6))).astype(np.float32),
                  "text": (ct[y] + rng.normal(size=(n, 4))).astype(np.float32)}, labels=y,
                 label_names=["a", "b", "c"])


def test_rows_cover_every_fusion_and_noise_moves_accuracy(monkeypatch, capsys):
    from jointspace.bench import fusion as suite

    monkeypatch.setattr(suite, "_wikipedia", lambda quick: (_pairs(300, 0), _pairs(200, 1)))
    report = suite.classification("wikipedia", quick=True)
    methods = [r["method"] for r in report["rows"]]
    trained = [f"{f} (noise-trained)" for f in suite.NOISE_TRAINED]
    assert methods == ["image only", "text only", *suite.FUSION_ROWS, *trained]
    acc = {r["method"]: r["accuracy"] for r in report["rows"]}
    assert all(0.34 < a <= 1 for a in acc.values())  # above the 1/3 chance of three classes
    assert max(acc[f] for f in suite.FUSION_ROWS) >= max(acc["image only"], acc["text only"])
    assert {(r["method"], r["noisy"]) for r in report["noise"]} == {(f, m) for f in [*suite.NOISY, *trained]
                                                                     for m in ("image", "text")}
    for r in report["noise"]:
        assert r["drop"] == pytest.approx(acc[r["method"]] - r["accuracy"])
        assert sum(r["weights noisy"].values()) == pytest.approx(1.0, abs=1e-3)
        # the report's weights have three decimals (float32 means were written as 0.0689999982714653)
        assert all(v == round(v, 3) for w in (r["weights clean"], r["weights noisy"]) for v in w.values()), r
    suite.show({"classification": {"wikipedia": report}})
    assert "one modality replaced by noise" in capsys.readouterr().out



def test_quick_openclipart_sample_spans_the_categories(monkeypatch):
    """A split is ordered by category folder: the quick sample must not be its first rows."""
    import jointspace.data.datasets as datasets
    import jointspace.towers.base as towers
    import jointspace.towers.cache as cache
    from jointspace.bench import fusion as suite

    def load(name, split, text="title", limit=None):
        n = 1000
        labels = np.arange(n) // 100   # ten categories, one after the other
        pairs = Pairs({"image": [f"{split}/{i}.png" for i in range(n)], "text": [f"t{i}" for i in range(n)]},
                      labels=labels)
        return pairs if limit is None else pairs.subset(np.arange(limit))

    monkeypatch.setattr(datasets, "load_dataset", load)
    monkeypatch.setattr(towers, "create_tower", lambda name: name)
    monkeypatch.setattr(cache, "embed_cached", lambda tower, items, progress=False: np.zeros((len(items), 3),
                                                                                          np.float32))
    train, test = suite._openclipart(quick=True)
    for split in (train, test):
        assert len(split) == suite.QUICK_LIMIT
        assert set(np.asarray(split.labels).tolist()) == set(range(10))


def test_quick_rerank_splits_span_the_categories_with_features_of_the_same_rows(monkeypatch):
    """The re-ranking's quick splits are drawn as the classification's are, and each split's
    features are those of its own drawn rows."""
    import jointspace.bench._contrastive as contrastive
    import jointspace.data.datasets as datasets
    from jointspace.bench import fusion as suite

    def load(name, split):
        n = 1000
        return Pairs({"image": [f"{split}/{i}.png" for i in range(n)], "text": [f"t{i}" for i in range(n)]},
                     labels=np.arange(n) // 100)   # ten categories, one after the other

    def features(pairs):
        index = np.array([int(t[1:]) for t in pairs["text"]], np.float32)
        return pairs.with_modality("image", index[:, None]).with_modality("text", index[:, None])

    monkeypatch.setattr(datasets, "load_dataset", load)
    monkeypatch.setattr(contrastive, "openclipart_tower_features", features)
    raws, feats = suite._rerank_splits(quick=True)
    expected = np.sort(np.random.default_rng(0).choice(1000, suite.QUICK_LIMIT, replace=False))
    for split in ("train", "val", "test"):
        assert len(raws[split]) == len(feats[split]) == suite.QUICK_LIMIT
        assert set(np.asarray(raws[split].labels).tolist()) == set(range(10))
        assert [int(t[1:]) for t in raws[split]["text"]] == expected.tolist()
        np.testing.assert_array_equal(feats[split]["image"][:, 0], expected)
