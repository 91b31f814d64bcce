"""Per-modality preprocessing built from scikit-learn steps (the chapter's component analysis).

A step list is written as a short string, steps separated by commas::

    "standard"            StandardScaler
    "sqrt,standard"       element-wise square root (Hellinger map for histograms), then scaling
    "pca:64"              PCA to 64 components (``pca:0.95`` keeps 95 % of the variance)
    "pca:64:whiten"       whitened PCA
    "ica:16"              FastICA to 16 components
    "l2"                  each row scaled to unit length

The steps are scikit-learn's own estimators; only their fitted arrays are saved (as
safetensors, through :func:`estimator_state`), never pickles.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA, FastICA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

from .._validation import check_int, short_json
from ..errors import InputError

_CLASSES = {"StandardScaler": StandardScaler, "PCA": PCA, "FastICA": FastICA, "Normalizer": Normalizer}


def _sqrt(x):
    if np.any(x < 0):
        raise InputError("preprocess 'sqrt': expected non-negative features (histograms), got negative values")
    return np.sqrt(x)


def _step(token: str, seed: int):
    parts = token.strip().split(":")
    kind = parts[0].lower()
    try:
        if kind == "standard":
            return StandardScaler()
        if kind == "l2":
            return Normalizer()
        if kind == "sqrt":
            return FunctionTransformer(_sqrt, feature_names_out="one-to-one")
        if kind == "pca":
            n = float(parts[1]) if "." in parts[1] else int(parts[1])
            if (isinstance(n, int) and n < 1) or (isinstance(n, float) and not 0 < n < 1):
                raise InputError(f"preprocess: step {token.strip()!r}: expected pca:N with N a whole number >= 1 "
                                 f"(components) or a fraction in (0, 1) (of the variance), got {parts[1]!r}")
            return PCA(n_components=n, whiten="whiten" in parts[2:], random_state=seed)
        if kind == "ica":
            n = int(parts[1])
            if n < 1:
                raise InputError(f"preprocess: step {token.strip()!r}: expected ica:N with N a whole number >= 1 "
                                 f"(components), got {parts[1]!r}")
            return FastICA(n_components=n, random_state=seed, whiten="unit-variance", max_iter=500)
    except (IndexError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
    raise InputError(f"preprocess: cannot read step {token!r}; expected standard, l2, sqrt, pca:N[:whiten] or ica:N")


def build_preprocessor(spec: str | None, seed: int = 0) -> Pipeline | None:
    """A scikit-learn ``Pipeline`` from a step string, or None for an empty spec.

    ``seed`` (the model's ``random_state``: an int in [0, 2**32 - 1], None or a NumPy
    ``RandomState``) seeds the PCA and ICA steps; anything else raises :class:`InputError`
    naming ``random_state``.
    """
    if spec is None or not str(spec).strip():
        return None
    if seed is not None and not isinstance(seed, np.random.RandomState):
        check_int(seed, "random_state", low=0, high=2**32 - 1)
    steps = [(f"{i}_{tok.split(':')[0]}", _step(tok, seed)) for i, tok in enumerate(str(spec).split(","))]
    return Pipeline(steps)


def check_preprocess_keys(preprocess, names) -> None:
    """InputError naming ``preprocess`` when it is a dict with a key that is none of the
    modalities ``names`` fitted (a misspelt modality would otherwise go unpreprocessed)."""
    if isinstance(preprocess, dict):
        unknown = [k for k in preprocess if k not in names]
        if unknown:
            raise InputError(f"preprocess: expected steps keyed by the modalities fitted ({', '.join(names)}), got "
                             f"the key(s) {', '.join(map(repr, unknown))}")


def fit_preprocessor(pipe: Pipeline, x: np.ndarray, view: str) -> np.ndarray:
    """Fit ``pipe`` on ``x`` (n, p) and return ``x`` transformed.

    A PCA or ICA step asking for more components than its input holds (PCA: at most
    ``min(n_samples, n_features)``, ICA: at most ``n_features``) raises :class:`InputError`
    naming ``preprocess``, the step and ``view``, before scikit-learn is asked.
    """
    n, width = x.shape
    for _, step in pipe.steps:
        if not isinstance(step, (PCA, FastICA)):
            continue
        k = step.n_components
        if not isinstance(k, int):  # a fraction of the variance: the width is known only after fitting
            width = None
            continue
        pca = isinstance(step, PCA)
        limit = None if width is None else (min(n, width) if pca else width)
        if limit is not None and k > limit:
            what = f"min(n_samples={n}, n_features={width})" if pca else "n_features"
            raise InputError(f"preprocess: step '{'pca' if pca else 'ica'}:{k}' of {view}: expected at most "
                             f"{what} = {limit} components, got {k}")
        width = k
    return pipe.fit_transform(x)


def estimator_state(est, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Fitted state of one scikit-learn step: JSON part and array part (keys ``prefix.attr``)."""
    meta = {"class": type(est).__name__, "params": {}, "scalars": {}}
    if isinstance(est, FunctionTransformer):
        meta["class"] = "sqrt"
        meta["scalars"]["n_features_in_"] = int(est.n_features_in_)
        return meta, {}
    meta["params"] = {k: v for k, v in est.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))}
    arrays = {}
    for attr, value in vars(est).items():
        if not attr.endswith("_") or attr.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[f"{prefix}.{attr}"] = value
        elif isinstance(value, (np.generic, int, float)) and not isinstance(value, bool):
            meta["scalars"][attr] = value.item() if isinstance(value, np.generic) else value
    return meta, arrays


def _fitted_arrays(cls_name: str, params: dict) -> tuple[str, ...]:
    """The arrays a fitted step of ``cls_name`` needs to transform."""
    if cls_name == "PCA":
        return ("components_", "mean_") + (("explained_variance_",) if params.get("whiten") else ())
    if cls_name == "FastICA":
        return ("components_",) + (("mean_",) if params.get("whiten", True) else ())
    if cls_name == "StandardScaler":
        return (("mean_",) if params.get("with_mean", True) else ()) + (("scale_",) if params.get("with_std", True)
                                                                          else ())
    return ()


def _check_meta(meta, where: str) -> None:
    """Refuse a saved step description that :func:`estimator_state` cannot have written
    (ValueError: the loader names the file)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("class"), str) or not isinstance(meta.get("name"), str):
        raise ValueError(f"{where}: expected an object with a 'class' and a 'name', got {short_json(meta)}")
    if meta["class"] != "sqrt" and meta["class"] not in _CLASSES:
        raise ValueError(f"{where}: unknown step class {meta['class']!r}; expected sqrt or "
                         f"{', '.join(_CLASSES)}")
    for key in ("params", "scalars"):
        if not isinstance(meta.get(key, {}), dict):
            raise ValueError(f"{where}: field {key!r} must be an object, got {short_json(meta[key])}")


def estimator_from_state(meta: dict, arrays: dict[str, np.ndarray], prefix: str, width: int | None = None):
    """Rebuild a fitted step saved by :func:`estimator_state`.

    ``width`` is the number of features the step reads, used for the ``sqrt`` step when its
    saved state does not record it (folders written before it did).

    Raises
    ------
    ValueError
        The description is malformed, or an array the step needs is not in ``arrays``.
    """
    _check_meta(meta, prefix)
    scalars = meta.get("scalars", {})
    if meta["class"] == "sqrt":
        n = scalars.get("n_features_in_", width)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{prefix}: the 'sqrt' step has no valid feature count, got {n!r}")
        return FunctionTransformer(_sqrt, feature_names_out="one-to-one").fit(np.zeros((1, n)))
    params = meta.get("params", {})
    est = _CLASSES[meta["class"]](**params)
    for attr, value in scalars.items():
        setattr(est, attr, value)
    head = prefix + "."
    for key, value in arrays.items():
        if key.startswith(head):
            setattr(est, key[len(head):], value)
    missing = [a for a in _fitted_arrays(meta["class"], params) if not isinstance(getattr(est, a, None), np.ndarray)]
    if missing:
        raise ValueError(f"{prefix}: the {meta['class']} step has no array "
                         f"{', '.join(repr(head + a) for a in missing)}")
    return est


def pipeline_state(pipe: Pipeline | None, prefix: str) -> tuple[list, dict[str, np.ndarray]]:
    """State of a fitted preprocessing pipeline (``[]`` for none)."""
    if pipe is None:
        return [], {}
    metas, arrays = [], {}
    for i, (name, est) in enumerate(pipe.steps):
        meta, arr = estimator_state(est, f"{prefix}.{i}")
        meta["name"] = name
        metas.append(meta)
        arrays.update(arr)
    return metas, arrays


def pipeline_from_state(metas: list, arrays: dict[str, np.ndarray], prefix: str,
                        width_out: int | None = None) -> Pipeline | None:
    """Inverse of :func:`pipeline_state`.

    ``width_out`` is the number of features the pipeline outputs (the width the model's
    weights read); with the feature counts of the later steps it gives the width of a
    ``sqrt`` step (which keeps the width) saved without its own count.
    """
    if not isinstance(metas, list):
        raise ValueError(f"{prefix}: expected a list of preprocessing steps, got {short_json(metas)}")
    if not metas:
        return None
    steps = [None] * len(metas)
    width = width_out
    for i in range(len(metas) - 1, -1, -1):
        est = estimator_from_state(metas[i], arrays, f"{prefix}.{i}", width)
        steps[i] = (metas[i]["name"], est)
        width = getattr(est, "n_features_in_", None)
    return Pipeline(steps)
