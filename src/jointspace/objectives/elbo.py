r"""The multimodal VAE objective of the chapter, equations (1)–(4), and its parts.

The latent variable model (eq. 1) is :math:`p(z, x_1..x_M) = p(z) \prod_m p(x_m \mid z)` with
the prior :math:`p(z) = \mathcal N(0, I)`.  Its evidence lower bound (eq. 2) is

.. math::  \log p(x_{1..M}) \ge \mathbb E_{q(z \mid x_{1..M})}[\log p(x_{1..M} \mid z)]
           - \mathrm{KL}(q(z \mid x_{1..M}) \,\|\, p(z)),

whose first term is the joint reconstruction term (eq. 3),
:math:`\sum_m \mathbb E_q[\log p(x_m \mid z)]`.  Eq. (4) weighs the KL term by :math:`\beta`.
The chapter prints it as :math:`L_{recon} + \beta\,\mathrm{KL}`; the bound it weighs is
:math:`L_{recon} - \beta\,\mathrm{KL}` (eq. 2 with :math:`\beta = 1`), so the loss to
*minimise* is :math:`-\sum_m w_m \mathbb E_q[\log p(x_m \mid z)] + \beta\,\mathrm{KL}`
(:func:`negative_elbo`, the β-VAE loss), with likelihood weights :math:`w_m` (1 in the
chapter) so that a modality of many dimensions does not drown one of few.

The joint posterior is built from one Gaussian expert :math:`q(z \mid x_m)` per modality:
by a product of experts (:func:`product_of_experts`, Wu & Goodman 2018), by a mixture
(:func:`mixture_log_density`, Shi et al. 2019), or by a mixture of products over subsets of
modalities (Sutter et al. 2021).  Objectives are pure functions of tensors; they never import
a model.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from ..errors import InputError

LOG_2PI = math.log(2.0 * math.pi)
#: the likelihoods :func:`log_likelihood` knows
LIKELIHOODS = ("bernoulli", "gaussian", "laplace", "categorical")
#: the smallest variance an expert may have (keeps precisions finite)
MIN_LOGVAR = -30.0


def _check_gaussian(mu, logvar, name: str) -> None:
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor):
        raise InputError(f"{name}: expected torch tensors for the mean and the log-variance, got "
                         f"{type(mu).__name__} and {type(logvar).__name__}")
    if mu.shape != logvar.shape:
        raise InputError(f"{name}: the mean and the log-variance must have one shape, got {tuple(mu.shape)} "
                         f"and {tuple(logvar.shape)}")


def _check_mask(mask, mus: torch.Tensor, empty_ok: bool = False) -> None:
    """``mask`` (E, n) of the experts ``mus`` (E, n, d), every sample keeping one unless ``empty_ok``."""
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(mus.shape[:2]):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InputError(f"mask: expected shape {tuple(mus.shape[:2])} (experts, samples), got {got}")
    if not empty_ok and not bool(mask.any(0).all()):
        empty = int(torch.nonzero(~mask.any(0))[0])
        raise InputError(f"mask: sample {empty} has no expert (every modality missing); give at least one")


def _prior_part(value, mu: torch.Tensor, name: str) -> torch.Tensor:
    """A prior's mean or log-variance as a tensor broadcastable to ``mu`` (a number is one value
    for every dimension)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = torch.tensor(float(value), dtype=mu.dtype, device=mu.device)
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{name}: expected a tensor broadcastable to {tuple(mu.shape)} or a number, "
                         f"got {type(value).__name__}")
    try:
        torch.broadcast_shapes(value.shape, mu.shape)
    except RuntimeError:
        raise InputError(f"{name}: expected a shape broadcastable to the posterior's {tuple(mu.shape)}, "
                         f"got {tuple(value.shape)}") from None
    return value


def gaussian_kl(mu, logvar, prior_mu=None, prior_logvar=None) -> torch.Tensor:
    r"""KL divergence between diagonal Gaussians, summed over the latent dimensions.

    .. math::  \mathrm{KL}(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(m, s^2)) = \tfrac12 \sum_k
               \Big(\log\frac{s_k^2}{\sigma_k^2} + \frac{\sigma_k^2 + (\mu_k - m_k)^2}{s_k^2} - 1\Big)

    The KL term of the chapter's eq. (2) and (4), with the prior :math:`\mathcal N(0, I)` when
    ``prior_mu`` and ``prior_logvar`` are omitted.

    Parameters
    ----------
    mu, logvar : Tensor, shape (..., d)
    prior_mu, prior_logvar : Tensor broadcastable to (..., d) or float, optional
        The prior's mean (default 0) and log-variance (default 0), each on its own.

    Returns
    -------
    Tensor, shape (...)
    """
    _check_gaussian(mu, logvar, "gaussian_kl")
    if prior_mu is None and prior_logvar is None:
        return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(-1)
    prior_mu = torch.zeros_like(mu) if prior_mu is None else _prior_part(prior_mu, mu, "prior_mu")
    prior_logvar = torch.zeros_like(mu) if prior_logvar is None else _prior_part(prior_logvar, mu, "prior_logvar")
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp()
                  - 1.0).sum(-1)


def gaussian_log_density(z, mu, logvar) -> torch.Tensor:
    r""":math:`\log \mathcal N(z; \mu, \mathrm{diag}\, e^{\text{logvar}})`, summed over the last axis.

    Parameters
    ----------
    z, mu, logvar : Tensor, broadcastable to (..., d)

    Returns
    -------
    Tensor, shape (...)
    """
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def standard_normal_log_density(z) -> torch.Tensor:
    r""":math:`\log p(z)` under the prior :math:`\mathcal N(0, I)`; shape (...) for z (..., d)."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def product_of_experts(mus, logvars, mask=None, *, prior: bool = False):
    r"""The product of Gaussian experts: a Gaussian with the summed precisions.

    .. math::  T_e = \sigma_e^{-2}, \qquad \sigma^2 = \Big(\sum_e T_e\Big)^{-1}, \qquad
               \mu = \sigma^2 \sum_e T_e\, \mu_e

    over the experts present for each sample (MVAE's joint posterior, Wu & Goodman 2018).

    Parameters
    ----------
    mus, logvars : Tensor, shape (E, n, d)
        One expert per modality.
    mask : bool Tensor, shape (E, n), optional
        Which experts each sample has (all by default).  A sample must keep at least one
        expert, or the prior.
    prior : bool
        Add the prior :math:`\mathcal N(0, I)` as one more expert.

    Returns
    -------
    mu, logvar : Tensor, shape (n, d)
    """
    _check_gaussian(mus, logvars, "product_of_experts")
    if mus.ndim != 3:
        raise InputError(f"mus: expected experts of shape (E, n, d), got {tuple(mus.shape)}")
    precision = torch.exp(-logvars.clamp(min=MIN_LOGVAR))
    if mask is not None:
        _check_mask(mask, mus, empty_ok=prior)
        precision = precision * mask.unsqueeze(-1).to(precision.dtype)
    total = precision.sum(0)
    weighted = (precision * mus).sum(0)
    if prior:
        total = total + 1.0
    var = 1.0 / total
    return weighted * var, torch.log(var)


def mixture_log_density(z, mus, logvars, mask=None) -> torch.Tensor:
    r""":math:`\log \frac{1}{|E|} \sum_e \mathcal N(z; \mu_e, \sigma_e^2)`, the density of a uniform
    mixture of Gaussian experts (over the experts present for each sample).

    Parameters
    ----------
    z : Tensor, shape (k, n, d)
        ``k`` points per sample.
    mus, logvars : Tensor, shape (E, n, d)
    mask : bool Tensor, shape (E, n), optional
        Which experts each sample has (all by default); a sample must keep at least one.

    Returns
    -------
    Tensor, shape (k, n)
    """
    _check_gaussian(mus, logvars, "mixture_log_density")
    if mask is not None:
        _check_mask(mask, mus)
    dens = gaussian_log_density(z.unsqueeze(1), mus.unsqueeze(0), logvars.unsqueeze(0))   # (k, E, n)
    if mask is None:
        return torch.logsumexp(dens, dim=1) - math.log(mus.shape[0])
    dens = dens.masked_fill(~mask.unsqueeze(0), float("-inf"))
    return torch.logsumexp(dens, dim=1) - torch.log(mask.sum(0).to(z.dtype)).unsqueeze(0)


def mixture_prior_log_density(z, means, logvars, log_weights=None) -> torch.Tensor:
    r""":math:`\log p(z)` under a mixture prior :math:`p(z) = \sum_k \pi_k \mathcal N(z; m_k,
    \mathrm{diag}\, s_k^2)` (eq. 1 leaves :math:`p(z)` open; equal weights by default).

    Parameters
    ----------
    z : Tensor, shape (..., d)
    means, logvars : Tensor, shape (K, d)
    log_weights : Tensor, shape (K,), optional
        :math:`\log \pi_k` (summing to one after exponentiation).

    Returns
    -------
    Tensor, shape (...)
    """
    dens = gaussian_log_density(z.unsqueeze(-2), means, logvars)      # (..., K)
    if log_weights is None:
        return torch.logsumexp(dens, dim=-1) - math.log(means.shape[0])
    return torch.logsumexp(dens + log_weights, dim=-1)


def reparameterize(mu, logvar, n_samples: int | None = None, generator=None) -> torch.Tensor:
    r"""Samples :math:`z = \mu + \sigma \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`,
    differentiable in :math:`\mu` and :math:`\sigma`.

    Returns shape (n, d), or (n_samples, n, d) when ``n_samples`` is given.
    """
    shape = mu.shape if n_samples is None else (n_samples, *mu.shape)
    eps = torch.randn(shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps


def log_likelihood(kind: str, x, out, log_scale=None) -> torch.Tensor:
    r""":math:`\log p(x \mid z)` of one modality, summed over its dimensions.

    Parameters
    ----------
    kind : {"bernoulli", "gaussian", "laplace", "categorical"}
        ``bernoulli``: ``out`` are logits and ``x`` lies in [0, 1] (pixel intensities; the
        cross-entropy form); ``gaussian`` / ``laplace``: ``out`` is the mean / location and
        ``log_scale`` the log standard deviation / log scale (broadcastable, e.g. one learnt
        per dimension); ``categorical``: ``out`` are logits of shape (..., L, V) and ``x``
        integer classes of shape (..., L).
    x : Tensor, shape (..., D) (categorical: (..., L))
    out : Tensor, shape (..., D) (categorical: (..., L, V))
    log_scale : Tensor broadcastable to (..., D), optional
        Gaussian / Laplace only (default 0: unit scale).

    Returns
    -------
    Tensor, shape (...)
    """
    if kind == "bernoulli":
        return -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)
    if kind == "categorical":
        logp = torch.log_softmax(out, dim=-1)
        idx = x.long().expand(out.shape[:-1]).unsqueeze(-1)
        return logp.gather(-1, idx).squeeze(-1).sum(-1)
    s = torch.zeros((), dtype=out.dtype, device=out.device) if log_scale is None else log_scale
    if kind == "gaussian":
        return -0.5 * (LOG_2PI + 2.0 * s + (x - out).pow(2) * torch.exp(-2.0 * s)).sum(-1)
    if kind == "laplace":
        return -(math.log(2.0) + s + (x - out).abs() * torch.exp(-s)).sum(-1)
    raise InputError(f"likelihood: expected one of {', '.join(LIKELIHOODS)}; got {kind!r}")


def negative_elbo(log_px, kl, beta: float = 1.0) -> torch.Tensor:
    r"""The loss of eq. (4): :math:`-\mathcal L_{recon} + \beta\,\mathrm{KL}`, averaged over the batch.

    Parameters
    ----------
    log_px : Tensor, shape (n,)
        The (weighted) joint reconstruction term of eq. (3) per sample, a one-sample estimate
        of :math:`\sum_m \mathbb E_q[\log p(x_m \mid z)]`.
    kl : Tensor, shape (n,)
        :math:`\mathrm{KL}(q(z \mid x) \,\|\, p(z))` per sample.
    beta : float
        The weight of the KL term (1: the ELBO of eq. 2; above 1: a β-VAE).

    Returns
    -------
    Tensor, shape ()
    """
    if isinstance(beta, torch.Tensor) and beta.numel() == 1:
        beta = float(beta.detach())
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not (math.isfinite(beta) and beta >= 0):
        raise InputError(f"beta: expected a finite weight >= 0, got {beta!r}")
    for name, v in (("log_px", log_px), ("kl", kl)):
        if not isinstance(v, torch.Tensor):
            raise InputError(f"{name}: expected a torch.Tensor of per-sample values (n,), got {type(v).__name__}")
    if log_px.shape != kl.shape:   # broadcasting (n, 1) against (n,) would average an (n, n) table
        raise InputError(f"kl: expected the shape of log_px {tuple(log_px.shape)} (one value per sample), "
                         f"got {tuple(kl.shape)}")
    return (-log_px + beta * kl).mean()


def importance_weighted_bound(log_px, log_pz, log_qz) -> torch.Tensor:
    r"""The importance-weighted bound (Burda et al. 2016) with K samples per item:

    .. math::  \log p(x) \ge \mathbb E\Big[\log \frac1K \sum_{k=1}^K
               \frac{p(x \mid z_k)\, p(z_k)}{q(z_k \mid x)}\Big], \qquad z_k \sim q(z \mid x)

    For K = 1 it is the ELBO of eq. (2); it tightens as K grows, and with the exact posterior
    as :math:`q` every term equals :math:`\log p(x)`.

    Parameters
    ----------
    log_px, log_pz, log_qz : Tensor, shape (K, n)

    Returns
    -------
    Tensor, shape (n,)
    """
    for name, v in (("log_px", log_px), ("log_pz", log_pz), ("log_qz", log_qz)):
        if not isinstance(v, torch.Tensor) or v.ndim < 1 or v.shape != log_px.shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            want = tuple(log_px.shape) if isinstance(log_px, torch.Tensor) and log_px.ndim else "(K, n)"
            # broadcasting one against another would weigh the samples of other items
            raise InputError(f"{name}: expected a tensor of shape {want} (K samples per item), got {got}")
    log_w = log_px + log_pz - log_qz
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def kl_weight(epoch: float, beta: float, warmup_epochs: float) -> float:
    r"""KL annealing: :math:`\beta \min(1, \text{epoch} / \text{warmup})` (β from the first epoch
    when ``warmup_epochs`` is 0)."""
    if warmup_epochs <= 0:
        return float(beta)
    return float(beta) * min(1.0, max(0.0, float(epoch)) / float(warmup_epochs))


__all__ = ["gaussian_kl", "gaussian_log_density", "standard_normal_log_density", "product_of_experts",
           "mixture_log_density", "mixture_prior_log_density", "reparameterize", "log_likelihood", "negative_elbo",
           "importance_weighted_bound", "kl_weight", "LIKELIHOODS"]
