"""The VAEs' bound and log-likelihood estimate against closed forms: a linear-Gaussian model
(z ~ N(0, 1), x_m = a_m z + s_m e_m) written into a fitted one-dimensional VAE, whose
marginal p(x) is a Gaussian with covariance a a^T + diag(s^2)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from jointspace.data.pairs import Pairs
from jointspace.models.base import create_model

A, S = np.array([2.0, 0.5]), np.array([0.5, 1.0])


pytestmark = pytest.mark.usefixtures("one_thread")


def _linear_gaussian_vae(name, offset=(3.0, -1.0), spread=(10.0, 0.01), n=40, seed=0):
    """A fitted 1-d VAE whose encoders and decoders are set to the linear-Gaussian model in
    standardised units (each expert q(z | x_m) is N(x_m / a_m, s_m^2 / a_m^2), so the product
    with the prior expert is the exact posterior), and its features in their given units."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    raw = {m: (A[i] * z + S[i] * rng.normal(size=(n, 1))) * spread[i] + offset[i] for i, m in enumerate("ab")}
    items = {m: v.astype(np.float32) for m, v in raw.items()}
    model = create_model(name, latent_dim=1, hidden=[], epochs=1, prior="normal", val_fraction=0.0,
                         seed=seed).fit(Pairs(items))
    with torch.no_grad():
        for i, m in enumerate("ab"):
            enc = model.net_.encoders[m].net[0]
            enc.weight.zero_()
            enc.bias.zero_()
            enc.weight[0, 0] = 1.0 / A[i]
            enc.bias[1] = math.log(S[i] ** 2 / A[i] ** 2)
            dec = model.net_.decoders[m]
            dec.net[0].weight.fill_(A[i])
            dec.net[0].bias.zero_()
            dec.log_scale.fill_(math.log(S[i]))
    return model, items


def _closed_form(model, items):
    """Mean over the items of log p(x_a, x_b) in the units the features were given in."""
    mean = np.array([float(model.codecs_[m].mean[0]) for m in "ab"])
    scale = np.diag([float(model.codecs_[m].scale[0]) for m in "ab"])
    cov = scale @ (np.outer(A, A) + np.diag(S ** 2)) @ scale
    x = np.hstack([items[m] for m in "ab"]).astype(np.float64)
    return float(stats.multivariate_normal(mean, cov).logpdf(x).mean())


def test_the_log_likelihood_of_features_is_their_density_in_the_given_units():
    model, items = _linear_gaussian_vae("mvae-poe")
    bound = model.evaluate_bound(items, n_samples=16, seed=0)
    expected = _closed_form(model, items)
    # the exact posterior: every importance weight is p(x), so the ELBO is log p(x) as well
    assert bound["log_likelihood"] == pytest.approx(expected, abs=1e-3)
    assert bound["elbo"] == pytest.approx(expected, abs=1e-3)


def test_the_importance_weighted_estimate_reaches_the_marginal_from_a_mixture_posterior():
    model, items = _linear_gaussian_vae("mvae-mopoe", spread=(1.0, 1.0))
    bound = model.evaluate_bound(items, n_samples=2000, seed=1)
    expected = _closed_form(model, items)
    assert bound["log_likelihood"] == pytest.approx(expected, abs=0.02)
    assert bound["elbo"] < expected - 1.0     # the mixture is far from the exact posterior


def _kl(mu, var):
    """KL(N(mu, var) || N(0, I)) by hand, summed over the last axis."""
    return 0.5 * np.sum(var + mu ** 2 - 1.0 - np.log(var), axis=-1)


@pytest.mark.parametrize("name", ["mvae-poe", "mvae-mopoe"])
def test_a_subset_term_counts_the_private_kl_of_the_modalities_it_rebuilds(name):
    """With the same draws, loss(beta=1) - loss(beta=0) is the KL part of the loss: for the
    PoE's sum of the joint ELBO and one ELBO per modality, KL(q(z | subset)) of each term and
    KL(q(w_m | x_m)) of each modality the term rebuilds (an x_a-alone term has no w_b)."""
    rng = np.random.default_rng(0)
    items = {"a": rng.normal(size=(30, 3)).astype(np.float32), "b": rng.normal(size=(30, 2)).astype(np.float32)}
    model = create_model(name, latent_dim=2, private_dim=1, hidden=[8], epochs=1, prior="normal",
                         val_fraction=0.0).fit(Pairs(items))
    x = {m: torch.from_numpy(model.codecs_[m].encode_items(v, m)) for m, v in items.items()}
    losses = []
    for beta in (1.0, 0.0):
        model.beta = beta
        torch.manual_seed(3)
        with torch.no_grad():
            losses.append(float(model._loss(model.net_, x, 0, None)[0]))
    with torch.no_grad():
        parts = {m: [t.double().numpy() for t in model.net_.parts(m, x[m])] for m in "ab"}
    prec = {m: np.exp(-parts[m][1]) for m in "ab"}
    if name == "mvae-poe":    # products with the prior expert; terms summed
        subsets, prior, rebuilt = [("a", "b"), ("a",), ("b",)], 1.0, lambda m, s: m in s
    else:                     # single experts alone, products without a prior; terms averaged
        subsets, prior, rebuilt = [("a",), ("b",), ("a", "b")], 0.0, lambda m, s: True
    total = 0.0
    for s in subsets:
        if len(s) == 1 and not prior:
            mu, var = parts[s[0]][0], np.exp(parts[s[0]][1])
        else:
            p = sum(prec[m] for m in s) + prior
            mu, var = sum(prec[m] * parts[m][0] for m in s) / p, 1.0 / p
        total += np.mean(_kl(mu, var) + sum(_kl(parts[m][2], np.exp(parts[m][3])) for m in "ab" if rebuilt(m, s)))
    expected = total if name == "mvae-poe" else total / len(subsets)
    assert losses[0] - losses[1] == pytest.approx(expected, rel=1e-4)
