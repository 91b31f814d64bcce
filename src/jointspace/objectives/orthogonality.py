r"""Orthogonality objectives: the chapter's penalties and its Lagrange-multiplier constraint.

The chapter ("Orthogonal Joint Representations") asks two modalities' representations
:math:`z_1, z_2` to carry non-redundant information by making them orthogonal,
:math:`z_1 \cdot z_2 = 0`, and gives four ways to push towards it:

- :math:`R = \lambda |z_1\cdot z_2|` on paired embeddings: :func:`abs_dot_penalty`;
- :math:`R = \lambda\|Z_1^\top Z_2\|_F^2` over a batch: :func:`frobenius_cross_penalty`;
- :math:`R = \lambda\|W_1^\top W_2\|_F^2` on two heads' weights: :func:`weight_cross_penalty`;
- :math:`L_{constrained} = L + \mu\, z_1^\top z_2`: :class:`LagrangeMultiplier` (with
  :func:`dot_constraint` for the value :math:`c = z_1^\top z_2`).

The penalties use a fixed weight :math:`\lambda \ge 0`; the constrained form learns
:math:`\mu` by gradient *ascent* on the constraint while the model descends.

Objectives are pure functions of tensors; they never import a model.
"""

from __future__ import annotations

import math
import numbers

import torch

from .._validation import check_bool
from ..errors import InputError
from ._checks import check_features, check_same_device


def _check_lam(lam, name: str = "lam") -> float:
    """A finite, non-negative weight as a float."""
    if isinstance(lam, torch.Tensor):
        if lam.numel() != 1:
            raise InputError(f"{name}: expected a scalar weight, got a tensor of shape {tuple(lam.shape)}")
        lam = float(lam.detach())
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise InputError(f"{name}: expected a non-negative number, got {lam!r}")
    lam = float(lam)
    if not (math.isfinite(lam) and lam >= 0):
        raise InputError(f"{name}: expected a finite number >= 0, got {lam!r}")
    return lam


def _check_batch_pair(z1, z2, *, same_dim: bool) -> None:
    check_features(z1, "z1", min_rows=1)
    check_same_device(z1, z2, "z1", "z2")
    check_features(z2, "z2", min_rows=1)
    if z1.shape[0] != z2.shape[0]:
        raise InputError(f"z2: expected as many rows (samples) as z1, whose shape is {tuple(z1.shape)}; "
                         f"got shape {tuple(z2.shape)}")
    if same_dim and z1.shape[1] != z2.shape[1]:
        raise InputError(f"z2: expected the shape of z1 {tuple(z1.shape)} (the dot product pairs equal "
                         f"dimensions), got {tuple(z2.shape)}")


def _check_weight(w, name: str) -> None:
    if not isinstance(w, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor weight matrix (out_features, in_features), "
                         f"got {type(w).__name__}")
    if w.ndim != 2:
        raise InputError(f"{name}: expected a 2-D weight matrix (out_features, in_features), got shape "
                         f"{tuple(w.shape)}")
    if not w.is_floating_point():
        raise InputError(f"{name}: expected a floating tensor, got dtype {w.dtype}")
    if not bool(torch.isfinite(w.detach()).all()):
        raise InputError(f"{name}: expected finite weights, got NaN or Inf")


def abs_dot_penalty(z1: torch.Tensor, z2: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    r"""The chapter's :math:`R = \lambda\,|z_1\cdot z_2|`, averaged over a batch of pairs.

    .. math::  R = \frac{\lambda}{n}\sum_{i=1}^n |z_{1,i}\cdot z_{2,i}|

    Row :math:`i` of ``z1`` and row :math:`i` of ``z2`` are the two modalities' representations
    of the same sample; only matched rows are compared (per-sample orthogonality).  The
    absolute value has no gradient at exactly 0 (PyTorch uses 0 there).

    Parameters
    ----------
    z1 : Tensor, shape (n, d)
    z2 : Tensor, shape (n, d)
    lam : float
        :math:`\lambda \ge 0`.

    Returns
    -------
    R : Tensor, shape ()
    """
    lam = _check_lam(lam)
    _check_batch_pair(z1, z2, same_dim=True)
    return lam * (z1 * z2).sum(dim=1).abs().mean()


def frobenius_cross_penalty(z1: torch.Tensor, z2: torch.Tensor, lam: float = 1.0,
                            normalize: bool = False) -> torch.Tensor:
    r"""The chapter's :math:`R = \lambda\,\|Z_1^\top Z_2\|_F^2` over a batch.

    :math:`Z_1^\top Z_2` is the (d1, d2) matrix of inner products between every feature of
    modality 1 and every feature of modality 2 across the batch; the penalty is zero when
    every column of :math:`Z_1` is orthogonal to every column of :math:`Z_2` (as vectors over
    the n samples).  ``d1`` and ``d2`` may differ.

    The raw sum grows as :math:`n^2`; ``normalize=True`` divides by :math:`n^2`, i.e. it
    penalises :math:`\|\tfrac1n Z_1^\top Z_2\|_F^2`, the squared cross-moment matrix (the
    cross-covariance when the features are centred), so :math:`\lambda` does not depend on
    the batch size.

    Parameters
    ----------
    z1 : Tensor, shape (n, d1)
    z2 : Tensor, shape (n, d2)
    lam : float
        :math:`\lambda \ge 0`.
    normalize : bool
        Divide by :math:`n^2`.

    Returns
    -------
    R : Tensor, shape ()
    """
    lam = _check_lam(lam)
    normalize = check_bool(normalize, "normalize")
    _check_batch_pair(z1, z2, same_dim=False)
    dtype = torch.promote_types(z1.dtype, z2.dtype)
    cross = z1.to(dtype).T @ z2.to(dtype)
    r = (cross * cross).sum()
    if normalize:
        r = r / z1.shape[0] ** 2
    return lam * r


def weight_cross_penalty(w1: torch.Tensor, w2: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    r"""The chapter's :math:`R = \lambda\,\|W_1^\top W_2\|_F^2` on two modality heads' weights.

    Orientation: pass the weights exactly as ``torch.nn.Linear`` stores them, shape
    ``(out_features, in_features)``, for two heads that map *different* inputs into the
    *same* output space (``w1``: (m, k1), ``w2``: (m, k2), same ``m``).  Then
    :math:`(W_1^\top W_2)_{ab} = W_1[:, a]\cdot W_2[:, b]`: the penalty makes the columns of
    :math:`W_1` orthogonal to the columns of :math:`W_2`, as the chapter asks.  The columns of
    a head's weight span the subspace its outputs live in, so at zero penalty the two heads
    write into orthogonal subspaces of the shared space and
    :math:`z_1^\top z_2 = x_1^\top W_1^\top W_2 x_2 = 0` for *every* pair of inputs (biases
    aside): the weight-level counterpart of the representation penalties.

    Weights stored the other way round, (in_features, out_features) as in ``x @ W``, must be
    transposed first.

    Parameters
    ----------
    w1 : Tensor, shape (m, k1)
    w2 : Tensor, shape (m, k2)
        Same first dimension (the shared output space) as ``w1``.
    lam : float
        :math:`\lambda \ge 0`.

    Returns
    -------
    R : Tensor, shape ()
    """
    lam = _check_lam(lam)
    _check_weight(w1, "w1")
    check_same_device(w1, w2, "w1", "w2")
    _check_weight(w2, "w2")
    if w1.shape[0] != w2.shape[0]:
        raise InputError(
            f"w1, w2: expected weight matrices (out_features, in_features) with the same first dimension "
            f"(the shared output space), got w1 of shape {tuple(w1.shape)} and w2 of shape {tuple(w2.shape)}; "
            "transpose weights stored as (in_features, out_features)")
    dtype = torch.promote_types(w1.dtype, w2.dtype)
    cross = w1.to(dtype).T @ w2.to(dtype)
    return lam * (cross * cross).sum()


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``factor`` backward."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.factor * grad, None


class LagrangeMultiplier(torch.nn.Module):
    r"""The chapter's constrained form :math:`L_{constrained} = L + \mu\, c`, with :math:`\mu`
    learnt by gradient ascent.

    ``forward(c)`` returns :math:`\mu c` (plus :math:`\tfrac{\rho}{2} c^2` when
    ``augmented``) to add to the loss.  :math:`c` is the constraint's value, zero when it
    holds: the chapter's :math:`z_1^\top z_2` (e.g. ``(z1 * z2).sum(1).mean()``), its absolute
    value or its square, or anything else (:func:`dot_constraint`).

    How :math:`\mu` ascends with one optimiser: :math:`\mu` is a parameter of this module,
    and on its way to it the gradient passes through a gradient-reversal node scaled by
    ``ascent_rate``.  A single ordinary minimising optimiser over the model's parameters and
    this module's then takes, with SGD at learning rate :math:`\eta`,

    .. math::  \theta \leftarrow \theta - \eta\,\nabla_\theta (L + \mu c), \qquad
               \mu \leftarrow \mu + \eta\cdot\text{ascent\_rate}\cdot c

    i.e. descent on the model and ascent on the multiplier (simultaneous gradient
    descent-ascent on the Lagrangian, whose saddle point is the constrained optimum).  With
    an adaptive optimiser (Adam) the step of :math:`\mu` is normalised by the optimiser, so
    ``ascent_rate`` mostly sets its sign; give :math:`\mu` its own parameter group for an
    independent learning rate, and no weight decay (decay would pull :math:`\mu` to 0).

    For an equality constraint (signed :math:`c`) :math:`\mu` may take either sign.  For a
    non-negative :math:`c` (:math:`|z_1^\top z_2|`, its square) :math:`\mu` only grows while
    the constraint is violated.  ``augmented=True`` adds :math:`\tfrac{\rho}{2}c^2` (the
    augmented Lagrangian), which damps the oscillation of plain descent-ascent.

    Parameters
    ----------
    init : float
        Initial :math:`\mu`.
    ascent_rate : float
        Positive factor on :math:`\mu`'s reversed gradient (relative to the optimiser's step).
    augmented : bool
        Add :math:`\tfrac{\rho}{2}c^2`.
    rho : float
        :math:`\rho \ge 0` of the augmented term.
    explicit : bool
        Do not leave :math:`\mu` to the optimiser: each training-mode ``forward(c)`` returns
        the term with the current :math:`\mu`, then takes the plain ascent step
        :math:`\mu \leftarrow \mu + \text{ascent\_rate}\cdot c` (projected onto
        :math:`\mu \ge 0` when ``nonnegative``).  The step size is then exactly
        ``ascent_rate``, whatever the optimiser of the model (dual ascent).
    nonnegative : bool
        With ``explicit`` (required), keep :math:`\mu \ge 0` (for a constraint value that is
        never negative and should be 0, e.g. a squared norm); ``init`` must then be >= 0.
    """

    def __init__(self, init: float = 0.0, ascent_rate: float = 1.0, augmented: bool = False,
                 rho: float = 1.0, explicit: bool = False, nonnegative: bool = False):
        super().__init__()
        if isinstance(init, bool) or not isinstance(init, numbers.Real) or not math.isfinite(init):
            raise InputError(f"init: expected a finite number (the initial multiplier), got {init!r}")
        rate = _check_lam(ascent_rate, "ascent_rate")
        if rate == 0:
            raise InputError("ascent_rate: expected a number > 0 (0 would freeze the multiplier), got 0")
        self.ascent_rate = rate
        self.augmented = check_bool(augmented, "augmented")
        self.rho = _check_lam(rho, "rho")
        self.explicit = check_bool(explicit, "explicit")
        self.nonnegative = check_bool(nonnegative, "nonnegative")
        if self.nonnegative and not self.explicit:
            raise InputError("nonnegative: the projection onto mu >= 0 is taken by the explicit ascent step; "
                             "give explicit=True too")
        if self.nonnegative and init < 0:
            raise InputError(f"init: expected a multiplier >= 0 with nonnegative=True, got {init!r}")
        self.mu_param = torch.nn.Parameter(torch.tensor(float(init)), requires_grad=not self.explicit)

    @property
    def mu(self) -> float:
        """The current multiplier :math:`\\mu`, as a float (for logging)."""
        return float(self.mu_param.detach())

    def forward(self, constraint: torch.Tensor) -> torch.Tensor:
        """The term to add to the loss.

        Parameters
        ----------
        constraint : Tensor, shape () or (1,)
            :math:`c`, differentiable w.r.t. the model.

        Returns
        -------
        term : Tensor, shape ()
            :math:`\\mu c` (+ :math:`\\tfrac{\\rho}{2}c^2` when augmented).
        """
        if not isinstance(constraint, torch.Tensor) or constraint.numel() != 1:
            shape = tuple(constraint.shape) if isinstance(constraint, torch.Tensor) else type(constraint).__name__
            raise InputError(f"constraint: expected a scalar tensor (the constraint value c), got {shape}")
        if not bool(torch.isfinite(constraint.detach()).all()):
            raise InputError(f"constraint: expected a finite value, got {float(constraint.detach())}")
        c = constraint.reshape(())
        if self.explicit:
            mu = self.mu_param.detach().clone().to(c.dtype)
        else:
            mu = _ScaleGrad.apply(self.mu_param, -self.ascent_rate).to(c.dtype)
        term = mu * c
        if self.augmented:
            term = term + 0.5 * self.rho * c * c
        if self.explicit and self.training:
            with torch.no_grad():
                self.mu_param.add_(self.ascent_rate * float(c.detach()))
                if self.nonnegative:
                    self.mu_param.clamp_(min=0.0)
        return term

    def extra_repr(self) -> str:
        return (f"mu={self.mu:.4g}, ascent_rate={self.ascent_rate}, augmented={self.augmented}"
                + (f", rho={self.rho}" if self.augmented else ""))


def dot_constraint(z1: torch.Tensor, z2: torch.Tensor, form: str = "mean") -> torch.Tensor:
    r"""The chapter's constraint value :math:`c` built from :math:`z_1^\top z_2` over a batch.

    ``form``: ``"mean"`` :math:`\frac1n\sum_i z_{1,i}^\top z_{2,i}` (signed, an equality
    constraint), ``"abs"`` :math:`\frac1n\sum_i |z_{1,i}^\top z_{2,i}|`, ``"square"``
    :math:`\frac1n\sum_i (z_{1,i}^\top z_{2,i})^2`.  The signed mean can be zero while single
    pairs are far from orthogonal; the other two are zero only when every pair is orthogonal.

    Parameters
    ----------
    z1, z2 : Tensor, shape (n, d)
    form : {"mean", "abs", "square"}

    Returns
    -------
    c : Tensor, shape ()
    """
    _check_batch_pair(z1, z2, same_dim=True)
    dots = (z1 * z2).sum(dim=1)
    if form == "mean":
        return dots.mean()
    if form == "abs":
        return dots.abs().mean()
    if form == "square":
        return (dots * dots).mean()
    raise InputError(f"form: expected one of 'mean', 'abs', 'square', got {form!r}")
