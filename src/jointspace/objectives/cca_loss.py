r"""Deep CCA objective: minus the total canonical correlation of two batches of outputs.

For network outputs :math:`H_1` (m, d1) and :math:`H_2` (m, d2) of one batch, centred, the
chapter's covariances with a ridge :math:`r`,

.. math:: \hat\Sigma_{11} = \tfrac{1}{m-1} H_1^\top H_1 + r_1 I,\quad
          \hat\Sigma_{22} = \tfrac{1}{m-1} H_2^\top H_2 + r_2 I,\quad
          \hat\Sigma_{12} = \tfrac{1}{m-1} H_1^\top H_2,

give :math:`T = \hat\Sigma_{11}^{-1/2}\hat\Sigma_{12}\hat\Sigma_{22}^{-1/2}`, whose singular
values are the canonical correlations (the chapter's :math:`\rho`, i.e. the square roots of
its eigenvalues :math:`\lambda`). Deep CCA (Andrew, Arora, Bilmes and Livescu, ICML 2013)
maximises their sum, the trace norm of :math:`T`; this module returns its negative.

Numerical care: the ridge keeps the auto-covariances positive definite; whitening uses their
Cholesky factors (same singular values as the symmetric inverse square roots, stable
gradients); the singular values come from the symmetric eigen-solver applied to
:math:`T T^\top` (eigenvalues floored at ``eps`` before the square root so its gradient stays
finite); float64 is used internally whatever the input precision.
"""

from __future__ import annotations

import torch

from .._validation import check_float, check_int
from ..errors import InputError


def canonical_correlations(h1: torch.Tensor, h2: torch.Tensor, ridge: float | tuple = 1e-3,
                           eps: float = 1e-9) -> torch.Tensor:
    r"""Canonical correlations of two batches, largest first (differentiable).

    Parameters
    ----------
    h1 : Tensor, shape (m, d1)
    h2 : Tensor, shape (m, d2)
        Outputs of the two networks for the same m samples.
    ridge : float or (float, float)
        :math:`r_1, r_2 \ge 0` (finite) added to the diagonals of the auto-covariances.
    eps : float
        Floor (> 0) of the squared correlations (keeps the square root's gradient finite).

    Returns
    -------
    rho : Tensor, shape (min(d1, d2),), float64
    """
    if h1.ndim != 2 or h2.ndim != 2:
        raise InputError(f"h1, h2: expected 2-D batches (m, d), got shapes {tuple(h1.shape)} and {tuple(h2.shape)}")
    m, d1 = h1.shape
    d2 = h2.shape[1]
    if h2.shape[0] != m:
        raise InputError(f"h2: expected {m} rows to match h1, got {h2.shape[0]}")
    pair = ridge if isinstance(ridge, (tuple, list)) else (ridge, ridge)
    if len(pair) != 2:
        raise InputError(f"ridge: expected a number >= 0 or a pair of them, got {ridge!r}")
    r1, r2 = (check_float(r, "ridge", low=0.0) for r in pair)
    eps = check_float(eps, "eps", low=0.0, low_open=True)
    # m centred samples span at most m - 1 dimensions: without a ridge a d-dimensional
    # covariance needs m > d to be invertible.
    need = max(2, d1 + (r1 == 0), d2 + (r2 == 0))
    if m < need:
        raise InputError(f"batch: {m} samples cannot estimate the covariances of {d1}- and {d2}-dimensional "
                         f"outputs with ridge {ridge!r}; expected a batch of at least {need} samples "
                         "(max(d1, d2), plus one for a view without ridge)")
    h1 = h1.to(torch.float64)
    h2 = h2.to(torch.float64)
    h1 = h1 - h1.mean(0, keepdim=True)
    h2 = h2 - h2.mean(0, keepdim=True)
    s11 = h1.T @ h1 / (m - 1) + r1 * torch.eye(d1, dtype=h1.dtype, device=h1.device)
    s22 = h2.T @ h2 / (m - 1) + r2 * torch.eye(d2, dtype=h1.dtype, device=h1.device)
    s12 = h1.T @ h2 / (m - 1)
    # Whitening by Cholesky factors: L1^{-1} S12 L2^{-T} equals T up to orthogonal factors on
    # both sides, so it has the same singular values, and unlike the eigenvector form of
    # S^{-1/2} its gradient stays finite when auto-covariance eigenvalues coincide.
    l1 = _cholesky(s11, h1, "h1", r1)
    l2 = _cholesky(s22, h2, "h2", r2)
    a = torch.linalg.solve_triangular(l1, s12, upper=False)
    t = torch.linalg.solve_triangular(l2, a.T, upper=False).T
    small = t @ t.T if d1 <= d2 else t.T @ t
    evals = torch.linalg.eigvalsh((small + small.T) / 2)
    return evals.clamp_min(eps).sqrt().flip(0)


def _cholesky(s: torch.Tensor, h: torch.Tensor, name: str, ridge: float) -> torch.Tensor:
    """Cholesky factor of the auto-covariance ``s`` (d, d) of the centred batch ``h`` (m, d).

    Raises
    ------
    InputError
        Naming ``name``: ``h`` holds NaN or inf, or ``s`` is singular (ridge 0 and an output
        constant over the batch or a combination of the others).
    """
    try:
        return torch.linalg.cholesky(s)
    except torch.linalg.LinAlgError:
        if not bool(torch.isfinite(h).all()):
            raise InputError(f"{name}: expected finite values, got NaN or inf") from None
        raise InputError(f"{name}: the covariance of the {h.shape[1]}-dimensional outputs is singular with ridge "
                         f"{ridge} (an output is constant over the batch, or a combination of the others); "
                         "expected ridge > 0") from None


def cca_loss(h1: torch.Tensor, h2: torch.Tensor, n_components: int | None = None, ridge: float | tuple = 1e-3,
             eps: float = 1e-9) -> torch.Tensor:
    r"""Deep CCA loss: :math:`-\sum_{k \le K} \rho_k` for one batch.

    Parameters
    ----------
    h1 : Tensor, shape (m, d1)
    h2 : Tensor, shape (m, d2)
    n_components : int, optional
        Sum only the K largest correlations (default: all ``min(d1, d2)``).
    ridge, eps
        See :func:`canonical_correlations`.

    Returns
    -------
    loss : Tensor, scalar float64

    Raises
    ------
    InputError
        The batch has fewer rows than the output dimension, or ``h1`` / ``h2`` holds NaN or
        inf or (without ridge) has a singular covariance.
    """
    rho = canonical_correlations(h1, h2, ridge=ridge, eps=eps)
    if n_components is not None:
        rho = rho[: check_int(n_components, "n_components", low=1, high=rho.numel())]
    return -rho.sum()
