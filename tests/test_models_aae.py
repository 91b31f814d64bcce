"""The adversarial autoencoder: its phases bring the codes to the prior N(0, I)."""

import math

import numpy as np
import pytest

from jointspace import create_model
from jointspace.data.datasets import load_dataset

SMALL = {"latent_dim": 8, "hidden": [64], "batch_size": 128, "lr": 3e-3}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train")


def _moments(model, pairs):
    z = model.encode("image", pairs["image"], normalize=False)
    return float(np.abs(z.mean(0)).mean()), float(np.abs(np.log(z.std(0))).mean())


def test_the_codes_are_brought_to_the_prior(digits):
    """Reconstruction alone leaves the codes wherever it likes (here means of about 3 and
    spreads of about 3.5 on each axis); the adversarial phases bring them close to N(0, I),
    and the discriminator ends near chance, its loss near 2 log 2."""
    free = create_model("aae", epochs=40, seed=0, adv_weight=0.0, **SMALL).fit(digits)
    aae = create_model("aae", epochs=40, seed=0, **SMALL).fit(digits)
    free_mean, free_spread = _moments(free, digits)
    mean, spread = _moments(aae, digits)
    assert free_mean > 1.5 and free_spread > math.log(2)
    assert mean < 0.5 and spread < math.log(1.6), (mean, spread)
    assert abs(aae.history_[-1]["discriminator"] - 2 * math.log(2)) < 0.3
    assert "generator" in aae.history_[-1] and "generator" not in free.history_[-1]


def test_prior_mixture_samples_from_a_mixture_fitted_to_the_codes(digits):
    aae = create_model("aae", epochs=2, seed=0, prior="mixture", prior_components=3, **SMALL).fit(digits)
    assert tuple(aae.net_.prior_means.shape) == (3, SMALL["latent_dim"])
    normal = create_model("aae", epochs=2, seed=0, prior="normal", **SMALL).fit(digits)
    assert normal.net_.prior_means is None
    assert aae.sample(4, seed=1)["text"] == aae.sample(4, seed=1)["text"]


@pytest.mark.parametrize("params, match", [({"prior": "gaussian"}, "prior"),
                                           ({"prior_components": 0}, "prior_components"),
                                           ({"adv_weight": -1.0}, "adv_weight"),
                                           # lr x adv_weight overflowed float32 in Adam: torch's RuntimeError
                                           ({"adv_weight": 1e300}, r"^adv_weight: expected at most 3.33333e\+32 .*lr=0.003\), got 1e\+300"),
                                           ({"lr": 1e300}, r"^lr: expected a learning rate <= 1e\+30, got 1e\+300")])
def test_bad_settings_are_named(digits, params, match):
    from jointspace.errors import InputError

    with pytest.raises(InputError, match=match):
        create_model("aae", epochs=1, **{**SMALL, **params}).fit(digits)


@pytest.mark.parametrize("name", ["ae", "aae"])
def test_repeated_pairs_get_no_more_mixture_components_than_distinct_codes(name):
    """Five pairs repeated twenty times have at most five codes; a mixture of 50 components
    on them made scikit-learn warn 'Number of distinct clusters (5) found smaller than n_clusters'."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from jointspace.data.pairs import Pairs

    rng = np.random.default_rng(0)
    base, rows = rng.normal(size=(5, 6)), np.arange(100) % 5
    pairs = Pairs({"a": base[rows], "b": base[rows][:, :3] * 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = create_model(name, latent_dim=2, hidden=[8], epochs=2, val_fraction=0.0).fit(pairs)
    codes = model.posterior_mean({"a": pairs["a"], "b": pairs["b"]}).astype(np.float64)
    distinct = np.unique(codes, axis=0)
    assert model.prior_k_ == len(distinct) < 50
    # every component sits on one of the codes
    gap = np.abs(model.net_.prior_means.numpy()[:, None] - distinct[None]).max(-1).min(1)
    assert gap.max() < 1e-5
