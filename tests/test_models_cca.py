"""Closed-form CCA, regularised CCA and PLS pinned against independent computations."""

import numpy as np
import pytest
from scipy import linalg

from jointspace import InputError, Pairs, create_model, load_model
from jointspace.models.cca import CCA, PLS, LinearCCA, RegularizedCCA, covariances
from jointspace.models.kernel_cca import KernelCCA


def _corr(u, v):
    u = u - u.mean(0)
    v = v - v.mean(0)
    return (u * v).sum(0) / np.sqrt((u * u).sum(0) * (v * v).sum(0))


def test_correlations_match_sklearn_cca(two_views):
    from sklearn.cross_decomposition import CCA as SkCCA

    x, y = two_views
    ours = CCA(n_components=3).fit(x, y)
    sk = SkCCA(n_components=3, scale=False, max_iter=5000, tol=1e-12).fit(x, y)
    u, v = sk.transform(x, y)
    np.testing.assert_allclose(ours.canonical_correlations_, np.abs(_corr(u, v)), atol=1e-4)


def test_correlations_match_cca_zoo(two_views):
    from cca_zoo.linear import CCA as ZooCCA

    x, y = two_views
    ours = CCA(n_components=3).fit(x, y)
    zoo = ZooCCA(n_components=3).fit([x, y])
    u, v = zoo.transform([x, y])
    np.testing.assert_allclose(ours.canonical_correlations_, np.abs(_corr(u, v)), atol=1e-4)


def test_ridge_matches_cca_zoo_ridge(two_views):
    from cca_zoo.linear import RidgeCCA

    x, y = two_views
    for c in (0.1, 0.5):
        ours = RegularizedCCA(n_components=2, reg=c).fit(x, y)
        zoo = RidgeCCA(n_components=2, shrinkage=c).fit([x, y])
        u, v = zoo.transform([x, y])
        np.testing.assert_allclose(ours.canonical_correlations_, np.abs(_corr(u, v)), atol=1e-4)


def test_pinned_small_case():
    # A fixed 8 x (2, 2) case; the first canonical correlation computed by hand from the
    # closed form rho^2 = largest eigenvalue of Sxx^-1 Sxy Syy^-1 Syx.
    x = np.array([[1., 2], [2, 1], [3, 5], [4, 3], [5, 8], [6, 5], [7, 9], [8, 4]])
    y = np.array([[2., 1], [1, 3], [4, 4], [3, 2], [7, 6], [5, 5], [8, 9], [6, 2]])
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc, yc.T @ yc, xc.T @ yc
    m = np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)
    rho = np.sqrt(np.sort(np.linalg.eigvals(m).real)[::-1])
    model = CCA(n_components=2).fit(x, y)
    np.testing.assert_allclose(model.canonical_correlations_, rho, atol=1e-10)
    u, v = model.transform(x, y)
    np.testing.assert_allclose(np.abs(_corr(u, v)), rho, atol=1e-10)


def test_one_dimensional_cca_is_abs_pearson():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 1))
    y = -0.7 * x + rng.normal(size=(50, 1))
    model = CCA(n_components=1).fit(x, y)
    r = np.corrcoef(x[:, 0], y[:, 0])[0, 1]
    assert model.canonical_correlations_[0] == pytest.approx(abs(r), abs=1e-12)


def test_solution_solves_the_chapters_eigenproblem(two_views):
    """w_x solves Sxy Syy^-1 Syx w = lambda Sxx w with lambda = rho^2, as scipy's eigh(A, B) finds."""
    x, y = two_views
    model = CCA(n_components=3, weight=0.0).fit(x, y)  # unweighted canonical variables
    _, _, sxx, syy, sxy = covariances(x, y)
    a = sxy @ np.linalg.solve(syy, sxy.T)
    lam, vecs = linalg.eigh(a, sxx)
    lam = lam[::-1][:3]
    np.testing.assert_allclose(lam, model.canonical_correlations_ ** 2, atol=1e-10)
    for k in range(3):
        w = model.x_weights_[:, k]
        np.testing.assert_allclose(a @ w, lam[k] * sxx @ w, atol=1e-9)
    b = sxy.T @ np.linalg.solve(sxx, sxy)
    for k in range(3):
        w = model.y_weights_[:, k]
        np.testing.assert_allclose(b @ w, lam[k] * syy @ w, atol=1e-9)
    # canonical variables are uncorrelated across components, unit variance
    u, v = model.transform(x, y)
    np.testing.assert_allclose(np.cov(u.T), np.eye(3), atol=1e-9)
    np.testing.assert_allclose(np.cov(v.T), np.eye(3), atol=1e-9)


def test_covariances_follow_the_chapter(two_views):
    x, y = two_views
    mx, my, sxx, syy, sxy = covariances(x, y)
    np.testing.assert_allclose(sxx, np.cov(x.T), atol=1e-12)
    np.testing.assert_allclose(syy, np.cov(y.T), atol=1e-12)
    np.testing.assert_allclose(sxy, np.cov(x.T, y.T)[:6, 6:], atol=1e-12)


def test_pls_matches_sklearn_plssvd(two_views):
    from sklearn.cross_decomposition import PLSSVD

    x, y = two_views
    ours = PLS(n_components=2).fit(x, y)
    sk = PLSSVD(n_components=2, scale=False).fit(x, y)
    for k in range(2):
        assert abs(np.dot(ours.x_weights_[:, k], sk.x_weights_[:, k])) == pytest.approx(1.0, abs=1e-8)
        assert abs(np.dot(ours.y_weights_[:, k], sk.y_weights_[:, k])) == pytest.approx(1.0, abs=1e-8)


def test_regularisation_interpolates_between_cca_and_pls(two_views):
    x, y = two_views
    rho_cca = CCA(n_components=2).fit(x, y).canonical_correlations_
    rho_mid = RegularizedCCA(n_components=2, reg=0.5).fit(x, y).canonical_correlations_
    rho_pls = PLS(n_components=2).fit(x, y).canonical_correlations_
    assert rho_cca[0] >= rho_mid[0] - 1e-12 >= rho_pls[0] - 2e-12


def test_float32_input_matches_float64(two_views):
    x, y = two_views
    a = CCA(n_components=3).fit(x, y).canonical_correlations_
    b = CCA(n_components=3).fit(x.astype(np.float32), y.astype(np.float32)).canonical_correlations_
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_passes_sklearn_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    for est in (LinearCCA(n_components=1), RegularizedCCA(n_components=1), PLS(n_components=1)):
        check_estimator(est)


def test_works_in_pipeline_and_gridsearch(two_views):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = two_views
    pipe = Pipeline([("scale", StandardScaler()), ("cca", RegularizedCCA(n_components=2))])
    pipe.fit(x, y)
    assert pipe.transform(x).shape == (300, 2)
    search = GridSearchCV(RegularizedCCA(n_components=2), {"reg": [0.0, 0.3, 0.9]}, cv=3).fit(x, y)
    assert search.best_params_["reg"] in (0.0, 0.3, 0.9)
    assert np.isfinite(search.best_score_)


def test_joint_model_surface_and_round_trip(tmp_path, two_views):
    x, y = two_views
    pairs = Pairs({"image": x, "text": y})
    model = create_model("rcca", n_components=2, reg=0.2, preprocess={"image": "standard,pca:4", "text": "sqrt"
                                                                       if (y >= 0).all() else "standard"},
                         weight=1.0)
    model.fit(pairs)
    assert model.modalities_ == ("image", "text")
    z = model.encode("image", x[:7])
    assert z.shape == (7, 2) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-6)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(again.encode("text", y[:5]), model.encode("text", y[:5]), atol=1e-6)
    np.testing.assert_allclose(again.encode("image", x[:5], normalize=False),
                               model.encode("image", x[:5], normalize=False), atol=1e-6)


def test_ica_preprocessing_round_trip(tmp_path, two_views):
    x, y = two_views
    model = create_model("cca", n_components=2, preprocess={"a": "ica:4"}).fit(Pairs({"a": x, "b": y}))
    model.save(tmp_path / "m")
    np.testing.assert_allclose(load_model(tmp_path / "m").encode("a", x[:5]), model.encode("a", x[:5]), atol=1e-5)


_PREPROCESS = ["standard", "l2", "sqrt", "sqrt,standard", "standard,pca:3", "pca:3:whiten", "pca:0.9",
               "ica:3", "sqrt,pca:3", {"text": "sqrt"}, {"image": "sqrt,l2", "text": "standard"}]


@pytest.mark.filterwarnings("ignore:FastICA did not converge")
@pytest.mark.parametrize("name", ["cca", "rcca", "pls", "kcca"])
@pytest.mark.parametrize("preprocess", _PREPROCESS, ids=str)
def test_every_preprocessing_encodes_both_modalities_the_same_after_load(tmp_path, name, preprocess):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(40, 3))
    x = np.abs(z @ rng.normal(size=(3, 5)) + 0.3 * rng.normal(size=(40, 5)))
    y = np.abs(z @ rng.normal(size=(3, 4)) + 0.3 * rng.normal(size=(40, 4)))
    model = create_model(name, n_components=2, preprocess=preprocess).fit(Pairs({"image": x, "text": y}))
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    for modality, items in (("image", x[:6]), ("text", y[:6])):
        np.testing.assert_allclose(again.encode(modality, items, normalize=False),
                                   model.encode(modality, items, normalize=False), rtol=1e-5, atol=1e-6)


def test_sqrt_preprocessing_round_trip_through_fit_x_y(tmp_path):
    rng = np.random.default_rng(2)
    x, y = np.abs(rng.normal(size=(30, 5))), np.abs(rng.normal(size=(30, 4)))
    model = CCA(n_components=2, preprocess="sqrt").fit(x, y)
    model.save(tmp_path / "m")
    u, v = load_model(tmp_path / "m").transform(x, y)
    u0, v0 = model.transform(x, y)
    np.testing.assert_allclose(u, u0, atol=1e-9)
    np.testing.assert_allclose(v, v0, atol=1e-9)


def test_sqrt_step_saved_without_its_width_still_loads(tmp_path):
    import json

    rng = np.random.default_rng(3)
    x, y = np.abs(rng.normal(size=(30, 5))), np.abs(rng.normal(size=(30, 4)))
    model = create_model("cca", n_components=2, preprocess="sqrt").fit(Pairs({"image": x, "text": y}))
    model.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("x_pre", "y_pre"):
        cfg["extra"][key][0]["scalars"] = {}
    cfg_path.write_text(json.dumps(cfg))
    np.testing.assert_allclose(load_model(tmp_path / "m").encode("text", y[:5]), model.encode("text", y[:5]),
                               atol=1e-6)


@pytest.mark.parametrize("cls", [CCA, RegularizedCCA, PLS, KernelCCA])
def test_boolean_and_integer_views_fit_as_numbers(two_views, cls):
    x, y = two_views
    got = cls(n_components=2).fit(x > 0, y > 0)
    want = cls(n_components=2).fit((x > 0).astype(float), (y > 0).astype(float))
    np.testing.assert_allclose(got.canonical_correlations_, want.canonical_correlations_, atol=1e-9)
    ints = cls(n_components=2).fit(x > 0, (y > 0).astype(int))
    np.testing.assert_allclose(ints.canonical_correlations_, want.canonical_correlations_, atol=1e-9)


def _with_nan(a):
    a = a.copy()
    a[3, 1] = np.nan
    return a


@pytest.mark.parametrize("cls", [CCA, RegularizedCCA, PLS, KernelCCA])
@pytest.mark.parametrize("make, match", [
    (lambda x, y: (x, y[:10]), r"^y: expected 300 rows to match X, got 10"),
    (lambda x, y: (x[:1], y[:1]), r"^X: .*1 sample\(s\).*minimum of 2"),
    (lambda x, y: (x[:0], y[:0]), r"^X: .*0 sample\(s\)"),
    (lambda x, y: (x[:, :0], y), r"^X: .*0 feature\(s\)"),
    (lambda x, y: (x[:, 0], y), r"^X: expected a 2-D array.*got shape \(300,\)"),
    (lambda x, y: (_with_nan(x), y), r"^X: expected finite values.*row 3, column 1"),
    (lambda x, y: (x, _with_nan(y) * np.inf), r"^y: expected finite values"),
    (lambda x, y: (x, np.array([["a"] * 5] * 300)), r"^y: expected a 2-D numeric array"),
])
def test_fit_x_y_errors_name_the_argument(two_views, cls, make, match):
    x, y = make(*two_views)
    with pytest.raises(InputError, match=match):
        cls(n_components=1).fit(x, y)


@pytest.mark.parametrize("cls", [CCA, RegularizedCCA, PLS, KernelCCA])
def test_transform_errors_name_the_argument(two_views, cls):
    x, y = two_views
    model = cls(n_components=1).fit(x, y)
    with pytest.raises(InputError, match=r"X has 3 features, but \w+ is expecting 6 features"):
        model.transform(x[:, :3])
    with pytest.raises(InputError, match=r"^X: expected finite values"):
        model.transform(_with_nan(x))
    with pytest.raises(InputError, match=r"^y: expected 300 rows to match X, got 5"):
        model.transform(x, y[:5])


@pytest.mark.parametrize("name", ["cca", "rcca", "pls", "kcca"])
@pytest.mark.parametrize("spec, match", [
    ("pca:10", r"^preprocess: step 'pca:10' of (X|modality 'image'): expected at most "
               r"min\(n_samples=300, n_features=6\) = 6 components, got 10"),
    ("standard,ica:9", r"^preprocess: step 'ica:9' of (X|modality 'image'): expected at most n_features = 6"),
    ("pca:0", r"^preprocess: step 'pca:0': expected pca:N with N a whole number >= 1"),
    ("pca:-1", r"^preprocess: step 'pca:-1': expected pca:N"),
    ("pca:1.5", r"^preprocess: step 'pca:1.5': expected pca:N.*fraction in \(0, 1\)"),
    ("ica:0", r"^preprocess: step 'ica:0': expected ica:N with N a whole number >= 1"),
])
def test_preprocess_asking_too_much_is_named(two_views, name, spec, match):
    x, y = two_views
    with pytest.raises(InputError, match=match):
        create_model(name, n_components=1, preprocess={"image": spec, "x": spec}).fit(Pairs({"image": x, "text": y}))
    with pytest.raises(InputError, match=match):
        create_model(name, n_components=1, preprocess={"x": spec}).fit(x, y)


def test_bad_pairs_name_the_modality(two_views):
    x, y = two_views
    with pytest.raises(InputError, match="modalities.*same number"):
        Pairs({"image": x, "text": y[:-2]})
    x2 = x.copy()
    x2[4, 2] = np.inf
    with pytest.raises(InputError, match="'image'.*finite"):
        CCA(n_components=1).fit(Pairs({"image": x2, "text": y}))
    with pytest.raises(InputError, match="2-D"):
        CCA(n_components=1).fit(Pairs({"image": x[:, 0], "text": y}))


def test_complex_views_are_refused_not_cast(two_views):
    import warnings

    x, y = two_views
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: refused before any cast
        with pytest.raises(InputError, match=r"modality 'image': expected real numbers, got dtype complex128"):
            CCA(n_components=1).fit(Pairs({"image": x + 1j, "text": y}))
        model = CCA(n_components=1).fit(Pairs({"image": x, "text": y}))
        with pytest.raises(InputError, match=r"items \(text\): expected real numbers, got dtype complex128"):
            model.encode("text", y + 0j)
        with pytest.raises(InputError, match=r"y: expected real numbers, got dtype complex128"):
            CCA(n_components=1).fit(x, y + 1j)


@pytest.mark.parametrize("name", ["cca", "rcca", "pls", "kcca"])
def test_the_same_modality_twice_is_refused(two_views, name):
    x, y = two_views
    with pytest.raises(InputError, match=r"modalities: expected each modality once, got 'a' more than once in "
                                         r"\['a', 'a'\]"):
        create_model(name, modalities=["a", "a"]).fit(Pairs({"a": x, "b": y}))
    # a bare string was read one character per modality
    with pytest.raises(InputError, match=r"^modalities: expected a list of modality names, e.g. \['image', "
                                         r"'text'\], got 'ab'$"):
        create_model(name, modalities="ab").fit(Pairs({"a": x, "b": y}))


def test_zero_variance_column_is_reported(two_views):
    x, y = two_views
    x = x.copy()
    x[:, 2] = 3.0
    with pytest.raises(InputError, match=r"zero-variance columns \[2\]"):
        CCA(n_components=1).fit(Pairs({"image": x, "text": y}))
    # regularisation makes it well posed
    assert RegularizedCCA(n_components=1, reg=0.1).fit(Pairs({"image": x, "text": y}))


def test_too_many_components(two_views):
    x, y = two_views
    with pytest.raises(InputError, match="n_components.*at most.*5.*got 6"):
        CCA(n_components=6).fit(x, y)
    # a rank-deficient view (columns summing to one) limits the count further
    p = np.abs(y) / np.abs(y).sum(1, keepdims=True)
    with pytest.raises(InputError, match=r"rank 6 \(X\) and 4 \(Y\)"):
        CCA(n_components=5).fit(x, p)
    assert CCA(n_components=4).fit(x, p).canonical_correlations_.shape == (4,)


def test_bad_parameters_and_unknowns(two_views):
    x, y = two_views
    with pytest.raises(InputError, match="reg"):
        RegularizedCCA(reg=1.5).fit(x, y)
    with pytest.raises(InputError, match="n_components"):
        CCA(n_components=0).fit(x, y)
    with pytest.raises(InputError, match="unknown model 'nope'"):
        create_model("nope")
    model = CCA(n_components=1).fit(Pairs({"image": x, "text": y}))
    with pytest.raises(InputError, match="modality.*knows image, text.*'audio'"):
        model.encode("audio", x)
    with pytest.raises(InputError, match="expected 6 features, got 5"):
        model.encode("image", y)
    with pytest.raises(InputError, match="preprocess"):
        CCA(n_components=1, preprocess="pca:x").fit(x, y)


def test_load_errors(tmp_path, two_views):
    x, y = two_views
    with pytest.raises(InputError, match="not a folder"):
        load_model(tmp_path / "missing")
    model = CCA(n_components=1).fit(Pairs({"image": x, "text": y}))
    model.save(tmp_path / "m")
    state = tmp_path / "m" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:40])
    with pytest.raises(InputError, match="truncated"):
        load_model(tmp_path / "m")


def test_save_is_atomic(tmp_path, two_views, monkeypatch):
    x, y = two_views
    model = CCA(n_components=1).fit(Pairs({"image": x, "text": y}))
    model.save(tmp_path / "m")
    before = (tmp_path / "m" / "state.safetensors").read_bytes()
    import safetensors.numpy

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    with pytest.raises(OSError):
        CCA(n_components=2).fit(Pairs({"image": x, "text": y})).save(tmp_path / "m")
    assert (tmp_path / "m" / "state.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize("name", ["cca", "rcca", "gcca", "kcca", "sm"])
@pytest.mark.parametrize("seed", [-1, 2**32, "x"])
def test_a_bad_random_state_with_a_pca_step_is_named(two_views, name, seed):
    x, y = two_views
    pairs = Pairs({"a": x, "b": y}, labels=np.arange(len(x)) % 3)
    with pytest.raises(InputError, match="^random_state: expected an integer"):
        create_model(name, preprocess="pca:3", random_state=seed).fit(pairs)


def test_random_state_none_still_seeds_nothing_and_fits(two_views):
    x, y = two_views
    model = create_model("cca", n_components=2, preprocess="pca:3", random_state=None).fit(x, y)
    assert model.transform(x).shape == (len(x), 2)


@pytest.mark.parametrize("name", ["mcca", "scca", "sm", "clip", "mvae-poe"])
def test_modalities_given_as_one_string_are_refused(two_views, name):
    # "ab" was read as the modalities 'a' and 'b' (or refused as an unknown modality 'a')
    x, y = two_views
    pairs = Pairs({"a": x, "b": y}, labels=np.arange(len(x)) % 3)
    with pytest.raises(InputError, match=r"^modalities: expected a list of modality names, e.g. \['image', "
                                         r"'text'\], got 'ab'$"):
        create_model(name, modalities="ab").fit(pairs)
    with pytest.raises(InputError, match=r"^modalities: expected each modality once, got 'b' more than once"):
        create_model(name, modalities=["b", "b"]).fit(pairs)


@pytest.mark.parametrize("name", ["cca", "rcca", "pls", "kcca"])
def test_a_preprocess_key_that_is_neither_a_modality_nor_x_or_y_is_refused(name):
    rng = np.random.default_rng(0)
    p = Pairs({"image": rng.normal(size=(40, 5)), "text": rng.normal(size=(40, 4))})
    with pytest.raises(InputError, match=r"^preprocess: expected steps keyed by the modalities fitted "
                                         r"\(image, text, x, y\), got the key\(s\) 'imgae'$"):
        create_model(name, n_components=2, preprocess={"imgae": "standard", "text": "standard"}).fit(p)
    # the modality's name and the view's letter are both read
    by_name = create_model(name, n_components=2, preprocess={"image": "pca:3"}).fit(p)
    by_view = create_model(name, n_components=2, preprocess={"x": "pca:3"}).fit(p)
    np.testing.assert_allclose(by_name.encode("image", p["image"]), by_view.encode("image", p["image"]))
    assert by_name.x_pre_ is not None and by_name.y_pre_ is None
    with pytest.raises(InputError, match="got the key"):
        create_model(name, n_components=2, preprocess={"z": "standard"}).fit(p["image"], p["text"])
