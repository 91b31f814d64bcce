"""What a representation carries: cross-validated linear-probe accuracy of an attribute.

A probe is a logistic regression on standardised features, scored by stratified k-fold
cross-validation on one set of items (each item is predicted by a probe that never saw it).
Its accuracy is reported with the chance level (the share of the most frequent value, what a
constant guess scores) and the gain above chance, so that attributes with different numbers
of values compare: content (the word, the class) from the shared part, style (the speaker's
accent) from the private part.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int, check_matrix
from ..data.labels import read_keys
from ..errors import InputError


def probe_accuracy(z, labels, *, folds: int = 5, seed: int = 0, max_iter: int = 2000) -> dict:
    """Cross-validated linear-probe accuracy of ``labels`` from ``z``.

    Parameters
    ----------
    z : array, shape (n, d)
    labels : sequence, shape (n,)
        The attribute: numbers or strings, not both (``1`` and ``"1"`` are not merged), no
        None or NaN; every value needs at least ``folds`` items.
    folds : int
        Stratified folds (>= 2).
    seed : int
        Shuffling of the folds, 0 to 2**32 - 1.
    max_iter : int
        Iterations of the logistic regression's solver (>= 1).

    Returns
    -------
    dict
        ``accuracy`` (mean over the items), ``chance`` (share of the most frequent value),
        ``above_chance`` (accuracy - chance), ``classes`` (number of values).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = check_matrix(z, "z", min_rows=2, dtype=np.float64)
    if np.ndim(labels) != 1 or len(labels) != len(x):
        raise InputError(f"labels: expected one label per row of z ({len(x)}), got shape {np.shape(labels)}")
    y = read_keys(labels, "labels")
    folds = check_int(folds, "folds", low=2)
    seed = check_int(seed, "seed", low=0, high=2**32 - 1)
    max_iter = check_int(max_iter, "max_iter", low=1)
    values, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    if len(values) < 2:
        raise InputError(f"labels: a probe needs at least two distinct values, got {values.tolist()}")
    if counts.min() < folds:
        raise InputError(f"labels: every value needs at least folds={folds} items; "
                         f"{values[np.argmin(counts)].item()!r} has {counts.min()}")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(clf, x, codes, cv=cv)
    accuracy = float(np.mean(pred == codes))
    chance = float(counts.max() / counts.sum())
    return {"accuracy": accuracy, "chance": chance, "above_chance": accuracy - chance, "classes": int(len(values))}


__all__ = ["probe_accuracy"]
