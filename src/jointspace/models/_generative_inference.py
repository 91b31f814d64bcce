"""Inference and generation of the multimodal autoencoders and VAEs: the posterior from any
non-empty subset of modalities, cross-modal generation, reconstruction and joint sampling
from the prior.

:class:`GenerativeInference` is a mixin of :class:`~jointspace.models._generative.GenerativeModel`:
it reads the fitted ``net_``, ``codecs_``, ``likelihoods_`` and ``modalities_`` and calls the
model's ``_to_tensors``, ``_check_fitted``, ``_components`` and ``_private_dim``.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_int
from ..errors import InputError

#: latent rows a decoder takes at once in ``generate`` and ``sample`` (their memory stays bounded)
DECODE_ROWS = 4096


def check_seed(seed) -> int:
    """``seed`` of a draw as an int, within the range ``fit`` takes."""
    return check_int(seed, "seed", low=0, high=2**32 - 1)


class GenerativeInference:
    """What a fitted generative model answers: posteriors, generation, reconstruction, samples."""

    # -- inference -----------------------------------------------------------------------------
    def _check_given(self, given, arg: str = "given") -> dict:
        self._check_fitted()
        if not isinstance(given, dict):
            raise InputError(f"{arg}: expected a dict of modality -> items, got {type(given).__name__}")
        if not given:
            raise InputError(f"{arg}: every modality is missing; give items of at least one of "
                             f"{', '.join(self.modalities_)}")
        unknown = [m for m in given if m not in self.modalities_]
        if unknown:
            raise InputError(f"{arg}: this model was trained with {', '.join(self.modalities_)}; "
                             f"it knows no {', '.join(map(repr, unknown))}")
        x = self._to_tensors(given, arg)
        counts = {m: len(v) for m, v in x.items()}
        if len(set(counts.values())) != 1:
            raise InputError(f"{arg}: every modality needs the same number of items, got {counts}")
        if next(iter(counts.values())) == 0:
            raise InputError(f"{arg}: expected at least one item, got none")
        return x

    @torch.no_grad()
    def _posterior(self, x: dict):
        """Mixture components (C, n, d) of :math:`q(z \\mid x_{present})`: means and
        log-variances (None for an autoencoder's codes)."""
        net = self.net_
        names = [m for m in self.modalities_ if m in x]
        experts = {m: net.expert(m, x[m]) for m in names}
        return self._components(experts, names)

    def _posterior_means(self, x: dict, batch: int = 2048) -> torch.Tensor:
        """The mean of :math:`q(z \\mid x)` (the average of its mixture components'), (n, d),
        computed ``batch`` items at a time."""
        n = len(next(iter(x.values())))
        return torch.cat([self._posterior({m: v[s:s + batch] for m, v in x.items()})[0].mean(0)
                          for s in range(0, n, batch)])

    def posterior_mean(self, given: dict) -> np.ndarray:
        """The mean of :math:`q(z \\mid x_{given})` from any non-empty subset of modalities.

        Parameters
        ----------
        given : dict of str to items
            Items (n of each) of the modalities present.

        Returns
        -------
        ndarray of float32, shape (n, latent_dim)
        """
        x = self._check_given(given)
        return self._posterior_means(x).numpy().astype(np.float32)

    def _encode(self, modality, items):
        return self.posterior_mean({modality: items})

    @torch.no_grad()
    def _sample_posterior(self, x: dict, n_samples: int, generator) -> torch.Tensor:
        """z (n * n_samples, d), item i's draws in rows i*n_samples .. (i+1)*n_samples - 1: a
        mixture component drawn uniformly, then a Gaussian draw from it."""
        mus, logvars = self._posterior(x)
        c, n, d = mus.shape
        pick = torch.randint(c, (n, n_samples), generator=generator)
        rows = torch.arange(n).unsqueeze(1).expand(n, n_samples)
        mu = mus[pick, rows].reshape(n * n_samples, d)
        if logvars is None:
            return mu
        std = torch.exp(0.5 * logvars[pick, rows].reshape(n * n_samples, d))
        return mu + std * torch.randn(mu.shape, generator=generator)

    def _decode(self, modality: str, z: torch.Tensor, w: torch.Tensor | None = None):
        """Items of ``modality`` decoded from latents ``z`` (and private parts ``w``), at most
        :data:`DECODE_ROWS` rows through the decoder at once (``generate`` and ``sample`` can
        ask for 10,000 draws of each item)."""
        kind, parts = self.likelihoods_[modality], []
        for s in range(0, len(z), DECODE_ROWS):
            with torch.no_grad():
                out = self.net_.decode(modality, z[s:s + DECODE_ROWS], None,
                                       None if w is None else w[s:s + DECODE_ROWS])
                mean = torch.sigmoid(out) if kind == "bernoulli" else out
            parts.append(self.codecs_[modality].decode(mean.numpy()))
        if isinstance(parts[0], list):   # texts
            return [t for part in parts for t in part]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def generate(self, target: str, given: dict, n_samples: int = 1, seed: int = 0):
        """Generate items of ``target`` from items of other modalities (cross-modal generation).

        Parameters
        ----------
        target : str
            The modality to generate.
        given : dict of str to items
            Items (n of each) of any non-empty subset of the model's modalities, e.g.
            ``{"text": ["a photo of a trouser"]}``.
        n_samples : int
            Latent draws per item from :math:`q(z \\mid x_{given})`, 1 to 10,000.  An
            autoencoder's (``ae``, ``aae``) posterior is its code itself, so its draws of one
            item are all the same.
        seed : int

        Returns
        -------
        images (n * n_samples, H, W) in [0, 1], list of texts, or features (n * n_samples, d)
            Item i's draws are rows ``i * n_samples`` to ``(i + 1) * n_samples - 1``.
        """
        self._check_fitted()
        if target not in self.modalities_:
            raise InputError(f"target: this model generates {', '.join(self.modalities_)}; got {target!r}")
        n_samples = check_int(n_samples, "n_samples", low=1, high=10000)
        x = self._check_given(given)
        gen = torch.Generator().manual_seed(check_seed(seed))
        z = self._sample_posterior(x, n_samples, gen)
        return self._decode(target, z, self._private_draws(target, x, n_samples, gen))

    @torch.no_grad()
    def _private_draws(self, target: str, x: dict, n_samples: int, generator):
        r"""The target's private latents for generation, (n * n_samples, private_dim): drawn
        from :math:`q(w_m \mid x_m)` when the target is given, else from the prior N(0, I)
        (its style is not in the other modalities); None without private latents."""
        p = self._private_dim()
        if not p:
            return None
        n = len(next(iter(x.values())))
        eps = torch.randn((n * n_samples, p), generator=generator)
        if target not in x:
            return eps
        _, _, mu_w, logvar_w = self.net_.parts(target, x[target])
        if logvar_w is None:
            return mu_w.repeat_interleave(n_samples, dim=0)
        return (mu_w.repeat_interleave(n_samples, dim=0)
                + torch.exp(0.5 * logvar_w).repeat_interleave(n_samples, dim=0) * eps)

    @torch.no_grad()
    def encode_parts(self, modality: str, items) -> dict:
        """The shared part (the posterior mean of :math:`z` given ``items`` alone) and the
        private part (the posterior mean of :math:`w_m`; 0 columns without private latents).

        Returns
        -------
        dict with ``"shared"`` (n, latent_dim) and ``"private"`` (n, private_dim) float32 arrays
        """
        x = self._check_given({modality: items}, "items")
        shared = self._posterior_means(x).numpy().astype(np.float32)
        if not self._private_dim():
            return {"shared": shared, "private": np.zeros((len(shared), 0), np.float32)}
        private = torch.cat([self.net_.parts(modality, x[modality][s:s + 2048])[2]
                             for s in range(0, len(shared), 2048)])
        return {"shared": shared, "private": private.numpy().astype(np.float32)}

    def observed(self, modality: str, items):
        """Real ``items`` of ``modality`` in the form :meth:`generate` returns (images in
        [0, 1], texts, or feature vectors of the fixed tower), e.g. to train a classifier that
        then judges generated items."""
        self._check_fitted()
        if modality not in self.codecs_:
            raise InputError(f"modality: this model knows {', '.join(self.codecs_)}; got {modality!r}")
        return self.codecs_[modality].observed(items, f"items ({modality})")

    def reconstruct(self, items: dict, targets=None) -> dict:
        """Decode every modality (or ``targets``: one name or a list) from the posterior mean given ``items``.

        Returns
        -------
        dict of str to generated items (as :meth:`generate`), n rows each
        """
        x = self._check_given(items, "items")
        z = self._posterior_means(x)
        names = self.modalities_ if targets is None else [targets] if isinstance(targets, str) else targets
        if not isinstance(names, (list, tuple)) or not names:
            raise InputError(f"targets: expected a modality name or a non-empty list of them, of "
                             f"{', '.join(self.modalities_)}; got {targets!r}")
        for m in names:
            if m not in self.modalities_:
                raise InputError(f"targets: this model knows {', '.join(self.modalities_)}; got {m!r}")
        with torch.no_grad():   # a given modality keeps its private mean; others the prior's (0)
            w = {m: self.net_.parts(m, x[m])[2] if m in x else None for m in names}
        return {m: self._decode(m, z, w[m]) for m in names}

    def sample(self, n: int, seed: int = 0) -> dict:
        """Draw ``n`` latents from the prior and decode every modality (joint generation).

        Returns
        -------
        dict of str to generated items, n rows each
        """
        self._check_fitted()
        n = check_int(n, "n", low=1, high=1_000_000)
        gen = torch.Generator().manual_seed(check_seed(seed))
        z = self._prior_sample(n, gen)
        p = self._private_dim()
        return {m: self._decode(m, z, torch.randn((n, p), generator=gen) if p else None) for m in self.modalities_}

    def _prior_sample(self, n: int, generator) -> torch.Tensor:
        """``n`` latents from the fitted mixture when there is one, else from N(0, I)."""
        net = self.net_
        if net.prior_means is None:
            return torch.randn((n, int(self.latent_dim)), generator=generator)
        with torch.no_grad():
            pick = torch.multinomial(net.prior_logweights.exp(), n, replacement=True, generator=generator)
            eps = torch.randn((n, net.prior_means.shape[1]), generator=generator)
            return net.prior_means[pick] + torch.exp(0.5 * net.prior_logvars[pick]) * eps
