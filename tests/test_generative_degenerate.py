"""Features constant in training and decoder scales that shrink: the bound stays finite."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

import jointspace as js
from jointspace.models._codecs import FeatureCodec
from jointspace.models._generative import LOG_SCALE_MIN


def test_a_feature_constant_in_training_keeps_its_units():
    x = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, 5.0]], dtype=np.float32)
    codec = FeatureCodec().fit(x, "x")
    np.testing.assert_allclose(codec.scale, [1.0, np.std([1, 3, 5])], rtol=1e-6)
    got = codec.encode_items(np.array([[2.0, 3.0]], dtype=np.float32), "x")
    np.testing.assert_allclose(got, [[2.0, 0.0]], atol=1e-6)   # (2 - 0) / 1, not (2 - 0) / 1e-6
    np.testing.assert_allclose(codec.decode(got), [[2.0, 3.0]], atol=1e-6)


def test_the_gaussian_decoder_scale_has_a_floor():
    """log p(x | z) uses max(log_scale, LOG_SCALE_MIN): the closed-form Gaussian density."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    pairs = js.Pairs({"a": x, "b": x[:, :2] + 0.1})
    model = js.create_model("mvae-poe", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(pairs)
    net = model.net_
    dec = net.decoders["a"]
    with torch.no_grad():
        dec.log_scale.copy_(torch.tensor([-50.0, 0.0, -2.0]))
    xa = torch.from_numpy(model.codecs_["a"].encode_items(x[:5], "a"))
    z = torch.zeros(5, 2)
    with torch.no_grad():
        got = model._log_px(net, "a", xa, z).numpy()
        mean = net.decode("a", z, None, None).numpy()
    sigma = np.exp([LOG_SCALE_MIN, 0.0, -2.0])
    want = norm.logpdf(xa.numpy(), mean, sigma).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.exp(LOG_SCALE_MIN) == pytest.approx(1e-3)


def test_digits_bound_is_finite_where_a_pixel_never_varies_in_training():
    """Digits' corner pixels are 0 in every training image: the test bound must stay of the
    order of the pixel count, not billions."""
    ds = js.load_dataset("digits")
    tr, te = ds["train"], ds["test"]
    train_images = np.asarray(tr["image"]).reshape(len(tr), -1)
    assert (train_images.std(0) == 0).any()
    model = js.create_model("mvae-mopoe", latent_dim=8, hidden=(64,), epochs=3, progress=False).fit(tr)
    bound = model.evaluate_bound({"image": te["image"][:100], "text": te["text"][:100]})
    assert np.isfinite(bound["elbo"]) and bound["nll/image"] < 10 * train_images.shape[1], bound


def test_features_sharing_a_large_offset_keep_their_spread():
    """Standardised in float64: at 1e7, float32 steps by 1 and put 50 values of spread 0.3 on 3."""
    rng = np.random.default_rng(0)
    x = 1e7 + 0.3 * rng.normal(size=(50, 2))
    codec = FeatureCodec().fit(x, "x")
    expected = (x - x.mean(0)) / x.std(0)          # by hand, in float64
    np.testing.assert_allclose(codec.encode_items(x, "x"), expected, atol=1e-5)
    np.testing.assert_allclose(codec.decode(expected), x.astype(np.float32), rtol=0, atol=1.0)
    model = js.create_model("ae", latent_dim=2, hidden=(8,), epochs=1, progress=False).fit(
        js.Pairs({"a": x, "b": rng.normal(size=(50, 2))}))
    assert len(np.unique(model.posterior_mean({"a": x})[:, 0])) == 50


def test_features_beyond_what_standardising_can_hold_are_refused_by_name():
    """A spread that overflows float64 read as a scale of inf (every code 0); a value beyond
    float32 after standardising read as inf in the network's input."""
    rng = np.random.default_rng(0)
    with pytest.raises(js.InputError, match=r"^pairs\['a'\]: the features' mean or spread overflows float64"):
        FeatureCodec().fit(1e200 * rng.normal(size=(5, 2)), "pairs['a']")
    codec = FeatureCodec().fit(rng.normal(size=(5, 2)), "pairs['a']")
    with pytest.raises(js.InputError, match=r"^given\['a'\]: values lie .* beyond float32's range"):
        codec.encode_items(np.full((1, 2), 1e200), "given['a']")
    huge = FeatureCodec().fit(1e39 * rng.normal(size=(5, 2)), "pairs['a']")   # beyond float32, fine in float64
    assert np.isfinite(huge.encode_items(1e39 * rng.normal(size=(3, 2)), "x")).all()
