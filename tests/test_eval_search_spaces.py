"""Settings chosen on the training data over the benches' search spaces (``choose_settings``)."""

import json

import numpy as np
import pytest

from jointspace import InputError, Pairs, create_model
from jointspace.data.datasets import load_dataset
from jointspace.eval import search_spaces as ss
from jointspace.eval.retrieval import evaluate_retrieval
from jointspace.eval.selection import choose_settings, retrieval_map, select_by_cv

#: the Wikipedia bench's test mAP (mean of both directions) of its rows, from
#: ``jointspace.bench.wikipedia.model_rows`` and ``wikipedia_family_rows`` (settings chosen on train)
BENCH_CCA, BENCH_RCCA, BENCH_SCM_ON_CCA = 0.2345, 0.2475, 0.2650


@pytest.fixture(scope="module")
def wiki():
    return load_dataset("wikipedia")


def _mean_map(model, test):
    return retrieval_map(model, test)["mean"]


def test_bench_grids_are_the_librarys(wiki):
    """The grids the benches cross-validated before they moved into the library, resolved on
    Wikipedia's training split (a 128-d histogram view and a 10-d topic view of rank 9)."""
    from jointspace.bench import openclipart
    from jointspace.bench._wikipedia_family import SQRT_IMAGE

    train = wiki["train"]
    cca = ss.resolve_space("cca", train, n_folds=5)
    assert cca.grid == [{"n_components": [9]}]
    assert cca.derive == {"n_components": [3, 5, 7, 9], "weight": [0.0, 1.0]}
    rcca = ss.resolve_space("rcca", train, n_folds=5)
    assert rcca.grid == [{"n_components": [10], "preprocess": ["standard"],
                          "reg": [1e-3, 1e-2, 0.1, 0.3, 0.5, 0.7, 0.9]}]
    assert rcca.derive == {"n_components": [3, 5, 7, 9, 10], "weight": [0.0, 1.0]}
    assert ss.resolve_space("pls", train, n_folds=5).grid == [{"n_components": [10], "preprocess": ["standard"]}]
    kcca = ss.resolve_space("kcca", train, {"preprocess": SQRT_IMAGE}, n_folds=3)
    assert kcca.grid == [{"n_components": [15], "reg": [0.001, 0.003, 0.01], "kernel": ["rbf", ("rbf", "poly")]}]
    assert kcca.derive == {"n_components": [7, 9, 15]}
    assert kcca.fixed == {"method": "nystroem", "n_features": 600, "weight": 1.0, "preprocess": SQRT_IMAGE}
    assert ss.resolve_space("sm", train, {"preprocess": SQRT_IMAGE}, n_folds=3).grid == [{"C": [1.0, 10.0, 100.0]}]
    # supervised CCA: the bench's list was [9, 15]; 15 never fitted (10 classes: a label view of rank 9)
    assert ss.resolve_space("scca", train, {"preprocess": SQRT_IMAGE}, n_folds=3).grid == [
        {"weight": [1.0, 4.0], "n_components": [9]}]
    # the OpenClipart bench reads its kernel-CCA grid from the library
    assert openclipart.KCCA_GRID == {"reg": [0.01, 0.1], "n_components": [64, 128]} == ss.KCCA_WIDE_GRID
    assert openclipart.KCCA_FIXED == {**ss.KCCA_WIDE_FIXED, "preprocess": {"image": "pca:256", "text": "pca:256"},
                                      "modalities": ["image", "text"]}


def test_no_settings_choose_the_bench_rows_settings_and_beat_the_old_defaults(wiki):
    train, test = wiki["train"], wiki["test"]
    cca = choose_settings("cca", train)
    assert cca.settings == {"n_components": 9, "weight": 1.0} and cca.given == {}
    assert cca.protocol == "5-fold CV" and len(cca.table) == 8        # 4 sizes x 2 weightings, one fit per fold
    assert cca.best_score == pytest.approx(0.2299, abs=1e-4)
    assert _mean_map(cca.model, test) == pytest.approx(BENCH_CCA, abs=1e-4)
    old_default = create_model("cca", n_components=2, weight=0.0).fit(train)
    assert _mean_map(old_default, test) == pytest.approx(0.1940, abs=1e-4)
    # the constructor defaults (every pair the views hold, correlation weighting) are the choice here
    default = create_model("cca").fit(train)
    assert default.n_components_ == 9 and _mean_map(default, test) == pytest.approx(BENCH_CCA, abs=1e-4)
    rcca = choose_settings("rcca", train)
    assert rcca.settings == {"n_components": 9, "preprocess": "standard", "reg": 0.5, "weight": 1.0}
    assert _mean_map(rcca.model, test) == pytest.approx(BENCH_RCCA, abs=1e-4)
    summary = json.loads(json.dumps(rcca.summary()))
    assert summary["settings"]["reg"] == 0.5 and summary["metric"] == "mAP" and summary["n_tried"] == 70


def test_given_settings_are_kept_and_not_searched(wiki):
    train = wiki["train"]
    res = choose_settings("rcca", train, given={"reg": 0.2, "n_components": 4})
    assert res.given == {"reg": 0.2, "n_components": 4}
    assert res.settings == {"reg": 0.2, "n_components": 4, "preprocess": "standard", "weight": 1.0}
    assert set(res.best_params) == {"preprocess", "weight"}
    assert {row["weight"] for row in res.table} == {0.0, 1.0} and len(res.table) == 2
    assert res.model.reg == 0.2 and res.model.n_components_ == 4
    # every searched setting given: fitted once, nothing scored
    everything = {"n_components": 4, "reg": 0.2, "preprocess": "standard", "weight": 0.0}
    res = choose_settings("rcca", train, given=everything)
    assert res.protocol == "none" and res.table == [] and np.isnan(res.best_score)
    assert res.settings == everything and res.model.get_params()["reg"] == 0.2
    assert res.summary()["score"] is None
    # a model with no search space (trained models) is fitted as given
    with pytest.raises(InputError, match="unknown parameter 'n_compnents'"):
        choose_settings("cca", train, given={"n_compnents": 3})


def test_components_follow_what_the_data_holds():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3))
    x = np.hstack([z, rng.normal(size=(60, 3))])
    y = z @ rng.normal(size=(3, 5))                     # 5 features of rank 3
    pairs = Pairs({"a": x, "b": y})
    assert ss.resolve_space("cca", pairs, n_folds=5).derive["n_components"] == [3]      # the rank
    assert ss.resolve_space("rcca", pairs, n_folds=5).derive["n_components"] == [3, 5]  # the width, under ridge
    # wider data than the bench's: the ladder grows, up to what the views hold
    wide = Pairs({"a": rng.normal(size=(300, 40)), "b": rng.normal(size=(300, 30))})
    assert ss.resolve_space("cca", wide, n_folds=5).derive["n_components"] == [3, 5, 7, 9, 16, 30]
    # tower-like features (wider than 256): PCA sizes below each view's width, per fit
    towers = Pairs({"image": rng.normal(size=(400, 300)), "text": rng.normal(size=(400, 100))})
    rs = ss.resolve_space("cca", towers, n_folds=5)
    assert rs.kind == "wide"
    assert [g["preprocess"] for g in rs.grid] == [
        [None], [{"image": "pca:64", "text": "pca:64"}], [{"image": "pca:128"}], [{"image": "pca:256"}]]
    assert [g["n_components"] for g in rs.grid] == [[100], [64], [100], [100]]
    assert rs.derive == {"weight": [0.0, 1.0, 2.0], "n_components": [16, 32, 64, 100]}
    # Hellinger candidates only for non-negative views
    hist = Pairs({"a": np.abs(x), "b": y})
    assert ss.resolve_space("sm", hist, n_folds=3).grid[0]["preprocess"] == [None, {"a": "sqrt"}]


def test_a_derived_setting_a_fit_cannot_give_is_skipped_not_its_fit():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(90, 2))
    pairs = Pairs({"a": z @ rng.normal(size=(2, 6)) + 0.3 * rng.normal(size=(90, 6)),
                   "b": z @ rng.normal(size=(2, 4)) + 0.3 * rng.normal(size=(90, 4))})
    res = select_by_cv("cca", [{"n_components": [2]}, {"n_components": [4]}], pairs, n_folds=3,
                       derive={"n_components": [2, 4], "weight": [0.0]})
    fitted = [(row["n_components"], len(row["fold_scores"])) for row in res.table]
    assert fitted == [(2, 3), (2, 3), (4, 3)]    # the 2-pair fit cannot give 4 pairs: that variant only is left out


def test_validation_split_scores_the_refitted_model(wiki):
    train = wiki["train"]
    idx = np.random.default_rng(0).permutation(len(train))
    fit_part, val = train.subset(idx[:1700]), train.subset(idx[1700:])
    res = choose_settings("cca", fit_part, val=val)
    assert res.protocol == "validation split" and res.settings["n_components"] in (3, 5, 7, 9)
    got = evaluate_retrieval(res.model, val)
    assert res.best_score == pytest.approx((got["image->text/mAP"] + got["text->image/mAP"]) / 2, abs=1e-9)
    best = max(res.table, key=lambda r: r["score"])
    assert {k: best[k] for k in ("n_components", "weight")} == res.best_params


def test_scm_on_a_cca_base_reproduces_the_bench_row(wiki):
    """SCM with the base given: the base's settings by its own CV, then C and its size (the
    bench's 'SCM on CCA' row, 3 folds)."""
    train, test = wiki["train"], wiki["test"]
    res = choose_settings("scm", train, given={"base": "cca"}, n_folds=3)
    assert res.settings["C"] == 1.0 and res.settings["base"] == "cca"
    assert res.settings["base_params"] == {"n_components": 9, "preprocess": None, "weight": 1.0}
    assert _mean_map(res.model, test) == pytest.approx(BENCH_SCM_ON_CCA, abs=1e-4)
    assert len(res.table) == 4                          # C in (1, 10) x base sizes (7, 9)


def test_kernel_cca_over_towers_is_chosen_on_the_validation_split(tmp_path):
    """``fit_with_towers`` with a kernel-CCA head searches its (wide-feature) space on val."""
    from test_towers_model import SMALL, _pairs

    from jointspace.models.towered import fit_with_towers, recall_at_k

    train, val = _pairs(), _pairs(shapes=("drawing",))
    model, report = fit_with_towers(train, {"image": "efficientnet-lite0", "text": "minilm"}, head="kcca",
                                    head_params={"reg": 0.1}, val_pairs=val, relevance="colour",
                                    cache=str(tmp_path / "c"), tower_params=SMALL, k=5)
    best = report["best"]
    # wide tower features: the OpenClipart bench's kernel-CCA settings, PCA capped by the 24 samples
    assert best["head_params"]["preprocess"] == {"image": "pca:23", "text": "pca:23"}
    assert best["head_params"]["reg"] == 0.1 and best["head_params"]["n_features"] == 1500
    assert len(val) > 10 and best["protocol"] == "validation split" and best["metric"] == "R@5"
    assert model.head_.n_components_ == best["head_params"]["n_components"]
    zi, zt = model.encode("image", val["image"]), model.encode("text", val["text"])
    keys = np.asarray(val.metadata["colour"])
    again = np.mean([recall_at_k(zt, zi, keys, keys, 5), recall_at_k(zi, zt, keys, keys, 5)])
    assert again == pytest.approx(best["score"], abs=1e-9)


def test_multiset_cca_derives_fewer_components_and_another_weighting(wiki):
    train, test = wiki["train"], wiki["test"]
    full = create_model("mcca", n_components=9, reg=0.1, weight=0.0).fit(train)
    derived = full.derive(n_components=5, weight=1.0)
    fresh = create_model("mcca", n_components=5, reg=0.1, weight=1.0).fit(train)
    np.testing.assert_allclose(derived.encode("text", test["text"]), fresh.encode("text", test["text"]), atol=1e-10)
    assert derived.n_components_ == 5 and full.n_components_ == 9
    # no ridge, no settings: plain two-view CCA's choice (9 pairs, correlation weighting)
    res = choose_settings("mcca", train)
    assert res.settings == {"n_components": 9, "reg": 0.0, "weight": 1.0}
    assert _mean_map(res.model, test) == pytest.approx(BENCH_CCA, abs=1e-4)
