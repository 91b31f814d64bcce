"""Validation helpers used at the package's edges (public functions, CLI, HTTP)."""

from __future__ import annotations

import json
import numbers

import numpy as np

from .errors import InputError


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has a visible character: whitespace, control and format characters
    alone (a zero-width space, NUL, a byte-order mark) give a text tower nothing to read."""
    return any(ch.isprintable() and not ch.isspace() for ch in text)


def lone_surrogate(text: str) -> int | None:
    """Where ``text`` holds a lone surrogate (``"\\udce9"``: what a JSON escape or an undecodable
    byte becomes), which UTF-8 cannot encode; None when it holds none."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_matrix(x, name: str, *, min_rows: int = 1, dtype=None, allow_1d: bool = False) -> np.ndarray:
    """Return ``x`` as a finite 2-D float array or raise :class:`InputError`.

    Parameters
    ----------
    x : array-like, shape (n, d)
    name : str
        Argument name used in messages.
    min_rows : int
        Smallest acceptable number of rows.
    dtype : numpy dtype, optional
        Target floating dtype; by default float64 stays float64 and everything else
        becomes float32.
    allow_1d : bool
        Accept a 1-D array as one column ``(n, 1)``.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"{name}: expected a 2-D numeric array, got {type(x).__name__} ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name}: expected a 2-D numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):  # casting would drop the imaginary part
        raise InputError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1 and allow_1d:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array of shape (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise InputError(f"{name}: expected at least {min_rows} rows, got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise InputError(f"{name}: expected at least 1 column, got shape {arr.shape}")
    if dtype is None:
        dtype = np.float64 if arr.dtype == np.float64 else np.float32
    arr = np.asarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{name}: expected finite values, got NaN or Inf (first at row {bad[0]}, column {bad[1]})")
    return arr


def short_json(value, limit: int = 80) -> str:
    """``value`` as JSON (repr when it is not JSON-able), cut to ``limit`` characters, for
    messages about a field read from a file."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_bool(value, name: str) -> bool:
    """Return ``value`` as a bool when it is one (Python's or NumPy's), else raise :class:`InputError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int within ``[low, high]`` or raise :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise InputError(f"{name}: expected an integer >= {low}, got {value}")
    if high is not None and value > high:
        raise InputError(f"{name}: expected an integer <= {high}, got {value}")
    return value


def check_float(value, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """Return ``value`` as a finite float within the bounds or raise :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value <= low if low_open else value < low):
        raise InputError(f"{name}: expected a number {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise InputError(f"{name}: expected a number <= {high}, got {value}")
    return value


#: the largest learning rate taken: far above it the optimiser's step (Adam divides the rate by
#: 1 - beta1^t, as small as 0.1) overflows float32 and torch stops with a RuntimeError, and any
#: rate near it diverges anyway
MAX_LR = 1e30


def check_lr(value, name: str = "lr") -> float:
    """``value`` as a learning rate in (0, :data:`MAX_LR`], or :class:`InputError` naming ``name``."""
    value = check_float(value, name, low=0.0, low_open=True)
    if value > MAX_LR:
        raise InputError(f"{name}: expected a learning rate <= {MAX_LR:g}, got {value:g}")
    return value


def check_distinct(values, name: str, what: str = "modality") -> list:
    """``values`` as a list, refusing one given more than once (a repeated modality would fuse
    or fit a modality with itself), naming ``name`` and each repeated value."""
    values = list(values)
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        shown = ", ".join(map(repr, dict.fromkeys(repeated)))
        raise InputError(f"{name}: expected each {what} once, got {shown} more than once in {values!r}")
    return values


def check_modality_names(value, name: str = "modalities") -> tuple:
    """``value``, a list of modality names, as a tuple: each name a string, given once.

    A bare string is refused rather than read one character per modality (``"ab"`` would be
    the modalities ``'a'`` and ``'b'``).
    """
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InputError(f"{name}: expected a list of modality names, e.g. ['image', 'text'], got {value!r}")
    names = tuple(value)
    bad = [v for v in names if not isinstance(v, str)]
    if bad:
        raise InputError(f"{name}: expected modality names (strings), got {bad[0]!r} in {list(names)!r}")
    check_distinct(names, name)
    return names


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` if it is one of ``choices`` or raise :class:`InputError`."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"{name}: expected one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_params(what: str, factory, params: dict) -> None:
    """Refuse keyword arguments ``factory`` does not take, or required ones left out, naming
    ``what`` (e.g. ``"model 'clip'"``) and the parameters it does take.

    Nothing is checked when ``factory`` accepts ``**kwargs`` or has no readable signature.
    """
    import inspect

    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    ps = [p for p in sig.parameters.values() if p.name != "self"]
    if any(p.kind is p.VAR_KEYWORD for p in ps):
        return
    names = [p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in params if k not in names]
    if unknown:
        raise InputError(f"{what}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; it takes {', '.join(names) or 'none'}")
    missing = [p.name for p in ps if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               and p.name not in params]
    if missing:
        raise InputError(f"{what}: needs {', '.join(missing)} (e.g. as a parameter: "
                         f"{', '.join(f'{m}=...' for m in missing)})")
