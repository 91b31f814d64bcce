r"""Multiset (generalised) CCA: the chapter's two-view CCA made general to m >= 2 views.

With centred views :math:`X_1..X_m`, covariance blocks :math:`C_{ij} = X_i^\top X_j/(n-1)`
(the chapter's :math:`\Sigma` blocks), the block matrix :math:`C = [C_{ij}]`, its block
diagonal :math:`D = \mathrm{diag}(C_{11}..C_{mm})` and the ridged diagonal
:math:`R = \mathrm{diag}((1-c)C_{ii} + cI)`, two formulations are solved, each as one
symmetric generalised eigenproblem over the stacked weights :math:`w = (w_1; ..; w_m)`:

- **SUMCOR** (sum of correlations, Horst's relaxation): maximise
  :math:`\sum_{i \ne j} w_i^\top C_{ij} w_j` subject to :math:`\sum_i w_i^\top R_i w_i = 1`,
  i.e. :math:`(C - D)\, w = \mu R\, w`;
- **MAXVAR** (Kettenring / Carroll): a shared representation :math:`G` (n x k, orthonormal)
  closest to every view's projection, :math:`G` = top eigenvectors of
  :math:`\sum_i X_i R_i^{-1} X_i^\top`, which in feature space is :math:`C\, w = \lambda R\, w`.

For m = 2 and c = 0 both reduce to the chapter's eigenproblem (:math:`\mu = \rho`,
:math:`\lambda = 1 + \rho`). Each is solved stably by whitening with :math:`R^{-1/2}`
(blockwise symmetric eigen-decomposition) and one symmetric eigen-decomposition.
Each view's weights are scaled so its canonical variables have unit training variance.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._validation import check_choice, check_float, check_int, check_matrix, check_modality_names
from ..data.pairs import Pairs
from ..errors import InputError
from ._cca_solve import _inv_sqrt
from .base import JointModel, register_model
from .cca import check_weight, fit_or_keep
from .preprocess import (build_preprocessor, check_preprocess_keys, fit_preprocessor, pipeline_from_state,
                         pipeline_state)


def block_covariances(views):
    """Means and the full block covariance :math:`C` (sum p_i square) of centred views.

    Parameters
    ----------
    views : list of ndarray, shapes (n, p_i)

    Returns
    -------
    means : list of (p_i,) arrays
    c : ndarray, shape (P, P), P = sum p_i, float64
    """
    n = views[0].shape[0]
    means = [v.mean(axis=0, dtype=np.float64) for v in views]
    z = np.hstack([v - m.astype(v.dtype) for v, m in zip(views, means)])
    return means, (z.T @ z).astype(np.float64) / (n - 1)


def solve_multiset(c: np.ndarray, sizes, n_components: int | None, reg, objective: str = "sumcor", names=None):
    r"""Stacked multiset-CCA weights from the block covariance (whiten + symmetric eigh).

    Parameters
    ----------
    c : ndarray, shape (P, P)
    sizes : list of int
        Feature count p_i of each view (sum P).
    n_components : int
    reg : sequence of float
        Canonical ridge per view in [0, 1].
    objective : {"sumcor", "maxvar"}
    names : list of str, optional
        What messages call each view (e.g. ``"'image'"``).

    Returns
    -------
    w : ndarray, shape (P, k)
        Stacked weights (block i: rows of view i), satisfying the generalised eigenproblem.
    eigenvalues : ndarray, shape (k,)
        :math:`\mu` (sumcor) or :math:`\lambda` (maxvar), descending.
    """
    edges = np.cumsum([0] + list(sizes))
    blocks = [slice(edges[i], edges[i + 1]) for i in range(len(sizes))]
    whit = np.zeros_like(c)
    ranks = []
    for b, r in zip(blocks, reg):
        cii = c[b, b]
        k_i, rank_i = _inv_sqrt((1 - r) * cii + r * np.eye(cii.shape[0]))
        whit[b, b] = k_i
        ranks.append(rank_i)
    # Beyond its rank a view has no further canonical variable: those columns would be
    # round-off rescaled to unit variance (CanonicalCorrelation refuses k > min(p, q) alike).
    names = names or [f"view {i}" for i in range(len(sizes))]
    smallest = int(np.argmin(ranks))
    if n_components is None:  # every component the smallest view holds
        n_components = max(1, ranks[smallest])
    if n_components > ranks[smallest]:
        raise InputError(f"n_components: expected at most {ranks[smallest]} (the rank of {names[smallest]}, "
                         f"the smallest view); got {n_components}")
    a = c.copy()
    if objective == "sumcor":
        for b in blocks:
            a[b, b] = 0.0
    m = whit.T @ a @ whit
    m = (m + m.T) / 2
    top = m.shape[0]
    ev, vec = linalg.eigh(m, subset_by_index=(top - n_components, top - 1))
    ev, vec = ev[::-1], vec[:, ::-1]
    return whit @ vec, ev


def reg_list(reg) -> list | None:
    """The per-view ridges of ``reg`` given as a sequence (a list, tuple or 1-D array), else None."""
    if isinstance(reg, (list, tuple)) or (isinstance(reg, np.ndarray) and reg.ndim == 1):
        return list(reg)
    return None


class MultisetCCA(TransformerMixin, BaseEstimator, JointModel):
    """Multiset CCA over any number of views (SUMCOR or MAXVAR).

    The defaults are cheap (one fit) and close to what the benches choose;
    :func:`jointspace.eval.selection.choose_settings` searches them instead.

    Parameters
    ----------
    n_components : int or None
        Number of components; None (default): every one the smallest view holds (its rank, or
        its width under ridge), e.g. 9 on Wikipedia, whose 10-d topic view has rank 9 (the
        count the Wikipedia bench's cross-validation chose for CCA and supervised CCA);
        ``n_components_`` holds the count fitted.
    objective : {"sumcor", "maxvar"}
    reg : float or sequence of float
        Canonical ridge in [0, 1], one for all views or one per view (a list, tuple or 1-D
        array).
    preprocess : str or dict, optional
        Per-view preprocessing (see :mod:`jointspace.models.preprocess`), keyed by modality.
    weight : float in [0, 16]
        Scale component k by ``max(eigenvalue_k, 0) ** weight`` in ``transform`` / ``encode``
        (default 1: the weighting the benches' cross-validation chose for CCA-family rows; it
        keeps the weak trailing components of ``n_components=None`` from counting fully).
        Read at each projection, so ``set_params(weight=...)`` on a fitted model acts at once,
        as :meth:`derive` does.
    modalities : sequence of str, optional
        Modalities of a ``Pairs`` to use; default: all of its array modalities.
    random_state : int

    Attributes
    ----------
    weights_ : list of ndarray, shapes (p_i, k)
    means_ : list of ndarray
    eigenvalues_ : ndarray, shape (k,)
    modalities_ : tuple of str
    """

    _default_objective = "sumcor"

    def __init__(self, n_components: int | None = None, objective: str | None = None, reg=0.0, preprocess=None,
                 weight: float = 1.0, modalities=None, random_state: int = 0):
        self.n_components = n_components
        self.objective = objective
        self.reg = reg
        self.preprocess = preprocess
        self.weight = weight
        self.modalities = modalities
        self.random_state = random_state

    def _read_views(self, views):
        if self.modalities is not None:
            check_modality_names(self.modalities)
        if isinstance(views, Pairs):
            names = tuple(self.modalities) if self.modalities is not None else tuple(
                m for m in views.modalities if isinstance(views[m], np.ndarray))
            arrays = [views[m] for m in names]
        else:
            if not isinstance(views, (list, tuple)):
                raise InputError(f"views: expected a Pairs or a list of arrays, got {type(views).__name__}")
            arrays = list(views)
            names = (tuple(self.modalities) if self.modalities is not None
                     else tuple(f"view{i}" for i in range(len(arrays))))
            if len(names) != len(arrays):
                raise InputError(f"modalities: expected {len(arrays)} names, got {len(names)}")
        if len(arrays) < 2:
            raise InputError(f"views: multiset CCA needs at least 2 views, got {len(arrays)}")
        out = [check_matrix(a, f"view {nm!r}", min_rows=2, dtype=np.float64) for a, nm in zip(arrays, names)]
        counts = {nm: a.shape[0] for nm, a in zip(names, out)}
        if len(set(counts.values())) != 1:
            raise InputError("views: every view must have the same number of samples; got "
                             + ", ".join(f"{k}={v}" for k, v in counts.items()))
        return names, out

    def _regs(self, m: int):
        reg = reg_list(self.reg)
        reg = [self.reg] * m if reg is None else reg
        if len(reg) != m:
            raise InputError(f"reg: expected one number or {m} numbers in [0, 1], got {self.reg!r}")
        return [check_float(r, "reg", low=0.0, high=1.0) for r in reg]

    def fit(self, views, y=None):
        """Fit on a ``Pairs`` or a list of m arrays (n, p_i); a fit that fails leaves the model as it was.

        Returns
        -------
        self
        """
        return fit_or_keep(self, self._fit, views)

    def _fit(self, views):
        names, arrays = self._read_views(views)
        objective = check_choice(self.objective or self._default_objective, "objective", ("sumcor", "maxvar"))
        regs = self._regs(len(arrays))
        check_weight(self.weight)  # refused before fitting, not at the first encode
        k = None if self.n_components is None else check_int(self.n_components, "n_components", low=1)
        n = arrays[0].shape[0]
        if k is not None and k > n - 1:
            raise InputError(f"n_components: expected at most n_samples - 1 = {n - 1}, got {k} "
                             "(fewer samples than components)")
        check_preprocess_keys(self.preprocess, names)
        self.n_features_in_list_ = [a.shape[1] for a in arrays]
        pres = []
        for i, (nm, a) in enumerate(zip(names, arrays)):
            spec = self.preprocess.get(nm) if isinstance(self.preprocess, dict) else self.preprocess
            pre = build_preprocessor(spec, self.random_state)
            if pre is not None:
                arrays[i] = np.asarray(fit_preprocessor(pre, a, f"modality {nm!r}"), dtype=np.float64)
            pres.append(pre)
        self.pres_ = pres
        means, c = block_covariances(arrays)
        sizes = [a.shape[1] for a in arrays]
        w, ev = solve_multiset(c, sizes, k, regs, objective, [self._view_description(nm) for nm in names])
        w, ev = w[:, :n - 1], ev[:n - 1]  # n_components=None: at most n - 1
        k = self.n_components_ = w.shape[1]
        edges = np.cumsum([0] + sizes)
        weights = []
        for i in range(len(arrays)):
            wi = w[edges[i]:edges[i + 1]]
            var = np.einsum("ik,ij,jk->k", wi, c[edges[i]:edges[i + 1], edges[i]:edges[i + 1]], wi)
            wi = wi / np.sqrt(np.where(var > 0, var, 1.0))
            weights.append(wi)
        # Deterministic signs: the first view's canonical weights have a positive largest entry.
        signs = np.sign(weights[0][np.abs(weights[0]).argmax(axis=0), np.arange(k)])
        signs[signs == 0] = 1
        self.weights_ = [wi * signs for wi in weights]
        self.means_ = means
        self.eigenvalues_ = ev
        self.objective_ = objective
        self.modalities_ = names
        return self

    def _view_description(self, name: str) -> str:
        """What messages call the view ``name``."""
        return repr(name)

    @property
    def _component_scale(self) -> np.ndarray:
        """``max(eigenvalue_k, 0) ** weight`` per component, shape (k,), from the current
        ``weight``: a model given another weight after fit encodes as a saved copy of it does."""
        return self.eigenvalues_.clip(0) ** check_weight(self.weight)

    def _project(self, i: int, data, name: str) -> np.ndarray:
        arr = check_matrix(data, name, dtype=np.float64)
        if arr.shape[1] != self.n_features_in_list_[i]:
            raise InputError(f"{name}: expected {self.n_features_in_list_[i]} features, got {arr.shape[1]}")
        if self.pres_[i] is not None:
            arr = np.asarray(self.pres_[i].transform(arr), dtype=np.float64)
        return ((arr - self.means_[i]) @ self.weights_[i]) * self._component_scale

    def derive(self, n_components: int | None = None, weight: float | None = None) -> "MultisetCCA":
        """A fitted copy keeping the first ``n_components`` components and/or another ``weight``.

        The components are nested (the leading eigenvectors of one eigenproblem), so settings
        of these two parameters can be compared without refitting.
        """
        import copy

        check_is_fitted(self, "weights_")
        out = copy.copy(self)
        if n_components is not None:
            k = check_int(n_components, "n_components", low=1, high=len(self.eigenvalues_))
            out.n_components = out.n_components_ = k
            out.weights_ = [w[:, :k] for w in self.weights_]
            out.eigenvalues_ = self.eigenvalues_[:k]
        if weight is not None:
            out.weight = check_weight(weight)
        return out

    def transform(self, views):
        """Canonical variables of every view: list of (n, k) arrays."""
        check_is_fitted(self, "weights_")
        if isinstance(views, (list, tuple)) and len(views) != len(self.modalities_):
            raise InputError(f"views: expected {len(self.modalities_)} views ({', '.join(self.modalities_)}) "
                             f"as in fit, got {len(views)}")
        names, arrays = self._read_views(views)
        if names != self.modalities_ and not isinstance(views, (list, tuple)):
            raise InputError(f"views: expected modalities {self.modalities_}, got {names}")
        return [self._project(i, a, f"view {nm!r}") for i, (nm, a) in enumerate(zip(self.modalities_, arrays))]

    def fit_transform(self, views, y=None, **fit_params):
        return self.fit(views).transform(views)

    def canonical_correlations(self, views) -> np.ndarray:
        """Pairwise correlations (m, m, k) of the canonical variables on ``views``."""
        zs = [z - z.mean(0) for z in self.transform(views)]
        zs = [z / np.maximum(np.linalg.norm(z, axis=0), 1e-300) for z in zs]
        return np.einsum("ink,jnk->ijk", np.stack(zs), np.stack(zs))

    # -- JointModel ------------------------------------------------------------------------
    def _encode(self, modality, items):
        i = self.modalities_.index(modality)
        return self._project(i, items, f"items ({modality})")

    def get_config(self) -> dict:
        params = self.get_params()
        for key in ("reg", "modalities"):
            if isinstance(params[key], (tuple, np.ndarray)):
                params[key] = np.asarray(params[key]).tolist() if key == "reg" else list(params[key])
        return params

    def _get_extra(self) -> dict:
        metas = [pipeline_state(p, f"pre{i}")[0] for i, p in enumerate(self.pres_)]
        return {"pre": metas, "n_features_in": list(self.n_features_in_list_), "objective": self.objective_}

    def _set_extra(self, extra: dict) -> None:
        self._extra = extra
        self.n_features_in_list_ = list(extra["n_features_in"])
        self.objective_ = extra["objective"]

    def _get_state(self) -> dict:
        state = {"eigenvalues": self.eigenvalues_}
        for i, (w, m, p) in enumerate(zip(self.weights_, self.means_, self.pres_)):
            state[f"weights{i}"], state[f"mean{i}"] = w, m
            state.update(pipeline_state(p, f"pre{i}")[1])
        return state

    def _loaded_modality_count(self) -> int:
        return len(self.weights_)

    def _set_state(self, state) -> None:
        m = len(self.n_features_in_list_)
        self.weights_ = [state[f"weights{i}"] for i in range(m)]
        self.means_ = [state[f"mean{i}"] for i in range(m)]
        self.eigenvalues_ = state["eigenvalues"]
        self.n_components_ = int(self.eigenvalues_.shape[0])
        self.pres_ = [pipeline_from_state(self._extra["pre"][i], state, f"pre{i}", self.weights_[i].shape[0])
                      for i in range(m)]


@register_model("mcca", "multiset CCA for 2+ views, sum of correlations (SUMCOR)")
class SumcorCCA(MultisetCCA):
    """Multiset CCA with the SUMCOR objective (see :class:`MultisetCCA`)."""

    _default_objective = "sumcor"


@register_model("gcca", "generalised CCA for 2+ views, MAXVAR (shared representation)")
class MaxvarCCA(MultisetCCA):
    """Multiset CCA with the MAXVAR objective (see :class:`MultisetCCA`)."""

    _default_objective = "maxvar"
