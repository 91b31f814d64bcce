"""What a representation carries: cross-validated linear-probe accuracy of an attribute.

A probe is a logistic regression on standardised features, scored by stratified k-fold
cross-validation on one set of items (each item is predicted by a probe that never saw it).
Where items come in groups that share more than the attribute (the clips of one speaker, the
copies of one clip), ``groups`` keeps each group within one fold, so the probe is scored on
groups it never saw: without it, an accent probe can score by recognising the speaker.
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


def probe_accuracy(z, labels, *, groups=None, folds: int = 5, seed: int = 0, max_iter: int = 2000) -> dict:
    """Cross-validated linear-probe accuracy of ``labels`` from ``z``.

    Parameters
    ----------
    z : array, shape (n, d)
    labels : sequence, shape (n,)
        The attribute: numbers or strings, not both (``1`` and ``"1"`` are not merged), no
        None or NaN; every value needs at least ``folds`` items.
    groups : sequence, shape (n,), optional
        A group per row (numbers or strings, e.g. the speaker).  Each group is kept within one
        fold (scikit-learn's ``StratifiedGroupKFold``); at least ``folds`` groups.
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
        ``above_chance`` (accuracy - chance), ``classes`` (number of values), ``groups``
        (number of groups, or None).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
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
    n_groups = None
    if groups is None:
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, codes))
    else:
        if np.ndim(groups) != 1 or len(groups) != len(x):
            raise InputError(f"groups: expected one group per row of z ({len(x)}), got shape {np.shape(groups)}")
        group_codes = np.unique(read_keys(groups, "groups"), return_inverse=True)[1]
        n_groups = int(group_codes.max()) + 1
        if n_groups < folds:
            raise InputError(f"groups: expected at least folds={folds} distinct groups, got {n_groups}")
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(cv.split(x, codes, group_codes))
        if any(len(np.unique(codes[train_rows])) < 2 for train_rows, _ in splits):
            raise InputError(f"groups: a fold's training groups hold one value of labels only; "
                             f"give more groups per value ({n_groups} groups, {len(values)} values)")
    pred = cross_val_predict(clf, x, codes, cv=splits)   # the folds drawn once, checked above
    accuracy = float(np.mean(pred == codes))
    chance = float(counts.max() / counts.sum())
    return {"accuracy": accuracy, "chance": chance, "above_chance": accuracy - chance, "classes": int(len(values)),
            "groups": n_groups}


__all__ = ["probe_accuracy"]
