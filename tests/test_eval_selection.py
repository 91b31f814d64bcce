"""Choosing settings by cross-validation: the score key, rank metrics, folds, quick bench grids."""

import numpy as np
import pytest
from sklearn.model_selection import KFold, StratifiedKFold

from jointspace.data.pairs import Pairs
from jointspace.errors import InputError
from jointspace.eval.selection import cv_folds, select_by_cv


class _Flip:
    """A stand-in joint model: text embeddings are the items, negated when ``flip``."""

    modalities_ = ("image", "text")

    def __init__(self, flip=False):
        self.flip = flip

    def fit(self, pairs):
        return self

    def encode(self, modality, items, normalize=True):
        z = np.asarray(items, dtype=np.float64)
        if modality == "text" and self.flip:
            z = -z                      # each text is then the farthest from its own image
        return z / np.linalg.norm(z, axis=1, keepdims=True) if normalize else z


@pytest.fixture
def pairs():
    a = np.random.default_rng(0).normal(size=(30, 5))
    return Pairs({"image": a, "text": a.copy()})    # no labels: pair identity, 3 folds of 10


def test_unknown_score_key_is_refused_with_the_known_names(pairs):
    with pytest.raises(InputError, match=r"score_key: expected one of mAP, R@1, R@5, R@10, MRR, medR, meanR, "
                                         r"nDCG@10; got 'accuracy'"):
        select_by_cv(_Flip, {"flip": [False, True]}, pairs, n_folds=3, score_key="accuracy")
    with pytest.raises(InputError, match="score_key: expected one of .*got 'n_queries'"):
        select_by_cv(_Flip, {"flip": [False, True]}, pairs, n_folds=3, score_key="n_queries")


def test_settings_that_all_fail_alike_report_the_setting_they_share(pairs):
    # a fixed value every setting shares: its own message, naming the parameter
    with pytest.raises(InputError, match=r"^n_components: expected at most .* got 500$"):
        select_by_cv("rcca", {"reg": [0.1, 1.0]}, pairs, fixed={"n_components": 500}, n_folds=3)
    # settings failing differently: the grid's message, with the first failure
    with pytest.raises(InputError, match=r"^grid: no setting could be fitted on the training folds \(the first "
                                         r"failed with: reg: expected a number >= 0.0, got -1.0\)"):
        select_by_cv("rcca", {"reg": [-1.0, -2.0]}, pairs, n_folds=3)


@pytest.mark.parametrize("key, best_score, worst_score", [
    ("medR", 1.0, 10.0), ("meanR", 1.0, 10.0),        # ranks: lower is better
    ("mAP", 1.0, 0.1), ("R@1", 1.0, 0.0),             # the rest: higher is better
])
def test_rank_metrics_are_minimised(pairs, key, best_score, worst_score):
    res = select_by_cv(_Flip, {"flip": [True, False]}, pairs, n_folds=3, score_key=key)
    assert res.best_params == {"flip": False}
    assert res.best_score == pytest.approx(best_score)
    worst = [row for row in res.table if row["flip"]][0]
    assert worst["score"] == pytest.approx(worst_score)       # the own partner ranks last of 10


def test_folds_fall_back_to_kfold_when_no_class_fills_every_fold():
    x = np.zeros((12, 2))
    tiny = Pairs({"image": x, "text": x}, labels=np.arange(12) // 2)      # classes of 2 < 3 folds
    want = list(KFold(3, shuffle=True, random_state=4).split(x))
    got = cv_folds(tiny, 3, seed=4)
    assert len(got) == 3
    for (tr, va), (wtr, wva) in zip(got, want):
        np.testing.assert_array_equal(tr, wtr)
        np.testing.assert_array_equal(va, wva)
    # a class large enough: still stratified
    strat = Pairs({"image": x, "text": x}, labels=np.arange(12) % 3)
    want = list(StratifiedKFold(4, shuffle=True, random_state=4).split(x, strat.labels))
    for (_, va), (_, wva) in zip(cv_folds(strat, 4, seed=4), want):
        np.testing.assert_array_equal(va, wva)
    with pytest.raises(InputError, match="pairs: 13-fold cross-validation needs at least 13 pairs, got 12"):
        cv_folds(tiny, 13)


@pytest.mark.parametrize("seed, match", [(-1, r"^seed: expected an integer >= 0, got -1"),
                                         (2**32, r"^seed: expected an integer <= 4294967295, got 4294967296"),
                                         (0.5, r"^seed: expected an integer, got 0.5")])
def test_folds_bad_seed_names_the_argument(seed, match):
    """scikit-learn's ValueError ('Seed must be between 0 and 2**32 - 1') named no argument."""
    x = np.zeros((12, 2))
    with pytest.raises(InputError, match=match):
        cv_folds(Pairs({"image": x, "text": x}, labels=np.arange(12) % 3), 3, seed=seed)


def test_selection_runs_on_classes_smaller_than_the_folds():
    a = np.random.default_rng(1).normal(size=(12, 4))
    tiny = Pairs({"image": a, "text": a.copy()}, labels=np.arange(12) // 2)
    res = select_by_cv(_Flip, {"flip": [True, False]}, tiny, n_folds=3, score_key="medR")
    assert res.best_params == {"flip": False} and res.best_score == pytest.approx(1.0)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("quick", [False, True])
def test_spoken_words_quick_tries_fewer_settings_on_fewer_voices(monkeypatch, quick):
    import jointspace.data.datasets as datasets
    import jointspace.models.towered as towered
    from jointspace.bench import spoken_words
    from jointspace.eval.selection import param_grid

    seen = {}

    def load_dataset(name, split, **options):
        seen.setdefault("options", []).append(options)
        return Pairs({"audio": np.zeros((4, 2)), "text": np.zeros((4, 2))}, labels=np.arange(4) % 2,
                     metadata={"accent": ["x"] * 4})

    def fit_with_towers(train, towers, **kwargs):
        seen["grid"] = kwargs["grid"]
        raise _Stop

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(towered, "fit_with_towers", fit_with_towers)
    with pytest.raises(_Stop):
        spoken_words.run(quick=quick)
    n_settings = len(param_grid(seen["grid"]))
    if quick:
        assert n_settings == 8 and seen["options"] == [{"settings_per_accent": 2}] * 3
    else:
        assert n_settings == 60 and seen["options"] == [{}] * 3


def test_settings_failing_on_the_same_fixed_parameter_report_it():
    # the text view has 3 columns of rank 2: at most 2 components unridged, 3 under a ridge,
    # so the two settings fail with different bounds, both on the n_components given
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 5))
    b = a[:, :2] @ rng.normal(size=(2, 3))
    with pytest.raises(InputError, match=r"^n_components: expected at most 2 \(the rank of 'text', the smallest "
                                         r"view\); got 4$"):
        select_by_cv("mcca", {"reg": [0.0, 0.5]}, Pairs({"image": a, "text": b}), fixed={"n_components": 4},
                     n_folds=3)
