"""The surface every joint model shares, and how models are saved and loaded.

A saved model is one folder::

    config.json         {"model": <registry name>, "params": {...}, "modalities": [...],
                         "extra": {...}, "state_shapes": {<array>: {"shape", "dtype"}}, ...}
    state.safetensors   learned arrays (no pickle anywhere)

``load_model(path)`` reads ``config.json``, looks the class up in the model registry, checks
every array's shape and restores the arrays.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import atomic_dir, read_json_object, set_default_mode
from .._validation import check_bool, check_params, short_json
from ..errors import InputError, JointspaceError, NotFittedError
from ..eval.similarity import l2_normalize
from ..registry import Registry

MODELS: Registry = Registry("model")

CONFIG_FILE = "config.json"
STATE_FILE = "state.safetensors"
#: the ``model`` field of a saved :class:`~jointspace.models.fusion.FusionClassifier`
FUSION_MODEL_NAME = "fusion-classifier"
#: the ``kind`` field of a saved :class:`~jointspace.models.rerank.CrossAttentionMatcher`
MATCHER_KIND = "cross-attention-matcher"
SHAPES_KEY = "state_shapes"
"""Field of ``config.json`` that records the shape and dtype of every array of ``state.safetensors``."""


class JointModel:
    """Base class: a model that maps each of its modalities into one shared space.

    Subclasses implement ``fit(pairs)``, ``_encode(modality, items)``, ``get_config()``,
    ``_get_state()`` and ``_set_state(state)``, and set ``modalities_`` when fitted.
    """

    #: registry name, set by :func:`register_model`
    model_name: str = ""

    @property
    def display_name(self) -> str:
        """What reports call the model (the registry name, unless a subclass says more)."""
        return self.model_name

    # -- the public surface ---------------------------------------------------------------
    # ``modalities_`` (tuple of str, set by fit) names the modalities the model can encode.

    def raw_kind(self, modality: str, *, match_dims: bool = True) -> str | None:
        """What raw items ``encode(modality, ...)`` reads besides feature arrays.

        Returns
        -------
        str or None
            ``"text"``, ``"image"``, ``"audio"`` (or ``"features"``) when a tower turns raw
            items of ``modality`` into the model's input; None when the model embeds only
            feature vectors of that modality, or does not know it.  ``match_dims`` is used by
            models whose default towers apply only to features of the tower's size.
        """
        return None

    def encode(self, modality: str, items, normalize: bool = True) -> np.ndarray:
        """Map ``items`` of one modality into the joint space.

        Parameters
        ----------
        modality : str
            One of ``modalities_``.
        items : array-like, shape (n, d_modality), or list of n raw items
        normalize : bool
            Scale each output row to unit L2 norm (for cosine similarity).

        Returns
        -------
        z : ndarray of float32, shape (n, d)
        """
        self._check_fitted()
        if modality not in self.modalities_:
            raise InputError(f"modality: this model knows {', '.join(self.modalities_)}; got {modality!r}")
        normalize = check_bool(normalize, "normalize")
        z = np.asarray(self._encode(modality, items), dtype=np.float32)
        return l2_normalize(z) if normalize else z

    def save(self, path) -> Path:
        """Write the model to the folder ``path`` atomically.

        ``path`` must be missing, an empty folder or a saved model (which is replaced); anything
        else raises :class:`~jointspace.errors.InputError` and is left untouched.
        """
        self._check_fitted()
        config = {"model": self.model_name, "params": self.get_config(),
                  "modalities": list(self.modalities_), "jointspace_version": __version__,
                  "extra": self._get_extra()}
        return write_saved_folder(path, config, self._get_state(), kind="model", is_kind=is_saved_model,
                                  keep_others=True)

    @classmethod
    def load(cls, path) -> "JointModel":
        """Load a model saved with :meth:`save`."""
        model = load_model(path)
        if not isinstance(model, cls):
            raise InputError(f"path: expected a saved {cls.__name__}, got a saved {type(model).__name__}")
        return model

    # -- for subclasses -------------------------------------------------------------------
    def get_config(self) -> dict:
        """JSON-able constructor arguments."""
        raise NotImplementedError

    def _get_extra(self) -> dict:
        """JSON-able fitted state that is not an array (e.g. preprocessing settings)."""
        return {}

    def _set_extra(self, extra: dict) -> None:
        pass

    def _get_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _encode(self, modality: str, items) -> np.ndarray:
        raise NotImplementedError

    def _loaded_modality_count(self) -> int | None:
        """How many modalities the restored state encodes, checked against ``config.json`` by
        :func:`load_model` (None: not checked)."""
        return None

    def _check_fitted(self) -> None:
        if not hasattr(self, "modalities_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")


def fit_or_keep(model, fit, *args):
    """``fit(*args)``, restoring every attribute of ``model`` when it raises.

    A refit refused part-way (too many components, rows that do not match) would otherwise
    leave, e.g., the new feature count beside the old weights, so that the still fitted
    model refused the inputs it was fitted on.
    """
    before = dict(model.__dict__)
    try:
        return fit(*args)
    except BaseException:
        model.__dict__.clear()
        model.__dict__.update(before)
        raise


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def register_model(name: str, help: str = ""):
    """Class decorator: register a :class:`JointModel` subclass under ``name``."""

    def deco(cls):
        cls.model_name = name
        MODELS.register(name, help)(cls)
        return cls

    return deco


def create_model(name: str, **params) -> JointModel:
    """Build a registered model by name, e.g. ``create_model("cca", n_components=10)``."""
    _import_builtin_models()
    factory = MODELS.get(name)
    check_params(f"model {name!r}", factory, params)
    try:
        return factory(**params)
    except TypeError as exc:
        raise InputError(f"model {name!r}: bad parameters: {exc}") from None


def list_models() -> list[str]:
    """Names of the registered models."""
    _import_builtin_models()
    return MODELS.names()


def write_saved_folder(path, config: dict, state: dict, *, kind: str, is_kind, keep_others: bool = False) -> Path:
    """Write ``config.json`` (``config`` with the shape and dtype of every array added under
    :data:`SHAPES_KEY`) and ``state.safetensors`` (``state``) to the folder ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        Missing, an empty folder, or a folder ``is_kind`` accepts (which is replaced).
    config : dict
        JSON-able (numpy scalars are converted).
    state : dict of str to ndarray
    kind : str
        What is saved, for messages.
    is_kind : callable
        ``is_kind(path) -> bool``: whether an existing folder may be replaced.
    keep_others : bool
        As in :func:`~jointspace._io.atomic_dir`.

    Returns
    -------
    pathlib.Path
    """
    from safetensors.numpy import save_file

    state = {k: np.ascontiguousarray(v) for k, v in state.items()}
    config = {**config, SHAPES_KEY: {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in state.items()}}
    with atomic_dir(path, kind, is_kind=is_kind, arg="path", keep_others=keep_others) as tmp:
        save_file(state, str(tmp / STATE_FILE))
        set_default_mode(tmp / STATE_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=_json_default))
    return Path(path)


def is_saved_model(path) -> bool:
    """Whether ``path`` is a folder written by :meth:`JointModel.save`: ``config.json`` (a JSON
    object naming the model) and ``state.safetensors``."""
    config = read_json_object(Path(path) / CONFIG_FILE)
    return config is not None and isinstance(config.get("model"), str) and (Path(path) / STATE_FILE).is_file()


def saved_model_digest(path) -> str | None:
    """SHA-256 of a saved model's ``config.json`` and ``state.safetensors`` (hex), or None when
    ``path`` is not a saved model folder.

    Two saves of the same folder give the same digest only when they hold the same model; an
    index records it to tell whether the folder was saved again after the index was built.
    """
    import hashlib

    if not isinstance(path, (str, os.PathLike)) or not is_saved_model(path):
        return None
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, STATE_FILE):
        digest.update(name.encode() + b"\0")
        with open(Path(path) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_model(path) -> JointModel:
    """Load any saved model folder.

    ``config.json`` must be a JSON object with ``model`` (a registered name), ``params`` (an
    object of that model's constructor arguments), ``modalities`` (a list of names) and
    optionally ``extra`` (an object) and ``state_shapes`` (the shape and dtype of each array,
    written by :meth:`JointModel.save`).  Every array of ``state.safetensors`` is checked
    against ``state_shapes`` before the model uses it.

    Raises
    ------
    InputError
        The folder, its config or its state file is missing, truncated, malformed or of
        another kind; the message names the file and the field or array.
    """
    from .._folder_reads import read_whole

    _import_builtin_models()
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"model: expected a saved model folder path, got {type(path).__name__} {path!r}")
    # read again if a save replaced the folder meanwhile; a save killed half way is put back first
    return read_whole(path, lambda: _load_model(Path(path)), "saved model", "model")


def _load_model(path: Path) -> JointModel:
    """:func:`load_model` of one version of the folder ``path``."""
    from safetensors.numpy import load_file

    cfg_path = path / CONFIG_FILE
    state_path = path / STATE_FILE
    if not path.is_dir():
        raise InputError(f"model: expected a saved model folder, got {str(path)!r} (not a folder)")
    if not cfg_path.is_file():
        raise InputError(f"model: {str(path)!r} has no {CONFIG_FILE}; is it a saved model folder?")
    if is_matcher_config(cfg_path):
        raise InputError(f"model: {str(path)!r} holds a saved cross-attention matcher (it scores image-text pairs; "
                         f"it has no joint space to encode into); load it with CrossAttentionMatcher.load, or give "
                         f"it to 'jointspace search' as --matcher")
    config = _read_config(cfg_path)
    if config["model"] == FUSION_MODEL_NAME:
        raise InputError(f"model: {str(path)!r} holds a saved fusion classifier (it classifies; it has no joint "
                         f"space to encode into); load it with jointspace.FusionClassifier.load")
    try:
        cls = MODELS.get(config["model"])
    except InputError as exc:
        raise InputError(f"model: {cfg_path} field 'model': {exc}") from None
    try:
        state = load_file(str(state_path)) if state_path.exists() else None
    except Exception as exc:
        raise InputError(f"model: {state_path} is unreadable or truncated ({exc})") from None
    if state is None:
        raise InputError(f"model: {str(path)!r} has no {STATE_FILE}; the folder is incomplete")
    model = _construct(cls, config, cfg_path)
    try:
        model._set_extra(config["extra"])
    except JointspaceError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError, RuntimeError) as exc:
        # RuntimeError: torch refusing a network of the sizes it gives (a negative width);
        # ArithmeticError: a network built from a zero it divides by (tau=0)
        raise InputError(f"model: {cfg_path} field 'extra' (or 'params') does not fit model {config['model']!r} "
                         f"({type(exc).__name__}: {exc})") from None
    _check_state(config, state, state_path)
    try:
        model._set_state(state)
    except JointspaceError:
        raise
    except KeyError as exc:
        raise InputError(f"model: {state_path} lacks the array {exc}; it belongs to another model") from None
    except (TypeError, ValueError, IndexError, AttributeError, ArithmeticError, RuntimeError) as exc:
        raise InputError(f"model: the arrays of {state_path} do not fit the model in {CONFIG_FILE} "
                         f"({type(exc).__name__}: {exc})") from None
    want = model._loaded_modality_count()
    if want is not None and len(config["modalities"]) != want:
        raise InputError(f"model: {cfg_path} field 'modalities': expected {want} names for the arrays of model "
                         f"{config['model']!r}, got {config['modalities']!r}")
    model.modalities_ = tuple(config["modalities"])
    return model


def is_matcher_config(cfg_path: Path) -> bool:
    """Whether ``cfg_path`` is the ``config.json`` of a saved cross-attention matcher."""
    config = read_json_object(cfg_path)
    return config is not None and config.get("kind") == MATCHER_KIND


def _read_config(cfg_path: Path) -> dict:
    """Read ``config.json`` and check the types of its fields (InputError naming the field)."""
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"model: {cfg_path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise InputError(f"model: {cfg_path} must be a JSON object with 'model', 'params' and 'modalities'; "
                         f"got a JSON {_json_kind(config)}")
    fields = (("model", str, "a model name (string)"), ("params", dict, "an object of constructor arguments"),
              ("modalities", list, "a list of modality names"))
    for key, typ, expected in fields:
        if key not in config:
            raise InputError(f"model: {cfg_path} has no field {key!r} (expected {expected})")
        if not isinstance(config[key], typ):
            raise InputError(f"model: {cfg_path} field {key!r}: expected {expected}, "
                             f"got a JSON {_json_kind(config[key])}")
    mods = config["modalities"]
    if not mods or not all(isinstance(m, str) and m for m in mods) or len(set(mods)) != len(mods):
        raise InputError(f"model: {cfg_path} field 'modalities': expected a non-empty list of distinct "
                         f"modality names, got {mods!r}")
    config = dict(config)
    config.setdefault("extra", {})
    if not isinstance(config["extra"], dict):
        raise InputError(f"model: {cfg_path} field 'extra': expected an object, got a JSON "
                         f"{_json_kind(config['extra'])}")
    shapes = config.get(SHAPES_KEY)
    if shapes is not None and not (isinstance(shapes, dict) and all(
            isinstance(v, dict) and isinstance(v.get("shape"), list)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in v["shape"])
            and isinstance(v.get("dtype", ""), str) for v in shapes.values())):
        raise InputError(f"model: {cfg_path} field {SHAPES_KEY!r}: expected an object mapping each array name "
                         f"to {{\"shape\": [int, ...], \"dtype\": str}}, got {short_json(shapes)}")
    return config


def _construct(cls, config: dict, cfg_path: Path) -> JointModel:
    """Build ``cls`` from ``config["params"]``; unknown or bad parameters raise InputError."""
    params = config["params"]
    if not hasattr(cls, "from_config"):
        sig = inspect.signature(cls)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        known = [n for n, p in sig.parameters.items()
                 if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        unknown = sorted(k for k in params if k not in known)
        if unknown and not takes_any:
            raise InputError(f"model: {cfg_path} field 'params' has unknown key(s) {', '.join(map(repr, unknown))} "
                             f"for model {config['model']!r}; expected keys from {', '.join(known)}")
        # JSON has no tuples: a parameter given as one by default (hidden=(256, 256)) comes back
        # as one, so the loaded model's get_params() equals the saved model's
        params = {k: tuple(v) if isinstance(v, list) and k in sig.parameters
                  and isinstance(sig.parameters[k].default, tuple) else v for k, v in params.items()}
    try:
        return cls.from_config(params) if hasattr(cls, "from_config") else cls(**params)
    except JointspaceError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(f"model: {cfg_path} field 'params' does not fit model {config['model']!r} "
                         f"({exc})") from None


def _json_kind(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    kind = names.get(type(value), "number")
    return f"{kind} {short_json(value)}"


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_state(config: dict, state: dict, state_path: Path) -> None:
    """Refuse arrays that hold NaN or infinite values, and compare the loaded arrays with the
    shapes and dtypes ``config.json`` recorded when the model was saved; raise InputError on
    the first mismatch (folders saved without a record are left to the model's own
    ``_set_state``)."""
    for name, arr in state.items():   # a damaged or edited file: NaN weights encode every row to NaN or 0
        if arr.dtype.kind in "fc" and arr.size and not np.isfinite(arr).all():
            raise InputError(f"model: {state_path} array {name!r} holds {int((~np.isfinite(arr)).sum())} NaN or "
                             f"infinite value(s); the saved model is damaged")
    recorded = config.get(SHAPES_KEY)
    if recorded is None:
        return
    for name, want in recorded.items():
        if name not in state:
            raise InputError(f"model: {state_path} lacks the array {name!r} listed in {CONFIG_FILE}")
        arr = state[name]
        if tuple(arr.shape) != tuple(want["shape"]):
            raise InputError(f"model: {state_path} array {name!r}: expected shape {_shape_str(want['shape'])} "
                             f"(recorded in {CONFIG_FILE}), found {_shape_str(arr.shape)}")
        if want.get("dtype") and str(arr.dtype) != want["dtype"]:
            raise InputError(f"model: {state_path} array {name!r}: expected dtype {want['dtype']} "
                             f"(recorded in {CONFIG_FILE}), found {arr.dtype}")
    extra = sorted(set(state) - set(recorded))
    if extra:
        raise InputError(f"model: {state_path} has array(s) not listed in {CONFIG_FILE}: "
                         f"{', '.join(map(repr, extra[:5]))}; expected only "
                         f"{', '.join(map(repr, sorted(recorded)[:10]))}")


def _import_builtin_models() -> None:
    from . import _builtin  # noqa: F401  (registers the built-in models)
