r"""Kernel CCA: the chapter's CCA between implicit feature maps :math:`\phi(x), \psi(y)`.

Replacing ``X`` and ``Y`` in the chapter's objective

.. math:: \rho = \max \frac{w_x^\top X^\top Y w_y}{\sqrt{w_x^\top X^\top X w_x}\sqrt{w_y^\top Y^\top Y w_y}}

by feature maps with :math:`w_x = \Phi_x^\top \alpha` turns every inner product into a kernel
matrix :math:`K_x = \Phi_x \Phi_x^\top`; without regularisation the problem is degenerate for
rich kernels (every correlation is 1), so the covariances carry the canonical ridge of
:class:`~jointspace.models.cca.CanonicalCorrelation`. Two solvers:

- ``method="exact"``: the dual problem on the centred n x n kernels
  (:func:`~jointspace.models._kernels.solve_kernel_cca`: two symmetric eigen-decompositions
  and one SVD), O(n^3) time and O(n^2) memory, for a few thousand samples;
- ``method="nystroem"`` / ``"rff"``: an explicit m-dimensional approximation of the feature
  map (scikit-learn's ``Nystroem`` for any kernel, ``RBFSampler`` random Fourier features for
  ``rbf``), then linear regularised CCA (``covariances`` + ``solve_cca``), O(n m^2), for
  tens of thousands of samples.

New samples are mapped by the same kernel against the training set (exact) or the
landmarks / random features (approximate).
"""

from __future__ import annotations

import numpy as np
from sklearn.kernel_approximation import Nystroem, RBFSampler

from .._validation import check_choice, check_float, check_int, check_matrix
from ..data.pairs import Pairs
from ..errors import InputError
from ._kernels import (center_kernel, center_new, check_kernel_bound, check_pair, check_saved_kernel,
                       check_symmetric, kernel_eig, kernel_matrix, resolve_kernel, solve_kernel_cca)
from ._sklearn_inputs import check_x, check_y
from .base import register_model
from .cca import CanonicalCorrelation, check_weight, covariances, solve_cca
from .preprocess import build_preprocessor, fit_preprocessor

_CHUNK = 4096


@register_model("kcca", "kernel CCA (linear, RBF, polynomial; exact dual or Nystroem / random features)")
class KernelCCA(CanonicalCorrelation):
    """Regularised kernel CCA with out-of-sample ``transform``.

    Parameters
    ----------
    n_components : int or None
        Number of canonical pairs k (at most n - 1).  None (default): as many as the narrower
        input view has features after ``preprocess`` (10 on Wikipedia, 384 over MiniLM
        features), at most n - 1, ``n_features`` for the approximate methods and the ranks
        of the two kernels (features); ``n_components_`` holds the count fitted.
    kernel : {"linear", "rbf", "poly", "sigmoid"} or callable, or a pair (x, y)
        Kernel of each view; a callable ``k(A, B) -> (len(A), len(B))`` is allowed (it
        cannot be saved). The sigmoid kernel and many callables are not positive
        semi-definite: see ``psd``.
    gamma : float > 0 or None, or a pair
        Kernel width (rbf ``exp(-gamma ||a - b||^2)``, poly/sigmoid scale). None: the median
        heuristic for rbf (``1 / median ||a - b||^2`` on the training set), ``1 / p`` otherwise.
    degree : int
        Polynomial degree.
    coef0 : float
        Polynomial / sigmoid offset.
    reg : float or (float, float)
        Canonical ridge ``c`` in [0, 1] per view (see ``solve_kernel_cca``); 0 is allowed
        but with a full-rank kernel every canonical correlation is then 1.  Default 0.01: the
        benches' cross-validation chose 0.003 (Wikipedia) and 0.01 (OpenClipart towers).
    method : {"auto", "exact", "nystroem", "rff"}
        "auto": exact for n <= ``max_exact``, else Nystroem.
    n_features : int
        Dimension m of the approximate feature map (landmarks or random features).
    max_exact : int
        Largest n that "auto" solves exactly (default 2,000: the O(n^3) dual takes tens of
        seconds on two cores beyond that).
    psd : {"error", "clip"}
        A training kernel with clearly negative eigenvalues raises :class:`InputError`
        ("error"), or has its negative part dropped ("clip"; exact method only).
    preprocess, weight, modalities, random_state
        As in :class:`~jointspace.models.cca.CanonicalCorrelation` (``weight`` default 1, the
        weighting both benches' kernel-CCA rows use).

    Attributes
    ----------
    x_weights_, y_weights_ : ndarray
        Dual coefficients (n, k) (exact) or feature-space weights (m, k) (approximate).
    canonical_correlations_ : ndarray, shape (k,)
        Correlations of the training canonical variables.
    method_ : str
        The solver used.
    kernel_params_ : (dict, dict)
        Resolved kernel settings per view (gamma filled in).
    """

    def __init__(self, n_components: int | None = None, kernel="rbf", gamma=None, degree: int = 3,
                 coef0: float = 1.0, reg=0.01, method: str = "auto", n_features: int = 1000, max_exact: int = 2000,
                 psd: str = "error", preprocess=None, weight: float = 1.0, modalities=None,
                 random_state: int = 0):
        self.n_components = n_components
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.reg = reg
        self.method = method
        self.n_features = n_features
        self.max_exact = max_exact
        self.psd = psd
        self.preprocess = preprocess
        self.weight = weight
        self.modalities = modalities
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------
    def _views(self, X, Y):
        if isinstance(X, Pairs):
            names = self._pair_names(X)
            x = check_matrix(X[names[0]], f"modality {names[0]!r}", min_rows=2, dtype=np.float64)
            y = check_matrix(X[names[1]], f"modality {names[1]!r}", min_rows=2, dtype=np.float64)
            self.n_features_in_ = x.shape[1]
        else:
            if Y is None:
                raise InputError("y: kernel CCA requires y to be passed, but the target y is None; "
                                 "call fit(X, y) with the second view, or fit(pairs)")
            names = ("x", "y")
            x = check_x(self, X, reset=True, min_rows=2, dtype=np.float64)
            y = check_y(Y, x.shape[0], dtype=np.float64)
        if x.shape[0] != y.shape[0]:
            raise InputError(f"y: expected {x.shape[0]} rows to match X, got {y.shape[0]}")
        return names, x, y

    def _fit(self, X, y=None):
        """Fit on two views (what ``fit`` runs, restoring the model if it raises).

        Parameters
        ----------
        X : ndarray, shape (n, p), or Pairs
        y : ndarray, shape (n, q) (omitted when X is a Pairs)

        Returns
        -------
        self
        """
        names, x, y = self._views(X, y)
        n = x.shape[0]
        k = None if self.n_components is None else check_int(self.n_components, "n_components", low=1)
        if k is not None and k > n - 1:
            raise InputError(f"n_components: expected at most n_samples - 1 = {n - 1}, got {k} "
                             "(fewer samples than components)")
        reg = self._reg_pair()
        check_weight(self.weight)  # refused before fitting, not at the first encode
        check_choice(self.psd, "psd", ("error", "clip"))
        method = check_choice(self.method, "method", ("auto", "exact", "nystroem", "rff"))
        max_exact = check_int(self.max_exact, "max_exact", low=2)
        m = check_int(self.n_features, "n_features", low=1)
        # the second view's sampler draws from random_state + 1: both must be NumPy seeds
        check_int(self.random_state, "random_state", low=0, high=2**32 - 2)
        if method == "auto":
            method = "exact" if n <= max_exact else "nystroem"
        labels = self._view_labels(X, names)
        spec_x, spec_y = self._pre_specs(names)
        self.x_pre_ = build_preprocessor(spec_x, self.random_state)
        self.y_pre_ = build_preprocessor(spec_y, self.random_state)
        if self.x_pre_ is not None:
            x = np.asarray(fit_preprocessor(self.x_pre_, x, labels[0]), dtype=np.float64)
        if self.y_pre_ is not None:
            y = np.asarray(fit_preprocessor(self.y_pre_, y, labels[1]), dtype=np.float64)
        specs = []
        for arr, view, kern, gam, deg, c0 in zip((x, y), names, check_pair(self.kernel, "kernel"),
                                                  check_pair(self.gamma, "gamma"), check_pair(self.degree, "degree"),
                                                  check_pair(self.coef0, "coef0")):
            specs.append(resolve_kernel(kern, gam, deg, c0, arr, view, self.random_state))
            check_kernel_bound(arr, specs[-1], f"kernel ({view})")
        if method == "rff" and any(s["kernel"] != "rbf" for s in specs):
            raise InputError("method: 'rff' (random Fourier features) approximates only the rbf kernel; "
                             "use method='nystroem' for other kernels")
        self.kernel_params_ = tuple(specs)
        self.method_ = method
        # None: as many pairs as the narrower input view has features, and the kernels' ranks hold
        every = k is None
        if every:
            k = max(1, min(x.shape[1], y.shape[1], n - 1, n if method == "exact" else min(m, n)))
        self._modality_names = names
        if method == "exact":
            self._fit_exact(x, y, names, specs, k, reg, every)
        else:
            if m < k:
                raise InputError(f"n_features: expected at least n_components = {k}, got {m}")
            self._fit_approx(x, y, specs, k, reg, min(m, n), method, every)
        self.n_components_ = self.x_weights_.shape[1]
        u, v = self._project(0, x, names[0], raw=True), self._project(1, y, names[1], raw=True)
        u, v = u - u.mean(0), v - v.mean(0)
        den = np.sqrt((u * u).sum(0) * (v * v).sum(0))
        self.canonical_correlations_ = (u * v).sum(0) / np.where(den > 0, den, 1)
        self.modalities_ = names
        return self

    def _fit_exact(self, x, y, names, specs, k, reg, every=False):
        eigs, cents = [], []
        for arr, view, spec in zip((x, y), names, specs):
            kmat = kernel_matrix(arr, arr, spec, f"kernel ({view})", centred=True)
            kc, col, grand = center_kernel(check_symmetric(kmat, view))
            eigs.append(kernel_eig(kc, view, self.psd))
            cents.append((col, grand))
        if every:
            k = min(k, eigs[0][1].size, eigs[1][1].size)
        alpha, beta, _ = solve_kernel_cca(eigs[0], eigs[1], k, reg)
        self.x_weights_, self.y_weights_ = alpha, beta
        # copies: float64 rows pass validation as the caller's own arrays, which the caller may
        # go on to change in place
        self.x_train_, self.y_train_ = np.array(x, copy=True), np.array(y, copy=True)
        (self.x_kmean_, gx), (self.y_kmean_, gy) = cents
        self.k_grand_ = np.array([gx, gy])
        self.x_mean_, self.y_mean_ = np.zeros(0), np.zeros(0)

    def _fit_approx(self, x, y, specs, k, reg, m, method, every=False):
        maps = []
        for i, (arr, spec) in enumerate(zip((x, y), specs)):
            seed = self.random_state + i
            if method == "rff":
                est = RBFSampler(gamma=spec["gamma"], n_components=m, random_state=seed).fit(arr)
                maps.append({"w": est.random_weights_, "b": est.random_offset_})
            else:
                keys = {"rbf": ("gamma",), "poly": ("gamma", "degree", "coef0"),
                        "sigmoid": ("gamma", "coef0")}.get(spec["kernel"], ())
                params = {kk: spec[kk] for kk in keys}
                # the rbf kernel is translation invariant: fitted on centred rows, its landmark
                # kernel loses no digits to an offset the features share
                shift = arr.mean(axis=0) if spec["kernel"] == "rbf" else 0.0
                est = Nystroem(kernel=spec["kernel"], n_components=m, random_state=seed,
                               kernel_params=params or None).fit(arr - shift)
                maps.append({"landmarks": est.components_ + shift, "norm": est.normalization_})
        self._maps = maps
        zx, zy = self._features(0, x), self._features(1, y)
        mx, my, cxx, cyy, cxy = covariances(zx, zy)
        wx, wy, _ = solve_cca(cxx, cyy, cxy, None if every else k, reg)
        self.x_weights_, self.y_weights_ = wx[:, :k], wy[:, :k]
        self.x_mean_, self.y_mean_ = mx, my

    # -- projecting ------------------------------------------------------------------------
    def _features(self, which: int, arr: np.ndarray) -> np.ndarray:
        spec = self.kernel_params_[which]
        name = f"kernel ({(getattr(self, '_modality_names', None) or self.modalities_)[which]})"
        if self.method_ == "exact":
            train = self.x_train_ if which == 0 else self.y_train_
            col = self.x_kmean_ if which == 0 else self.y_kmean_
            return center_new(kernel_matrix(arr, train, spec, name, centred=True), col, float(self.k_grand_[which]))
        mp = self._maps[which]
        if self.method_ == "rff":
            return np.sqrt(2.0 / mp["w"].shape[1]) * np.cos(arr @ mp["w"] + mp["b"])
        return kernel_matrix(arr, mp["landmarks"], spec, name) @ mp["norm"].T

    def _project(self, which: int, data, name: str, raw: bool = False) -> np.ndarray:
        pre = self.x_pre_ if which == 0 else self.y_pre_
        w = self.x_weights_ if which == 0 else self.y_weights_
        mean = self.x_mean_ if which == 0 else self.y_mean_
        arr = data
        if not raw:
            arr = check_matrix(data, name, allow_1d=(which == 1), dtype=np.float64)
            expected = self.n_features_in_ if which == 0 else (pre.n_features_in_ if pre is not None else None)
            if expected is None:
                train_dim = (self.y_train_.shape[1] if self.method_ == "exact" else
                             (self._maps[1]["w"].shape[0] if self.method_ == "rff" else
                              self._maps[1]["landmarks"].shape[1]))
                expected = train_dim
            if arr.shape[1] != expected:
                raise InputError(f"{name}: expected {expected} features, got {arr.shape[1]}")
            if pre is not None:
                arr = np.asarray(pre.transform(arr), dtype=np.float64)
        out = np.empty((arr.shape[0], w.shape[1]))
        for start in range(0, arr.shape[0], _CHUNK):
            f = self._features(which, arr[start:start + _CHUNK])
            if mean.size:
                f = f - mean
            out[start:start + _CHUNK] = f @ w
        return out if raw else out * self._component_scale

    # -- JointModel ------------------------------------------------------------------------
    def get_config(self) -> dict:
        if any(callable(k) for k in check_pair(self.kernel, "kernel")):
            raise InputError("kernel: a model with a callable kernel cannot be saved; use linear, rbf, poly or sigmoid")
        params = super().get_config()
        for key in ("kernel", "gamma", "degree", "coef0"):
            if isinstance(params[key], tuple):
                params[key] = list(params[key])
        return params

    def _get_extra(self) -> dict:
        extra = super()._get_extra()
        extra.update(method=self.method_, kernel_params=[dict(p) for p in self.kernel_params_])
        return extra

    def _set_extra(self, extra: dict) -> None:
        super()._set_extra(extra)
        if extra["method"] not in ("exact", "nystroem", "rff"):
            raise ValueError(f"method: expected one of exact, nystroem, rff; got {extra['method']!r}")
        params = extra["kernel_params"]
        if not isinstance(params, list) or len(params) != 2:
            raise ValueError(f"kernel_params: expected a list of two kernel settings, got {params!r:.80}")
        self.method_ = extra["method"]
        self.kernel_params_ = tuple(check_saved_kernel(p, f"kernel_params[{i}]") for i, p in enumerate(params))

    def _get_state(self) -> dict:
        state = super()._get_state()
        if self.method_ == "exact":
            state.update(x_train=self.x_train_, y_train=self.y_train_, x_kmean=self.x_kmean_,
                         y_kmean=self.y_kmean_, k_grand=self.k_grand_)
        else:
            for i, mp in enumerate(self._maps):
                state.update({f"map{i}.{key}": val for key, val in mp.items()})
        return state

    def _preprocessed_width(self, which: int, state) -> int:
        if self.method_ == "exact":
            return int(state["x_train" if which == 0 else "y_train"].shape[1])
        if self.method_ == "rff":
            return int(state[f"map{which}.w"].shape[0])
        return int(state[f"map{which}.landmarks"].shape[1])

    def _set_state(self, state) -> None:
        super()._set_state(state)
        if self.method_ == "exact":
            self.x_train_, self.y_train_ = state["x_train"], state["y_train"]
            self.x_kmean_, self.y_kmean_ = state["x_kmean"], state["y_kmean"]
            self.k_grand_ = state["k_grand"]
        else:
            self._maps = [{key.split(".", 1)[1]: val for key, val in state.items() if key.startswith(f"map{i}.")}
                          for i in range(2)]
