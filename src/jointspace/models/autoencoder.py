r"""Multimodal autoencoders: an encoder per modality into one shared latent, a decoder per
modality, trained on the joint reconstruction loss (the chapter's multimodal autoencoder).

- ``ae``: the code of a set of modalities is the mean of their encoders' codes.  Each step
  rebuilds every modality from the code of every non-empty subset of the modalities (the
  loss averages the subsets), so one modality alone is enough to encode and to generate the
  others (cross-modal generation).  To draw new samples, a Gaussian mixture fitted to the
  training codes stands in for a prior.
- ``aae``: the same with a discriminator on the latent (adversarial autoencoder, Makhzani et
  al. 2016): it learns to tell the codes from draws of :math:`\mathcal N(0, I)`, and the
  encoders learn to fool it (through a gradient-reversal layer, so one optimiser step trains
  both sides), which pushes the aggregate of the codes towards the prior; sampling then draws
  from the prior itself.

The reconstruction term is the negative log-likelihood of each modality
(:func:`jointspace.objectives.elbo.log_likelihood`), weighted as in the VAEs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import check_float
from ._generative import GenerativeModel, nonempty_subsets
from ._generative_nets import reverse_gradient
from .base import register_model

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
    """Multimodal adversarial autoencoder.

    Parameters
    ----------
    adv_weight : float
        Weight of the adversarial term against the reconstruction loss.
    latent_dim, hidden, likelihoods, likelihood_weights, epochs, batch_size, lr, weight_decay, patience,
    val_fraction, towers, modalities, seed, run_dir, progress, device :
        As for :class:`jointspace.models.vae.MultimodalVAE`.
    """

    adversarial = True

    def __init__(self, latent_dim: int = 32, hidden=(512, 512), likelihoods=None, likelihood_weights="balanced",
                 adv_weight: float = 1.0, epochs: int | None = None, batch_size: int = 256, lr: float = 1e-3,
                 weight_decay: float = 0.0, patience: int | None = None, val_fraction: float = 0.1, towers=None,
                 modalities=None, seed: int = 0, run_dir=None, progress: bool = False, device: str = "cpu"):
        super().__init__(latent_dim=latent_dim, hidden=hidden, likelihoods=likelihoods,
                         likelihood_weights=likelihood_weights, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, patience=patience, val_fraction=val_fraction, towers=towers,
                         modalities=modalities, seed=seed, run_dir=run_dir, progress=progress, device=device)
        self.adv_weight = adv_weight

    def _check_objective_settings(self) -> None:
        check_float(self.adv_weight, "adv_weight", low=0.0)

    def _loss(self, net, batch: dict, step, epoch):
        names = [m for m in self.codecs_ if m in batch]
        recon, adv = [], []
        for _, z in self._codes(net, batch, names):
            recon.append(self._recon(net, batch, names, z))
            prior = torch.randn_like(z)
            fake = net.discriminator(reverse_gradient(z))
            real = net.discriminator(prior)
            adv.append(F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
                       + F.binary_cross_entropy_with_logits(real, torch.ones_like(real)))
        adv_loss = torch.stack(adv).mean()
        loss = torch.stack(recon).mean() + float(self.adv_weight) * adv_loss
        return loss, {"adversarial": float(adv_loss.detach())}

    def _fitted_prior_components(self) -> int:
        return 0   # sampling draws from the prior the discriminator matched the codes to
