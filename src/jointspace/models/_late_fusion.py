"""The members of late fusion (:class:`~jointspace.models.fusion.FusionClassifier` with ``mean``,
``product``, ``weighted`` or ``stacking``): one logistic regression per modality, its folds and
its scorer, and the softmax weights of ``weighted`` fusion."""

from __future__ import annotations

import contextlib
import functools
import warnings

import numpy as np

#: the strengths searched by each late-fusion logistic regression (internal 3-fold CV)
LOGISTIC_CS = (0.01, 0.1, 1.0, 10.0)


def late_member(n_classes: int):
    """One modality's classifier in late fusion: standardisation and a logistic regression whose
    strength is chosen from :data:`LOGISTIC_CS` by 3-fold cross-validated log-loss over all
    ``n_classes`` classes (labels 0..n_classes-1; a rare class missing from a fold still counts)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    return GridSearchCV(clf, {"logisticregression__C": list(LOGISTIC_CS)}, cv=_Folds(3),
                        scoring=functools.partial(_neg_log_loss_all_classes, n_classes=int(n_classes)))


class _Folds:
    """scikit-learn's folds for a classifier (``StratifiedKFold``), or plain ``KFold`` where even
    the largest class has fewer rows than folds (a few rows of many classes; the members' scorer
    counts the classes a fold lacks)."""

    def __init__(self, n_splits: int, shuffle: bool = False, seed: int | None = None):
        self.n_splits, self.shuffle, self.seed = int(n_splits), bool(shuffle), seed

    def get_n_splits(self, x=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, x, y=None, groups=None):
        from sklearn.model_selection import KFold, StratifiedKFold

        stratified = y is not None and np.unique(np.asarray(y), return_counts=True)[1].max() >= self.n_splits
        cls = StratifiedKFold if stratified else KFold
        return cls(self.n_splits, shuffle=self.shuffle, random_state=self.seed if self.shuffle else None).split(x, y)


@contextlib.contextmanager
def _rare_classes_expected():
    """Silence scikit-learn's note that a class has fewer members than folds: the members'
    scorer counts such a class on purpose (see :func:`_neg_log_loss_all_classes`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class in y has only", category=UserWarning)
        warnings.filterwarnings("ignore", message="Number of classes in training fold", category=RuntimeWarning)
        yield


def _neg_log_loss_all_classes(estimator, x, y, n_classes: int) -> float:
    """Minus the log-loss of ``estimator`` on ``(x, y)`` over classes 0..n_classes-1.

    A model fitted on a fold that lacks a class has no column for it; that class gets
    probability 0 (clipped by ``log_loss``), so its held-out members cost what a model that
    cannot predict them should, instead of making the score undefined."""
    from sklearn.metrics import log_loss

    proba = estimator.predict_proba(x)
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(estimator.classes_, dtype=int)] = proba
    full /= full.sum(axis=1, keepdims=True)   # float32 rows sum to 1 only within 1e-7
    return -float(log_loss(y, full, labels=np.arange(n_classes)))


def _fit_weights(log_probas: list, y: np.ndarray) -> np.ndarray:
    """Softmax weights w of the modalities maximising the likelihood of the normalised weighted
    geometric mean :math:`p \\propto \\prod_m p_m^{w_m}` on held-out rows."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax, softmax

    stack = np.stack(log_probas)                       # (M, n, C)
    rows = np.arange(len(y))

    def nll(theta):
        w = softmax(theta)
        return -float(np.mean(log_softmax(np.tensordot(w, stack, axes=1), axis=1)[rows, y]))

    res = minimize(nll, np.zeros(len(log_probas)), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6})
    return softmax(res.x)
