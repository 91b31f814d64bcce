r"""Multimodal VAEs: the chapter's latent variable model (eq. 1) trained on its ELBO (eq. 2–4),
with the joint posterior formed from one Gaussian expert per modality by

- ``mvae-poe``: a product of experts with a prior expert, :math:`q(z \mid X) \propto p(z)
  \prod_m q(z \mid x_m)` (MVAE, Wu & Goodman 2018).  The loss sums the ELBO of all
  modalities together and the sub-sampled ELBO of each modality alone, so that a single
  modality can be inferred from (without them the experts are trained only in products).
- ``mvae-moe``: a uniform mixture of the experts (MMVAE, Shi et al. 2019).  The loss averages,
  over the experts, the ELBO with :math:`z` drawn from that expert and every modality rebuilt
  from it, which trains cross-modal generation directly.
- ``mvae-mopoe``: a mixture, over every non-empty subset of modalities, of the product of that
  subset's experts (MoPoE, Sutter, Daunhawer & Vogt 2021); the loss averages the ELBO of each
  subset's product, every modality rebuilt.
- ``beta-vae``: ``mvae-mopoe`` with :math:`\beta = 4` by default (Higgins et al. 2017):
  a heavier KL term of eq. (4) for more factorised latents.

The mixtures' loss, the average of their components' ELBOs, bounds the ELBO of eq. (2) with
the mixture itself as :math:`q` from below: the reconstruction terms agree, and the
components' mean KL to the prior is at least the mixture's (the KL is convex).  This is
Sutter et al.'s objective; Shi et al.'s MMVAE estimator divides by the mixture's density
instead, the tighter bound.  ``evaluate_bound`` reports the mixture's own ELBO.

Each subset term is :func:`jointspace.objectives.elbo.negative_elbo` with the joint
reconstruction term of eq. (3) weighted per modality (``likelihood_weights``), the KL term of
eq. (4) weighted by β (with linear KL annealing over ``kl_warmup`` epochs), or, with
``iw_samples`` K > 1, the importance-weighted bound (Burda et al. 2016; β-tempered where β ≠ 1).  ``encode`` returns
the posterior mean given one modality; :meth:`~GenerativeModel.posterior_mean`,
``generate``, ``reconstruct`` and ``sample`` work from any subset of modalities.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_choice, check_float, check_int
from ..errors import InputError
from ..objectives.elbo import (gaussian_kl, gaussian_log_density, importance_weighted_bound, kl_weight,
                               mixture_log_density, mixture_prior_log_density, negative_elbo,
                               product_of_experts, standard_normal_log_density)
from ._generative import GenerativeModel, nonempty_subsets
from ._generative_inference import check_seed
from .base import register_model


#: the priors p(z): the standard normal, or a learnt mixture of ``prior_components`` Gaussians
PRIORS = ("normal", "mixture")
#: the most latent draws (items x importance samples) ``evaluate_bound`` decodes at once
BOUND_DRAWS = 2**16


class MultimodalVAE(GenerativeModel):
    r"""Base of the multimodal VAEs.

    Parameters
    ----------
    latent_dim : int
        Size of the latent :math:`z` (the joint space).
    hidden : list of int
        Hidden widths of each encoder (the decoders mirror them).
    likelihoods : dict of str to str, optional
        Likelihood per modality: ``bernoulli`` (pixels in [0, 1], the default for images),
        ``gaussian`` (the default for feature vectors; learnt scale per dimension),
        ``laplace``, ``categorical`` (texts, word by word).
    likelihood_weights : {"balanced", "none"} or dict of str to float
        Weights :math:`w_m` of the modalities' log-likelihoods in eq. (3): ``balanced`` makes
        each modality weigh as much as the largest (:math:`w_m = D_{max} / D_m`, with
        :math:`D_m` the dimensions of its likelihood) so that 784 pixels do not drown an
        8-word text; ``none`` is the chapter's plain sum.
    beta : float
        Weight of the KL term of eq. (4).
    kl_warmup : float
        Epochs over which β rises linearly from 0 (KL annealing); 0 uses β from the start.
    iw_samples : int
        1: the ELBO; K > 1: the importance-weighted bound with K samples per subset term,
        with the prior and posterior log-densities weighted by β as the KL term is (the bound
        itself at β = 1; a β-tempered one otherwise, and during ``kl_warmup``).
    prior : {"mixture", "normal"}
        :math:`p(z)` of eq. (1).  Training always uses :math:`\mathcal N(0, I)` (closed-form
        KL).  With ``mixture``, the prior is then replaced by a mixture of
        ``prior_components`` diagonal Gaussians fitted by maximum likelihood (EM) to draws
        from the aggregate posterior :math:`\frac1N \sum_i q(z \mid X_i)` of the training
        pairs (empirical Bayes, as in the two-stage VAE of Dai & Wipf 2019 and the ex-post
        density of Ghosh et al. 2020): the ELBO is a bound for any prior, and one that sits
        where the posteriors are makes latents drawn from it decode to items that agree across
        modalities, where the standard normal leaves much of its mass between the classes.
        ``sample``, ``evaluate_bound`` and the importance-weighted bound use this prior.
    prior_components : int
        Components of that mixture, 1 to 10,000 (unused with ``normal``).  A fit on fewer
        training pairs than that fits one component per pair: each then sits on a draw from one
        pair's posterior, and new samples come back close to the training pairs.
    private_dim : int
        0: one shared latent.  > 0: each modality also has a private latent :math:`w_m` of this
        size with its own Gaussian posterior :math:`q(w_m \mid x_m)` and prior
        :math:`\mathcal N(0, I)`, and its decoder reads :math:`p(x_m \mid z, w_m)` (MMVAE+,
        Palumbo et al. 2023): in a subset term a modality of the subset is rebuilt with
        :math:`w_m \sim q(w_m \mid x_m)`, one outside it with :math:`w_m` from the prior, so
        what the other modalities can tell goes through :math:`z`.  The ELBO gains
        :math:`-\beta\sum_m \mathrm{KL}(q(w_m \mid x_m)\,\|\,p(w_m))` over the modalities
        it rebuilds (the PoE's term of one modality alone has that modality's only).  Cross-modal
        generation draws the target's :math:`w` from the prior.
    regularizers : list of str, optional
        With private latents: the regularisers between the posterior means of the parts
        (``"NAME"`` or ``"NAME:VALUE"``, :mod:`jointspace.objectives.regularizers`; all but
        ``weight``, which needs separate shared and private heads).
    epochs : int, optional
        Passes over the training pairs; by default about 2,000 optimiser steps' worth (5 to
        300 epochs, :func:`~jointspace.models._generative.auto_epochs`), and the epoch with
        the lowest validation loss is kept.
    batch_size, lr, weight_decay, patience, seed, device :
        Training settings (:class:`jointspace.train.generic.FitConfig`).
    val_fraction : float
        Share of the pairs held out to pick the best epoch when ``fit`` gets no ``val``.
    towers : dict of str to str, optional
        Fixed towers that turn raw items of a modality of the model into feature vectors
        (default: ``{"audio": "mfcc"}``).
    modalities : list of str, optional
        Modalities of the pairs to use (default: all).
    run_dir : path, optional
        Checkpoints and ``metrics.csv`` of the training run.
    progress : bool
        Show a progress bar while training.
    """

    #: subsets trained: "joint+unimodal" (PoE), "unimodal" (MoE) or "all" (MoPoE)
    subsets = "all"
    #: whether a subset's posterior includes the prior as an expert
    prior_expert = False
    #: whether a subset term rebuilds every modality (else only those in the subset)
    rebuild_all = True
    default_beta = 1.0

    def __init__(self, latent_dim: int = 32, hidden=(512, 512), likelihoods=None, likelihood_weights="balanced",
                 beta: float | None = None, kl_warmup: float = 0.0, iw_samples: int = 1, prior: str = "mixture",
                 prior_components: int = 50, private_dim: int = 0, regularizers=None, epochs: int | None = None,
                 batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.0, patience: int | None = None,
                 val_fraction: float = 0.1, towers=None, modalities=None, seed: int = 0, run_dir=None,
                 progress: bool = False, device: str = "cpu"):
        super().__init__(latent_dim=latent_dim, hidden=hidden, likelihoods=likelihoods,
                         likelihood_weights=likelihood_weights, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, patience=patience, val_fraction=val_fraction, towers=towers,
                         modalities=modalities, seed=seed, run_dir=run_dir, progress=progress, device=device)
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.iw_samples = iw_samples
        self.prior = prior
        self.prior_components = prior_components
        self.private_dim = private_dim
        self.regularizers = regularizers

    @property
    def beta_(self) -> float:
        return float(self.default_beta if self.beta is None else self.beta)

    def _check_objective_settings(self) -> None:
        check_choice(self.prior, "prior", PRIORS)
        check_int(self.prior_components, "prior_components", low=1, high=10000)
        if self.beta is not None:   # beta_ reads it as a float: check what was given, not the reading
            check_float(self.beta, "beta", low=0.0)
        check_float(self.kl_warmup, "kl_warmup", low=0.0)
        check_int(self.iw_samples, "iw_samples", low=1, high=1000)
        from ..objectives.regularizers import MIN_ROWS, REGULARIZERS, check_part_sizes

        check_int(self.private_dim, "private_dim", low=0, high=4096)
        specs = self._regularizer_specs()
        if specs and not self.private_dim:
            raise InputError(f"regularizers: they act between private latents, so they need private_dim > 0; "
                             f"got {', '.join(n for n, _ in specs)} with private_dim=0")
        check_part_sizes(specs, int(self.latent_dim), int(self.private_dim), "latent_dim")
        if any(n == "weight" for n, _ in specs):
            others = ", ".join(n for n in REGULARIZERS if n != "weight")
            raise InputError(f"regularizers: 'weight' compares the output weights of separate shared and private "
                             f"heads, and a VAE's parts come from one encoder; use one of {others}")
        for name, _ in specs:   # smaller batches would leave the regulariser out of every step
            if int(self.batch_size) < MIN_ROWS.get(name, 1):
                raise InputError(f"batch_size: {name} is estimated on a batch of at least {MIN_ROWS[name]} pairs; "
                                 f"got batch_size={self.batch_size}")
        if self.private_dim and int(self.iw_samples) > 1:
            raise InputError(f"iw_samples: private latents train on the ELBO (iw_samples=1); got {self.iw_samples}")

    def _private_dim(self) -> int:
        return int(self.private_dim or 0)

    def _regularizer_specs(self) -> list:
        from ..objectives.regularizers import parse_regularizers

        return [list(r) for r in parse_regularizers(self.regularizers)]

    # -- the prior ------------------------------------------------------------------------------
    def _fitted_prior_components(self) -> int:
        return int(self.prior_components) if self.prior == "mixture" else 0

    def _log_prior(self, net, z: torch.Tensor) -> torch.Tensor:
        if net.prior_means is None:
            return standard_normal_log_density(z)
        return mixture_prior_log_density(z, net.prior_means, net.prior_logvars, net.prior_logweights)

    # -- the joint posterior --------------------------------------------------------------------
    def _subset_posterior(self, experts: dict, subset) -> tuple[torch.Tensor, torch.Tensor]:
        if len(subset) == 1 and not self.prior_expert:
            return experts[subset[0]]
        mus = torch.stack([experts[m][0] for m in subset])
        logvars = torch.stack([experts[m][1] for m in subset])
        return product_of_experts(mus, logvars, prior=self.prior_expert)

    def _inference_subsets(self, names) -> list:
        """The mixture components of :math:`q(z \\mid x_{names})`."""
        raise NotImplementedError

    def _components(self, experts: dict, names):
        parts = [self._subset_posterior(experts, s) for s in self._inference_subsets(names)]
        return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])

    def _training_subsets(self, names) -> list:
        if self.subsets == "joint+unimodal":
            return [tuple(names)] + [(m,) for m in names]
        if self.subsets == "unimodal":
            return [(m,) for m in names]
        return nonempty_subsets(names)

    # -- the loss ------------------------------------------------------------------------------
    def _loss(self, net, batch: dict, step, epoch):
        names = [m for m in self.codecs_ if m in batch]
        parts = {m: net.parts(m, batch[m]) for m in names}
        experts = {m: parts[m][:2] for m in names}
        beta = self.beta_ if epoch is None else kl_weight(epoch, self.beta_, float(self.kl_warmup))
        subsets = self._training_subsets(names)
        if net.private_dim:
            return self._private_loss(net, batch, names, parts, subsets, beta)
        post = [self._subset_posterior(experts, s) for s in subsets]
        mu = torch.stack([p[0] for p in post])                       # (S, n, d)
        logvar = torch.stack([p[1] for p in post])
        k = int(self.iw_samples)
        shape = mu.shape if k == 1 else (k, *mu.shape)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(shape, dtype=mu.dtype, device=mu.device)
        # every subset's latents go through each decoder at once; a subset term counts the
        # modalities it rebuilds (all of them, or those in the subset for the PoE terms)
        log_px = 0.0
        for m in names:
            rebuilt = torch.tensor([self.rebuild_all or m in s for s in subsets], dtype=mu.dtype,
                                   device=mu.device).unsqueeze(-1)
            log_px = log_px + self.weights_[m] * rebuilt * self._log_px(net, m, batch[m], z)
        if k == 1:
            loss = negative_elbo(log_px, gaussian_kl(mu, logvar), beta)   # mean over subsets and samples
        else:
            log_pz = beta * standard_normal_log_density(z)
            log_qz = beta * gaussian_log_density(z, mu, logvar)
            loss = -importance_weighted_bound(log_px, log_pz, log_qz).mean()
        # MVAE sums its joint and unimodal terms; the mixtures average theirs
        return (loss * len(subsets) if self.subsets == "joint+unimodal" else loss), {"beta": beta}

    def _private_loss(self, net, batch: dict, names, parts: dict, subsets, beta: float):
        """The MoPoE / MoE / PoE loss with private latents (see ``private_dim``), plus the
        regularisers between the parts' posterior means."""
        post = [self._subset_posterior({m: parts[m][:2] for m in names}, s) for s in subsets]
        mu = torch.stack([p[0] for p in post])                       # (S, n, d)
        logvar = torch.stack([p[1] for p in post])
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        log_px, kl_w = 0.0, 0.0
        for m in names:   # a subset term counts the private KL of each modality it rebuilds
            _, _, mu_w, logvar_w = parts[m]
            w_post = mu_w + torch.exp(0.5 * logvar_w) * torch.randn_like(mu_w)
            inside = torch.tensor([m in s for s in subsets], device=mu.device).view(-1, 1, 1)
            w = torch.where(inside, w_post.unsqueeze(0), torch.randn_like(mu_w).unsqueeze(0).expand(len(subsets), -1, -1))
            rebuilt = torch.tensor([self.rebuild_all or m in s for s in subsets], dtype=mu.dtype,
                                   device=mu.device).unsqueeze(-1)
            log_px = log_px + self.weights_[m] * rebuilt * self._log_px(net, m, batch[m], z, w)
            kl_w = kl_w + rebuilt * gaussian_kl(mu_w, logvar_w)       # (S, n)
        loss = negative_elbo(log_px, gaussian_kl(mu, logvar) + kl_w, beta)
        loss = loss * len(subsets) if self.subsets == "joint+unimodal" else loss
        # on the posterior means scaled to unit rows: on the raw means the scale-free terms'
        # gradients grow as the private means shrink, and the latents collapse
        unit = torch.nn.functional.normalize
        reg, logs = net.regularizer({m: unit(parts[m][0], dim=-1) for m in names},
                                    {m: unit(parts[m][2], dim=-1) for m in names})
        return loss + reg, {"beta": beta, **logs}

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def _bound_terms(self, x: dict, n_samples: int, generator):
        """Per sample: log p(x_m | z) per modality (K, n), log p(z) and log q(z | X) (K, n) for
        z ~ q(z | X) (the joint posterior, a mixture for MoE / MoPoE)."""
        mus, logvars = self._posterior(x)
        c, n, d = mus.shape
        pick = torch.randint(c, (n_samples, n), generator=generator)
        rows = torch.arange(n).unsqueeze(0).expand(n_samples, n)
        z = mus[pick, rows] + torch.exp(0.5 * logvars[pick, rows]) * torch.randn((n_samples, n, d), generator=generator)
        log_qz = mixture_log_density(z, mus, logvars)
        log_pz = self._log_prior(self.net_, z)
        w = {m: None for m in x}
        if self._private_dim():   # the private latents join z: their prior and posterior densities
            for m in x:
                _, _, mu_w, logvar_w = self.net_.parts(m, x[m])
                w[m] = mu_w + torch.exp(0.5 * logvar_w) * torch.randn((n_samples, *mu_w.shape), generator=generator)
                log_qz = log_qz + gaussian_log_density(w[m], mu_w, logvar_w)
                log_pz = log_pz + standard_normal_log_density(w[m])
        log_px = {m: self._log_px(self.net_, m, x[m], z, w[m]) - self._log_jacobian(m)
                  for m in self.modalities_ if m in x}
        return log_px, log_pz, log_qz

    def _log_jacobian(self, modality: str) -> float:
        r""":math:`\sum_d \log s_d` of a feature modality standardised by its spread :math:`s`
        (0 for pixels and texts): the decoders give the density of :math:`(x - \bar x) / s`, and
        :math:`\log p(x) = \log p((x - \bar x) / s) - \sum_d \log s_d` is the density of the
        features in the units they are given in."""
        codec = self.codecs_[modality]
        if codec.kind != "features":
            return 0.0
        return float(np.log(np.asarray(codec.scale, dtype=np.float64)).sum())

    def evaluate_bound(self, items: dict, n_samples: int = 1, seed: int = 0) -> dict:
        """The ELBO (eq. 2, β = 1, unweighted likelihoods) of the joint posterior, its parts,
        and an importance-sampled estimate of :math:`\\log p(X)`, averaged over the items.

        Parameters
        ----------
        items : dict of str to items
            Items of every modality (n of each).
        n_samples : int
            Importance samples K per item for the log-likelihood estimate (1: the ELBO).

        Returns
        -------
        dict
            ``elbo``, ``kl``, ``nll/<modality>`` (:math:`-\\mathbb E_q \\log p(x_m \\mid z)`) in
            nats per item, and ``log_likelihood`` (the K-sample importance-weighted bound).
            Feature vectors are scored as densities in the units they are given in (the
            standardisation's :math:`-\\sum_d \\log s_d` included), pixels as Bernoulli
            probabilities of intensities in [0, 1], texts as word probabilities.
        """
        x = self._check_given(items, "items")
        missing = [m for m in self.modalities_ if m not in x]
        if missing:
            raise InputError(f"items: the bound needs every modality; no {', '.join(missing)}")
        k = check_int(n_samples, "n_samples", low=1, high=100000)
        gen = torch.Generator().manual_seed(check_seed(seed))
        n = len(next(iter(x.values())))
        sums = {"elbo": 0.0, "kl": 0.0, "log_likelihood": 0.0, **{f"nll/{m}": 0.0 for m in self.modalities_}}
        # K draws of each item go through the decoders at once: fewer items per chunk as K grows
        # (K = 5,000, Burda et al.'s, for 512 items made 2.5M rows of every decoder layer)
        chunk = max(1, min(512, BOUND_DRAWS // k))
        for s in range(0, n, chunk):
            part = {m: v[s:s + chunk] for m, v in x.items()}
            log_px, log_pz, log_qz = self._bound_terms(part, k, gen)
            total_px = sum(log_px.values())
            kl = (log_qz - log_pz).mean(0)
            sums["elbo"] += float((total_px.mean(0) - kl).sum())
            sums["kl"] += float(kl.sum())
            sums["log_likelihood"] += float(importance_weighted_bound(total_px, log_pz, log_qz).sum())
            for m, v in log_px.items():
                sums[f"nll/{m}"] -= float(v.mean(0).sum())
        return {key: v / n for key, v in sums.items()}


@register_model("mvae-poe", "multimodal VAE, product-of-experts posterior with sub-sampled unimodal ELBOs (MVAE)")
class PoEVAE(MultimodalVAE):
    __doc__ = MultimodalVAE.__doc__
    subsets = "joint+unimodal"
    prior_expert = True
    rebuild_all = False

    def _inference_subsets(self, names):
        return [tuple(names)]


@register_model("mvae-moe", "multimodal VAE, mixture-of-experts posterior (MMVAE)")
class MoEVAE(MultimodalVAE):
    __doc__ = MultimodalVAE.__doc__
    subsets = "unimodal"

    def _inference_subsets(self, names):
        return [(m,) for m in names]


@register_model("mvae-mopoe", "multimodal VAE, mixture of products of experts over subsets (MoPoE)")
class MoPoEVAE(MultimodalVAE):
    __doc__ = MultimodalVAE.__doc__

    def _inference_subsets(self, names):
        return nonempty_subsets(names)


@register_model("beta-vae", "MoPoE multimodal VAE with beta = 4 (beta-VAE) for more factorised latents")
class BetaVAE(MoPoEVAE):
    __doc__ = MultimodalVAE.__doc__
    default_beta = 4.0


__all__ = ["MultimodalVAE", "PoEVAE", "MoEVAE", "MoPoEVAE", "BetaVAE"]
