"""The two views of the scikit-learn style ``fit(X, y)`` / ``transform(X, y)`` of the CCA family.

``X`` goes through scikit-learn's ``validate_data`` (it records ``n_features_in_`` and the
feature names of a DataFrame, and compares them on ``transform``); its ValueErrors come back
as :class:`~jointspace.errors.InputError` naming ``X``.  ``y`` is checked like a modality of
a ``Pairs``.  The wording keeps the phrases scikit-learn's estimator checks look for ("1
sample(s)", "0 feature(s)", "Reshape your data", "Complex data not supported", "NaN").
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import validate_data

from .._validation import check_matrix, short_json
from ..errors import InputError


def _named(name: str, exc: Exception) -> InputError:
    msg = " ".join(str(exc).split())
    return InputError(msg if msg.startswith(f"{name} ") else f"{name}: {msg}")


def check_x(estimator, X, *, reset: bool, min_rows: int = 1, dtype=None) -> np.ndarray:
    """``X`` of ``fit`` (``reset=True``) or ``transform`` as a finite 2-D float array.

    Parameters
    ----------
    estimator : BaseEstimator
    X : array-like, shape (n, p)
    reset : bool
        Record ``n_features_in_`` (fit) rather than compare with it (transform).
    min_rows : int
    dtype : numpy dtype, optional
        Default: float32 stays float32, everything else becomes float64.

    Raises
    ------
    InputError
        Naming ``X``: not 2-D, complex, not numbers, too few rows, no columns, NaN or Inf,
        or (``reset=False``) another width or other feature names than in ``fit``.
    """
    if not hasattr(X, "tocsr"):  # sparse matrices: validate_data says what it takes
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError):  # ragged nested lists: validate_data says so below
            arr = None
        if arr is not None and arr.ndim != 2:
            raise InputError(f"X: expected a 2-D array of shape (n_samples, n_features), got shape {arr.shape}. "
                             "Reshape your data: X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one sample")
        if arr is not None and np.issubdtype(arr.dtype, np.complexfloating):
            raise InputError(f"X: expected real numbers, got dtype {arr.dtype} (Complex data not supported)")
    try:
        arr = validate_data(estimator, X, reset=reset, dtype=dtype or [np.float64, np.float32],
                            ensure_min_samples=min_rows, ensure_all_finite=False)
    except ValueError as exc:  # a TypeError (a dict among the numbers) stays one
        raise _named("X", exc) from None
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"X: expected finite values, got NaN or Inf (first at row {row}, column {col})")
    return arr


def check_y(y, n_rows: int, *, dtype=None) -> np.ndarray:
    """The second view ``y`` of ``fit(X, y)``: a finite 2-D float array of ``n_rows`` rows
    (a 1-D ``y`` is one feature).  Booleans and integers become float64, as in ``X``."""
    if dtype is None:
        dtype = np.float32 if getattr(y, "dtype", None) == np.float32 else np.float64
    if getattr(y, "dtype", None) == object:  # numbers held as Python objects, as scikit-learn takes them
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"y: expected numbers, got an object array with other values "
                             f"(first row {short_json(np.asarray(y)[:1].tolist())})") from None
    arr = check_matrix(y, "y", allow_1d=True, dtype=dtype)
    if arr.shape[0] != n_rows:
        raise InputError(f"y: expected {n_rows} rows to match X, got {arr.shape[0]}")
    return arr
