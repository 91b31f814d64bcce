"""The VAE objective's parts pinned against closed forms and reference libraries."""

import math

import numpy as np
import pytest
import scipy.stats as st
import torch

from jointspace.errors import InputError
from jointspace.objectives.elbo import (gaussian_kl, gaussian_log_density, importance_weighted_bound, kl_weight,
                                        log_likelihood, mixture_log_density, mixture_prior_log_density, negative_elbo,
                                        product_of_experts,
                                        standard_normal_log_density)


def _t(x):
    return torch.tensor(np.asarray(x, dtype=np.float64))


def test_gaussian_kl_hand_worked_and_against_torch_distributions():
    # KL(N(1, 1) || N(0, 1)) = 1/2 * mu^2 = 0.5
    assert float(gaussian_kl(_t([[1.0]]), _t([[0.0]]))[0]) == pytest.approx(0.5, abs=1e-12)
    rng = np.random.default_rng(0)
    mu, logvar = _t(rng.normal(size=(5, 4))), _t(rng.normal(size=(5, 4)))
    pm, plv = _t(rng.normal(size=(5, 4))), _t(rng.normal(size=(5, 4)))
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl(mu, logvar), ref, atol=1e-10)
    ref2 = torch.distributions.kl_divergence(q, torch.distributions.Normal(pm, torch.exp(0.5 * plv))).sum(-1)
    assert torch.allclose(gaussian_kl(mu, logvar, pm, plv), ref2, atol=1e-10)
    # each prior argument on its own (the missing one at its default: mean 0, log-variance 0)
    ref3 = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, torch.exp(0.5 * plv))).sum(-1)
    assert torch.allclose(gaussian_kl(mu, logvar, prior_logvar=plv), ref3, atol=1e-10)
    ref4 = torch.distributions.kl_divergence(q, torch.distributions.Normal(pm, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl(mu, logvar, prior_mu=pm), ref4, atol=1e-10)
    # KL(N(0.5, 1) || N(0, 4)) by hand: 1/2 (log 4 + (1 + 0.25) / 4 - 1)
    assert float(gaussian_kl(_t([[0.5]]), _t([[0.0]]), prior_logvar=_t([[math.log(4.0)]]))[0]) == \
        pytest.approx(0.5 * (math.log(4.0) + 1.25 / 4 - 1), abs=1e-12)


def test_gaussian_kl_refuses_mismatched_shapes():
    with pytest.raises(InputError, match="one shape"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    mu = torch.zeros(5, 3, dtype=torch.float64)
    with pytest.raises(InputError, match=r"^prior_mu: expected a shape broadcastable to the posterior's \(5, 3\), "
                                         r"got \(4,\)"):
        gaussian_kl(mu, mu, torch.zeros(4))
    with pytest.raises(InputError, match=r"^prior_logvar: expected a tensor broadcastable to \(5, 3\) or a number, "
                                         r"got list"):
        gaussian_kl(mu, mu, None, [0.0, 0.0, 0.0])


def test_gaussian_kl_takes_a_number_for_the_prior():
    """N(0, 1) against N(0.5, e^2): 1/2 (2 + (1 + 0.25) / e^2 - 1) per dimension."""
    mu = torch.zeros(2, 3, dtype=torch.float64)
    want = 0.5 * (2.0 + 1.25 / math.exp(2.0) - 1.0) * 3
    np.testing.assert_allclose(gaussian_kl(mu, mu, 0.5, 2.0).numpy(), [want, want], rtol=1e-12)


def test_log_densities_match_scipy():
    rng = np.random.default_rng(1)
    z, mu, logvar = rng.normal(size=(3, 6, 2))
    ours = gaussian_log_density(_t(z), _t(mu), _t(logvar)).numpy()
    ref = st.norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(-1)
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    np.testing.assert_allclose(standard_normal_log_density(_t(z)).numpy(), st.norm.logpdf(z).sum(-1), atol=1e-10)


def test_product_of_experts_is_the_precision_weighted_formula():
    rng = np.random.default_rng(2)
    mus, logvars = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    prec = np.exp(-logvars)
    var = 1.0 / prec.sum(0)
    mean = var * (prec * mus).sum(0)
    mu, lv = product_of_experts(_t(mus), _t(logvars))
    np.testing.assert_allclose(mu.numpy(), mean, atol=1e-10)
    np.testing.assert_allclose(lv.numpy(), np.log(var), atol=1e-10)
    # with the prior as one more expert (mean 0, precision 1)
    var_p = 1.0 / (prec.sum(0) + 1.0)
    mu_p, lv_p = product_of_experts(_t(mus), _t(logvars), prior=True)
    np.testing.assert_allclose(mu_p.numpy(), var_p * (prec * mus).sum(0), atol=1e-10)
    np.testing.assert_allclose(lv_p.numpy(), np.log(var_p), atol=1e-10)


def test_product_of_experts_is_the_normalised_product_of_densities():
    # log N(z; m1, v1) + log N(z; m2, v2) - log N(z; m, v) does not depend on z
    mus, logvars = _t([[[0.3]], [[-1.2]]]), _t([[[0.5]], [[-0.7]]])
    mu, lv = product_of_experts(mus, logvars)
    diffs = []
    for z in (-2.0, 0.1, 3.0):
        zz = _t([[z]])
        diffs.append(float(gaussian_log_density(zz, mus[0], logvars[0]) + gaussian_log_density(zz, mus[1], logvars[1])
                           - gaussian_log_density(zz, mu, lv)))
    assert max(diffs) - min(diffs) < 1e-10


def test_product_of_experts_mask_drops_missing_experts():
    rng = np.random.default_rng(3)
    mus, logvars = _t(rng.normal(size=(3, 2, 4))), _t(rng.normal(size=(3, 2, 4)))
    mask = torch.tensor([[True, True], [False, True], [True, False]])
    mu, lv = product_of_experts(mus, logvars, mask)
    mu0, lv0 = product_of_experts(mus[[0, 2], :1], logvars[[0, 2], :1])
    mu1, lv1 = product_of_experts(mus[[0, 1], 1:], logvars[[0, 1], 1:])
    assert torch.allclose(mu[:1], mu0) and torch.allclose(lv[:1], lv0)
    assert torch.allclose(mu[1:], mu1) and torch.allclose(lv[1:], lv1)
    with pytest.raises(InputError, match="sample 1 has no expert"):
        product_of_experts(mus, logvars, torch.tensor([[True, False]] * 3))
    # with the prior expert, a sample with no modality is the prior itself
    mu_p, lv_p = product_of_experts(mus, logvars, torch.tensor([[True, False]] * 3), prior=True)
    assert torch.allclose(mu_p[1], torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(lv_p[1], torch.zeros(4, dtype=torch.float64))


def test_mixture_log_density_matches_scipy():
    rng = np.random.default_rng(4)
    mus, logvars = rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2, 2))
    z = rng.normal(size=(5, 2, 2))
    ours = mixture_log_density(_t(z), _t(mus), _t(logvars)).numpy()
    dens = np.stack([st.norm.pdf(z, mus[e], np.exp(0.5 * logvars[e])).prod(-1) for e in range(3)])
    np.testing.assert_allclose(ours, np.log(dens.mean(0)), atol=1e-10)
    mask = torch.tensor([[True, True], [True, False], [False, True]])
    ours_m = mixture_log_density(_t(z), _t(mus), _t(logvars), mask).numpy()
    # mask[e, i]: expert e present for sample i -> sample 0 has experts 0, 1; sample 1 has 0, 2
    ref = np.stack([np.log(dens[[0, 1], :, 0].mean(0)), np.log(dens[[0, 2], :, 1].mean(0))], axis=-1)
    np.testing.assert_allclose(ours_m, ref, atol=1e-10)


def test_mixture_log_density_refuses_a_sample_without_experts_or_a_mask_of_another_shape():
    """A sample with no expert has no density (it read NaN: -inf - log 0), as in product_of_experts."""
    mus, logvars, z = torch.zeros(2, 3, 1), torch.zeros(2, 3, 1), torch.zeros(4, 3, 1)
    with pytest.raises(InputError, match=r"^mask: sample 1 has no expert"):
        mixture_log_density(z, mus, logvars, torch.tensor([[True, False, True], [True, False, False]]))
    with pytest.raises(InputError, match=r"^mask: expected shape \(2, 3\)"):
        mixture_log_density(z, mus, logvars, torch.ones(3, 2, dtype=torch.bool))


def test_likelihoods_match_scipy():
    rng = np.random.default_rng(5)
    x = (rng.random((4, 6)) > 0.5).astype(float)
    logits = rng.normal(size=(4, 6))
    p = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(log_likelihood("bernoulli", _t(x), _t(logits)).numpy(),
                               st.bernoulli.logpmf(x, p).sum(-1), atol=1e-10)
    y, mean, ls = rng.normal(size=(3, 4, 6))
    np.testing.assert_allclose(log_likelihood("gaussian", _t(y), _t(mean), _t(ls)).numpy(),
                               st.norm.logpdf(y, mean, np.exp(ls)).sum(-1), atol=1e-10)
    np.testing.assert_allclose(log_likelihood("laplace", _t(y), _t(mean), _t(ls)).numpy(),
                               st.laplace.logpdf(y, mean, np.exp(ls)).sum(-1), atol=1e-10)
    tok_logits = rng.normal(size=(2, 3, 5))
    ids = np.array([[0, 4, 2], [1, 1, 3]])
    logp = tok_logits - np.log(np.exp(tok_logits).sum(-1, keepdims=True))
    ref = np.array([sum(logp[i, j, ids[i, j]] for j in range(3)) for i in range(2)])
    np.testing.assert_allclose(log_likelihood("categorical", torch.tensor(ids), _t(tok_logits)).numpy(), ref,
                               atol=1e-10)
    with pytest.raises(InputError, match="likelihood"):
        log_likelihood("poisson", _t(y), _t(mean))


def _linear_gaussian(x, w, b, s2):
    """Exact log p(x) and posterior of p(z) = N(0, 1), p(x | z) = N(w z + b, s2 I)."""
    cov = np.outer(w, w) + s2 * np.eye(len(w))
    log_px = st.multivariate_normal.logpdf(x, b, cov)
    post_var = 1.0 / (1.0 + (w ** 2).sum() / s2)
    post_mean = post_var * (w * (x - b)).sum(-1) / s2
    return log_px, post_mean, post_var


def test_elbo_of_a_linear_gaussian_model_equals_its_exact_log_likelihood():
    w, b, s2 = np.array([1.5, -0.5]), np.array([0.2, 0.1]), 0.3
    x = np.array([[0.7, -0.4], [-1.0, 0.9], [2.0, 0.0]])
    log_px, m, v = _linear_gaussian(x, w, b, s2)

    def terms(z, mu, logvar):
        mean = _t(w) * z.unsqueeze(-1) + _t(b)
        lp = log_likelihood("gaussian", _t(x), mean, _t(0.5 * math.log(s2)))
        return lp, standard_normal_log_density(z.unsqueeze(-1)), gaussian_log_density(z.unsqueeze(-1), mu, logvar)

    mu, logvar = _t(m).unsqueeze(-1), _t(np.log(v) * np.ones(3)).unsqueeze(-1)
    # with the exact posterior every importance weight equals p(x): the bound is exact for any K
    z = mu.squeeze(-1) + math.sqrt(v) * torch.randn(7, 3, dtype=torch.float64)
    lp, lpz, lqz = terms(z, mu, logvar)
    np.testing.assert_allclose(importance_weighted_bound(lp, lpz, lqz).numpy(), log_px, atol=1e-9)
    # the eq. (4) form with the analytic KL: a Monte-Carlo reconstruction term, same value on average
    torch.manual_seed(0)
    z = mu.squeeze(-1) + math.sqrt(v) * torch.randn(200000, 3, dtype=torch.float64)
    lp, _, _ = terms(z, mu, logvar)
    kl = gaussian_kl(mu, logvar)
    elbo = -np.array([float(negative_elbo(lp[:, i], kl[i].expand(200000))) for i in range(3)])
    np.testing.assert_allclose(elbo, log_px, atol=0.02)
    # a worse q: the ELBO falls short of log p(x) by exactly KL(q || posterior)
    q_mu, q_lv = mu + 0.5, logvar - 0.4
    z = q_mu.squeeze(-1) + torch.exp(0.5 * q_lv.squeeze(-1)) * torch.randn(200000, 3, dtype=torch.float64)
    lp, _, _ = terms(z, q_mu, q_lv)
    elbo = (lp.mean(0) - gaussian_kl(q_mu, q_lv)).numpy()
    gap = gaussian_kl(q_mu, q_lv, mu, logvar).numpy()
    np.testing.assert_allclose(elbo, log_px - gap, atol=0.02)
    assert (gap > 0.01).all()


def test_importance_weighted_bound_is_the_elbo_for_one_sample_and_tightens():
    lp, lpz, lqz = _t([[-3.0, -1.0]]), _t([[-1.0, -2.0]]), _t([[-0.5, -0.2]])
    np.testing.assert_allclose(importance_weighted_bound(lp, lpz, lqz).numpy(), (lp + lpz - lqz)[0].numpy())
    rng = np.random.default_rng(6)
    log_w = _t(rng.normal(size=(50, 1)))
    k1 = float(log_w.mean())
    k50 = float(importance_weighted_bound(log_w, torch.zeros_like(log_w), torch.zeros_like(log_w)))
    assert k50 > k1
    with pytest.raises(InputError, match=r"^log_qz: expected a tensor of shape \(50, 1\) \(K samples per item\), "
                                         r"got \(50,\)"):
        importance_weighted_bound(log_w, log_w, log_w[:, 0])
    with pytest.raises(InputError, match=r"^log_px: expected a tensor of shape \(K, n\).*got float"):
        importance_weighted_bound(0.5, log_w, log_w)


def test_negative_elbo_and_kl_annealing():
    assert float(negative_elbo(_t([-2.0, -4.0]), _t([1.0, 3.0]), beta=2.0)) == pytest.approx((2.0 + 2 * 1.0 + 4.0 + 2 * 3.0) / 2)
    with pytest.raises(InputError, match="beta"):
        negative_elbo(_t([-2.0]), _t([1.0]), beta=-0.1)
    for beta in ("4", True, float("inf"), float("nan")):
        with pytest.raises(InputError, match=f"^beta: expected a finite weight >= 0, got {beta!r}"):
            negative_elbo(_t([-2.0]), _t([1.0]), beta=beta)
    assert float(negative_elbo(_t([-2.0]), _t([1.0]), beta=torch.tensor(3.0))) == pytest.approx(5.0)
    with pytest.raises(InputError, match=r"^kl: expected the shape of log_px \(2,\) .*got \(2, 1\)"):
        negative_elbo(_t([-2.0, -4.0]), _t([[1.0], [3.0]]))
    with pytest.raises(InputError, match="^log_px: expected a torch.Tensor"):
        negative_elbo([-2.0], _t([1.0]))
    assert kl_weight(0, 4.0, 10) == 0.0
    assert kl_weight(5, 4.0, 10) == pytest.approx(2.0)
    assert kl_weight(20, 4.0, 10) == 4.0
    assert kl_weight(0, 4.0, 0) == 4.0


def test_mixture_prior_density_matches_scipy():
    rng = np.random.default_rng(7)
    means, logvars = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) * 0.3
    w = np.array([0.2, 0.5, 0.3])
    z = rng.normal(size=(4, 5, 2))
    dens = np.stack([st.multivariate_normal.pdf(z, means[k], np.diag(np.exp(logvars[k]))) for k in range(3)], -1)
    ours = mixture_prior_log_density(_t(z), _t(means), _t(logvars), _t(np.log(w))).numpy()
    np.testing.assert_allclose(ours, np.log(dens @ w), atol=1e-10)
    equal = mixture_prior_log_density(_t(z), _t(means), _t(logvars)).numpy()
    np.testing.assert_allclose(equal, np.log(dens.mean(-1)), atol=1e-10)
