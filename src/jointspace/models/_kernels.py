"""Kernel functions and the exact kernel-CCA solver shared by the kernel models.

Kernels are scikit-learn's pairwise kernels; this module adds the parameter checks, the
median heuristic for the RBF width, kernel centring, and the dual solver.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.metrics.pairwise import polynomial_kernel, rbf_kernel, sigmoid_kernel

from .._validation import check_choice, check_float, check_int
from ..errors import InputError

KERNELS = ("linear", "rbf", "poly", "sigmoid")


def resolve_kernel(kernel, gamma, degree, coef0, x: np.ndarray, name: str, seed: int = 0) -> dict:
    """Checked kernel settings for one view, with ``gamma=None`` resolved.

    For ``rbf`` a ``gamma`` of None is the median heuristic ``1 / median(||x_i - x_j||^2)``
    over (a sample of) the training rows; for ``poly`` and ``sigmoid`` it is ``1 / p``.

    Returns
    -------
    dict with keys ``kernel`` (str or callable), ``gamma``, ``degree``, ``coef0``.
    """
    if not callable(kernel):
        check_choice(kernel, f"kernel ({name})", KERNELS)
    if gamma is not None:
        gamma = check_float(gamma, f"gamma ({name})", low=0.0, low_open=True)
    elif kernel == "rbf":
        gamma = median_gamma(x, seed)
    elif kernel in ("poly", "sigmoid"):
        gamma = 1.0 / x.shape[1]
    degree = check_int(degree, f"degree ({name})", low=1)
    coef0 = check_float(coef0, f"coef0 ({name})")
    return {"kernel": kernel, "gamma": gamma, "degree": degree, "coef0": coef0}


def check_saved_kernel(spec, where: str) -> dict:
    """Settings of one view read back from a saved model, as :func:`resolve_kernel` wrote them.

    Raises
    ------
    ValueError
        (not InputError: the loader names the file) an unknown kernel, or a setting it uses
        missing or out of range.
    """
    if not isinstance(spec, dict) or spec.get("kernel") not in KERNELS:
        raise ValueError(f"{where}: expected an object whose 'kernel' is one of {', '.join(KERNELS)}, "
                         f"got {spec!r:.80}")
    needs = {"linear": (), "rbf": ("gamma",), "poly": ("gamma", "degree", "coef0"),
             "sigmoid": ("gamma", "coef0")}[spec["kernel"]]
    try:
        for key in needs:
            if key not in spec:
                raise InputError(f"{where}: the {spec['kernel']} kernel needs {key!r}, which is missing")
            if key == "gamma":
                check_float(spec[key], f"{where}.gamma", low=0.0, low_open=True)
            elif key == "degree":
                check_int(spec[key], f"{where}.degree", low=1)
            else:
                check_float(spec[key], f"{where}.{key}")
    except InputError as exc:
        raise ValueError(str(exc)) from None
    return dict(spec)


def median_gamma(x: np.ndarray, seed: int = 0, max_rows: int = 1000) -> float:
    """``1 / median`` of the squared pairwise distances of (up to ``max_rows``) rows of x."""
    rng = np.random.default_rng(seed)
    sub = x[rng.choice(x.shape[0], max_rows, replace=False)] if x.shape[0] > max_rows else x
    sub = sub - sub.mean(axis=0)   # distances do not change; a common offset would cancel digits below
    sq = (sub * sub).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * sub @ sub.T
    d2 = d2[np.triu_indices(sub.shape[0], 1)]
    med = float(np.median(d2[d2 > 0])) if np.any(d2 > 0) else 1.0
    return 1.0 / med


def kernel_matrix(a: np.ndarray, b: np.ndarray, spec: dict, name: str = "kernel", centred: bool = False) -> np.ndarray:
    """``k(a_i, b_j)`` as an (len(a), len(b)) float64 array.

    Parameters
    ----------
    a : ndarray, shape (m, p)
    b : ndarray, shape (n, p)
    spec : dict
        Settings from :func:`resolve_kernel`.
    name : str
        What messages call the kernel, e.g. ``"kernel (image)"``.
    centred : bool
        The caller double-centres the result against ``b`` (:func:`center_kernel`,
        :func:`center_new`): the linear kernel is then taken between rows centred on ``b``'s
        mean, which changes it only by terms of one row or one column that the centring
        removes, and keeps the digits an offset the features share would cancel.

    Returns
    -------
    ndarray, shape (m, n)

    Raises
    ------
    InputError
        A value of the kernel is NaN or infinite (a callable's, or an overflow).
    """
    kind = spec["kernel"]
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "linear":
            if centred:
                centre = b.mean(axis=0)
                a, b = (b - centre,) * 2 if a is b else (a - centre, b - centre)
            out = np.asarray(a @ b.T, dtype=np.float64)
        elif kind == "rbf":
            # translation invariant: distances between rows centred on b's mean lose no digits
            # to an offset the features share (1e7 next to a spread of 1)
            centre = b.mean(axis=0)
            bc = b - centre
            ac = bc if a is b else a - centre   # one array: k(x, x) keeps its diagonal of exact ones
            out = rbf_kernel(ac, bc, gamma=spec["gamma"])
        elif kind == "poly":
            out = polynomial_kernel(a, b, degree=spec["degree"], gamma=spec["gamma"], coef0=spec["coef0"])
        elif kind == "sigmoid":
            out = sigmoid_kernel(a, b, gamma=spec["gamma"], coef0=spec["coef0"])
        else:
            out = np.asarray(kind(a, b), dtype=np.float64)
            if out.shape != (a.shape[0], b.shape[0]):
                raise InputError(f"{name}: a callable kernel must return shape ({a.shape[0]}, {b.shape[0]}), "
                                 f"got {out.shape}")
    check_kernel_values(out, kind, name)
    return out


def check_kernel_values(k: np.ndarray, kind, name: str = "kernel") -> None:
    """Raise :class:`InputError` naming ``name`` when the kernel values ``k`` are not all finite."""
    if not np.isfinite(k).all():
        what = "the callable kernel" if callable(kind) else f"the {kind} kernel"
        raise InputError(f"{name}: expected finite kernel values, but {what} gives NaN or inf on these "
                         "features; scale the features down, or lower gamma or degree")


def check_kernel_bound(x: np.ndarray, spec: dict, name: str = "kernel") -> None:
    r"""Refuse rows on which the linear or polynomial kernel can overflow float64.

    By Cauchy-Schwarz :math:`|k(a, b)| \le (\gamma \max_i \lVert x_i\rVert^2 + |c_0|)^d`
    (:math:`\max_i \lVert x_i\rVert^2` for the linear kernel); rbf and sigmoid are bounded by 1.
    Used before an approximation that computes the kernel itself (Nystroem).

    Parameters
    ----------
    x : ndarray, shape (n, p)
    spec : dict
    name : str
    """
    kind = spec["kernel"]
    if kind not in ("linear", "poly"):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        top = np.max(np.einsum("ij,ij->i", x, x)).astype(np.float64)
        if kind == "poly":
            top = (spec["gamma"] * top + abs(spec["coef0"])) ** spec["degree"]
    check_kernel_values(np.array([top]), kind, name)


def center_kernel(k: np.ndarray):
    """Double-centred kernel :math:`HKH`, with the column means and grand mean that centre new rows."""
    col = k.mean(axis=0)
    grand = float(col.mean())
    return k - col[None, :] - k.mean(axis=1)[:, None] + grand, col, grand


def center_new(k_new: np.ndarray, col: np.ndarray, grand: float) -> np.ndarray:
    """Centre the kernel rows ``k(x_new, X_train)`` (m, n) as the training kernel was."""
    return k_new - col[None, :] - k_new.mean(axis=1)[:, None] + grand


def check_symmetric(k: np.ndarray, name: str) -> np.ndarray:
    """The kernel matrix of the training rows, symmetrised, once it is symmetric up to round-off.

    Checked before centring: centring subtracts means of the values, so an offset the
    features share (a linear kernel of features near 1e3) leaves the centred matrix
    asymmetric by the round-off of the uncentred values, which is no fault of the kernel.

    Parameters
    ----------
    k : ndarray, shape (n, n)
        ``k(x_i, x_j)`` of the training rows, not centred.
    name : str
        View name for messages.

    Returns
    -------
    ndarray, shape (n, n)
        ``(k + k^T) / 2``.

    Raises
    ------
    InputError
        ``k`` differs from its transpose by more than ``1e-8`` of its entries (``1e-10`` of
        its largest one), e.g. a callable kernel that is not symmetric.
    """
    if not np.allclose(k, k.T, rtol=1e-8, atol=1e-10 * max(np.abs(k).max(), 1e-300)):
        raise InputError(f"kernel ({name}): the kernel matrix is not symmetric; "
                         "a kernel must satisfy k(a, b) = k(b, a)")
    return (k + k.T) / 2


def kernel_eig(k: np.ndarray, name: str, psd: str = "error"):
    r"""Eigen-decomposition :math:`K = U \Lambda U^\top` restricted to its positive part.

    Parameters
    ----------
    k : ndarray, shape (n, n)
        Kernel matrix (centred or not), symmetric up to round-off (see :func:`check_symmetric`);
        its symmetric part is decomposed.
    name : str
        View name for messages.
    psd : {"error", "clip"}
        What to do when ``k`` has clearly negative eigenvalues (below ``-1e-8`` times the
        largest): raise :class:`InputError`, or drop them (the nearest PSD matrix in
        Frobenius norm).

    Returns
    -------
    u : ndarray, shape (n, r)
    lam : ndarray, shape (r,)
        Eigenvalues above ``n * eps * 100`` times the largest (the numerical rank r).
    """
    lam, u = linalg.eigh((k + k.T) / 2, driver="evr")
    top = max(float(lam.max()), 0.0)
    if top <= 0:
        raise InputError(f"kernel ({name}): the centred kernel matrix is zero (all samples look the same)")
    if lam.min() < -1e-8 * top and psd == "error":
        raise InputError(f"kernel ({name}): the kernel matrix is not positive semi-definite (smallest eigenvalue "
                         f"{lam.min():.3g}, largest {top:.3g}); use a PSD kernel (linear, rbf, poly), or psd='clip' "
                         "to drop the negative part")
    keep = lam > top * k.shape[0] * np.finfo(np.float64).eps * 100
    return u[:, keep], lam[keep]


def solve_kernel_cca(eig_x, eig_y, n_components: int, reg=(0.1, 0.1), form: str = "canonical"):
    r"""Exact regularised kernel CCA from the eigen-decompositions of the two kernels.

    With :math:`K = U\Lambda U^\top` the rows of :math:`\Phi = U\Lambda^{1/2}` are an exact
    finite feature map of the training samples, so kernel CCA is linear CCA on
    :math:`\Phi_x, \Phi_y` (the chapter's eigenproblem with :math:`\Sigma_{XX} = \Phi_x^\top
    \Phi_x/(n-1) = \Lambda_x/(n-1)` diagonal). The dual problem it solves is

    .. math:: \max_{\alpha,\beta} \alpha^\top K_x K_y \beta \quad\text{s.t.}\quad
              \alpha^\top R_x \alpha = \beta^\top R_y \beta = 1

    with ``form="canonical"``: :math:`R = (1-c) K^2/(n-1) + c K` (the canonical ridge of
    :class:`~jointspace.models.cca.CCA` in feature space; the linear kernel gives exactly
    regularised linear CCA), or ``form="dual"``: :math:`R = K^2 + c I` (Hardoon et al.'s
    ridge on the dual coefficients, as pyrcca uses). Both are diagonal in the eigenbasis,
    so whitening is a division and one SVD of the :math:`r_x \times r_y` cross matrix
    gives the solution (the whiten + SVD route of ``solve_cca``).

    Parameters
    ----------
    eig_x, eig_y : (ndarray (n, r), ndarray (r,))
        Outputs of :func:`kernel_eig`.
    n_components : int
    reg : (float, float)
    form : {"canonical", "dual"}

    Returns
    -------
    alpha : ndarray, shape (n, k)
        Dual coefficients: canonical variables are ``K_x @ alpha``.
    beta : ndarray, shape (n, k)
    rho : ndarray, shape (k,)
        Regularised canonical correlations (singular values).
    """
    (ux, lx), (uy, ly) = eig_x, eig_y
    n = ux.shape[0]
    if n_components > min(lx.size, ly.size):
        raise InputError(f"n_components: the kernel matrices have rank {lx.size} and {ly.size}, so at most "
                         f"{min(lx.size, ly.size)} canonical pairs exist; got {n_components}")
    cx, cy = reg
    if form == "canonical":
        dx, dy = (1 - cx) * lx / (n - 1) + cx, (1 - cy) * ly / (n - 1) + cy
        scale = 1.0 / (n - 1)
    else:
        dx, dy = lx + cx / lx, ly + cy / ly
        scale = 1.0
    # Whitened cross-covariance in the feature coordinates Phi = U sqrt(lam).
    sx, sy = np.sqrt(lx / dx), np.sqrt(ly / dy)
    m = (sx[:, None] * (ux.T @ uy) * sy[None, :]) * scale
    k = n_components
    if min(m.shape) > 4 * k + 20:
        # Only the top k pairs are needed: eigenvectors of the smaller Gram matrix.
        small_left = m.shape[0] <= m.shape[1]
        g = m @ m.T if small_left else m.T @ m
        ev, vec = linalg.eigh(g, subset_by_index=(g.shape[0] - k, g.shape[0] - 1), driver="evr")
        ev, vec = ev[::-1], vec[:, ::-1]
        s = np.sqrt(np.clip(ev, 0, None))
        other = (m.T @ vec if small_left else m @ vec) / np.where(s > 0, s, 1)
        p, q = (vec, other) if small_left else (other, vec)
    else:
        p, s, qt = linalg.svd(m, full_matrices=False)
        p, q, s = p[:, :k], qt[:k].T, s[:k]
    signs = np.sign(p[np.abs(p).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1
    p, q = p * signs, q * signs
    # Feature-space weights w = p / sqrt(d); dual coefficients alpha = U diag(1/sqrt(lam)) w.
    alpha = ux @ (p / np.sqrt(dx * lx)[:, None])
    beta = uy @ (q / np.sqrt(dy * ly)[:, None])
    return alpha, beta, s


def check_pair(value, name: str):
    """A per-view setting given once (both views) or as a pair ``(x, y)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"{name}: expected one value or a pair (x, y), got {value!r}")
        return tuple(value)
    return (value, value)
