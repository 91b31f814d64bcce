"""The trainable networks of :class:`~jointspace.models.dual_encoder.DualEncoder`: a projection
head per modality over tower features, and the net holding them with the learnt temperature
(and SigLIP bias), optional private parts and their decoders (see the model's docstring).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """Standardise the input features, then a linear map or a two-layer MLP to ``out_dim``.

    ``input_dropout`` zeroes standardised input features at random while training (feature
    dropout: with a few thousand pairs and a thousand frozen features per item, it is the
    regulariser that lets the heads train past the first epochs without fitting noise).
    """

    def __init__(self, in_dim: int, out_dim: int, kind: str = "linear", hidden: int = 1024, dropout: float = 0.0,
                 input_dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("inv_std", torch.ones(in_dim))
        self.input_dropout = nn.Dropout(input_dropout)
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        else:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_dropout((x - self.mean) * self.inv_std))


class DualEncoderNet(nn.Module):
    """One :class:`ProjectionHead` per modality, a learnt temperature (``log_scale``) and, for
    SigLIP, a learnt bias.

    ``forward({modality: (n, in_dim)}) -> {modality: (n, dim)}`` with unit-norm float32 rows
    (the shared parts; normalised in float32 also under bf16 autocast, as ``encode`` does).

    With ``private_dim`` > 0 each head also yields a private part of that size (the last
    ``private_dim`` outputs of its final layer), and a linear decoder per modality rebuilds
    the standardised head input from both unit-norm parts.  :meth:`auxiliary_loss`, added to
    the contrastive loss by the trainer, is ``recon_weight`` x that reconstruction error plus
    the regularisers of :class:`jointspace.objectives.regularizers.PartRegularizer`.
    """

    def __init__(self, in_dims: dict, dim: int = 256, head: str = "linear", hidden: int = 1024,
                 tau: float = 0.07, learn_tau: bool = True, siglip: bool = False, dropout: float = 0.0,
                 towers: dict | None = None, input_dropout: float = 0.0, private_dim: int = 0,
                 regularizers: list | None = None, recon_weight: float = 1.0):
        super().__init__()
        self.dim, self.private_dim, self.recon_weight = int(dim), int(private_dim), float(recon_weight)
        self.heads = nn.ModuleDict({m: ProjectionHead(int(d), dim + self.private_dim, head, hidden, dropout,
                                                      input_dropout)
                                    for m, d in in_dims.items()})
        self.decoders = nn.ModuleDict()
        self.regularizer = None
        if self.private_dim:
            from ..objectives.regularizers import PartRegularizer

            self.decoders = nn.ModuleDict({m: nn.Linear(dim + self.private_dim, int(d)) for m, d in in_dims.items()})
            self.regularizer = PartRegularizer([tuple(r) for r in regularizers or []], list(in_dims), dim,
                                               self.private_dim)
        self._last = {}
        # Trainable towers ({modality: {"name", "config"}}) run before their head, end to end.
        self._towers = {}
        if towers:
            from ..towers.base import create_tower

            self._towers = {m: create_tower(t["name"], **t["config"]) for m, t in towers.items()}
        self.tower_modules = nn.ModuleDict({m: t.module for m, t in self._towers.items()})
        # SigLIP starts at scale 10, bias -10; CLIP at 1/0.07.
        init = np.log(10.0) if siglip else np.log(1.0 / tau)
        self.log_scale = nn.Parameter(torch.tensor(float(init)), requires_grad=learn_tau)
        self.bias = nn.Parameter(torch.tensor(-10.0)) if siglip else None

    def head_output(self, modality: str, x) -> torch.Tensor:
        """Whole head output (not normalised) of one modality's inputs, shape (n, dim +
        private_dim): features, or raw items / a prepared batch for a trainable tower."""
        if modality in self._towers:
            if not isinstance(x, (torch.Tensor, dict)):
                from ..train.device import to_device

                x = to_device(self._towers[modality].to_batch(x), self.log_scale.device)
            x = self.tower_modules[modality](x)
        return self.heads[modality](x)

    def project(self, modality: str, x) -> torch.Tensor:
        """The shared part (not normalised) of one modality's inputs, shape (n, dim)."""
        return self.head_output(modality, x)[:, :self.dim]

    def forward(self, batch: dict) -> dict:
        out = {m: self.head_output(m, x) for m, x in batch.items()}
        if self.private_dim and self.training:
            self._last = {"inputs": batch, "outputs": out}
        # Normalised in float32: under CPU bf16 autocast the norm would be taken in bf16 and
        # the rows the loss sees would miss unit length by up to ~0.5%.
        return {m: F.normalize(o[:, :self.dim].float(), dim=-1) for m, o in out.items()}

    def _final_linear(self, modality: str) -> nn.Linear:
        net = self.heads[modality].net
        return net if isinstance(net, nn.Linear) else net[-1]

    def auxiliary_loss(self):
        """Reconstruction and regularisation of the last training forward pass.

        Returns
        -------
        loss : Tensor, shape ()
        logs : dict of str to float
            ``recon`` and the regularisers' values (see ``PartRegularizer``).
        """
        batch, out = self._last["inputs"], self._last["outputs"]
        self._last = {}
        shared = {m: F.normalize(o[:, :self.dim].float(), dim=-1) for m, o in out.items()}
        private = {m: F.normalize(o[:, self.dim:].float(), dim=-1) for m, o in out.items()}
        recon = []
        for m, x in batch.items():
            h = self.heads[m]
            target = (x - h.mean) * h.inv_std
            pred = self.decoders[m](torch.cat([shared[m], private[m]], dim=1))
            recon.append(((pred - target) ** 2).mean())
        recon = torch.stack(recon).mean()
        weights = {m: (self._final_linear(m).weight[:self.dim], self._final_linear(m).weight[self.dim:])
                   for m in batch}
        reg, logs = self.regularizer(shared, private, weights)
        return self.recon_weight * recon + reg, {"recon": float(recon.detach()), **logs}
