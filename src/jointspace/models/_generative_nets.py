"""The networks of the generative models: an encoder and a decoder per modality, and the
discriminator of the adversarial autoencoder.

Encoders map a modality's codec tensor (:mod:`jointspace.models._codecs`) to ``out_dim``
numbers (the mean and log-variance of a Gaussian expert for a VAE, a code for an
autoencoder); decoders map a latent (..., latent_dim) to the parameters of the modality's
likelihood (:func:`jointspace.objectives.elbo.log_likelihood`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: size of a word embedding in a text encoder
TOKEN_EMBED = 32


def mlp(sizes, final_activation: bool = False) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them."""
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Codec tensor -> ``out_dim`` numbers.

    Pixels and features: an MLP on the flat vector.  Tokens (``vocab`` given): a word
    embedding per place, concatenated in order, then the MLP.
    """

    def __init__(self, in_dim: int, hidden, out_dim: int, vocab: int | None = None):
        super().__init__()
        self.embed = None if vocab is None else nn.Embedding(vocab, TOKEN_EMBED)
        width = in_dim * (TOKEN_EMBED if vocab is not None else 1)
        self.net = mlp([width, *hidden, out_dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = self.embed(x).flatten(-2)
        return self.net(x)


class Decoder(nn.Module):
    """Latent (..., latent_dim) -> likelihood parameters (..., D): means or logits.  Gaussian
    and Laplace decoders also own a learnt log-scale per dimension (``log_scale``, shape (D,))."""

    def __init__(self, latent_dim: int, hidden, out_dim: int, scale: bool = False):
        super().__init__()
        self.net = mlp([latent_dim, *reversed(list(hidden)), out_dim])
        self.log_scale = nn.Parameter(torch.zeros(out_dim)) if scale else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class TokenDecoder(nn.Module):
    r"""Latent -> word logits (..., L, V), one word after another: a GRU whose first state is
    computed from z, fed the previous word (the padding id starts the sentence).

    An autoregressive text likelihood :math:`p(x \mid z) = \prod_t p(x_t \mid x_{<t}, z)`
    can represent sentences whose words move with their template ("a photo of a coat",
    "a coat on a white background"); independent words per place cannot, and their per-place
    modes mix templates ("a small of of").
    """

    def __init__(self, latent_dim: int, hidden, length: int, vocab: int):
        super().__init__()
        # a sentence of a few words needs a small recurrent state; the GRU runs once per word
        # for every subset's latents, so its width sets much of a training step's cost
        width = min(max(int(h) for h in hidden) if hidden else 128, 128)
        self.length, self.vocab = length, vocab
        self.init = nn.Sequential(nn.Linear(latent_dim, width), nn.Tanh())
        self.embed = nn.Embedding(vocab, TOKEN_EMBED)
        self.gru = nn.GRU(TOKEN_EMBED + latent_dim, width, batch_first=True)
        self.out = nn.Linear(width, vocab)
        self.log_scale = None

    def forward(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (..., L, V): of ``x`` given its previous words (teacher forcing), or, with
        ``x`` None, of the greedy sentence (each place's logits given the words chosen before)."""
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        h = self.init(flat).unsqueeze(0).contiguous()
        if x is not None:
            words = x.expand(*lead, self.length).reshape(-1, self.length)
            prev = torch.cat([torch.zeros_like(words[:, :1]), words[:, :-1]], dim=1)
            inp = torch.cat([self.embed(prev), flat.unsqueeze(1).expand(-1, self.length, -1)], dim=-1)
            out, _ = self.gru(inp, h)
            return self.out(out).reshape(*lead, self.length, self.vocab)
        prev = torch.zeros(flat.shape[0], dtype=torch.long, device=z.device)
        logits = []
        for _ in range(self.length):
            inp = torch.cat([self.embed(prev), flat], dim=-1).unsqueeze(1)
            out, h = self.gru(inp, h)
            step = self.out(out[:, 0])
            logits.append(step)
            prev = step.argmax(-1)
        return torch.stack(logits, dim=1).reshape(*lead, self.length, self.vocab)


class GenerativeNet(nn.Module):
    """One :class:`Encoder` and one :class:`Decoder` per modality (and, for the adversarial
    autoencoder, a discriminator on the latent).

    With ``private_dim`` > 0 each encoder also yields a private latent :math:`w_m` of that
    size (a Gaussian posterior of its own for a VAE), each decoder reads :math:`[z, w_m]`, and
    ``regularizer`` holds the named regularisers between the parts
    (:class:`jointspace.objectives.regularizers.PartRegularizer`).
    """

    def __init__(self, specs: dict, latent_dim: int, hidden, *, variational: bool, discriminator: bool = False,
                 prior_components: int = 0, private_dim: int = 0, regularizers=None):
        super().__init__()
        self.private_dim = int(private_dim)
        width = latent_dim + self.private_dim
        out = 2 * width if variational else width
        self.latent_dim = latent_dim
        self.variational = variational
        self.encoders = nn.ModuleDict({m: Encoder(s["dim"], hidden, out, s.get("vocab")) for m, s in specs.items()})
        self.decoders = nn.ModuleDict({
            m: TokenDecoder(width, hidden, s["dim"], s["vocab"]) if s.get("vocab") else
            Decoder(width, hidden, s["dim"], s["likelihood"] in ("gaussian", "laplace"))
            for m, s in specs.items()})
        self.regularizer = None
        if self.private_dim:
            from ..objectives.regularizers import PartRegularizer

            self.regularizer = PartRegularizer([tuple(r) for r in regularizers or []], list(specs), latent_dim,
                                               self.private_dim)
        self.discriminator = mlp([latent_dim, *hidden, 1]) if discriminator else None
        # a prior fitted after training: a mixture of diagonal Gaussians (none: N(0, I))
        k = int(prior_components)
        self.register_buffer("prior_means", torch.zeros(k, latent_dim) if k else None)
        self.register_buffer("prior_logvars", torch.zeros(k, latent_dim) if k else None)
        self.register_buffer("prior_logweights", torch.full((k,), -float(np.log(k))) if k else None)

    def parts(self, modality: str, x: torch.Tensor):
        """``(mu, logvar, mu_w, logvar_w)``: the shared expert, each (n, latent_dim), and the
        private posterior, each (n, private_dim) (None without private latents); for an
        autoencoder the log-variances are None."""
        h = self.encoders[modality](x)
        if self.variational:
            mu_all, logvar_all = h.chunk(2, dim=-1)
            logvar_all = logvar_all.clamp(-12.0, 12.0)
        else:
            mu_all, logvar_all = h, None
        d = self.latent_dim
        split = (lambda t: (t, None)) if not self.private_dim else (lambda t: (t[..., :d], t[..., d:]))
        mu, mu_w = split(mu_all)
        logvar, logvar_w = split(logvar_all) if logvar_all is not None else (None, None)
        return mu, logvar, mu_w, logvar_w

    def expert(self, modality: str, x: torch.Tensor):
        """(mu, logvar) of the modality's Gaussian expert, each (n, latent_dim); for an
        autoencoder, (code, None)."""
        mu, logvar, _, _ = self.parts(modality, x)
        return mu, logvar

    def decode(self, modality: str, z: torch.Tensor, x: torch.Tensor | None = None,
               w: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihood parameters of ``modality`` at latents ``z`` (..., latent_dim) and, with
        private latents, ``w`` (broadcastable to (..., private_dim); None: 0, the prior's
        mean).  A text decoder scores the words ``x`` (n, L) given the words before them, or,
        without ``x``, writes its greedy sentence."""
        if self.private_dim:
            shape = (*z.shape[:-1], self.private_dim)
            w = z.new_zeros(shape) if w is None else w.to(z.dtype).expand(shape)
            z = torch.cat([z, w], dim=-1)
        dec = self.decoders[modality]
        return dec(z, x) if isinstance(dec, TokenDecoder) else dec(z)

