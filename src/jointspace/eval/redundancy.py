r"""How redundant two modalities' representations are: numbers to report next to retrieval.

The chapter ("Orthogonal Joint Representations") wants each modality to contribute unique,
non-redundant information and trains towards it with orthogonality and mutual-information
penalties (:mod:`jointspace.objectives.orthogonality`, :mod:`jointspace.objectives.mutual_info`).
These functions measure, after training, how far that went, on two sets of representations
:math:`Z_1` (n, d1) and :math:`Z_2` (n, d2) whose rows are paired samples:

- :func:`mean_abs_cosine`: mean :math:`|\cos(z_{1,i}, z_{2,i})|`, the per-pair form of
  :math:`|z_1\cdot z_2|` (0: every pair orthogonal);
- :func:`normalized_cross_frobenius`: :math:`\|Z_1^\top Z_2\|_F` scaled to [0, 1], the batch
  form :math:`\|Z_1^\top Z_2\|_F^2` without its dependence on scale;
- :func:`linear_cka`: linear centred kernel alignment (Kornblith et al. 2019), linear
  dependence between the two sets, invariant to rotations and scaling of either;
- :func:`hsic_score`: Gaussian-kernel HSIC, which also sees non-linear dependence;
- :func:`redundancy_report`: all of them in a dict.

NumPy only, float64 internally; no torch needed.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_bool, check_int, check_matrix
from ..errors import InputError


def _pair(z1, z2, *, min_rows: int = 2, same_dim: bool = False):
    a = check_matrix(z1, "z1", min_rows=min_rows, dtype=np.float64)
    b = check_matrix(z2, "z2", min_rows=min_rows, dtype=np.float64)
    if a.shape[0] != b.shape[0]:
        raise InputError(f"z2: expected as many rows (paired samples) as z1, whose shape is {a.shape}; "
                         f"got shape {b.shape}")
    if same_dim and a.shape[1] != b.shape[1]:
        raise InputError(f"z2: expected the shape of z1 {a.shape} (rows compared pairwise), got {b.shape}")
    return a, b


def _centre(z: np.ndarray, name: str) -> np.ndarray:
    c = z - z.mean(axis=0, keepdims=True)
    # relative to the values' own size (the scores do not depend on scale): what is left of
    # equal rows after centring is their mean's rounding, about 1e-16 of them
    if not np.any(np.abs(c) > 1e-12 * float(np.abs(z).max())):
        raise InputError(f"{name}: all rows are equal (zero variance after centring); the score is undefined")
    return c


def _pow2(z: np.ndarray, axis=None) -> np.ndarray:
    """A power of two near the largest absolute value of ``z`` (of each row with ``axis=1``; 1
    where all are 0).  Every score here is free of scale, and dividing by it is exact, but the
    products of values far from 1 under- or overflow float64 (values of 1e-100 read a CKA of 1.0)."""
    m = np.abs(z).max(axis=axis, keepdims=axis is not None)
    return np.ldexp(1.0, np.frexp(np.where(m > 0, m, 1.0))[1])


def mean_abs_cosine(z1, z2) -> float:
    r"""Mean absolute cosine of paired rows, :math:`\frac1n\sum_i |\cos(z_{1,i}, z_{2,i})|`.

    The chapter's per-pair :math:`|z_1\cdot z_2|` made independent of the norms: 0 when every
    pair is orthogonal, 1 when every pair is parallel.  A zero row counts as orthogonal (0).

    Parameters
    ----------
    z1 : array, shape (n, d)
    z2 : array, shape (n, d)

    Returns
    -------
    float in [0, 1]
    """
    a, b = _pair(z1, z2, min_rows=1, same_dim=True)
    a, b = a / _pow2(a, 1), b / _pow2(b, 1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    denom = na * nb
    dots = np.einsum("ij,ij->i", a, b)
    cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    return float(np.mean(np.abs(np.clip(cos, -1.0, 1.0))))


def normalized_cross_frobenius(z1, z2, center: bool = True) -> float:
    r"""The chapter's :math:`\|Z_1^\top Z_2\|_F` normalised to [0, 1].

    .. math::  \frac{\|Z_1^\top Z_2\|_F}{\big(\|Z_1^\top Z_1\|_F\,\|Z_2^\top Z_2\|_F\big)^{1/2}}

    with the columns of :math:`Z_1, Z_2` centred first (``center=True``).  It is in [0, 1] by
    Cauchy-Schwarz (:math:`\|Z_1^\top Z_2\|_F^2 = \mathrm{tr}(K_1K_2) \le \|K_1\|_F\|K_2\|_F`
    with :math:`K = ZZ^\top` and :math:`\|Z^\top Z\|_F = \|ZZ^\top\|_F`), 0 exactly when the
    penalty :math:`\|Z_1^\top Z_2\|_F^2` is 0.

    Relation to CKA: centred, the square of this number *is* linear CKA
    (:func:`linear_cka`), so it carries the same information on a square-root scale (more
    spread near 0, where well-regularised models sit).  ``center=False`` gives the uncentred
    version, which matches the chapter's penalty on raw (uncentred) embeddings and is no
    longer a CKA: a common mean direction counts as overlap.

    Parameters
    ----------
    z1 : array, shape (n, d1)
    z2 : array, shape (n, d2)
    center : bool

    Returns
    -------
    float in [0, 1]
    """
    a, b = _pair(z1, z2)
    if check_bool(center, "center"):
        a, b = _centre(a, "z1"), _centre(b, "z2")
    for z, name in ((a, "z1"), (b, "z2")):
        if not np.any(z):
            raise InputError(f"{name}: all values are zero; the score is undefined")
    a, b = a / _pow2(a), b / _pow2(b)
    num = np.linalg.norm(a.T @ b)
    den = np.sqrt(np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))
    return float(min(num / den, 1.0))


def linear_cka(z1, z2) -> float:
    r"""Linear centred kernel alignment (Kornblith et al., ICML 2019).

    .. math::  \mathrm{CKA}(Z_1, Z_2) = \frac{\|Z_2^\top Z_1\|_F^2}
               {\|Z_1^\top Z_1\|_F\;\|Z_2^\top Z_2\|_F}

    on column-centred :math:`Z_1, Z_2`; equivalently :math:`\mathrm{HSIC}(K_1, K_2) /
    \sqrt{\mathrm{HSIC}(K_1,K_1)\,\mathrm{HSIC}(K_2,K_2)}` with linear kernels
    :math:`K = ZZ^\top`.  1 when :math:`Z_2 = s Z_1 Q` (orthogonal :math:`Q`, scale
    :math:`s \ne 0`), near 0 for independent sets (its bias is of order :math:`d/n`).
    Equals :func:`normalized_cross_frobenius` squared.

    Parameters
    ----------
    z1 : array, shape (n, d1)
    z2 : array, shape (n, d2)

    Returns
    -------
    float in [0, 1]
    """
    a, b = _pair(z1, z2)
    a, b = _centre(a, "z1"), _centre(b, "z2")
    a, b = a / _pow2(a), b / _pow2(b)
    n = a.shape[0]
    if max(a.shape[1], b.shape[1]) <= n:
        num = np.linalg.norm(a.T @ b) ** 2
        den = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    else:  # wide features: the n x n Gram matrices are the smaller ones
        ka, kb = a @ a.T, b @ b.T
        num = float(np.sum(ka * kb))
        den = np.linalg.norm(ka) * np.linalg.norm(kb)
    return float(min(num / den, 1.0))


def _unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC of two (n, n) Gram matrices (diagonals ignored), n >= 4."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ks, ls = k.sum(axis=0), l.sum(axis=0)
    return float((np.sum(k * l) + ks.sum() * ls.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * ks @ ls)
                 / (n * (n - 3)))


def _subsample(a: np.ndarray, b: np.ndarray, max_samples, seed, low: int) -> tuple[np.ndarray, np.ndarray]:
    """The paired rows, or a random subset (fixed ``seed``) of ``max_samples`` of them when there
    are more; ``max_samples`` an integer >= ``low`` or None, ``seed`` an integer >= 0."""
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer))
                                    or max_samples < low):
        raise InputError(f"max_samples: expected an integer >= {low} or None, got {max_samples!r}")
    check_int(seed, "seed", low=0)
    if max_samples is not None and a.shape[0] > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(a.shape[0], max_samples, replace=False))
        a, b = a[idx], b[idx]
    return a, b


def debiased_linear_cka(z1, z2, max_samples: int | None = 4096, seed: int = 0) -> float:
    r"""Linear CKA from unbiased HSIC estimates (Song et al. 2012; debiased CKA of Nguyen,
    Raghu & Kornblith 2021).

    .. math::  \frac{\mathrm{HSIC}_u(K_1, K_2)}{\sqrt{\mathrm{HSIC}_u(K_1, K_1)\,
               \mathrm{HSIC}_u(K_2, K_2)}}, \qquad K = ZZ^\top

    :func:`linear_cka` of two *independent* Gaussian sets is about
    :math:`\sqrt{d_1 d_2 / ((n + d_1)(n + d_2))}`, :math:`\sqrt{d_1 d_2}/n` for parts
    much narrower than the sample (200 samples of 32-d parts read 0.14, i.e. a normalised
    cross-Frobenius of 0.37, for no dependence at all); the unbiased numerator removes that floor, so this estimate is near 0
    for independent sets at any size and can be slightly negative.  It is the figure to
    compare when a regulariser is meant to bring redundancy towards zero.  Above
    ``max_samples`` rows a random subset (fixed ``seed``) of paired rows is used (memory
    :math:`O(n^2)`).

    Parameters
    ----------
    z1 : array, shape (n, d1)
    z2 : array, shape (n, d2)
        n >= 4.
    max_samples : int or None
    seed : int

    Returns
    -------
    float, at most 1
    """
    a, b = _subsample(*_pair(z1, z2, min_rows=4), max_samples, seed, low=4)
    # centred first: the estimate does not depend on a shift of either set, but rows far from
    # the origin would leave it to the rounding of the Gram matrices' common offset
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    a, b = a / _pow2(a), b / _pow2(b)
    ka, kb = a @ a.T, b @ b.T
    h11, h22 = _unbiased_hsic(ka, ka), _unbiased_hsic(kb, kb)
    for h, name in ((h11, "z1"), (h22, "z2")):
        if not h > 0:
            raise InputError(f"{name}: the rows do not vary; CKA is undefined")
    return float(min(_unbiased_hsic(ka, kb) / np.sqrt(h11 * h22), 1.0))


def _sq_dists(z: np.ndarray) -> np.ndarray:
    """Pairwise squared distances (n, n) of the centred rows (no digits lost far from 0)."""
    z = z - z.mean(axis=0)
    sq = np.einsum("ij,ij->i", z, z)
    d = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    np.fill_diagonal(d, 0.0)
    return d


def _median_sigma2(d: np.ndarray) -> float:
    """Lower median of the squared distances over i < j (the same rule as the objective)."""
    pairs = d[np.triu_indices(d.shape[0], k=1)]
    med = float(np.partition(pairs, (pairs.size - 1) // 2)[(pairs.size - 1) // 2])
    if not med > 0:
        med = float(pairs.mean())
    return med if med > 0 else 1.0


def hsic_score(z1, z2, sigma1: float | None = None, sigma2: float | None = None, normalized: bool = False,
               max_samples: int | None = 2048, seed: int = 0) -> float:
    r"""Biased Gaussian-kernel HSIC, :math:`\frac{1}{(n-1)^2}\mathrm{tr}(K_1 H K_2 H)`.

    The same estimator and median-heuristic bandwidths as
    :func:`jointspace.objectives.mutual_info.hsic`, computed independently in NumPy.
    ``normalized=True`` returns :math:`\mathrm{HSIC}(Z_1,Z_2) /
    \sqrt{\mathrm{HSIC}(Z_1,Z_1)\,\mathrm{HSIC}(Z_2,Z_2)}` (Gaussian-kernel CKA, in [0, 1]).
    Memory is :math:`O(n^2)`: above ``max_samples`` rows a random subset (fixed ``seed``) of
    paired rows is used.

    Parameters
    ----------
    z1 : array, shape (n, d1)
    z2 : array, shape (n, d2)
    sigma1, sigma2 : float, optional
        Bandwidths; ``None``: the median heuristic.
    normalized : bool
    max_samples : int or None
    seed : int

    Returns
    -------
    float (>= 0)
    """
    a, b = _subsample(*_pair(z1, z2), max_samples, seed, low=2)
    normalized = check_bool(normalized, "normalized")
    kernels = []
    for z, sigma, name in ((a, sigma1, "sigma1"), (b, sigma2, "sigma2")):
        scale = _pow2(z - z.mean(axis=0))   # distances in these units, and the bandwidth with them
        d = _sq_dists(z / scale)
        if sigma is None:
            s2 = _median_sigma2(d)
        elif isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real) or not 0 < sigma < np.inf:
            raise InputError(f"{name}: expected a positive finite bandwidth or None, got {sigma!r}")
        else:
            s2 = (float(sigma) / scale) ** 2
        kernels.append(np.exp(-d / (2.0 * s2)))
    k1, k2 = kernels
    n = k1.shape[0]

    def centred(k):
        return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()

    c1, c2 = centred(k1), centred(k2)
    h12 = float(np.sum(c1 * c2)) / (n - 1) ** 2
    if not normalized:
        return max(h12, 0.0)
    h11, h22 = float(np.sum(c1 * c1)), float(np.sum(c2 * c2))
    if h11 <= 0 or h22 <= 0:
        raise InputError(f"{'z1' if h11 <= 0 else 'z2'}: all rows are equal; normalised HSIC is undefined")
    return float(min(max(h12 * (n - 1) ** 2 / np.sqrt(h11 * h22), 0.0), 1.0))


def redundancy_report(z1, z2) -> dict:
    """Every redundancy score of two paired sets of representations.

    Parameters
    ----------
    z1 : array, shape (n, d1)
    z2 : array, shape (n, d2)

    Returns
    -------
    dict
        ``mean_abs_cosine`` (``None`` when d1 != d2: paired rows cannot be compared),
        ``normalized_cross_frobenius``, ``linear_cka``, ``debiased_cka`` (``None`` for fewer
        than 4 rows: its unbiased estimates need 4), ``hsic``, ``hsic_normalized``; plain
        floats, JSON-ready.
    """
    a, b = _pair(z1, z2)
    return {
        "mean_abs_cosine": mean_abs_cosine(a, b) if a.shape[1] == b.shape[1] else None,
        "normalized_cross_frobenius": normalized_cross_frobenius(a, b),
        "linear_cka": linear_cka(a, b),
        "debiased_cka": debiased_linear_cka(a, b) if len(a) >= 4 else None,
        "hsic": hsic_score(a, b),
        "hsic_normalized": hsic_score(a, b, normalized=True),
    }
