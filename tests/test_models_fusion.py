"""Early, late and attention fusion for multimodal classification."""

import numpy as np
import pytest

from jointspace.data.pairs import Pairs
from jointspace.errors import InputError, NotFittedError
from jointspace.models.fusion import FUSIONS, FusionClassifier

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"epochs": 60, "hidden": 32}


def _data(n, seed, noise_b=0.0):
    """Three classes; modality a sees them clearly, b less so (or not at all with noise_b)."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(11)
    ca, cb = mix.normal(size=(3, 6)) * 3, mix.normal(size=(3, 4)) * 1.5
    y = rng.integers(0, 3, n)
    a = ca[y] + rng.normal(size=(n, 6))
    b = cb[y] + rng.normal(size=(n, 4))
    if noise_b:
        b = rng.normal(size=(n, 4)) * noise_b
    return Pairs({"a": a.astype(np.float32), "b": b.astype(np.float32)}, labels=np.array(["x", "y", "z"])[y])


@pytest.fixture(scope="module")
def data():
    return _data(600, 0), _data(300, 1)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_classifies_and_returns_weights(fusion, data):
    train, test = data
    model = FusionClassifier(fusion=fusion, **FAST).fit(train)
    items = {"a": test["a"], "b": test["b"]}
    assert model.score(items, test.labels) > 0.9
    proba, weights = model.predict_proba(items, return_weights=True)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert list(model.classes_) == ["x", "y", "z"] and weights.shape == (300, 2)
    if fusion != "stacking":
        np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)   # attention rows sum to one


def test_stacking_reads_the_class_prior_for_a_missing_modality(data):
    train, test = data
    model = FusionClassifier(fusion="stacking").fit(train)
    a = test["a"][:20]
    proba, weights = model.predict_proba({"a": a}, return_weights=True)
    _, counts = np.unique(train.labels, return_counts=True)   # classes x, y, z in order
    prior = np.tile(counts / counts.sum(), (20, 1))
    want = model.stacker_.predict_proba(np.hstack([model.members_["a"].predict_proba(a), prior]))
    np.testing.assert_allclose(proba, want, rtol=1e-12)
    assert weights.shape == (20, 2) and np.isnan(weights).all()


def test_return_weights_takes_true_or_false_only(data):
    train, test = data
    model = FusionClassifier(fusion="mean", **FAST).fit(train)
    items = {"a": test["a"][:5], "b": test["b"][:5]}
    for method in (model.predict, model.predict_proba):
        with pytest.raises(InputError, match=r"^return_weights: expected True or False, got 'no'$"):
            method(items, return_weights="no")
        assert isinstance(method(items, return_weights=np.bool_(False)), np.ndarray)


def test_late_fusion_by_hand(data):
    train, test = data
    items = {"a": test["a"][:20], "b": test["b"][:20]}
    mean = FusionClassifier(fusion="mean").fit(train)
    pa, pb = (mean.members_[m].predict_proba(items[m]) for m in ("a", "b"))
    np.testing.assert_allclose(mean.predict_proba(items), (pa + pb) / 2, rtol=1e-6)
    prod = FusionClassifier(fusion="product").fit(train)
    pa, pb = (prod.members_[m].predict_proba(items[m]) for m in ("a", "b"))
    want = pa * pb / (pa * pb).sum(1, keepdims=True)
    np.testing.assert_allclose(prod.predict_proba(items), want, rtol=1e-5, atol=1e-12)
    # a modality left out: the other alone, with all the weight
    proba, w = mean.predict_proba({"b": items["b"]}, return_weights=True)
    np.testing.assert_allclose(proba, mean.members_["b"].predict_proba(items["b"]), rtol=1e-6)
    assert proba.shape == (20, 3) and np.all(w == [0.0, 1.0])


def test_stacking_learns_from_out_of_fold_probabilities_only(data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from jointspace.models.fusion import late_member

    train, test = data
    train = train.subset(np.arange(150))
    model = FusionClassifier(fusion="stacking", seed=4).fit(train)
    y = np.unique(train.labels, return_inverse=True)[1]
    # by hand: each row's probabilities come from a member that never saw it (no leakage into the
    # meta-classifier), over the same five stratified folds for every modality
    oof = np.zeros((150, 6))
    for rows, held in StratifiedKFold(5, shuffle=True, random_state=4).split(np.zeros((150, 1)), y):
        for i, m in enumerate(("a", "b")):
            oof[held, 3 * i:3 * i + 3] = late_member(3).fit(train[m][rows], y[rows]).predict_proba(train[m][held])
    meta = LogisticRegression(max_iter=3000).fit(oof, y)
    np.testing.assert_allclose(model.stacker_.coef_, meta.coef_, atol=1e-3)
    items = {"a": test["a"][:20], "b": test["b"][:20]}
    members = np.hstack([model.members_[m].predict_proba(items[m]) for m in ("a", "b")])   # fitted on every row
    np.testing.assert_allclose(model.predict_proba(items), meta.predict_proba(members), atol=1e-3)


@pytest.mark.parametrize("fusion", ["attention", "gated", "weighted"])
def test_weights_move_to_the_informative_modality(fusion):
    train = _data(600, 0, noise_b=1.0)        # b is pure noise
    model = FusionClassifier(fusion=fusion, **FAST).fit(train)
    test = _data(300, 1, noise_b=1.0)
    _, w = model.predict({"a": test["a"], "b": test["b"]}, return_weights=True)
    assert w[:, 0].mean() > 0.7, w.mean(0)


def test_a_missing_modality(data):
    train, test = data
    att = FusionClassifier(fusion="attention", **FAST).fit(train)
    labels, w = att.predict({"a": test["a"]}, return_weights=True)
    assert np.all(w[:, 0] == 1.0) and np.all(w[:, 1] == 0.0)
    assert np.mean(labels == test.labels) > 0.9
    early = FusionClassifier(fusion="early", **FAST).fit(train)
    with pytest.raises(InputError, match="early fusion reads every modality at once; no b"):
        early.predict({"a": test["a"]})


def test_bad_input(data):
    train, test = data
    with pytest.raises(InputError, match="fusion: expected one of"):
        FusionClassifier(fusion="late").fit(train)
    with pytest.raises(InputError, match="one label per pair"):
        FusionClassifier().fit(Pairs({"a": train["a"], "b": train["b"]}))
    with pytest.raises(InputError, match="at least two modalities"):
        FusionClassifier(modalities=["a"]).fit(train)
    with pytest.raises(NotFittedError):
        FusionClassifier().predict({"a": test["a"]})
    model = FusionClassifier(fusion="mean").fit(train)
    with pytest.raises(InputError, match="items \\(a\\): expected 6 features, got 5"):
        model.predict({"a": test["a"][:, :5]})
    with pytest.raises(InputError, match="same number of rows"):
        model.predict({"a": test["a"][:5], "b": test["b"][:6]})
    with pytest.raises(InputError, match="knows no 'c'"):
        model.predict({"c": test["a"]})
    with pytest.raises(InputError, match="NaN|finite"):
        model.predict({"a": np.full((2, 6), np.nan, np.float32)})


def test_transformer_fusion_needs_a_width_its_heads_divide(data):
    with pytest.raises(InputError, match="hidden: the transformer fusion splits it over 4 heads"):
        FusionClassifier(fusion="transformer", hidden=30, epochs=1).fit(data[0])


def test_late_members_choose_their_strength_even_with_a_rare_class():
    import warnings

    rng = np.random.default_rng(0)
    # class 2 has one member: the fold that holds it out trains without class 2 (no column for it)
    y = np.r_[np.repeat([0, 1], 40), [2]]
    a = (rng.normal(size=(81, 3)) + y[:, None]).astype(np.float32)
    b = (rng.normal(size=(81, 2)) + y[:, None]).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = FusionClassifier(fusion="mean", val_fraction=0.0).fit(Pairs({"a": a, "b": b}, labels=y))
    # scikit-learn's note that a class has fewer members than folds is expected here, not shown
    assert not [w for w in caught if "least populated class" in str(w.message)]
    for member in model.members_.values():
        assert np.isfinite(member.cv_results_["mean_test_score"]).all()
    # by hand: a fold model without class 2 gives its held-out member probability 0 for its class
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from jointspace.models.fusion import _neg_log_loss_all_classes

    a64 = a.astype(np.float64)   # float64 probabilities sum to 1 as log_loss expects
    two = LogisticRegression().fit(a64[:80], y[:80])
    proba = two.predict_proba(a64)
    want = log_loss(y, np.c_[proba, np.zeros(81)], labels=[0, 1, 2])
    assert _neg_log_loss_all_classes(two, a64, y, n_classes=3) == pytest.approx(-want)
    assert np.isfinite(want) and want > log_loss(y[:80], proba[:80], labels=[0, 1])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_few_rows_of_many_classes(fusion):
    """Ten classes of four rows (the held-out share and every fold smaller than the classes): the
    validation split is drawn unstratified and the members' folds unstratified, without an error."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 4)
    pairs = Pairs({"a": (rng.normal(size=(40, 6)) + y[:, None]).astype(np.float32),
                   "b": rng.normal(size=(40, 5)).astype(np.float32)}, labels=y)
    model = FusionClassifier(fusion=fusion, epochs=2, hidden=8).fit(pairs)
    proba = model.predict_proba({"a": pairs["a"], "b": pairs["b"]})
    assert proba.shape == (40, 10) and np.isfinite(proba).all()


def test_the_members_folds_are_scikit_learns_where_the_classes_fill_them():
    from sklearn.model_selection import KFold, StratifiedKFold

    from jointspace.models.fusion import _Folds

    x = np.zeros((30, 1))
    y = np.repeat([0, 1, 2], 10)
    for got, want in zip(_Folds(3).split(x, y), StratifiedKFold(3).split(x, y)):
        assert [list(g) for g in got] == [list(w) for w in want]
    for got, want in zip(_Folds(5, shuffle=True, seed=4).split(x, y),
                         StratifiedKFold(5, shuffle=True, random_state=4).split(x, y)):
        assert [list(g) for g in got] == [list(w) for w in want]
    y = np.arange(30) % 15    # two rows per class: plain folds
    for got, want in zip(_Folds(3).split(x, y), KFold(3).split(x, y)):
        assert [list(g) for g in got] == [list(w) for w in want]


def _noisy(pairs, modality, seed):
    """``pairs`` with one modality replaced by Gaussian noise of its own mean and spread."""
    rng = np.random.default_rng(seed)
    x = pairs[modality]
    fake = (x.mean(0) + rng.normal(size=x.shape) * x.std(0)).astype(np.float32)
    return {m: (fake if m == modality else pairs[m]) for m in pairs.modalities}


def test_noise_training_teaches_attention_to_look_away_from_a_corrupted_modality(data):
    train, test = data
    plain = FusionClassifier(fusion="attention", **FAST).fit(train)
    taught = FusionClassifier(fusion="attention", modality_noise=0.5, **FAST).fit(train)
    clean = {"a": test["a"], "b": test["b"]}
    # a is the clearer modality: corrupt it, b must carry the prediction
    noisy = _noisy(test, "a", 0)
    _, w_plain = plain.predict(noisy, return_weights=True)
    _, w_taught = taught.predict(noisy, return_weights=True)
    # measured: b's weight 0.13 -> 0.26, accuracy 0.41 -> 0.48 (seeded, one thread)
    assert w_taught[:, 1].mean() > w_plain[:, 1].mean() + 0.08, (w_plain.mean(0), w_taught.mean(0))
    assert taught.score(noisy, test.labels) > plain.score(noisy, test.labels) + 0.03
    assert taught.score(clean, test.labels) > 0.9          # clean inputs still classified
    with pytest.raises(InputError, match="modality_noise"):
        FusionClassifier(modality_noise=1.5).fit(train)


def test_noise_trained_fusion_chooses_its_epoch_on_clean_and_corrupted_validation_rows(data):
    import torch
    from sklearn.model_selection import train_test_split

    train, _ = data
    model = FusionClassifier(fusion="attention", modality_noise=0.4, **FAST).fit(train)
    history, best = model.train_result_.history, model.train_result_.best_epoch
    assert all("val_loss_clean" in e for e in history)
    assert min(history, key=lambda e: e["val_loss"]) is history[best]   # the mixed loss chooses
    # recompute the kept epoch's criterion by hand: the validation rows fit() held out, clean
    # with weight 0.6 and each modality replaced by its fixed noise with weight 0.4 / 2
    y = np.unique(train.labels, return_inverse=True)[1]
    _, va = train_test_split(np.arange(len(train)), test_size=0.15, random_state=0, stratify=y)
    net, target = model.net_, torch.from_numpy(y[va])
    x = {m: torch.from_numpy(np.asarray(train[m], np.float32)[va]) for m in ("a", "b")}
    present = torch.ones((len(va), 2), dtype=torch.bool)

    def loss(inputs):
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(net(inputs, present)[0], target))

    noisy = []
    for i, m in enumerate(("a", "b")):
        gen = torch.Generator().manual_seed(i)
        fake = getattr(net, f"mean_{m}") + torch.randn(x[m].shape, generator=gen) / getattr(net, f"inv_std_{m}")
        noisy.append(loss({**x, m: fake}))
    assert history[best]["val_loss_clean"] == pytest.approx(loss(x), rel=1e-5)
    assert history[best]["val_loss"] == pytest.approx(0.6 * loss(x) + 0.4 * np.mean(noisy), rel=1e-5)


def test_modalities_are_a_list_of_distinct_names(data):
    train, _ = data
    # a repeated modality fused itself with itself: one modality passed for two
    with pytest.raises(InputError, match=r"modalities: expected each modality once, got 'a' more than once in "
                                         r"\['a', 'a'\]"):
        FusionClassifier(modalities=["a", "a"], epochs=1, hidden=8).fit(train)
    # a bare string was read as one modality per character
    with pytest.raises(InputError, match=r"modalities: expected a list of modality names, e.g. \['image', 'text'\], "
                                         r"got 'ab'"):
        FusionClassifier(modalities="ab", epochs=1, hidden=8).fit(train)
    # a modality the pairs lack was named as 'modality', which the classifier has not
    with pytest.raises(InputError, match=r"^modalities: expected modalities of the pairs \(a, b\), got 'c'$"):
        FusionClassifier(fusion="mean", modalities=["a", "c"]).fit(train)
    model = FusionClassifier(fusion="mean", modalities=("b", "a")).fit(train)
    assert model.modalities_ == ["b", "a"]


def test_late_fusion_on_too_few_pairs_names_pairs_before_fitting():
    rng = np.random.default_rng(0)

    def pairs(y):
        return Pairs({"a": rng.normal(size=(len(y), 3)), "b": rng.normal(size=(len(y), 2))}, labels=np.array(y))

    # each of these raised scikit-learn's ValueError from inside the cross-validation
    with pytest.raises(InputError, match="pairs: mean fusion chooses each modality's logistic regression by 3-fold "
                                         "cross-validation; expected at least 3 labelled pairs, got 2"):
        FusionClassifier(fusion="mean").fit(pairs([0, 1]))
    with pytest.raises(InputError, match="pairs: weighted fusion chooses .* at least 3 labelled pairs left for "
                                         "training by val_fraction, got 2"):
        FusionClassifier(fusion="weighted", val_fraction=0.3).fit(pairs([0, 1, 0]))
    with pytest.raises(InputError, match="pairs: stacking fusion learns from 5-fold out-of-fold probabilities; "
                                         "expected at least 5 labelled pairs, got 4"):
        FusionClassifier(fusion="stacking").fit(pairs([0, 1, 0, 1]))
    # one pair of class 'y': a fold without it leaves only 'x' to learn from
    with pytest.raises(InputError, match=r"pairs: stacking fusion fits each modality on 5 folds of the pairs, and one "
                                         r"fold leaves only class 'x' to learn from; .*got \{'x': 9, 'y': 1\}"):
        FusionClassifier(fusion="stacking").fit(pairs(["x"] * 9 + ["y"]))
    # the held-out rows took the only 'y': the members would see one class
    with pytest.raises(InputError, match="pairs: weighted fusion fits each modality's classifier on the pairs left "
                                         "for training by val_fraction; expected at least two classes among them, "
                                         "got only 'x'"):
        FusionClassifier(fusion="weighted", val_fraction=0.2, seed=0).fit(pairs(["x"] * 5 + ["y"]))
    assert FusionClassifier(fusion="stacking").fit(pairs([0, 1] * 3)).predict_proba(
        {"a": np.zeros((1, 3))}).shape == (1, 2)


def test_a_failed_fit_leaves_the_classifier_as_it_was(data):
    train, test = data
    items = {"a": test["a"][:20], "b": test["b"][:20]}
    model = FusionClassifier(fusion="mean").fit(train)
    proba = model.predict_proba(items)
    too_few = Pairs({"a": np.zeros((2, 6)), "b": np.zeros((2, 4))}, labels=np.array([0, 1]))
    with pytest.raises(InputError, match="expected at least 3 labelled pairs"):
        model.fit(too_few)
    # the classes of the failed fit replaced 'x', 'y', 'z' beside the members of the first fit
    assert list(model.classes_) == ["x", "y", "z"]
    np.testing.assert_array_equal(model.predict_proba(items), proba)
    fresh = FusionClassifier(fusion="mean")
    with pytest.raises(InputError):
        fresh.fit(too_few)
    with pytest.raises(NotFittedError):    # it raised AttributeError: no members_
        fresh.predict(items)


def test_weighted_fusion_with_a_class_its_training_part_lacks():
    """A class whose one row falls among the held-out rows: the members (fitted on the training
    part) have no column for it, and that class gets probability 0 in every member, by hand."""
    from scipy.special import softmax

    rng = np.random.default_rng(0)
    y = np.r_[np.repeat([0, 1, 2], 20), [3]]
    pairs = Pairs({"a": (rng.normal(size=(61, 5)) + y[:, None]).astype(np.float32),
                   "b": (rng.normal(size=(61, 4)) + y[:, None]).astype(np.float32)}, labels=y)
    model = FusionClassifier(fusion="weighted", seed=0).fit(pairs)
    assert all(list(m.classes_) == [0, 1, 2] for m in model.members_.values())   # class 3 held out
    items = {"a": pairs["a"], "b": pairs["b"]}
    logs = []
    for m in ("a", "b"):
        full = np.full((61, 4), 1e-12)
        full[:, :3] = np.clip(model.members_[m].predict_proba(items[m]), 1e-12, 1.0)
        logs.append(np.log(full))
    want = softmax(model.weights_[0] * logs[0] + model.weights_[1] * logs[1], axis=1)
    np.testing.assert_allclose(model.predict_proba(items), want, rtol=1e-6, atol=1e-15)
    assert set(model.predict(items)) <= {0, 1, 2}
