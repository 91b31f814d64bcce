"""Saving and loading a fitted :class:`~jointspace.models.fusion.FusionClassifier`.

The folder has the layout of a saved joint model (``config.json`` and ``state.safetensors``,
no pickle), with ``"model": "fusion-classifier"``:

- ``config.json``: the constructor arguments (``params``), the modalities, and in ``extra`` the
  classes (their values and dtype; bytes as the strings of their latin-1 decoding) and each
  modality's feature count;
- ``state.safetensors``: the network's parameters and buffers (``net.*``) for the learnt
  fusions; for late fusion each member's standardisation and logistic regression
  (``member.<i>.*``, ``i`` the modality's position), the class prior, the modality weights and
  the stacking meta-classifier (``stacker.*``).

A loaded classifier predicts exactly as the saved one did.  What training recorded
(``train_result_``, the members' cross-validation results) is not saved.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import read_json_object
from ..errors import InputError
from .base import (CONFIG_FILE, FUSION_MODEL_NAME, STATE_FILE, _check_state, _read_config, is_matcher_config,
                   write_saved_folder)
#: the dtype kinds of class labels a saved classifier can hold (JSON numbers, booleans, strings; bytes
#: are written as the strings of their latin-1 decoding, which maps every byte to one character)
_CLASS_KINDS = "biufUSO"


def is_saved_fusion(path) -> bool:
    """Whether ``path`` is a folder written by :func:`save_fusion`."""
    config = read_json_object(Path(path) / CONFIG_FILE)
    return (config is not None and config.get("model") == FUSION_MODEL_NAME
            and (Path(path) / STATE_FILE).is_file())


def _params(clf) -> dict:
    names = [n for n in inspect.signature(type(clf)).parameters if n != "self"]
    params = {n: getattr(clf, n) for n in names}
    if params.get("modalities") is not None:
        params["modalities"] = list(params["modalities"])
    return params


def _json_values(classes: np.ndarray) -> list:
    """The labels as JSON values (bytes as their latin-1 strings)."""
    values = classes.tolist()
    return [v.decode("latin-1") for v in values] if classes.dtype.kind == "S" else values


def _classes_json(classes: np.ndarray) -> dict:
    values = _json_values(classes)
    ok = classes.dtype.kind in _CLASS_KINDS and (classes.dtype.kind != "O" or all(isinstance(v, str) for v in values))
    if not ok:
        raise InputError(f"classes_: a saved fusion classifier holds numbers, booleans, strings or bytes as class "
                         f"labels; got labels of dtype {classes.dtype} ({values[:3]!r}...)")
    return {"values": values, "dtype": str(classes.dtype)}


def _member_state(i: int, member) -> dict:
    """The arrays of one late-fusion member (a fitted grid search over standardisation and
    logistic regression, or the pipeline a load rebuilt)."""
    pipe = getattr(member, "best_estimator_", member)
    scaler, logistic = pipe[0], pipe[-1]
    return {f"member.{i}.mean": scaler.mean_, f"member.{i}.var": scaler.var_, f"member.{i}.scale": scaler.scale_,
            f"member.{i}.coef": logistic.coef_, f"member.{i}.intercept": logistic.intercept_,
            f"member.{i}.classes": np.asarray(logistic.classes_, dtype=np.int64),
            f"member.{i}.C": np.array([logistic.C], dtype=np.float64)}


def _logistic(coef, intercept, classes, C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=float(C), max_iter=3000)
    lr.coef_, lr.intercept_, lr.classes_ = coef, intercept, classes
    lr.n_features_in_ = coef.shape[1]
    lr.n_iter_ = np.zeros(1, dtype=np.int32)
    return lr


def _member(state: dict, i: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.mean_, scaler.var_, scaler.scale_ = (state[f"member.{i}.{k}"] for k in ("mean", "var", "scale"))
    scaler.n_features_in_ = scaler.mean_.shape[0]
    scaler.n_samples_seen_ = 0
    logistic = _logistic(state[f"member.{i}.coef"], state[f"member.{i}.intercept"],
                         state[f"member.{i}.classes"], state[f"member.{i}.C"][0])
    return make_pipeline(scaler, logistic)


def _state(clf) -> dict:
    from .fusion import LATE

    if clf.fusion not in LATE:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in clf.net_.state_dict().items()}
    state = {"prior": np.asarray(clf.prior_, dtype=np.float64), "weights": np.asarray(clf.weights_, dtype=np.float64)}
    for i, m in enumerate(clf.modalities_):
        state.update(_member_state(i, clf.members_[m]))
    if clf.stacker_ is not None:
        state.update({"stacker.coef": clf.stacker_.coef_, "stacker.intercept": clf.stacker_.intercept_,
                      "stacker.classes": np.asarray(clf.stacker_.classes_, dtype=np.int64)})
    return state


def save_fusion(clf, path) -> Path:
    """Write a fitted fusion classifier to the folder ``path`` atomically.

    ``path`` must be missing, an empty folder or a saved fusion classifier (which is replaced);
    anything else raises :class:`~jointspace.errors.InputError` and is left untouched.
    """
    clf._check_fitted()
    config = {"model": FUSION_MODEL_NAME, "params": _params(clf), "modalities": list(clf.modalities_),
              "jointspace_version": __version__,
              "extra": {"classes": _classes_json(np.asarray(clf.classes_)),
                        "in_dims": {m: int(d) for m, d in clf.in_dims_.items()}}}
    return write_saved_folder(path, config, _state(clf), kind="fusion classifier", is_kind=is_saved_fusion)


def load_fusion(cls, path):
    """Load a fusion classifier saved by :func:`save_fusion` as an instance of ``cls``.

    Raises
    ------
    InputError
        The folder is missing, incomplete, damaged, or holds something else (a joint model,
        an index); the message names the file and the field or array.
    """
    from .._folder_reads import read_whole

    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"path: expected a saved fusion classifier folder, got {type(path).__name__} {path!r}")
    # read again if a save replaced the folder meanwhile; a save killed half way is put back first
    return read_whole(path, lambda: _load_fusion(cls, Path(path)), "saved fusion classifier", "path")


def _load_fusion(cls, path: Path):
    """:func:`load_fusion` of one version of the folder ``path``."""
    from safetensors.numpy import load_file

    cfg_path, state_path = path / CONFIG_FILE, path / STATE_FILE
    if not cfg_path.is_file():
        raise InputError(f"path: expected a saved fusion classifier folder (with {CONFIG_FILE}), got {str(path)!r}")
    if is_matcher_config(cfg_path):
        raise InputError(f"path: {str(path)!r} holds a saved cross-attention matcher, not a fusion classifier (load it "
                         f"with CrossAttentionMatcher.load)")
    try:
        config = _read_config(cfg_path)
    except InputError as exc:   # it names load_model's argument
        raise InputError("path" + str(exc)[len("model"):] if str(exc).startswith("model:") else str(exc)) from None
    if config["model"] != FUSION_MODEL_NAME:
        raise InputError(f"path: {str(path)!r} holds a saved {config['model']!r} model, not a fusion classifier "
                         f"(load it with jointspace.load_model)")
    try:
        state = load_file(str(state_path))
    except Exception as exc:  # noqa: BLE001 - a missing or truncated file is reported, whatever the reader raised
        raise InputError(f"path: {state_path} is missing, unreadable or truncated ({exc})") from None
    _check_state(config, state, state_path)
    try:
        _check_extra(config, state, cfg_path)
        return _restore(cls, config, state)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise InputError(f"path: {cfg_path} and {state_path} do not hold a fusion classifier this version reads "
                         f"({type(exc).__name__}: {exc})") from None


def _class_array(classes: dict) -> np.ndarray:
    """The class labels of ``extra.classes`` as an array of their saved dtype."""
    dtype = np.dtype(classes["dtype"])
    values = classes["values"]
    if dtype.kind == "S":
        values = [v.encode("latin-1") for v in values]
    return np.asarray(values, dtype=dtype)


def _same(x, y) -> bool:
    return type(x) is type(y) and (x == y or (x != x and y != y))   # NaN labels are equal to themselves


def _check_extra(config: dict, state: dict, cfg_path: Path) -> None:
    """Refuse classes and feature counts in ``config.json`` that are not what was saved or do
    not fit the arrays (an edited file would otherwise load and predict other labels)."""
    from .fusion import LATE

    classes, in_dims = config["extra"]["classes"], config["extra"]["in_dims"]
    values = classes["values"]
    try:
        back = _class_array(classes) if isinstance(values, list) else None
    except (TypeError, ValueError, AttributeError):
        back = None
    listed = None if back is None else _json_values(back)
    n_prior = state["prior"].shape[0] if config["params"].get("fusion") in LATE and "prior" in state else None
    if (back is None or back.ndim != 1 or len(values) < 2 or not all(map(_same, listed, values))
            or len(set(map(repr, values))) != len(values) or n_prior not in (None, len(values))):
        expected = "a list of at least 2 distinct labels" + ("" if n_prior is None else f" ({n_prior}, one per "
                                                                                          "column of 'prior')")
        raise InputError(f"path: {cfg_path} field 'extra.classes': expected {expected} that dtype "
                         f"{classes.get('dtype')!r} holds unchanged, got {str(values)[:100]}")
    for name in [k for k in state if k.endswith(".classes")]:   # the members' and stacker's class indices
        idx = state[name]
        if idx.ndim != 1 or idx.size < 1 or np.any(idx < 0) or np.any(idx >= len(values)) or np.any(np.diff(idx) <= 0):
            raise InputError(f"path: {cfg_path.parent / STATE_FILE} array {name!r}: expected increasing class indices "
                             f"in 0..{len(values) - 1} (the classes of {CONFIG_FILE}), got {idx.tolist()[:10]}")
    for i, m in enumerate(config["modalities"]):
        mean = state.get(f"member.{i}.mean")
        if mean is not None and in_dims.get(m) != mean.shape[0]:
            raise InputError(f"path: {cfg_path} field 'extra.in_dims' ({m}): expected {mean.shape[0]} (the features "
                             f"of array 'member.{i}.mean'), got {in_dims.get(m)!r}")


def _restore(cls, config: dict, state: dict):
    import torch

    from .fusion import LATE, FusionNet

    unknown = sorted(set(config["params"]) - set(inspect.signature(cls).parameters))
    if unknown:
        raise InputError(f"path: {CONFIG_FILE} field 'params' has unknown key(s) {', '.join(map(repr, unknown))}")
    clf = cls(**config["params"])
    clf._check_settings()
    extra = config["extra"]
    clf.classes_ = _class_array(extra["classes"])
    clf.modalities_ = list(config["modalities"])
    clf.in_dims_ = {m: int(extra["in_dims"][m]) for m in clf.modalities_}
    if clf.fusion in LATE:
        clf.members_ = {m: _member(state, i) for i, m in enumerate(clf.modalities_)}
        clf.prior_, clf.weights_ = state["prior"], state["weights"]
        clf.stacker_ = None if "stacker.coef" not in state else _logistic(
            state["stacker.coef"], state["stacker.intercept"], state["stacker.classes"])
    else:
        net = FusionNet(clf.in_dims_, len(clf.classes_), clf.fusion, int(clf.hidden), float(clf.dropout))
        net.load_state_dict({k[len("net."):]: torch.from_numpy(np.array(v)) for k, v in state.items()})
        clf.net_ = net.eval()
    return clf
