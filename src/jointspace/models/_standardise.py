"""The per-feature spread the learned models standardise their inputs by.

A feature constant in the training rows keeps its units, as scikit-learn's ``StandardScaler``
does: dividing by a spread of ~0 would blow up any other value the feature takes later.
"""

from __future__ import annotations

import numpy as np

#: below this standard deviation a training feature counts as constant and is not rescaled
CONSTANT_STD = 1e-6


def feature_scale(x: np.ndarray) -> np.ndarray:
    """Standard deviation of each column of ``x`` (n, d), 1 where the column is constant.

    Parameters
    ----------
    x : ndarray, shape (n, d)
        Training features.

    Returns
    -------
    ndarray, shape (d,)
        The divisor of each feature, in ``x``'s dtype.
    """
    std = np.asarray(x).std(0)
    return np.where(std > CONSTANT_STD, std, 1.0).astype(std.dtype)
