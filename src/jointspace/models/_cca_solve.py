"""The closed-form solver of :mod:`jointspace.models.cca`: covariance blocks, whitening, SVD.

The equations it implements (the chapter's covariances and generalised eigenproblem, solved
by whitening each view and one SVD) are set out in :mod:`jointspace.models.cca`, which
re-exports :func:`covariances` and :func:`solve_cca`.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ..errors import InputError


#: rows per float64 block when a view of another dtype is accumulated into its covariances
_ROWS = 8192


def covariances(x: np.ndarray, y: np.ndarray):
    r"""Centred covariance blocks of the chapter, accumulated in float64.

    Parameters
    ----------
    x : ndarray, shape (n, p)
    y : ndarray, shape (n, q)

    Returns
    -------
    mean_x : (p,), mean_y : (q,), cxx : (p, p), cyy : (q, q), cxy : (p, q)
        :math:`\Sigma_{XX}, \Sigma_{YY}, \Sigma_{XY}` with the :math:`1/(n-1)` factor, float64.

    Notes
    -----
    Views of another dtype (float32) are centred and multiplied in float64 blocks of
    ``_ROWS`` rows: a float32 product loses the digits that tell a correlation of 0.9999998
    from 1 (it gave canonical correlations above 1 on views that correlate that closely).
    """
    n = x.shape[0]
    mean_x = x.mean(axis=0, dtype=np.float64)
    mean_y = y.mean(axis=0, dtype=np.float64)
    if x.dtype == np.float64 and y.dtype == np.float64:
        xc, yc = x - mean_x, y - mean_y
        return mean_x, mean_y, xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    cxx = np.zeros((x.shape[1], x.shape[1]))
    cyy = np.zeros((y.shape[1], y.shape[1]))
    cxy = np.zeros((x.shape[1], y.shape[1]))
    for start in range(0, n, _ROWS):
        xc = x[start:start + _ROWS] - mean_x   # float64 blocks: the means are float64
        yc = y[start:start + _ROWS] - mean_y
        cxx += xc.T @ xc
        cyy += yc.T @ yc
        cxy += xc.T @ yc
    return mean_x, mean_y, cxx / (n - 1), cyy / (n - 1), cxy / (n - 1)


def _inv_sqrt(c: np.ndarray):
    r"""A whitening matrix of a covariance: :math:`K` with :math:`K^\top C K = I` on its span.

    The covariance is first scaled to unit diagonal, :math:`S = D^{-1/2} C D^{-1/2}`, and
    :math:`K = D^{-1/2} S^{-1/2}`: features in very different units (1e6 next to 1e-6) then
    keep their directions, which a rank cut relative to the largest eigenvalue of :math:`C`
    itself would drop.  Directions of (numerically) zero variance are dropped, i.e. the
    pseudo-inverse square root: CCA is then solved within the span of the data, which leaves
    every canonical correlation unchanged (e.g. topic proportions that sum to one lose one
    direction).

    Parameters
    ----------
    c : ndarray, shape (p, p)
        Symmetric positive semi-definite (ridged) covariance.

    Returns
    -------
    k : ndarray, shape (p, p)
        Whitening matrix (not symmetric when the diagonal is not constant).
    rank : int
        Number of directions kept.
    """
    d = np.sqrt(np.clip(np.diag(c), 0, None))
    d = np.where(d > 0, d, 1.0)
    evals, evecs = linalg.eigh(c / d[:, None] / d[None, :])
    tol = max(evals.max(), 1e-300) * c.shape[0] * np.finfo(np.float64).eps * 100
    keep = evals > tol
    return ((evecs[:, keep] / np.sqrt(evals[keep])) @ evecs[:, keep].T) / d[:, None], int(keep.sum())


def solve_cca(cxx, cyy, cxy, n_components: int, reg=(0.0, 0.0)):
    r"""Canonical directions from covariance blocks (whiten + SVD).

    Parameters
    ----------
    cxx : ndarray, shape (p, p)
    cyy : ndarray, shape (q, q)
    cxy : ndarray, shape (p, q)
    n_components : int or None
        None: every pair the whitened covariances hold (the smaller of their ranks).
    reg : (float, float)
        Canonical-ridge weights ``c_x, c_y`` in [0, 1].

    Returns
    -------
    wx : ndarray, shape (p, k)
    wy : ndarray, shape (q, k)
    s : ndarray, shape (k,)
        Singular values: the canonical correlations when ``reg == (0, 0)``.
    """
    cx, cy = reg
    kx, rank_x = _inv_sqrt((1 - cx) * cxx + cx * np.eye(cxx.shape[0]))
    ky, rank_y = _inv_sqrt((1 - cy) * cyy + cy * np.eye(cyy.shape[0]))
    if n_components is None:
        n_components = max(1, min(rank_x, rank_y))
    if n_components > min(rank_x, rank_y):
        raise InputError(f"n_components: the covariances have rank {rank_x} (X) and {rank_y} (Y), so at most "
                         f"{min(rank_x, rank_y)} canonical pairs exist; got {n_components} "
                         "(use fewer components, or reg > 0)")
    u, s, vt = linalg.svd(kx.T @ cxy @ ky, full_matrices=False)
    u, vt = u[:, :n_components], vt[:n_components]
    # Deterministic signs: the largest |entry| of each u column is positive (as svd_flip).
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    signs[signs == 0] = 1
    return kx @ (u * signs), ky @ (vt.T * signs), s[:n_components]


def _data_span(a: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Orthonormal basis (p, r) of the span of the centred rows of ``a`` (n, p)."""
    _, sv, vt = linalg.svd((a - mean).astype(np.float64), full_matrices=False)
    tol = max(sv.max(initial=0.0), 1e-300) * max(a.shape) * np.finfo(np.float64).eps * 100
    return vt[sv > tol].T


def _fit_blocks(x: np.ndarray, y: np.ndarray, k, reg):
    """Means, covariance blocks and canonical directions of two views.

    A view with at least as many features as samples (p >= n) is first expressed in an
    orthonormal basis U of the span of its centred samples: the ridge covariance
    (1 - c) U S U^T + c I acts on the cross-covariance (whose columns lie in that span)
    exactly as (1 - c) S + c I does in the basis, so the directions U w_r are the full
    problem's, found from r x r instead of p x p eigenproblems (r <= n - 1).  The blocks
    returned are then those of the full space, rebuilt from the basis.
    """
    n = x.shape[0]
    if x.shape[1] < n and y.shape[1] < n:
        mx, my, cxx, cyy, cxy = covariances(x, y)
        wx, wy, _ = solve_cca(cxx, cyy, cxy, k, reg)
        return mx, my, cxx, cyy, cxy, wx, wy
    mx = x.mean(axis=0, dtype=np.float64)
    my = y.mean(axis=0, dtype=np.float64)
    ux = _data_span(x, mx) if x.shape[1] >= n else None
    uy = _data_span(y, my) if y.shape[1] >= n else None
    xr = (x - mx) @ ux if ux is not None else x
    yr = (y - my) @ uy if uy is not None else y
    try:
        _, _, cxx, cyy, cxy = covariances(xr, yr)
        wx, wy, _ = solve_cca(cxx, cyy, cxy, k, reg)
    except InputError:
        if reg[0] == 0 and reg[1] == 0:
            raise
        # with a ridge the full space holds more (zero-correlation) pairs than the span
        mx, my, cxx, cyy, cxy = covariances(x, y)
        wx, wy, _ = solve_cca(cxx, cyy, cxy, k, reg)
        return mx, my, cxx, cyy, cxy, wx, wy
    if ux is not None:
        wx, cxx, cxy = ux @ wx, ux @ cxx @ ux.T, ux @ cxy
    if uy is not None:
        wy, cyy, cxy = uy @ wy, uy @ cyy @ uy.T, cxy @ uy.T
    return mx, my, cxx, cyy, cxy, wx, wy
