r"""Adversarial disentanglement: a predictor tries to recover one code from another, and the
encoders are trained to make it fail.

For two codes :math:`x` (e.g. the audio private part) and :math:`y` (the text private part)
of the same samples, a small network :math:`g` is fitted to predict :math:`y` from :math:`x`
by least squares, and the encoders minimise how much of :math:`y` it explains,

.. math::  R^2 = 1 - \frac{\sum_i \|y_i - g(x_i)\|^2}{\sum_i \|y_i - \bar y\|^2},

a min-max game: :math:`g` descends on the squared error, the encoders descend on
:math:`R^2` (ascend on the error).  When no function of :math:`x` predicts :math:`y` better
than its mean, :math:`R^2 = 0`: the codes carry no (regression-recoverable) common
information, the non-linear counterpart of the chapter's orthogonality :math:`z_1\cdot z_2 = 0`.

Objectives are pure functions of tensors; they never import a model.
"""

from __future__ import annotations

import numbers

import torch
from torch.func import functional_call

from ..errors import InputError
from .mutual_info import _check_xy


class CrossPredictor(torch.nn.Module):
    r"""The adversary :math:`g: x \mapsto \hat y` and the predictability :math:`R^2` it achieves.

    Training uses two terms added to one loss, so a single optimiser does the min-max:

    1. :meth:`learning_loss` (``x``, ``y`` detached): the mean squared error of :math:`g`;
       only :math:`g`'s parameters receive its gradient;
    2. :meth:`forward`: :math:`\max(R^2, 0)` computed with :math:`g`'s parameters detached,
       so its gradient reaches only the encoders of ``x`` and ``y``.

    Parameters
    ----------
    x_dim, y_dim : int
    hidden : int
        Hidden width of the two-layer MLP :math:`g`; 0 makes :math:`g` linear.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 64):
        super().__init__()
        for name, v in (("x_dim", x_dim), ("y_dim", y_dim)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise InputError(f"{name}: expected a positive integer, got {v!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 0:
            raise InputError(f"hidden: expected an integer >= 0 (0: a linear predictor), got {hidden!r}")
        self.x_dim, self.y_dim = int(x_dim), int(y_dim)
        if hidden:
            self.net = torch.nn.Sequential(torch.nn.Linear(x_dim, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, y_dim))
        else:
            self.net = torch.nn.Linear(x_dim, y_dim)

    def _check(self, x, y) -> None:
        _check_xy(x, y, min_rows=2)
        if x.shape[1] != self.x_dim:
            raise InputError(f"x: expected shape (n, {self.x_dim}), got {tuple(x.shape)}")
        if y.shape[1] != self.y_dim:
            raise InputError(f"y: expected shape (n, {self.y_dim}), got {tuple(y.shape)}")

    def learning_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean squared error of :math:`g(x)` against ``y``, summed over the features, shape ().

        Pass ``x`` and ``y`` detached so this term moves only the predictor.
        """
        self._check(x, y)
        err = self.net(x.to(self._dtype())) - y.to(self._dtype())
        return (err * err).sum(dim=1).mean()

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def explained(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""The fraction of ``y``'s variance that :math:`g(x)` explains, :math:`R^2` (may be
        negative when :math:`g` is worse than the mean), with :math:`g` frozen.  A ``y`` that
        does not vary (up to rounding) has no variance to explain: 1 when :math:`g` predicts it exactly, else 0
        (scikit-learn's ``r2_score`` convention).

        Parameters
        ----------
        x : Tensor, shape (n, x_dim)
        y : Tensor, shape (n, y_dim)

        Returns
        -------
        r2 : Tensor, shape ()
        """
        self._check(x, y)
        frozen = {k: v.detach() for k, v in self.net.named_parameters()}
        pred = functional_call(self.net, frozen, (x.to(self._dtype()),), strict=True)
        y = y.to(pred.dtype)
        resid = ((y - pred) ** 2).sum()
        total = ((y - y.mean(dim=0, keepdim=True)) ** 2).sum()
        r2 = 1.0 - resid / total.clamp_min(torch.finfo(total.dtype).tiny)
        # what is left of equal values after subtracting their mean is its rounding, about eps of them
        varies = total > torch.finfo(total.dtype).eps * (y.detach() ** 2).sum()
        return torch.where(varies, r2, (resid == 0).to(r2.dtype))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The adversarial penalty :math:`\\max(R^2, 0)` for the encoders, shape ()."""
        return self.explained(x, y).clamp_min(0.0)


__all__ = ["CrossPredictor"]
