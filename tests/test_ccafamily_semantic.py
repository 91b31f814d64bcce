"""Semantic matching (SM, SCM), supervised CCA and retrieval cross-validation."""

import re

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jointspace import InputError, Pairs, create_model, load_model
from jointspace.models.cca import CCA
from jointspace.models.multiset_cca import MultisetCCA
from jointspace.eval.selection import retrieval_map, select_by_cv

@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small dense problems: one BLAS thread is faster than two on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield



@pytest.fixture
def labelled():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(3), 40)
    centres_a, centres_b = rng.normal(size=(3, 6)) * 2, rng.normal(size=(3, 4)) * 2
    a = centres_a[labels] + rng.normal(size=(120, 6))
    b = centres_b[labels] + rng.normal(size=(120, 4))
    return Pairs({"image": a, "text": b}, labels=labels)


def _pearson_rows(p, q):
    p = p - p.mean(1, keepdims=True)
    q = q - q.mean(1, keepdims=True)
    return (p * q).sum(1) / np.sqrt((p * p).sum(1) * (q * q).sum(1))


def test_sm_is_logistic_regression_per_modality(labelled):
    m = create_model("sm", C=0.5).fit(labelled)
    for mod in ("image", "text"):
        ref = LogisticRegression(C=0.5, max_iter=2000).fit(labelled[mod], labelled.labels)
        np.testing.assert_allclose(m.predict_proba(mod, labelled[mod][:9]), ref.predict_proba(labelled[mod][:9]),
                                   atol=1e-8)
    # Cosine of encodings = normalised correlation of the probability vectors.
    zi, zt = m.encode("image", labelled["image"][:9]), m.encode("text", labelled["text"][:9])
    pi, pt = m.predict_proba("image", labelled["image"][:9]), m.predict_proba("text", labelled["text"][:9])
    np.testing.assert_allclose((zi * zt).sum(1), _pearson_rows(pi, pt), atol=1e-6)


def test_scm_classifies_the_cca_space(labelled, tmp_path):
    m = create_model("scm", base="cca", base_params={"n_components": 2}, C=2.0).fit(labelled)
    cca = CCA(n_components=2).fit(labelled["image"], labelled["text"])
    u = cca.transform(labelled["image"])
    ref = LogisticRegression(C=2.0, max_iter=2000).fit(u, labelled.labels)
    np.testing.assert_allclose(m.predict_proba("image", labelled["image"][:9]), ref.predict_proba(u[:9]), atol=1e-6)
    m.save(tmp_path / "scm")
    back = load_model(tmp_path / "scm")
    np.testing.assert_allclose(back.encode("text", labelled["text"][:5]), m.encode("text", labelled["text"][:5]),
                               atol=1e-6)


@pytest.mark.parametrize("name, params", [("sm", {}), ("scm", {"base": "cca", "base_params": {"n_components": 2}})])
def test_string_labels_save_and_load(labelled, tmp_path, name, params):
    words = np.array(["cat", "dog", "owl"])[labelled.labels]
    pairs = Pairs({"image": labelled["image"], "text": labelled["text"]}, labels=words)
    m = create_model(name, **params).fit(pairs)
    assert m.classes_.tolist() == ["cat", "dog", "owl"]
    m.save(tmp_path / name)
    back = load_model(tmp_path / name)
    assert back.classes_.tolist() == ["cat", "dog", "owl"]
    np.testing.assert_array_equal(back.predict_proba("image", pairs["image"][:7]), m.predict_proba("image", pairs["image"][:7]))
    # the same model fitted on the integer codes: string names change nothing but the names
    ints = create_model(name, **params).fit(labelled)
    np.testing.assert_allclose(back.encode("text", pairs["text"][:7]), ints.encode("text", pairs["text"][:7]), atol=1e-6)


def test_scm_on_kernel_cca_runs(labelled):
    m = create_model("scm", base="kcca", base_params={"n_components": 2, "kernel": "rbf"}).fit(labelled)
    assert retrieval_map(m, labelled)["mean"] > 0.6


def test_supervised_cca_is_multiset_with_onehot_labels(labelled):
    m = create_model("scca", n_components=2, reg=0.1).fit(labelled)
    onehot = np.eye(3)[labelled.labels]
    ref = MultisetCCA(n_components=2, reg=[0.1, 0.1, 0.0]).fit([labelled["image"], labelled["text"], onehot])
    np.testing.assert_allclose(m.eigenvalues_, ref.eigenvalues_, atol=1e-10)
    np.testing.assert_allclose(np.abs(m.encode("text", labelled["text"][:5], normalize=False)),
                               np.abs(ref.transform([labelled["image"][:5], labelled["text"][:5], onehot[:5]])[1]),
                               atol=1e-5)
    assert m.modalities_ == ("image", "text")


def test_semantic_models_need_labels(labelled):
    bare = Pairs({"image": labelled["image"], "text": labelled["text"]})
    for name, model in (("sm", "semantic matching (sm)"), ("scm", "semantic correlation matching (scm)"),
                        ("scca", "supervised CCA (scca)")):
        with pytest.raises(InputError, match=rf"^pairs: {re.escape(model)} needs one class label per sample .*; "
                                             r"got no labels$"):
            create_model(name).fit(bare)
    two = Pairs({"image": labelled["image"], "text": labelled["text"]},
                labels=np.eye(3, dtype=bool)[labelled.labels])   # a multi-hot matrix, one label each
    with pytest.raises(InputError, match=r"^pairs: supervised CCA \(scca\) needs one class label per sample .*; "
                                         r"got labels of shape \(120, 3\)$"):
        create_model("scca").fit(two)


@pytest.mark.parametrize("max_iter, match", [("a", "max_iter: expected an integer, got 'a'"),
                                             (0, "max_iter: expected an integer >= 1, got 0")])
def test_max_iter_is_checked(labelled, max_iter, match):
    for name in ("sm", "scm"):
        with pytest.raises(InputError, match=match):
            create_model(name, max_iter=max_iter).fit(labelled)


def test_the_same_modality_twice_is_refused(labelled):
    for name in ("sm", "scca"):
        with pytest.raises(InputError, match=r"modalities: expected each modality once"):
            create_model(name, modalities=["image", "image"]).fit(labelled)


def test_cross_validation_picks_the_best_held_out_setting(labelled):
    res = select_by_cv("cca", {"n_components": [1, 2, 3]}, labelled, n_folds=3, seed=0)
    best = max(res.table, key=lambda r: r["score"])
    assert res.best_params["n_components"] == best["n_components"]
    assert res.model.n_components == best["n_components"]
    # One fold's score recomputed by hand with a plain mAP.
    from sklearn.model_selection import StratifiedKFold

    tr, va = next(StratifiedKFold(3, shuffle=True, random_state=0).split(labelled["image"], labelled.labels))
    m = CCA(n_components=2).fit(labelled["image"][tr], labelled["text"][tr])
    u, v = m.transform(labelled["image"][va], labelled["text"][va])
    lab = labelled.labels[va]

    def hand_map(q, g):
        q, g = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
        order = np.argsort(-(q @ g.T), axis=1, kind="stable")
        rel = lab[order] == lab[:, None]
        prec = np.cumsum(rel, 1) / np.arange(1, rel.shape[1] + 1)
        return ((prec * rel).sum(1) / rel.sum(1)).mean()

    first = [r for r in res.table if r["n_components"] == 2][0]["fold_scores"][0]
    assert first == pytest.approx((hand_map(u, v) + hand_map(v, u)) / 2, abs=1e-9)


@pytest.mark.parametrize("base", ["foo", 3, None])
def test_an_unknown_base_is_named_as_base(labelled, base):
    with pytest.raises(InputError, match=r"^base: expected a registered joint-space model \(.*cca.*\), got "):
        create_model("scm", base=base).fit(labelled)


@pytest.mark.parametrize("name, params", [("sm", {}), ("scm", {"base": "cca", "base_params": {"n_components": 2}})])
def test_a_refused_refit_leaves_the_fitted_model_as_it_was(labelled, name, params):
    """A refit refused at its classifiers (C <= 0) had already replaced the joint space or
    the feature counts, so the model refused the items it was fitted on."""
    wide = Pairs({"image": np.c_[labelled["image"], labelled["image"]], "text": labelled["text"]},
                 labels=labelled.labels)
    fresh = create_model(name, **params).fit(labelled)
    model = create_model(name, **params).fit(labelled)
    with pytest.raises(InputError, match=r"^C: expected a number > 0.0, got -1.0$"):
        model.set_params(C=-1.0).fit(wide)
    model.set_params(C=1.0)
    for m in ("image", "text"):
        np.testing.assert_array_equal(model.predict_proba(m, labelled[m]), fresh.predict_proba(m, labelled[m]))


def test_supervised_cca_preprocesses_the_modalities_not_the_labels():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(6), 30)
    a = rng.normal(size=(6, 8))[labels] + rng.normal(size=(180, 8))
    b = rng.normal(size=(6, 7))[labels] + rng.normal(size=(180, 7))
    m = create_model("scca", preprocess="pca:4").fit(Pairs({"image": a, "text": b}, labels=labels))
    # pca:4 of the 6-column one-hot view would leave it 4 components instead of its 5
    ref = MultisetCCA().fit([PCA(4).fit_transform(a), PCA(4).fit_transform(b), np.eye(6)[labels]])
    assert m.n_components_ == ref.n_components_ == 4
    np.testing.assert_allclose(m.eigenvalues_, ref.eigenvalues_, atol=1e-8)


def test_supervised_cca_names_the_labels_when_they_limit_the_components(labelled):
    with pytest.raises(InputError, match=r"^n_components: expected at most 2 \(the rank of the one-hot class labels, "
                                         r"the smallest view\); got 3$"):
        create_model("scca", n_components=3).fit(labelled)


@pytest.mark.parametrize("base_params", [[1], "n_components=2", 2])
def test_scm_base_params_that_are_no_dict_are_named(labelled, base_params):
    with pytest.raises(InputError, match=r"^base_params: expected a dict of 'cca' parameters, got "):
        create_model("scm", base="cca", base_params=base_params).fit(labelled)


@pytest.mark.parametrize("names", [None, ["cat", "dog", "owl"]])
def test_supervised_cca_keeps_its_classes_when_saved(labelled, tmp_path, names):
    labels = labelled.labels if names is None else np.array(names)[labelled.labels]
    m = create_model("scca", n_components=2).fit(Pairs({"image": labelled["image"], "text": labelled["text"]},
                                                       labels=labels))
    m.save(tmp_path / "scca")
    back = load_model(tmp_path / "scca")
    assert back.classes_.tolist() == m.classes_.tolist() == (names or [0, 1, 2])
    np.testing.assert_array_equal(back.encode("text", labelled["text"][:5]), m.encode("text", labelled["text"][:5]))


@pytest.mark.parametrize("kwargs, match", [({"C": 0}, r"^C: expected a number > 0.0, got 0"),
                                           ({"max_iter": 0}, r"^max_iter: expected an integer >= 1, got 0")])
def test_scm_refuses_its_classifier_settings_before_fitting_the_joint_space(labelled, monkeypatch, kwargs, match):
    import jointspace.models.semantic as semantic

    def fitted(*args, **kw):
        raise AssertionError("the joint space was fitted before C and max_iter were checked")

    monkeypatch.setattr(semantic, "create_model", fitted)
    with pytest.raises(InputError, match=match):
        create_model("scm", base="dcca", **kwargs).fit(labelled)
