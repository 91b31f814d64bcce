r"""Multimodal autoencoders: an encoder per modality into one shared latent, a decoder per
modality, trained on the joint reconstruction loss (the chapter's multimodal autoencoder).

- ``ae``: the code of a set of modalities is the mean of their encoders' codes.  Each step
  rebuilds every modality from the code of every non-empty subset of the modalities (the
  loss averages the subsets), so one modality alone is enough to encode and to generate the
  others (cross-modal generation).  To draw new samples, a Gaussian mixture fitted to the
  training codes stands in for a prior.
- ``aae``: the same with a discriminator on the latent (adversarial autoencoder, Makhzani et
  al. 2016): it learns to tell the codes from draws of :math:`\mathcal N(0, I)`, and the
  encoders learn to fool it, which pushes the aggregate of the codes towards the prior.  As in
  the paper, each mini-batch trains in three phases, each with an optimiser of its own: the
  autoencoder on the reconstruction, the discriminator, then the encoders on the
  non-saturating adversarial loss (:class:`jointspace.train.phases.Phase`).  In one step the
  reconstruction, thousands of nats, swamps an adversarial term of about one nat, and the
  codes stay far from the prior.  New samples are drawn, by default, from a mixture fitted
  to the codes afterwards, as for ``ae`` and the VAEs (``prior="normal"`` draws from
  :math:`\mathcal N(0, I)` itself): even codes whose aggregate the discriminator cannot tell
  from the prior leave much of its mass between the classes.

The reconstruction term is the negative log-likelihood of each modality
(:func:`jointspace.objectives.elbo.log_likelihood`), weighted as in the VAEs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import MAX_LR, check_choice, check_float, check_int
from ..errors import InputError
from ._generative import GenerativeModel, nonempty_subsets
from .base import register_model
from .vae import PRIORS

#: components of the Gaussian mixture fitted to an autoencoder's training codes, to sample from
AE_DENSITY_COMPONENTS = 50


@register_model("ae", "multimodal autoencoder: shared latent, a decoder per modality, subsets of modalities")
class MultimodalAutoencoder(GenerativeModel):
    """Multimodal autoencoder.

    Parameters
    ----------
    latent_dim, hidden, likelihoods, likelihood_weights, epochs, batch_size, lr, weight_decay, patience,
    val_fraction, towers, modalities, seed, run_dir, progress, device :
        As for :class:`jointspace.models.vae.MultimodalVAE`.
    """

    variational = False

    def _components(self, experts: dict, names):
        code = torch.stack([experts[m][0] for m in names]).mean(0)
        return code.unsqueeze(0), None

    def _codes(self, net, batch: dict, names):
        experts = {m: net.expert(m, batch[m]) for m in names}
        return [(s, torch.stack([experts[m][0] for m in s]).mean(0)) for s in nonempty_subsets(names)]

    def _recon(self, net, batch: dict, names, z) -> torch.Tensor:
        return -sum(self.weights_[m] * self._log_px(net, m, batch[m], z) for m in names).mean()

    def _loss(self, net, batch: dict, step, epoch):
        names = [m for m in self.codecs_ if m in batch]
        terms = [self._recon(net, batch, names, z) for _, z in self._codes(net, batch, names)]
        return torch.stack(terms).mean(), {}

    def _fitted_prior_components(self) -> int:
        # an autoencoder has no prior: new samples come from a mixture fitted to its codes
        return AE_DENSITY_COMPONENTS


@register_model("aae", "adversarial multimodal autoencoder: a discriminator pushes the codes to N(0, I)")
class AdversarialAutoencoder(MultimodalAutoencoder):
    r"""Multimodal adversarial autoencoder.

    Parameters
    ----------
    adv_weight : float
        Learning rate of the encoders' adversarial phase, as a multiple of ``lr`` (the phase has
        an Adam of its own, so a weight on its loss would cancel out); 0 leaves the codes to the
        reconstruction alone.
    prior : {"mixture", "normal"}
        What :meth:`sample` draws latents from.  The discriminator always matches the codes to
        :math:`\mathcal N(0, I)`; ``mixture`` then fits ``prior_components`` diagonal
        Gaussians to the training codes (EM), as the VAEs do, ``normal`` keeps
        :math:`\mathcal N(0, I)`.  Compared on Fashion-MNIST tri-modal's validation split
        (10,000 training pairs, 20 epochs, coherence on half of val): joint coherence 0.892
        with the mixture against 0.235 with :math:`\mathcal N(0, I)`, from the same model.
    prior_components : int
        Components of that mixture, 1 to 10,000 (unused with ``normal``).  A fit on fewer
        training pairs (or fewer distinct codes) than that fits one component per code: each
        then sits on one pair's code, and new samples come back close to the training pairs.
    latent_dim, hidden, likelihoods, likelihood_weights, epochs, batch_size, lr, weight_decay, patience,
    val_fraction, towers, modalities, seed, run_dir, progress, device :
        As for :class:`jointspace.models.vae.MultimodalVAE`.
    """

    adversarial = True

    def __init__(self, latent_dim: int = 32, hidden=(512, 512), likelihoods=None, likelihood_weights="balanced",
                 adv_weight: float = 1.0, prior: str = "mixture", prior_components: int = AE_DENSITY_COMPONENTS,
                 epochs: int | None = None, batch_size: int = 256, lr: float = 1e-3,
                 weight_decay: float = 0.0, patience: int | None = None, val_fraction: float = 0.1, towers=None,
                 modalities=None, seed: int = 0, run_dir=None, progress: bool = False, device: str = "cpu"):
        super().__init__(latent_dim=latent_dim, hidden=hidden, likelihoods=likelihoods,
                         likelihood_weights=likelihood_weights, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, patience=patience, val_fraction=val_fraction, towers=towers,
                         modalities=modalities, seed=seed, run_dir=run_dir, progress=progress, device=device)
        self.adv_weight = adv_weight
        self.prior = prior
        self.prior_components = prior_components

    def _check_objective_settings(self) -> None:
        adv_weight = check_float(self.adv_weight, "adv_weight", low=0.0)
        if adv_weight * float(self.lr) > MAX_LR:   # the encoders' adversarial rate, lr x adv_weight
            raise InputError(f"adv_weight: expected at most {MAX_LR / float(self.lr):g} (the adversarial phase's "
                             f"rate lr x adv_weight <= {MAX_LR:g}, lr={self.lr:g}), got {adv_weight:g}")
        check_choice(self.prior, "prior", PRIORS)
        check_int(self.prior_components, "prior_components", low=1, high=10000)

    def _phases(self) -> list:
        """The regularisation phase, after each reconstruction step: the discriminator, then
        the encoders (skipped at ``adv_weight`` 0)."""
        from ..train.phases import Phase

        phases = [Phase("discriminator", ("discriminator",), self._discriminator_loss)]
        if float(self.adv_weight) > 0:
            phases.append(Phase("generator", ("encoders",), self._generator_loss, lr_scale=float(self.adv_weight)))
        return phases

    def _discriminator_loss(self, net, batch: dict, step, epoch):
        r"""The discriminator's cross-entropy, codes of every subset (fixed) against as many
        draws of :math:`\mathcal N(0, I)`: :math:`-\log D(z') - \log(1 - D(z))`."""
        names = [m for m in self.codecs_ if m in batch]
        with torch.no_grad():
            codes = [z for _, z in self._codes(net, batch, names)]
        terms = []
        for z in codes:
            fake, real = net.discriminator(z), net.discriminator(torch.randn_like(z))
            terms.append(F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
                         + F.binary_cross_entropy_with_logits(real, torch.ones_like(real)))
        return torch.stack(terms).mean(), {}

    def _generator_loss(self, net, batch: dict, step, epoch):
        r"""The encoders' non-saturating loss :math:`-\log D(z)` over the codes of every subset
        (Goodfellow et al. 2014's form: its gradient does not vanish when the discriminator
        wins)."""
        names = [m for m in self.codecs_ if m in batch]
        terms = []
        for _, z in self._codes(net, batch, names):
            fake = net.discriminator(z)
            terms.append(F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)))
        return torch.stack(terms).mean(), {}

    def _fitted_prior_components(self) -> int:
        return int(self.prior_components) if self.prior == "mixture" else 0
