"""Coherence, classifier accuracies and latent probes of generative models: their counts and
the labels they need."""

import numpy as np
import pytest

import jointspace as js
from jointspace.errors import InputError
from jointspace.eval.generative import (coherence, generation_grid, generative_report, latent_probe,
                                        train_classifiers)


class _Copy:
    """A stand-in generative model over two feature modalities: a generated item is the first
    given modality's item, a prior draw is row i of fixed draws."""

    modalities_ = ("a", "b")

    def __init__(self, draws):
        self.draws = draws

    def generate(self, target, given, seed=0):
        return np.asarray(next(iter(given.values())))

    def sample(self, n, seed=0):
        return {m: self.draws[m][:n] for m in self.modalities_}


class _Sign:
    """A classifier naming class 1 for a positive first feature, else 0."""

    def predict(self, items):
        return (np.asarray(items)[:, 0] > 0).astype(int)


def test_coherence_counts_items_given_their_class_and_prior_draws_that_agree():
    a = np.array([[1.0], [-1.0], [2.0], [-3.0]])
    b = np.array([[-1.0], [-1.0], [2.0], [3.0]])
    test = js.Pairs({"a": a, "b": b}, labels=np.array([1, 0, 0, 1]))
    draws = {"a": np.array([[1.0], [1.0], [-1.0]]), "b": np.array([[1.0], [-1.0], [-1.0]])}
    got = coherence(_Copy(draws), test, {"a": _Sign(), "b": _Sign()}, n_joint=3)
    # a->b classifies a's items: [1, 0, 1, 0] against [1, 0, 0, 1]; b->a: [0, 0, 1, 1]
    assert got == {"a->b/coherence": 0.5, "b->a/coherence": 0.5, "joint/coherence": 2 / 3}


def test_scores_against_pairs_without_labels_are_refused_not_zero():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    a = (rng.normal(size=(60, 4)) + 3 * np.eye(4)[y]).astype(np.float32)
    b = (rng.normal(size=(60, 3)) + 3 * np.eye(3)[y]).astype(np.float32)
    train = js.Pairs({"a": a[:40], "b": b[:40]}, labels=y[:40])
    test = js.Pairs({"a": a[40:], "b": b[40:]}, labels=y[40:])
    bare = js.Pairs({"a": a[40:], "b": b[40:]})
    model = js.create_model("mvae-poe", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(train)
    classifiers, accuracy = train_classifiers(model, train, test)
    assert accuracy["classifier/b/accuracy"] == np.mean(classifiers["b"].predict(b[40:]) == y[40:]) > 0.5
    refused = "test: expected pairs with one class label each, got no labels"
    with pytest.raises(InputError, match=refused):
        train_classifiers(model, train, bare)
    with pytest.raises(InputError, match=refused):
        coherence(model, bare, classifiers, n_joint=10)
    with pytest.raises(InputError, match=refused):
        latent_probe(model, train, bare)
    with pytest.raises(InputError, match="train: expected pairs with one class label each, got no labels"):
        latent_probe(model, js.Pairs({"a": a[:40], "b": b[:40]}), test)
    one_class = js.Pairs({"a": a[:40], "b": b[:40]}, labels=np.full(40, 7))
    single = r"train: expected labels of at least 2 classes to train a classifier on, got 1 \(7\)"
    with pytest.raises(InputError, match=single):
        train_classifiers(model, one_class, test)
    with pytest.raises(InputError, match=single):
        latent_probe(model, one_class, test)


@pytest.mark.parametrize("labels, early", [
    ([0, 0, 1, 1, 2], False),                 # a held-out tenth of 5 is 1 item, for 3 classes
    ([0] * 6 + [1] * 5 + [2], False),         # class 2 has one item: none to hold out
    ([0, 1] * 20, True),                      # 4 held out, two of each class
])
def test_the_pixel_classifier_of_a_small_set_trains_without_early_stopping(labels, early):
    from jointspace.eval.generative import ModalityClassifier

    rng = np.random.default_rng(0)
    y = np.asarray(labels)
    images = rng.random((len(y), 4, 4)) * 0.2 + 0.8 * (y[:, None, None] == np.arange(4)[None, :, None])
    clf = ModalityClassifier("pixels").fit(images, y)    # scikit-learn refused the early-stopping split
    assert clf.model_.early_stopping is early
    assert clf.predict(images).shape == y.shape and set(clf.predict(images)) <= set(y.tolist())


def test_the_training_draw_checks_limit_and_seed_and_keeps_two_classes():
    """numpy's ValueErrors ('negative dimensions are not allowed', 'expected non-negative
    integer') named no argument; limit=0 or 1, or a draw of one class, stopped in scikit-learn."""
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(39, int), 1]               # one pair of class 1, row 39
    a = (rng.normal(size=(40, 4)) + 3 * np.eye(4)[y]).astype(np.float32)
    b = (rng.normal(size=(40, 3)) + 3 * np.eye(3)[y]).astype(np.float32)
    train = js.Pairs({"a": a, "b": b}, labels=y)
    model = js.create_model("mvae-poe", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(train)
    for fn in (train_classifiers, lambda m, t, **kw: latent_probe(m, t, train, **kw)):
        for kw, match in (({"limit": 0}, r"^limit: expected an integer >= 2, got 0"),
                          ({"limit": -3}, r"^limit: expected an integer >= 2, got -3"),
                          ({"limit": 10, "seed": -1}, r"^seed: expected an integer >= 0, got -1"),
                          # rows 20, 24, 32 (np.random.default_rng(0).choice(40, 3)): class 0 only
                          ({"limit": 3, "seed": 0}, r"^limit: the 3 pairs drawn from train: expected labels of "
                                                    r"at least 2 classes")):
            with pytest.raises(InputError, match=match):
                fn(model, train, **kw)
    assert sorted(np.random.default_rng(0).choice(40, 3, replace=False).tolist()) == [20, 24, 32]


def test_coherence_refuses_no_prior_draws_naming_n_joint():
    """With n_joint=0 the mean over no draws was NaN (or 'n: expected an integer >= 1' from sample)."""
    test = js.Pairs({"a": np.array([[1.0], [-1.0]]), "b": np.array([[1.0], [-1.0]])}, labels=np.array([1, 0]))
    draws = {"a": np.array([[1.0]]), "b": np.array([[1.0]])}
    with pytest.raises(InputError, match=r"^n_joint: expected an integer >= 1, got 0"):
        coherence(_Copy(draws), test, {"a": _Sign(), "b": _Sign()}, n_joint=0)
    assert coherence(_Copy(draws), test, {"a": _Sign(), "b": _Sign()}, n_joint=1)["joint/coherence"] == 1.0


@pytest.mark.parametrize("kw, match", [
    ({"n_joint": 0}, r"^n_joint: expected an integer >= 1, got 0"),
    ({"iw_samples": 0}, r"^iw_samples: expected an integer >= 1, got 0"),
    ({"bound_limit": 0}, r"^bound_limit: expected an integer >= 1, got 0"),
    ({"bound_limit": 2.5}, r"^bound_limit: expected an integer, got 2.5"),
])
def test_the_report_checks_its_options_before_training_classifiers(monkeypatch, kw, match):
    """They were named as the argument of the call they reached, after the classifiers and the
    coherence ran: sample's n, evaluate_bound's n_samples, 'items['a']: expected at least 1 rows'."""
    import jointspace.eval.generative as gen

    def never(*args, **kwargs):
        raise AssertionError("the classifiers trained before the options were checked")

    monkeypatch.setattr(gen, "train_classifiers", never)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    pairs = js.Pairs({"a": rng.normal(size=(40, 4)), "b": rng.normal(size=(40, 3))}, labels=y)
    model = js.create_model("mvae-poe", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(pairs)
    with pytest.raises(InputError, match=match):
        gen.generative_report(model, pairs, pairs, **kw)


@pytest.mark.parametrize("n, match", [
    (0, r"^n: expected an integer >= 1, got 0"),
    (-1, r"^n: expected an integer >= 1, got -1"),
    (2.5, r"^n: expected an integer, got 2.5"),
    (100, r"^n: the grid shows at most 64 items in a row, got 100"),
])
def test_the_generation_grid_names_a_bad_n(tmp_path, n, match):
    """-1 and 0 were refused as 'items (image): expected at least one image', 2.5 as 'indices',
    100 as 'rows[0].images'."""
    rng = np.random.default_rng(0)
    y = np.arange(70) % 2
    pairs = js.Pairs({"image": rng.random((70, 4, 4)).astype(np.float32),
                      "text": [f"a {'dark' if c else 'light'} square" for c in y]}, labels=y)
    model = js.create_model("ae", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(pairs)
    with pytest.raises(InputError, match=match):
        generation_grid(model, pairs, tmp_path / "g.png", n=n)
    assert not (tmp_path / "g.png").exists()
    small = pairs.subset(np.arange(3))   # n beyond the test items shows them all
    assert generation_grid(model, small, tmp_path / "g.png", n=100) == str(tmp_path / "g.png")


@pytest.mark.parametrize("call", [
    lambda model, pairs, path: train_classifiers(model, pairs, pairs),
    lambda model, pairs, path: coherence(model, pairs, {}),
    lambda model, pairs, path: latent_probe(model, pairs, pairs),
    lambda model, pairs, path: generative_report(model, pairs, pairs),
    lambda model, pairs, path: generation_grid(model, pairs, path),
])
def test_a_model_not_fitted_is_refused_as_such(tmp_path, call):
    """It failed as "AttributeError: 'AdversarialAutoencoder' object has no attribute 'modalities_'"."""
    from jointspace.errors import NotFittedError

    pairs = js.Pairs({"image": np.zeros((4, 2, 2)), "text": ["a b"] * 4}, labels=np.array([0, 1, 0, 1]))
    with pytest.raises(NotFittedError, match=r"^this AdversarialAutoencoder is not fitted yet; call fit first"):
        call(js.create_model("aae"), pairs, tmp_path / "g.png")


def test_pairs_without_a_modality_of_the_model_are_refused_by_argument(tmp_path):
    """They failed as "modality: expected one of a, c; got 'b'", naming no argument of the call."""
    y = np.array([1, 0, 0, 1])
    other = js.Pairs({"a": np.array([[1.0], [-1.0], [2.0], [-3.0]]), "c": np.zeros((4, 1))}, labels=y)
    draws = {"a": np.array([[1.0]]), "b": np.array([[1.0]])}
    missing = r"^test: expected pairs of the model's modalities a, b; got a, c, no b$"
    with pytest.raises(InputError, match=missing):
        coherence(_Copy(draws), other, {"a": _Sign(), "b": _Sign()}, n_joint=1)
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    pairs = js.Pairs({"image": rng.random((40, 3, 3)), "text": [f"class {c}" for c in labels]}, labels=labels)
    model = js.create_model("ae", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(pairs)
    images_only = js.Pairs({"image": pairs["image"]}, labels=labels)
    missing = r"^{}: expected pairs of the model's modalities image, text; got image, no text$"
    with pytest.raises(InputError, match=missing.format("train")):
        train_classifiers(model, images_only, pairs)
    with pytest.raises(InputError, match=missing.format("test")):
        train_classifiers(model, pairs, images_only)
    with pytest.raises(InputError, match=missing.format("test")):
        latent_probe(model, pairs, images_only)
    with pytest.raises(InputError, match=missing.format("test")):
        generation_grid(model, images_only, tmp_path / "g.png")


@pytest.mark.parametrize("classifiers, got", [({"a": _Sign()}, "a"), ({}, "none"), ([_Sign(), _Sign()], "list"),
                                              ({"a": _Sign(), "b": None}, "a, b")])
def test_coherence_needs_a_classifier_of_every_modality(classifiers, got):
    """A missing one failed as KeyError: 'b' after the other directions had been generated."""
    test = js.Pairs({"a": np.array([[1.0], [-1.0]]), "b": np.array([[1.0], [-1.0]])}, labels=np.array([1, 0]))
    draws = {"a": np.array([[1.0]]), "b": np.array([[1.0]])}
    with pytest.raises(InputError, match=rf"^classifiers: expected a dict with a classifier \(with predict\) for "
                                         rf"each of a, b, e.g. from train_classifiers; got {got}$"):
        coherence(_Copy(draws), test, classifiers, n_joint=1)


def test_the_grid_captions_a_generated_text_of_no_words(tmp_path, monkeypatch):
    """An empty sentence left its cell without a caption, like a text never generated."""
    import jointspace.viz.generation_grid as grid

    rng = np.random.default_rng(0)
    y = np.arange(30) % 2
    pairs = js.Pairs({"image": rng.random((30, 4, 4)).astype(np.float32),
                      "text": [f"a {'dark' if c else 'light'} square" for c in y]}, labels=y)
    model = js.create_model("ae", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(pairs)
    real_generate = model.generate
    monkeypatch.setattr(model, "generate", lambda target, given, **kw: (
        ["", "a dark square"] if target == "text" else real_generate(target, given, **kw)))
    drawn = {}
    monkeypatch.setattr(grid, "write_generation_grid", lambda rows, path, **kw: drawn.setdefault("rows", rows))
    generation_grid(model, pairs, tmp_path / "g.png", n=2)
    assert drawn["rows"][-1]["label"] == "image -> text"
    assert drawn["rows"][-1]["captions"] == ["(no words)", "a dark square"]
