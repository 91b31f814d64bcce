r"""Closed-form canonical correlation analysis: CCA, regularised CCA and PLS.

The chapter defines CCA by its covariances

.. math::  \Sigma_{XX} = \tfrac{1}{n-1} X^\top X,\quad \Sigma_{YY} = \tfrac{1}{n-1} Y^\top Y,\quad
           \Sigma_{XY} = \tfrac{1}{n-1} X^\top Y

(``X`` and ``Y`` centred) and the generalised eigenproblem

.. math::  \Sigma_{XY}\Sigma_{YY}^{-1}\Sigma_{YX} w_x = \lambda \Sigma_{XX} w_x, \qquad
           \Sigma_{YX}\Sigma_{XX}^{-1}\Sigma_{XY} w_y = \lambda \Sigma_{YY} w_y,

whose eigenvalues are the squared canonical correlations, :math:`\lambda = \rho^2`, with
canonical variables :math:`u = X w_x`, :math:`v = Y w_y`.

It is solved here in the numerically stable equivalent form: whiten each view with
:math:`K_x = D_x^{-1/2} (D_x^{-1/2}\Sigma_{XX}D_x^{-1/2})^{-1/2}` (:math:`D_x` the diagonal of
:math:`\Sigma_{XX}`; symmetric eigen-decomposition; :math:`K_x^\top \Sigma_{XX} K_x = I`), take the SVD
:math:`K_x^\top \Sigma_{XY} K_y = U S V^\top`, and set :math:`w_x = K_x u_k`,
:math:`w_y = K_y v_k`, :math:`\rho_k = s_k`.  The singular vectors solve the chapter's
eigenproblem exactly (tested against ``scipy.linalg.eigh(A, B)``).

Regularisation follows the canonical ridge: :math:`\Sigma_{XX} \to (1-c)\Sigma_{XX} + cI`
with ``c`` in [0, 1]; ``c = 0`` is CCA, ``c = 1`` maximises covariance instead of
correlation, which is PLS (the SVD of :math:`\Sigma_{XY}`).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._validation import check_float, check_int, check_matrix, check_modality_names
from ..data.pairs import Pairs
from ..errors import InputError
from ._cca_solve import _fit_blocks, covariances, solve_cca  # noqa: F401 (covariances, solve_cca re-exported)
from ._sklearn_inputs import check_x, check_y
from .base import JointModel, fit_or_keep, register_model  # noqa: F401 (fit_or_keep re-exported)
from .preprocess import (build_preprocessor, check_preprocess_keys, fit_preprocessor, pipeline_from_state,
                         pipeline_state)

#: the largest correlation weight: a larger power of ``rho`` keeps only the leading component
#: (16 already leaves float32 encodings subnormal where the leading correlation is below 0.004)
MAX_WEIGHT = 16.0


def check_weight(value) -> float:
    """``value`` as a correlation weight in [0, :data:`MAX_WEIGHT`], or :class:`InputError`
    naming ``weight`` (a power such as 1000 made every encoding zero, or infinite)."""
    weight = check_float(value, "weight", low=0.0)
    if weight > MAX_WEIGHT:
        raise InputError(f"weight: expected a number <= {MAX_WEIGHT:g}, got {weight:g} (component k is scaled by "
                         f"its correlation ** weight, which a larger power underflows to zero, or overflows)")
    return weight


class ModalitiesToName(InputError):
    """Pairs with three or more modalities given to a two-view model without ``modalities``.

    Attributes
    ----------
    available : tuple of str
        The modalities of the pairs, to choose two from.
    """

    def __init__(self, message: str, available):
        super().__init__(message)
        self.available = tuple(available)


class CanonicalCorrelation(TransformerMixin, BaseEstimator, JointModel):
    """Linear canonical correlation analysis, with optional canonical ridge.

    Follows the scikit-learn estimator contract (``fit(X, Y)``, ``transform``, ``score``,
    learned state in ``*_`` attributes) and the jointspace ``JointModel`` surface
    (``fit(pairs)``, ``encode``, ``save``, ``load``).

    The defaults are cheap (one fit, nothing searched) and close to what the benches choose;
    :func:`jointspace.eval.selection.choose_settings` (what ``jointspace fit`` runs when no
    settings are given) searches them by cross-validation instead.

    Parameters
    ----------
    n_components : int or None
        Number of canonical pairs k; at most ``min(p, q, n - 1)``.  None (default): every
        pair the views hold, ``min(p, q, n - 1)`` and, without ridge, the smaller rank of the
        two views (9 on Wikipedia, whose 10-d topic view has rank 9: the count the Wikipedia
        bench's cross-validation chose for CCA and regularised CCA); ``n_components_`` holds
        the count fitted.
    reg : float or (float, float)
        Canonical-ridge weight ``c`` in [0, 1] for both views, or one per view.
        0 is plain CCA, 1 is PLS.
    preprocess : str or dict, optional
        Per-view preprocessing (see :mod:`jointspace.models.preprocess`), e.g.
        ``"standard"`` for both views or ``{"image": "sqrt,pca:64", "text": "standard"}``.
    weight : float in [0, 16]
        Scale canonical component k by ``rho_k ** weight`` in ``encode`` / ``transform`` (0:
        no weighting; 1, the default: the common correlation weighting for retrieval, which
        the Wikipedia bench's cross-validation chose for CCA, regularised CCA, kernel CCA and
        the base of SCM; it also keeps the weak trailing pairs of ``n_components=None`` from
        counting as much as the strong ones).  Read at each projection, so
        ``set_params(weight=...)`` on a fitted model acts at once, as :meth:`derive` does.
    modalities : (str, str), optional
        Which two modalities of a ``Pairs`` to fit; default: its first two.
    random_state : int
        Seed for randomised preprocessing steps (ICA).

    Attributes
    ----------
    x_weights_ : ndarray, shape (p', k)
        :math:`w_x` (in the preprocessed feature space).
    y_weights_ : ndarray, shape (q', k)
    x_mean_, y_mean_ : ndarray
    canonical_correlations_ : ndarray, shape (k,)
        Correlations of the training canonical variables :math:`u_k, v_k` (unregularised).
    n_components_ : int
        The number of canonical pairs fitted.
    n_features_in_ : int
    """

    def __init__(self, n_components: int | None = None, reg=0.0, preprocess=None, weight: float = 1.0,
                 modalities=None, random_state: int = 0):
        self.n_components = n_components
        self.reg = reg
        self.preprocess = preprocess
        self.weight = weight
        self.modalities = modalities
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # -- fitting ---------------------------------------------------------------------------
    def _reg_pair(self):
        reg = self.reg if isinstance(self.reg, (tuple, list)) else (self.reg, self.reg)
        if len(reg) != 2:
            raise InputError(f"reg: expected a number or a pair of numbers in [0, 1], got {self.reg!r}")
        return tuple(check_float(r, "reg", low=0.0, high=1.0) for r in reg)

    def _pre_specs(self, names) -> tuple:
        """The preprocessing of the two views ``names``: a dict's entry under the modality's
        name or under ``"x"`` / ``"y"``; a key that is neither is refused (a misspelt
        modality would otherwise go unpreprocessed)."""
        p = self.preprocess
        if not isinstance(p, dict):
            return p, p
        check_preprocess_keys(p, tuple(dict.fromkeys((*names, "x", "y"))))
        return tuple(p.get(name, p.get(view)) for view, name in zip(("x", "y"), names))

    def fit(self, X, y=None):
        """Fit on two views; a fit that fails leaves the model as it was.

        Parameters
        ----------
        X : ndarray, shape (n, p), or Pairs
            First view, or a ``Pairs`` holding both views as arrays.
        y : ndarray, shape (n, q) or (n,)
            Second view (omitted when ``X`` is a ``Pairs``).

        Returns
        -------
        self
        """
        return fit_or_keep(self, self._fit, X, y)

    def _fit(self, X, y=None):
        if isinstance(X, Pairs):
            names = self._pair_names(X)
            x = check_matrix(X[names[0]], f"modality {names[0]!r}", min_rows=2)
            y = check_matrix(X[names[1]], f"modality {names[1]!r}", min_rows=2)
            self.n_features_in_ = x.shape[1]
        else:
            if y is None:
                raise InputError("y: CCA requires y to be passed, but the target y is None; call fit(X, y) with the second view, or fit(pairs)")
            names = ("x", "y")
            x = check_x(self, X, reset=True, min_rows=2)
            y = check_y(y, x.shape[0])
        if x.shape[0] != y.shape[0]:
            raise InputError(f"y: expected {x.shape[0]} rows to match X, got {y.shape[0]}")
        reg = self._reg_pair()
        check_weight(self.weight)  # refused before fitting, not at the first encode
        self._modality_names = names
        labels = self._view_labels(X, names)
        spec_x, spec_y = self._pre_specs(names)
        self.x_pre_ = build_preprocessor(spec_x, self.random_state)
        self.y_pre_ = build_preprocessor(spec_y, self.random_state)
        if self.x_pre_ is not None:
            x = np.asarray(fit_preprocessor(self.x_pre_, x, labels[0]), dtype=x.dtype)
        if self.y_pre_ is not None:
            y = np.asarray(fit_preprocessor(self.y_pre_, y, labels[1]), dtype=y.dtype)
        n, p, q = x.shape[0], x.shape[1], y.shape[1]
        limit = min(p, q, n - 1)
        k = None if self.n_components is None else check_int(self.n_components, "n_components", low=1)
        if k is not None and k > limit:
            raise InputError(f"n_components: expected at most min(n_features_x={p}, n_features_y={q}, "
                             f"n_samples-1={n - 1}) = {limit}, got {k}")
        if reg[0] < 1 or reg[1] < 1:
            for arr, nm, c in ((x, labels[0], reg[0]), (y, labels[1], reg[1])):
                if c == 0:
                    const = np.flatnonzero(np.ptp(arr, axis=0) == 0)
                    if const.size:
                        raise InputError(f"{nm}: zero-variance columns {const[:10].tolist()} make the covariance "
                                         "singular; drop them, or use reg > 0")
        mx, my, cxx, cyy, cxy, wx, wy = _fit_blocks(x, y, k, reg)
        wx, wy = wx[:, :limit], wy[:, :limit]  # n_components=None: at most min(p, q, n - 1) pairs
        self.n_components_ = wx.shape[1]
        self.x_mean_, self.y_mean_ = mx, my
        self.x_weights_, self.y_weights_ = wx, wy
        num = np.einsum("ik,ij,jk->k", wx, cxy, wy)
        den = np.sqrt(np.clip(np.einsum("ik,ij,jk->k", wx, cxx, wx) * np.einsum("ik,ij,jk->k", wy, cyy, wy), 0, None))
        self.canonical_correlations_ = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        self.modalities_ = names
        return self

    @staticmethod
    def _view_labels(X, names) -> tuple:
        """What messages call the two views: ``X`` and ``y`` of ``fit(X, y)``, else the modalities."""
        return tuple(f"modality {m!r}" for m in names) if isinstance(X, Pairs) else ("X", "y")

    def _pair_names(self, pairs: Pairs):
        if self.modalities is not None:
            names = check_modality_names(self.modalities)
            if len(names) != 2:
                raise InputError(f"modalities: expected two modality names, got {self.modalities!r}")
            for m in names:
                pairs[m]
            return names
        if len(pairs.modalities) != 2:
            raise ModalitiesToName(f"modalities: these pairs have {len(pairs.modalities)} modalities "
                                   f"({', '.join(pairs.modalities)}); name the two to use", pairs.modalities)
        return pairs.modalities

    # -- projecting ------------------------------------------------------------------------
    @property
    def _component_scale(self) -> np.ndarray:
        """``rho_k ** weight`` per component, shape (k,), from the current ``weight``: a model
        given another weight after fit encodes as a saved copy of it (or a fresh fit) does."""
        return self.canonical_correlations_.clip(0) ** check_weight(self.weight)

    def _project(self, which: int, data, name: str) -> np.ndarray:
        pre = self.x_pre_ if which == 0 else self.y_pre_
        mean = self.x_mean_ if which == 0 else self.y_mean_
        w = self.x_weights_ if which == 0 else self.y_weights_
        expected = (self.n_features_in_ if which == 0 else
                    (pre.n_features_in_ if pre is not None else w.shape[0]))
        arr = check_matrix(data, name, allow_1d=(which == 1))
        if arr.shape[1] != expected:
            raise InputError(f"{name}: expected {expected} features, got {arr.shape[1]}")
        if pre is not None:
            arr = np.asarray(pre.transform(arr), dtype=np.float64)
        return ((arr - mean) @ w) * self._component_scale

    def transform(self, X, y=None):
        """Canonical variables ``u = X w_x`` (and ``v = Y w_y`` when the second view ``y`` is given).

        Parameters
        ----------
        X : ndarray, shape (n, p), or Pairs
            The first view, or pairs holding both fitted modalities (as for ``fit``,
            ``fit_transform`` and ``score``), which give ``(u, v)``.
        y : ndarray, shape (n, q), optional

        Returns
        -------
        u : ndarray, shape (n, k), or (u, v)
        """
        check_is_fitted(self, "x_weights_")
        if isinstance(X, Pairs):
            if y is not None:
                raise InputError(f"y: expected None with a Pairs X (it holds both views), got {type(y).__name__}")
            return self._transform_pairs(X)
        x = check_x(self, X, reset=False)
        u = self._project(0, x, "X")
        if y is None:
            return u
        v = self._project(1, y, "y")
        if v.shape[0] != u.shape[0]:
            raise InputError(f"y: expected {u.shape[0]} rows to match X, got {v.shape[0]}")
        return u, v

    def fit_transform(self, X, y=None, **fit_params):
        if isinstance(X, Pairs):
            return self.fit(X)._transform_pairs(X)
        return self.fit(X, y).transform(X)

    def _transform_pairs(self, pairs: Pairs):
        a, b = self.modalities_
        return self._project(0, pairs[a], a), self._project(1, pairs[b], b)

    def score(self, X, y=None):
        """Mean correlation of the k canonical variable pairs on (X, y) (higher is better)."""
        u, v = self._transform_pairs(X) if isinstance(X, Pairs) else self.transform(X, y)
        u = u - u.mean(0)
        v = v - v.mean(0)
        den = np.sqrt((u * u).sum(0) * (v * v).sum(0))
        return float(np.mean(np.where(den > 0, (u * v).sum(0) / np.where(den > 0, den, 1), 0.0)))

    def derive(self, n_components: int | None = None, weight: float | None = None) -> "CanonicalCorrelation":
        """A fitted copy keeping the first ``n_components`` pairs and/or another ``weight``.

        The canonical pairs are nested (the first k of a k' > k fit are the k-pair
        solution), so settings of these two parameters can be compared without refitting.
        """
        import copy

        check_is_fitted(self, "x_weights_")
        out = copy.copy(self)
        if n_components is not None:
            k = check_int(n_components, "n_components", low=1, high=self.x_weights_.shape[1])
            out.n_components = out.n_components_ = k
            out.x_weights_, out.y_weights_ = self.x_weights_[:, :k], self.y_weights_[:, :k]
            out.canonical_correlations_ = self.canonical_correlations_[:k]
        if weight is not None:
            out.weight = check_weight(weight)
        return out

    # -- JointModel ------------------------------------------------------------------------
    def _encode(self, modality, items):
        which = self.modalities_.index(modality)
        return self._project(which, items, f"items ({modality})")

    def get_config(self) -> dict:
        params = self.get_params()
        if isinstance(params["reg"], tuple):
            params["reg"] = list(params["reg"])
        if isinstance(params["modalities"], tuple):
            params["modalities"] = list(params["modalities"])
        return params

    def _get_extra(self) -> dict:
        xm, _ = pipeline_state(self.x_pre_, "x_pre")
        ym, _ = pipeline_state(self.y_pre_, "y_pre")
        return {"x_pre": xm, "y_pre": ym, "n_features_in": int(self.n_features_in_)}

    def _set_extra(self, extra: dict) -> None:
        n = extra["n_features_in"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n_features_in: expected an integer >= 1, got {n!r}")
        self._extra = extra
        self.n_features_in_ = n

    def _get_state(self) -> dict:
        _, xa = pipeline_state(self.x_pre_, "x_pre")
        _, ya = pipeline_state(self.y_pre_, "y_pre")
        return {"x_weights": self.x_weights_, "y_weights": self.y_weights_, "x_mean": self.x_mean_,
                "y_mean": self.y_mean_, "canonical_correlations": self.canonical_correlations_, **xa, **ya}

    def _set_state(self, state) -> None:
        self.x_weights_, self.y_weights_ = state["x_weights"], state["y_weights"]
        self.n_components_ = int(self.x_weights_.shape[1])
        self.x_mean_, self.y_mean_ = state["x_mean"], state["y_mean"]
        self.canonical_correlations_ = state["canonical_correlations"]
        self.x_pre_ = pipeline_from_state(self._extra["x_pre"], state, "x_pre", self._preprocessed_width(0, state))
        self.y_pre_ = pipeline_from_state(self._extra["y_pre"], state, "y_pre", self._preprocessed_width(1, state))
        width = (getattr(self.x_pre_.steps[0][1], "n_features_in_", None) if self.x_pre_ is not None
                 else self._preprocessed_width(0, state))
        if width is not None and width != self.n_features_in_:
            raise ValueError(f"n_features_in: {self.n_features_in_} in the config, but the arrays of the first "
                             f"view read {width} features")

    def _loaded_modality_count(self) -> int:
        return 2

    def _preprocessed_width(self, which: int, state) -> int:
        """Number of features view ``which`` has after its preprocessing, read from ``state``."""
        return int(state["x_weights" if which == 0 else "y_weights"].shape[0])


@register_model("cca", "linear CCA (chapter, closed form)")
class LinearCCA(CanonicalCorrelation):
    """Plain CCA (``reg=0``), the chapter's definition; see :class:`CanonicalCorrelation`."""


@register_model("rcca", "regularised CCA (canonical ridge between CCA and PLS)")
class RegularizedCCA(CanonicalCorrelation):
    """CCA with canonical ridge ``reg`` (default 0.1); see :class:`CanonicalCorrelation`.

    The Wikipedia bench's cross-validation chose ``reg=0.5`` with ``preprocess="standard"``
    (the ridge then acts on standardised features); ``reg`` stays 0.1 and no preprocessing by
    default so that the model is the textbook canonical ridge.

    The ridge ``c I`` is not scaled to the features: on features of small variance it
    dominates the covariance and the fit is close to PLS.  On Wikipedia's SIFT histograms
    (variance about 2e-4 per feature) the defaults score as PLS does, below the bench's
    choice; on the towers' features of OpenClipart the same defaults score well above a
    standardised fit.  No single default suits both, so
    :func:`jointspace.eval.selection.choose_settings` (what ``jointspace fit`` runs) chooses
    per collection.
    """

    def __init__(self, n_components: int | None = None, reg=0.1, preprocess=None, weight: float = 1.0,
                 modalities=None, random_state: int = 0):
        super().__init__(n_components=n_components, reg=reg, preprocess=preprocess, weight=weight,
                         modalities=modalities, random_state=random_state)


@register_model("pls", "partial least squares (SVD of the cross-covariance)")
class PLS(CanonicalCorrelation):
    """PLS-SVD: directions of maximal covariance, ``reg = 1`` in :class:`CanonicalCorrelation`."""

    def __init__(self, n_components: int | None = None, reg=1.0, preprocess=None, weight: float = 1.0,
                 modalities=None, random_state: int = 0):
        super().__init__(n_components=n_components, reg=reg, preprocess=preprocess, weight=weight,
                         modalities=modalities, random_state=random_state)


#: The plain model under its usual name.
CCA = LinearCCA
