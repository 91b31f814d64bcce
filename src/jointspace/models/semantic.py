r"""Semantic matching: every modality mapped to the space of class probabilities.

Rasiwasia et al. (ACM MM 2010) retrieve across modalities by comparing the posterior class
probabilities :math:`P(c \mid x)` that a per-modality classifier gives each item:

- **SM** (semantic matching, ``"sm"``): a multinomial logistic regression on each modality's
  own features;
- **SCM** (semantic correlation matching, ``"scm"``): the same on top of a joint space (the
  canonical variables of CCA, kernel CCA, multiset CCA, ...: any registered model), so each
  classifier sees features that are already correlated across modalities;
- **supervised CCA** (``"scca"``): no classifier, but the labels enter the joint space
  directly, as an extra one-hot view of multiset CCA (the three-view CCA of Gong, Ke, Isard
  and Lazebnik, IJCV 2014); with two modalities and labels it is SUMCOR over
  (modality 1, modality 2, labels).

``encode`` returns the centred probability vector :math:`p - 1/C`, so the cosine of two
encodings is the normalised (Pearson) correlation of the probability vectors, the similarity
the semantic-matching papers use.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from .._validation import check_float, check_int, check_matrix, check_modality_names
from ..data.pairs import Pairs
from ..errors import InputError
from .base import MODELS, JointModel, create_model, list_models, register_model
from .cca import fit_or_keep
from .multiset_cca import MultisetCCA, reg_list
from .preprocess import (build_preprocessor, check_preprocess_keys, fit_preprocessor, pipeline_from_state,
                         pipeline_state)

_LABELS = "__labels__"


def _single_labels(pairs: Pairs, model: str):
    """The classes and each sample's class index of ``pairs``, refused in ``model``'s name
    unless every sample has one class label."""
    if not isinstance(pairs, Pairs):
        raise InputError(f"pairs: expected a Pairs with labels, got {type(pairs).__name__}")
    if pairs.labels is None or pairs.labels.ndim != 1:
        raise InputError(f"pairs: {model} needs one class label per sample (labels of shape (N,)); "
                         "got " + ("no labels" if pairs.labels is None else f"labels of shape {pairs.labels.shape}"))
    classes, y = np.unique(pairs.labels, return_inverse=True)
    if classes.size < 2:
        raise InputError(f"pairs: expected at least 2 classes, got {classes.size}")
    return classes, y


def _array_modalities(pairs: Pairs, modalities) -> tuple[str, ...]:
    if modalities is not None:
        names = check_modality_names(modalities)
        for m in names:
            pairs[m]
        return names
    names = tuple(m for m in pairs.modalities if isinstance(pairs[m], np.ndarray))
    if len(names) < 2:
        raise InputError(f"modalities: expected at least two array modalities, got {names}")
    return names


def class_probabilities(z: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Logistic-regression posteriors (n, C) from features z (n, d), coef (C, d) or (1, d)."""
    logits = z @ coef.T + intercept
    if coef.shape[0] == 1:
        logits = np.hstack([np.zeros_like(logits), logits])
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


class _SemanticBase(BaseEstimator, JointModel):
    """Per-modality logistic regressions on features given by ``_features``."""

    def fit(self, pairs: Pairs, y=None):
        """Fit on labelled pairs (``_fit`` of the model); a fit that fails leaves the model as it was.

        Returns
        -------
        self
        """
        return fit_or_keep(self, self._fit, pairs)

    def _classifier_settings(self) -> tuple[float, int]:
        """``C`` and ``max_iter``, checked (before any joint space is learnt for them)."""
        return check_float(self.C, "C", low=0.0, low_open=True), check_int(self.max_iter, "max_iter", low=1)

    def _fit_classifiers(self, feats: dict, y: np.ndarray):
        c, max_iter = self._classifier_settings()
        self.coef_, self.intercept_ = {}, {}
        for m, z in feats.items():
            clf = LogisticRegression(C=c, max_iter=max_iter).fit(z, y)
            self.coef_[m], self.intercept_[m] = clf.coef_, clf.intercept_

    def predict_proba(self, modality: str, items) -> np.ndarray:
        """Class posteriors (n, C) of items of one modality (classes in ``classes_`` order)."""
        self._check_fitted()
        if modality not in self.modalities_:
            raise InputError(f"modality: this model knows {', '.join(self.modalities_)}; got {modality!r}")
        return class_probabilities(self._features(modality, items), self.coef_[modality], self.intercept_[modality])

    def _encode(self, modality, items):
        p = self.predict_proba(modality, items)
        return p - 1.0 / p.shape[1]

    def _classifier_state(self) -> dict:
        # safetensors holds numbers only: string class names travel in the JSON extra
        state = {} if self._string_classes() else {"classes": self.classes_}
        for m in self.modalities_:
            state[f"coef.{m}"], state[f"intercept.{m}"] = self.coef_[m], self.intercept_[m]
        return state

    def _string_classes(self) -> bool:
        return np.asarray(self.classes_).dtype.kind in "USO"

    def _classes_extra(self) -> dict:
        """``{"class_names": [...]}`` when the labels were strings, else nothing."""
        return {"class_names": [str(c) for c in self.classes_]} if self._string_classes() else {}

    def _set_classifier_state(self, state, modalities) -> None:
        names = self._extra.get("class_names")
        self.classes_ = np.array(names) if names is not None else state["classes"]
        self.coef_ = {m: state[f"coef.{m}"] for m in modalities}
        self.intercept_ = {m: state[f"intercept.{m}"] for m in modalities}

    def get_config(self) -> dict:
        params = self.get_params()
        if isinstance(params.get("modalities"), tuple):
            params["modalities"] = list(params["modalities"])
        return params


@register_model("sm", "semantic matching: per-modality logistic regression onto class probabilities")
class SemanticMatching(_SemanticBase):
    """Semantic matching (SM): each modality's own features -> class probabilities.

    Parameters
    ----------
    C : float
        Inverse L2 strength of the logistic regressions.
    preprocess : str or dict, optional
        Per-modality preprocessing (see :mod:`jointspace.models.preprocess`).
    modalities : sequence of str, optional
        Default: every array modality of the training pairs.
    max_iter : int
        Iterations of each logistic regression's solver (scikit-learn's ``max_iter``).
    random_state : int
        Seed of the randomised preprocessing steps (ICA).
    """

    def __init__(self, C: float = 1.0, preprocess=None, modalities=None, max_iter: int = 2000, random_state: int = 0):
        self.C = C
        self.preprocess = preprocess
        self.modalities = modalities
        self.max_iter = max_iter
        self.random_state = random_state

    def _fit(self, pairs: Pairs):
        """Fit one classifier per modality on labelled pairs; returns self."""
        classes, labels = _single_labels(pairs, "semantic matching (sm)")
        names = _array_modalities(pairs, self.modalities)
        check_preprocess_keys(self.preprocess, names)
        self.pres_, feats = {}, {}
        for m in names:
            x = check_matrix(pairs[m], f"modality {m!r}", min_rows=2, dtype=np.float64)
            spec = self.preprocess.get(m) if isinstance(self.preprocess, dict) else self.preprocess
            pre = build_preprocessor(spec, self.random_state)
            feats[m] = (np.asarray(fit_preprocessor(pre, x, f"modality {m!r}"), dtype=np.float64)
                        if pre is not None else x)
            self.pres_[m] = pre
        self.n_features_ = {m: np.asarray(pairs[m]).shape[1] for m in names}
        self.classes_ = classes
        self._fit_classifiers(feats, labels)
        self.modalities_ = names
        return self

    def _features(self, modality, items):
        x = check_matrix(items, f"items ({modality})", dtype=np.float64)
        if x.shape[1] != self.n_features_[modality]:
            raise InputError(f"items ({modality}): expected {self.n_features_[modality]} features, got {x.shape[1]}")
        pre = self.pres_[modality]
        return np.asarray(pre.transform(x), dtype=np.float64) if pre is not None else x

    def _get_extra(self) -> dict:
        return {"n_features": self.n_features_,
                "pre": {m: pipeline_state(p, f"pre.{m}")[0] for m, p in self.pres_.items()},
                **self._classes_extra()}

    def _set_extra(self, extra: dict) -> None:
        self._extra = extra
        dims = extra["n_features"]
        if not (isinstance(dims, dict) and dims
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims.values())):
            raise ValueError(f"n_features: expected a feature count per modality, got {dims!r}")
        self.n_features_ = dims

    def _get_state(self) -> dict:
        state = self._classifier_state()
        for m, p in self.pres_.items():
            state.update(pipeline_state(p, f"pre.{m}")[1])
        return state

    def _set_state(self, state) -> None:
        mods = list(self.n_features_)
        self._set_classifier_state(state, mods)
        self.pres_ = {m: pipeline_from_state(self._extra["pre"][m], state, f"pre.{m}", self.coef_[m].shape[1])
                      for m in mods}


@register_model("scm", "semantic correlation matching: a joint space, then class probabilities per modality")
class SemanticCorrelationMatching(_SemanticBase):
    """Semantic correlation matching (SCM): joint-space features -> class probabilities.

    Parameters
    ----------
    base : str
        Registered model that learns the joint space ("cca", "rcca", "kcca", "mcca", "scca", ...).
    base_params : dict, optional
        Its constructor arguments, e.g. ``{"n_components": 9}``.
    C : float
        Inverse L2 strength of the logistic regressions.
    max_iter : int

    Attributes
    ----------
    base_ : JointModel
        The fitted joint model; the classifiers see ``base_.encode(m, items, normalize=False)``.
    """

    def __init__(self, base: str = "cca", base_params=None, C: float = 1.0, max_iter: int = 2000):
        self.base = base
        self.base_params = base_params
        self.C = C
        self.max_iter = max_iter

    def _fit(self, pairs: Pairs):
        """Fit the joint model, then one classifier per modality; returns self."""
        classes, labels = _single_labels(pairs, "semantic correlation matching (scm)")
        self._classifier_settings()   # refused before the joint space is fitted, not after
        if self.base in ("scm", "sm"):
            raise InputError(f"base: expected a joint-space model, got {self.base!r}")
        known = list_models()
        if not isinstance(self.base, str) or self.base not in known:
            joint = [m for m in known if m not in ("scm", "sm")]
            raise InputError(f"base: expected a registered joint-space model ({', '.join(joint)}), got {self.base!r}")
        if not isinstance(self.base_params, (dict, type(None))):
            raise InputError(f"base_params: expected a dict of {self.base!r} parameters, got "
                             f"{type(self.base_params).__name__} {self.base_params!r}")
        self.base_ = create_model(self.base, **(self.base_params or {})).fit(pairs)
        names = tuple(self.base_.modalities_)
        feats = {m: self.base_.encode(m, pairs[m], normalize=False).astype(np.float64) for m in names}
        self.classes_ = classes
        self._fit_classifiers(feats, labels)
        self.modalities_ = names
        return self

    def _features(self, modality, items):
        return self.base_.encode(modality, items, normalize=False).astype(np.float64)

    def _get_extra(self) -> dict:
        b = self.base_
        return {"base": {"model": b.model_name, "params": b.get_config(), "modalities": list(b.modalities_),
                         "extra": b._get_extra()}, **self._classes_extra()}

    def _set_extra(self, extra: dict) -> None:
        self._extra = extra
        info = extra["base"]
        self.base_ = MODELS.get(info["model"])(**info["params"])
        self.base_._set_extra(info["extra"])
        self.base_.modalities_ = tuple(info["modalities"])

    def _get_state(self) -> dict:
        state = self._classifier_state()
        state.update({f"base.{k}": v for k, v in self.base_._get_state().items()})
        return state

    def _set_state(self, state) -> None:
        self._set_classifier_state(state, self.base_.modalities_)
        self.base_._set_state({k[5:]: v for k, v in state.items() if k.startswith("base.")})


@register_model("scca", "supervised CCA: multiset CCA with the one-hot labels as an extra view")
class SupervisedCCA(MultisetCCA):
    """Multiset CCA over the modalities plus the one-hot class labels as one more view.

    The label view is used only in ``fit``; ``encode`` maps each modality, and ``classes_``
    (saved with the model) lists the classes in the order of the one-hot columns. Parameters as in
    :class:`~jointspace.models.multiset_cca.MultisetCCA` (``objective`` default "sumcor");
    ``reg`` applies to the modalities (the label view is not ridged unless ``reg`` lists a
    value for it too), and so does ``preprocess`` (the label view is never preprocessed);
    ``label_scale`` multiplies the one-hot view; CCA does not depend on a view's scale, so it
    changes the fit only where ``reg`` ridges the label view too.  By default every
    component the views hold (at most the number of classes less one) weighted by its
    eigenvalue (``weight=1``); the Wikipedia bench's cross-validation chose 9 components (10
    classes), with ``weight=4`` on Hellinger-mapped image histograms.
    """

    _default_objective = "sumcor"

    def __init__(self, n_components: int | None = None, objective: str | None = None, reg=0.0, preprocess=None,
                 weight: float = 1.0, modalities=None, label_scale: float = 1.0, random_state: int = 0):
        super().__init__(n_components=n_components, objective=objective, reg=reg, preprocess=preprocess,
                         weight=weight, modalities=modalities, random_state=random_state)
        self.label_scale = label_scale

    def fit(self, pairs, y=None):
        """Fit on labelled ``Pairs``; returns self."""
        classes, labels = _single_labels(pairs, "supervised CCA (scca)")
        names = _array_modalities(pairs, self.modalities)
        check_preprocess_keys(self.preprocess, names)   # before the label view joins them
        onehot = np.eye(classes.size)[labels] * check_float(self.label_scale, "label_scale", low=0.0, low_open=True)
        views = Pairs({**{m: pairs[m] for m in names}, _LABELS: onehot})
        reg = reg_list(self.reg)
        reg = [self.reg] * len(names) if reg is None else reg
        if len(reg) == len(names):
            reg = reg + [0.0]  # the label view is not ridged (its covariance's null space is dropped)
        # a preprocessing given for every modality is not for the label view (pca:N would cut it)
        pre = self.preprocess if isinstance(self.preprocess, dict) else {m: self.preprocess for m in names}
        saved = self.modalities, self.reg, self.preprocess
        try:
            self.modalities, self.reg, self.preprocess = names + (_LABELS,), reg, pre
            super().fit(views)
        finally:
            self.modalities, self.reg, self.preprocess = saved
        self.classes_ = classes
        self.modalities_ = names  # the label view (last) is used in fit only
        return self

    def _view_description(self, name: str) -> str:
        return "the one-hot class labels" if name == _LABELS else repr(name)

    def _get_extra(self) -> dict:
        classes = [c.item() if isinstance(c, np.generic) else c for c in self.classes_]
        return {**super()._get_extra(), "classes": classes}

    def _set_extra(self, extra: dict) -> None:
        super()._set_extra(extra)
        classes = extra.get("classes")   # absent from folders saved before it was recorded
        if classes is not None:
            if not isinstance(classes, list) or len(classes) < 2:
                raise ValueError(f"classes: expected the list of class labels, got {classes!r}")
            self.classes_ = np.array(classes)

    def _loaded_modality_count(self) -> int:
        return len(self.weights_) - 1  # the label view has weights but no modality
