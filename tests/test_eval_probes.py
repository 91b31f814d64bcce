"""Cross-validated linear probes."""

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.eval.probes import probe_accuracy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_probe_matches_a_fold_by_fold_computation():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], [30, 20, 10])
    z = rng.normal(size=(60, 4)) + np.select([y == "a", y == "b"], [0.0, 1.0], 2.0)[:, None] * [1, 0, 0, 0]
    out = probe_accuracy(z, y, folds=5, seed=1)
    codes = np.unique(y, return_inverse=True)[1]
    hits = 0
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=1).split(z, codes):
        sc = StandardScaler().fit(z[tr])
        clf = LogisticRegression(max_iter=2000).fit(sc.transform(z[tr]), codes[tr])
        hits += int(np.sum(clf.predict(sc.transform(z[te])) == codes[te]))
    assert out["accuracy"] == pytest.approx(hits / 60)
    assert out["chance"] == pytest.approx(0.5)        # 30 of 60 are "a"
    assert out["above_chance"] == pytest.approx(out["accuracy"] - 0.5)
    assert out["classes"] == 3


def test_probe_separable_and_unrelated():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 50)
    assert probe_accuracy(np.c_[y * 10.0 + rng.normal(size=100)], y)["accuracy"] == 1.0
    assert abs(probe_accuracy(rng.normal(size=(100, 3)), y)["above_chance"]) < 0.2


def test_probe_bad_input():
    z = np.zeros((10, 2))
    with pytest.raises(InputError, match="labels: expected one label per row of z \\(10\\)"):
        probe_accuracy(z, [0] * 9)
    with pytest.raises(InputError, match="two distinct"):
        probe_accuracy(z, [0] * 10)
    with pytest.raises(InputError, match="at least folds=5 items"):
        probe_accuracy(z, [0] * 8 + [1] * 2)
    with pytest.raises(InputError, match="folds"):
        probe_accuracy(z, [0, 1] * 5, folds=1)
    with pytest.raises(InputError, match=r"max_iter: expected an integer >= 1, got -1"):
        probe_accuracy(z, [0, 1] * 5, max_iter=-1)


@pytest.mark.parametrize("labels, match", [
    (np.array([1, "1"] * 10, dtype=object), r"labels: expected keys of one kind, got both numbers and strings"),
    ([1, 2] * 9 + [np.nan, np.nan], r"labels: sample 18 is nan"),
    ([1, 2] * 9 + [None, None], r"labels: sample 18 is None"),
])
def test_probe_labels_are_not_merged_or_nan(labels, match):
    with pytest.raises(InputError, match=match):
        probe_accuracy(np.random.default_rng(0).normal(size=(20, 2)), labels)


@pytest.mark.parametrize("seed, match", [(-1, r"^seed: expected an integer >= 0, got -1"),
                                         (2**32, r"^seed: expected an integer <= 4294967295, got 4294967296"),
                                         (1.5, r"^seed: expected an integer, got 1.5")])
def test_probe_bad_seed_names_the_argument(seed, match):
    """scikit-learn's own ValueError ('Seed must be between 0 and 2**32 - 1') named no argument."""
    z = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(InputError, match=match):
        probe_accuracy(z, [0, 1] * 5, seed=seed)


def _speakers(n_groups=20, per_group=15, dim=24, seed=0):
    """Rows of ``n_groups`` speakers: each speaker has a random offset of its own and a label
    drawn at random per speaker, so the label is readable only by recognising the speaker."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(scale=3.0, size=(n_groups, dim))
    group_labels = np.tile([0, 1], n_groups // 2)
    groups = np.repeat(np.arange(n_groups), per_group)
    z = offsets[groups] + 0.1 * rng.normal(size=(len(groups), dim))
    return z, group_labels[groups], np.array([f"spk{g}" for g in groups])


def test_probe_grouped_matches_a_fold_by_fold_computation():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.preprocessing import StandardScaler

    z, y, groups = _speakers()
    out = probe_accuracy(z, y, groups=groups, folds=5, seed=3)
    codes = np.unique(groups, return_inverse=True)[1]
    hits = 0
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=3).split(z, y, codes):
        assert not set(codes[tr]) & set(codes[te])
        sc = StandardScaler().fit(z[tr])
        clf = LogisticRegression(max_iter=2000).fit(sc.transform(z[tr]), y[tr])
        hits += int(np.sum(clf.predict(sc.transform(z[te])) == y[te]))
    assert out["accuracy"] == pytest.approx(hits / len(y))
    assert out["groups"] == 20
    assert probe_accuracy(z, y)["groups"] is None


def test_probe_grouped_does_not_read_the_label_from_the_speaker():
    """Ungrouped folds put each speaker's other rows in training: the probe then reads the
    per-speaker label off the speaker's offset.  Grouped, it is near chance."""
    z, y, groups = _speakers()
    assert probe_accuracy(z, y)["accuracy"] > 0.95
    assert abs(probe_accuracy(z, y, groups=groups)["above_chance"]) < 0.25


def test_probe_grouped_bad_input():
    z, y, groups = _speakers(n_groups=4, per_group=5)
    with pytest.raises(InputError, match=r"^groups: expected one group per row of z \(20\), got shape \(19,\)"):
        probe_accuracy(z, y, groups=groups[:-1])
    with pytest.raises(InputError, match=r"^groups: expected at least folds=5 distinct groups, got 4"):
        probe_accuracy(z, y, groups=groups)
    with pytest.raises(InputError, match=r"^groups: sample 0 is None"):
        probe_accuracy(z, y, groups=[None] * 20, folds=2)
    z, y, groups = _speakers(n_groups=6, per_group=5)
    y = np.where(groups == "spk0", 1, 0)           # one group holds every row of one value
    with pytest.raises(InputError, match=r"^labels: every value needs|^groups: a fold's training groups"):
        probe_accuracy(z, y, groups=groups, folds=2)
