r"""Mutual-information penalties: HSIC and the CLUB upper bound.

The chapter ("Loss Function Regularization") suggests a mutual-information loss so that each
modality contributes distinct information: minimise a measure of dependence between the two
modalities' representations :math:`z_1, z_2`.  Mutual information itself has no closed form
for learnt features; two differentiable stand-ins are given here:

- :func:`hsic`, the Hilbert-Schmidt independence criterion with Gaussian kernels: zero (in
  population) exactly when :math:`z_1` and :math:`z_2` are independent, no extra network;
- :class:`CLUB`, the contrastive log-ratio upper bound of :math:`I(z_1; z_2)` (Cheng et al.,
  ICML 2020), which needs a small variational network :math:`q(z_2 | z_1)` fitted alongside.

Objectives are pure functions of tensors (CLUB owns only its variational network); they
never import a model.
"""

from __future__ import annotations

import math
import numbers

import torch

from .._validation import check_bool
from ..errors import InputError
from ._checks import check_features, check_same_device


#: CLUB's log-variances lie in (-LOGVAR_BOUND, LOGVAR_BOUND).
LOGVAR_BOUND = 10.0


def _check_xy(x, y, min_rows: int) -> None:
    check_features(x, "x", min_rows=min_rows, contrastive=False)
    check_same_device(x, y, "x", "y")
    check_features(y, "y", min_rows=min_rows, contrastive=False)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"y: expected as many rows (samples) as x, whose shape is {tuple(x.shape)}; "
                         f"got shape {tuple(y.shape)}")


def _sq_dists(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances (n, n), exact zeros on the diagonal.

    The rows are centred first: distances do not change, and ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j``
    on rows far from the origin would cancel away float32's digits."""
    x = x - x.mean(dim=0, keepdim=True)
    sq = (x * x).sum(dim=1)
    d = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
    return d * (1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))


def _pow2_scale(x: torch.Tensor) -> torch.Tensor:
    """A power of two within a factor 2 of the largest absolute value of the centred ``x`` (1
    when it is 0), a 0-d tensor on ``x``'s device (no wait for the device).

    Distances and bandwidths are computed on ``x`` divided by it, which is exact and leaves
    the kernel unchanged, so that squared distances of features far from 1 neither overflow
    nor underflow (in float32, features of 1e20 gave inf - inf = nan, of 1e-25 all zeros)."""
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    if x.numel() == 0:
        return torch.ones((), dtype=dtype, device=x.device)
    with torch.no_grad():
        m = (x.detach() - x.detach().mean(dim=0, keepdim=True)).abs().amax().to(dtype)
        m = torch.where(torch.isfinite(m) & (m > 0), m, torch.ones_like(m))
        return torch.ldexp(torch.ones_like(m), torch.frexp(m).exponent - 1)   # m / 2 < scale <= m


def median_bandwidth(x: torch.Tensor) -> float:
    r"""The median heuristic: :math:`\sigma` with :math:`\sigma^2` the (lower) median of the
    squared distances :math:`\|x_i - x_j\|^2` over pairs :math:`i < j`.

    Treated as a constant (no gradient flows through it).  Falls back to the mean squared
    distance, then 1, when the median is 0 (many repeated rows).

    Parameters
    ----------
    x : Tensor, shape (n, d), n >= 2

    Returns
    -------
    sigma : float
    """
    check_features(x, "x", min_rows=2, contrastive=False)
    scale = _pow2_scale(x)
    with torch.no_grad():
        d = _sq_dists(x.detach() / scale)
        iu = torch.triu_indices(d.shape[0], d.shape[0], offset=1, device=d.device)
        pairs = d[iu[0], iu[1]]
        med = pairs.median()  # torch's median is the lower one for an even count
        med = torch.where(med > 0, med, pairs.mean())
        # one read from the device: the median (in x / scale's units) and the scale
        med, scale = torch.stack([med.to(scale.dtype), scale]).tolist()
    return scale * math.sqrt(med) if med > 0 else 1.0


def gaussian_kernel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r""":math:`K_{ij} = \exp(-\|x_i - x_j\|^2 / (2\sigma^2))`, shape (n, n).

    Computed on ``x`` and :math:`\sigma` divided by one power of two (exact), so the result
    does not depend on the units of ``x``."""
    scale = _pow2_scale(x)
    s = sigma / scale.double()   # exact, and 2 s^2 rounds as 2 sigma^2 does: the same kernel bit for bit
    return torch.exp(-_sq_dists(x / scale) / (2.0 * s * s))


def _check_sigma(sigma, name: str, x) -> float:
    if sigma is None:
        return median_bandwidth(x)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not (0 < sigma < math.inf):
        raise InputError(f"{name}: expected a positive finite bandwidth or None (median heuristic), got {sigma!r}")
    return float(sigma)


def hsic(x: torch.Tensor, y: torch.Tensor, sigma_x: float | None = None, sigma_y: float | None = None,
         unbiased: bool = False) -> torch.Tensor:
    r"""Hilbert-Schmidt independence criterion of paired samples, with Gaussian kernels.

    A stand-in for the chapter's mutual-information loss: a dependence measure between the
    rows of ``x`` and ``y`` to minimise.  With :math:`K, L` the (n, n) Gaussian kernel
    matrices of ``x`` and ``y`` and :math:`H = I - \tfrac1n \mathbf{1}\mathbf{1}^\top`:

    biased (Gretton et al. 2005), ``unbiased=False``:

    .. math::  \mathrm{HSIC}_b = \frac{1}{(n-1)^2}\,\mathrm{tr}(K H L H)

    unbiased (Song et al. 2012), ``unbiased=True``, with :math:`\tilde K, \tilde L` the kernel
    matrices with zeroed diagonals:

    .. math::  \mathrm{HSIC}_u = \frac{1}{n(n-3)}\Big[\mathrm{tr}(\tilde K\tilde L)
               + \frac{\mathbf 1^\top\tilde K\mathbf 1\;\mathbf 1^\top\tilde L\mathbf 1}{(n-1)(n-2)}
               - \frac{2}{n-2}\,\mathbf 1^\top\tilde K\tilde L\mathbf 1\Big]

    The biased estimate is >= 0 with an :math:`O(1/n)` positive bias; the unbiased one has
    mean exactly 0 under independence and can be negative.  Both are differentiable in ``x``
    and ``y``; cost and memory are :math:`O(n^2)`.

    Parameters
    ----------
    x : Tensor, shape (n, dx)
    y : Tensor, shape (n, dy)
        Of any floating dtypes: computed in the wider of the two.
    sigma_x, sigma_y : float, optional
        Kernel bandwidths; ``None`` uses :func:`median_bandwidth` (a constant per call).
    unbiased : bool
        Song et al.'s unbiased estimator (needs n >= 4).

    Returns
    -------
    hsic : Tensor, shape ()
    """
    unbiased = check_bool(unbiased, "unbiased")
    _check_xy(x, y, min_rows=4 if unbiased else 2)
    sx = _check_sigma(sigma_x, "sigma_x", x)
    sy = _check_sigma(sigma_y, "sigma_y", y)
    dtype = torch.promote_types(x.dtype, y.dtype)   # float32 with float64: in float64, as frobenius does
    k = gaussian_kernel(x.to(dtype), sx)
    l = gaussian_kernel(y.to(dtype), sy)
    n = k.shape[0]
    if not unbiased:
        # tr(K H L H) = <HKH, L>: centre one matrix only.
        kc = k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()
        return (kc * l).sum() / (n - 1) ** 2
    eye = torch.eye(n, dtype=k.dtype, device=k.device)
    kt, lt = k * (1 - eye), l * (1 - eye)
    term1 = (kt * lt).sum()  # tr(K~ L~), both symmetric
    term2 = kt.sum() * lt.sum() / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (kt.sum(dim=0) * lt.sum(dim=1)).sum()  # 1' K~ L~ 1
    return (term1 + term2 - term3) / (n * (n - 3))


class CLUB(torch.nn.Module):
    r"""Contrastive log-ratio upper bound of mutual information (Cheng et al., ICML 2020).

    A variational Gaussian :math:`q_\theta(y|x) = \mathcal N(\mu_\theta(x),
    \mathrm{diag}\,\sigma^2_\theta(x))` (two small MLPs) gives

    .. math::  \hat I_{CLUB} = \frac1n\sum_i \log q_\theta(y_i|x_i)
               - \frac1{n^2}\sum_i\sum_j \log q_\theta(y_j|x_i)

    (positive pairs minus all pairs; ``sampled=True`` replaces the double sum by one random
    negative :math:`y_{\pi(i)}` per row, CLUB-S).  When :math:`q_\theta = p(y|x)` this is an
    upper bound of :math:`I(x; y)`, so minimising it w.r.t. the encoders reduces the
    chapter's mutual-information redundancy.  It is an upper bound, not an estimate: for
    jointly Gaussian scalars with correlation :math:`\rho` the exact conditional gives
    :math:`\rho^2/(1-\rho^2)` against the true :math:`-\tfrac12\log(1-\rho^2)`.

    Training alternates two steps, with separate optimisers:

    1. fit :math:`q_\theta`: minimise :meth:`learning_loss` on *detached* ``(x, y)``
       (only this module's parameters move);
    2. minimise ``club(x, y)`` (:meth:`forward`) w.r.t. the encoders producing ``x`` and
       ``y`` (this module's parameters are not stepped by that optimiser).

    Parameters
    ----------
    x_dim, y_dim : int
        Feature sizes of ``x`` and ``y``.
    hidden : int
        Hidden width of the two MLPs.
    sampled : bool
        Use one random negative per sample (O(n)) instead of all pairs.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 64, sampled: bool = False):
        super().__init__()
        for name, v in (("x_dim", x_dim), ("y_dim", y_dim), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise InputError(f"{name}: expected a positive integer, got {v!r}")
        self.x_dim, self.y_dim, self.sampled = int(x_dim), int(y_dim), check_bool(sampled, "sampled")
        self.mean_net = torch.nn.Sequential(torch.nn.Linear(x_dim, hidden), torch.nn.ReLU(),
                                            torch.nn.Linear(hidden, y_dim))
        self.logvar_net = torch.nn.Sequential(torch.nn.Linear(x_dim, hidden), torch.nn.ReLU(),
                                              torch.nn.Linear(hidden, y_dim))

    def _check(self, x, y, min_rows: int = 2) -> None:
        _check_xy(x, y, min_rows)
        if x.shape[1] != self.x_dim:
            raise InputError(f"x: expected shape (n, {self.x_dim}), got {tuple(x.shape)}")
        if y.shape[1] != self.y_dim:
            raise InputError(f"y: expected shape (n, {self.y_dim}), got {tuple(y.shape)}")

    def _params(self, x: torch.Tensor):
        x = x.to(self.mean_net[0].weight.dtype)
        # The reference code bounds log-variance with tanh to (-1, 1), which cannot fit features
        # of small scale (unit-norm embeddings in high dimension); a scaled tanh keeps the bound
        # that stops exp(-logvar) from exploding while allowing variances from e^-10 to e^10.
        raw = self.logvar_net(x)
        return self.mean_net(x), LOGVAR_BOUND * torch.tanh(raw / LOGVAR_BOUND)

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Mean :math:`\log q_\theta(y_i|x_i)` in nats, shape ()."""
        self._check(x, y, min_rows=1)
        mu, logvar = self._params(x)
        y = y.to(mu.dtype)
        ll = -0.5 * ((y - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))
        return ll.sum(dim=1).mean()

    def learning_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Negative log-likelihood :math:`-\frac1n\sum_i\log q_\theta(y_i|x_i)` to fit :math:`q`.

        Parameters
        ----------
        x : Tensor, shape (n, x_dim)
        y : Tensor, shape (n, y_dim)
            Pass them detached, so this step moves only :math:`q_\theta`.

        Returns
        -------
        loss : Tensor, shape ()
        """
        return -self.log_likelihood(x, y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""The CLUB estimate :math:`\hat I_{CLUB}` (positive minus negative pairs).

        Parameters
        ----------
        x : Tensor, shape (n, x_dim)
        y : Tensor, shape (n, y_dim)

        Returns
        -------
        mi_upper : Tensor, shape ()
        """
        self._check(x, y)
        mu, logvar = self._params(x)
        y = y.to(mu.dtype)
        inv_var = (-logvar).exp()
        positive = -0.5 * ((y - mu) ** 2 * inv_var).sum(dim=1)
        if self.sampled:
            perm = torch.randperm(y.shape[0], device=y.device)
            negative = -0.5 * ((y[perm] - mu) ** 2 * inv_var).sum(dim=1)
        else:
            # mean_j (y_j - mu_i)^2 = var(y) + (mean(y) - mu_i)^2: O(n d), no (n, n, d) tensor; the
            # variance from centred y (mean(y^2) - mean(y)^2 would cancel for y far from 0)
            m1 = y.mean(dim=0)
            var = ((y - m1) ** 2).mean(dim=0)
            negative = -0.5 * ((var + (m1 - mu) ** 2) * inv_var).sum(dim=1)
        # The log-normaliser of q depends on x_i only and cancels between the two terms.
        return (positive - negative).mean()
