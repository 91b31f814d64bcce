"""The Python API contract of the registered models, as a researcher uses them: parameters
changed after fit, refits, save/load, and batches of unusual size."""

import numpy as np
import pytest

import jointspace as js

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_NET = {"hidden": (8,), "epochs": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3))
    x = (z @ rng.normal(size=(3, 8)) + 0.3 * rng.normal(size=(60, 8))).astype(np.float32)
    y = (z @ rng.normal(size=(3, 6)) + 0.3 * rng.normal(size=(60, 6))).astype(np.float32)
    labels = (z[:, 0] > 0).astype(int) + (z[:, 1] > 0).astype(int)
    return js.Pairs({"image": x, "text": y}, labels=labels)


def _component_correlations(model):
    """The per-component correlations (or eigenvalues) that ``weight`` raises to a power."""
    if hasattr(model, "cca_"):
        return model.cca_.canonical_correlations_
    if hasattr(model, "eigenvalues_"):
        return model.eigenvalues_
    return model.canonical_correlations_


@pytest.mark.parametrize("name, params", [("cca", {}), ("rcca", {}), ("pls", {}), ("kcca", {}), ("mcca", {}),
                                          ("gcca", {}), ("scca", {}), ("dcca", SMALL_NET)])
def test_a_weight_set_after_fit_acts_in_memory_and_in_the_saved_copy(tmp_path, pairs, name, params):
    x = pairs["image"]
    plain = js.create_model(name, n_components=2, weight=0.0, **params).fit(pairs)
    model = js.create_model(name, n_components=2, weight=1.0, **params).fit(pairs)
    model.set_params(weight=2.0)
    # component k scaled by rho_k ** 2 against the unweighted fit (the same directions)
    want = plain.encode("image", x, normalize=False) * _component_correlations(plain).clip(0) ** 2
    got = model.encode("image", x, normalize=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m")
    loaded = js.load_model(tmp_path / "m")
    assert loaded.get_params()["weight"] == 2.0
    for mod in ("image", "text"):
        np.testing.assert_array_equal(loaded.encode(mod, pairs[mod]), model.encode(mod, pairs[mod]))


@pytest.mark.parametrize("via", ["pairs", "x_y"])
def test_an_exact_kernel_cca_keeps_its_own_copy_of_the_training_rows(pairs, via):
    x, y = pairs["image"].astype(np.float64), pairs["text"].astype(np.float64)
    reference = js.create_model("kcca", n_components=2, method="exact").fit(js.Pairs({"image": x.copy(),
                                                                                       "text": y.copy()}))
    model = js.create_model("kcca", n_components=2, method="exact")
    model.fit(js.Pairs({"image": x, "text": y})) if via == "pairs" else model.fit(x, y)
    queries_x, queries_y = x.copy(), y.copy()
    x -= x.mean(axis=0)   # the caller reuses its arrays after fit
    y[:] = 0.0
    for mod, ref, q in zip(model.modalities_, reference.modalities_, (queries_x, queries_y)):
        np.testing.assert_array_equal(model.encode(mod, q), reference.encode(ref, q))


@pytest.fixture(scope="module")
def feature_clips(pairs):
    small = {"dim": 4, "epochs": 2, "batch_size": 16, "val_fraction": 0.0}
    return {"clip": js.create_model("clip", **small).fit(pairs),
            "ensemble": js.create_model("ensemble", model="clip", n_members=2, params=small).fit(pairs)}


@pytest.mark.parametrize("name", ["clip", "ensemble"])
def test_a_dual_encoder_of_feature_vectors_reads_any_2d_array_like(feature_clips, pairs, name):
    pd = pytest.importorskip("pandas")
    model = feature_clips[name]
    for mod in ("image", "text"):
        x = pairs[mod]
        want = model.encode(mod, x)
        np.testing.assert_array_equal(model.encode(mod, pd.DataFrame(x)), want)
        np.testing.assert_array_equal(model.encode(mod, x.tolist()), want)
        np.testing.assert_array_equal(model.encode(mod, np.asfortranarray(x)), want)
    # no tower applies to 8-d image or 6-d text features: raw items are named as not an array
    with pytest.raises(js.InputError, match=r"items \(text\): expected a 2-D numeric array, got dtype <U"):
        model.encode("text", ["a cat", "a dog"])
    with pytest.raises(js.InputError, match=r"items \(image\): expected 8 features, got 3"):
        model.encode("image", pd.DataFrame(pairs["image"][:, :3]))


GENERATIVE = {"latent_dim": 3, "hidden": (8,), "epochs": 2, "batch_size": 16, "val_fraction": 0.0}


@pytest.mark.parametrize("name, params", [("dcca", {"n_components": 2, **SMALL_NET}),
                                          ("dccae", {"n_components": 2, **SMALL_NET}),
                                          ("ae", GENERATIVE), ("aae", GENERATIVE), ("mvae-poe", GENERATIVE),
                                          ("mvae-moe", GENERATIVE), ("mvae-mopoe", GENERATIVE),
                                          ("beta-vae", GENERATIVE)])
def test_memory_layout_does_not_change_fits_or_encodings(pairs, name, params):
    x, y = pairs["image"], pairs["text"]
    model = js.create_model(name, **params).fit(pairs)
    column_major = js.create_model(name, **params).fit(
        js.Pairs({"image": np.asfortranarray(x), "text": np.asfortranarray(y)}, labels=pairs.labels))
    want = model.encode("image", x)
    np.testing.assert_array_equal(column_major.encode("image", x), want)
    np.testing.assert_array_equal(model.encode("image", np.asfortranarray(x)), want)
    np.testing.assert_array_equal(model.encode("image", np.repeat(x, 2, axis=1)[:, ::2]), want)


def _refused_pairs(kind):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), rng.normal(size=(40, 3)).astype(np.float32)
    if kind == "nan":
        x[3, 1] = np.nan
        return js.Pairs({"image": x, "text": y})
    return js.Pairs({"image": x[:1], "text": y[:1]})


@pytest.mark.parametrize("kind", ["nan", "one row"])
@pytest.mark.parametrize("name, params", [("clip", {"dim": 4, "epochs": 2, "batch_size": 16, "val_fraction": 0.0}),
                                          ("ae", GENERATIVE), ("aae", GENERATIVE), ("mvae-poe", GENERATIVE),
                                          ("mvae-moe", GENERATIVE), ("mvae-mopoe", GENERATIVE),
                                          ("beta-vae", GENERATIVE)])
def test_a_refused_refit_leaves_a_trained_model_as_it_was(tmp_path, pairs, name, params, kind):
    model = js.create_model(name, **params).fit(pairs)
    want = {mod: model.encode(mod, pairs[mod]) for mod in ("image", "text")}
    with pytest.raises(js.InputError):
        model.fit(_refused_pairs(kind))
    model.save(tmp_path / "m")
    loaded = js.load_model(tmp_path / "m")
    for mod in ("image", "text"):
        np.testing.assert_array_equal(model.encode(mod, pairs[mod]), want[mod])
        np.testing.assert_array_equal(loaded.encode(mod, pairs[mod]), want[mod])


def test_evaluating_a_model_on_pairs_of_other_modalities_names_both(pairs):
    x, y = pairs["image"], pairs["text"]
    model = js.create_model("cca", n_components=2).fit(x, y)   # fit(X, y): modalities x and y
    with pytest.raises(js.InputError, match=r"directions: need two modalities to evaluate cross-modal retrieval, "
                                            r"got none \(the model knows x, y; the pairs hold image, text\)"):
        js.evaluate_retrieval(model, pairs)
    with pytest.raises(js.InputError, match=r"directions: query modality must be one of none; got 'image' \(the "
                                            r"model knows x, y; the pairs hold image, text, the gallery x, y\)"):
        js.evaluate_retrieval(model, pairs, directions=["image->y"], gallery=js.Pairs({"x": x, "y": y}))
    # under the model's names, R@1 is the share of rows whose own partner is the nearest by cosine
    scores = js.evaluate_retrieval(model, js.Pairs({"x": x, "y": y}), ks=(1,))
    u, v = model.encode("x", x), model.encode("y", y)
    assert scores["x->y/R@1"] == pytest.approx(np.mean((u @ v.T).argmax(axis=1) == np.arange(len(x))))


@pytest.mark.parametrize("name, params", [("dcca", {"n_components": 2, "epochs": 1, "batch_size": 16}),
                                          ("dccae", {"n_components": 2, "epochs": 1, "batch_size": 16,
                                                     "hidden": (8, 4)})])
def test_a_loaded_model_has_the_parameters_it_was_saved_with(tmp_path, pairs, name, params):
    model = js.create_model(name, **params).fit(pairs)
    model.save(tmp_path / "m")
    loaded = js.load_model(tmp_path / "m")
    assert loaded.get_params() == model.get_params()
    assert repr(loaded) == repr(model)
    assert loaded.hidden == params.get("hidden", (256, 256))


@pytest.mark.parametrize("name", ["ae", "mvae-mopoe"])
@pytest.mark.parametrize("shape", [(40, 6), (40, 5, 5)], ids=["features", "pixels"])
def test_generative_models_read_booleans_as_zeros_and_ones(name, shape):
    rng = np.random.default_rng(0)
    flags = rng.random(shape) > 0.5
    y = rng.normal(size=(shape[0], 3)).astype(np.float32)
    model = js.create_model(name, **GENERATIVE).fit(js.Pairs({"image": flags, "text": y}))
    numbers = js.create_model(name, **GENERATIVE).fit(js.Pairs({"image": flags.astype(np.float32), "text": y}))
    want = numbers.encode("image", flags.astype(np.float32))
    np.testing.assert_array_equal(model.encode("image", flags), want)
    np.testing.assert_array_equal(numbers.encode("image", flags), want)


@pytest.mark.parametrize("name", ["cca", "rcca", "pls", "kcca"])
def test_transform_takes_the_pairs_that_fit_and_score_take(pairs, name):
    model = js.create_model(name, n_components=2, weight=0.0)
    u_fit, v_fit = model.fit_transform(pairs)
    u, v = model.transform(pairs)
    np.testing.assert_array_equal(u, u_fit)
    np.testing.assert_array_equal(v, v_fit)
    if name != "kcca":   # the linear map by hand: centred rows times the canonical weights
        x, y = pairs["image"].astype(np.float64), pairs["text"].astype(np.float64)
        np.testing.assert_allclose(u, (x - model.x_mean_) @ model.x_weights_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(v, (y - model.y_mean_) @ model.y_weights_, rtol=1e-10, atol=1e-12)
    with pytest.raises(js.InputError, match="y: expected None with a Pairs X"):
        model.transform(pairs, pairs["text"])


@pytest.mark.parametrize("name", ["ae", "aae", "mvae-poe", "mvae-moe", "mvae-mopoe", "beta-vae"])
def test_generative_models_encode_a_dataframe_of_feature_vectors(pairs, name):
    pd = pytest.importorskip("pandas")
    model = js.create_model(name, **GENERATIVE).fit(pairs)
    for mod in ("image", "text"):
        x = pairs[mod]
        np.testing.assert_array_equal(model.encode(mod, pd.DataFrame(x)), model.encode(mod, x))
    with pytest.raises(js.InputError, match=r"expected a feature array of shape \(n, d\), got DataFrame"):
        model.encode("image", pd.DataFrame({"a": ["x"] * 3, "b": ["y"] * 3}))
