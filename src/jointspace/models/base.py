"""The surface every joint model shares, and how models are saved and loaded.

A saved model is one folder::

    config.json         {"model": <registry name>, "params": {...}, "modalities": [...], ...}
    state.safetensors   learned arrays (no pickle anywhere)

``load_model(path)`` reads ``config.json``, looks the class up in the model registry and
restores the arrays.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import atomic_dir
from ..errors import InputError, JointspaceError, NotFittedError
from ..eval.similarity import l2_normalize
from ..registry import Registry

MODELS: Registry = Registry("model")

CONFIG_FILE = "config.json"
STATE_FILE = "state.safetensors"


class JointModel:
    """Base class: a model that maps each of its modalities into one shared space.

    Subclasses implement ``fit(pairs)``, ``_encode(modality, items)``, ``get_config()``,
    ``_get_state()`` and ``_set_state(state)``, and set ``modalities_`` when fitted.
    """

    #: registry name, set by :func:`register_model`
    model_name: str = ""

    # -- the public surface ---------------------------------------------------------------
    # ``modalities_`` (tuple of str, set by fit) names the modalities the model can encode.

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
        z = np.asarray(self._encode(modality, items), dtype=np.float32)
        return l2_normalize(z) if normalize else z

    def save(self, path) -> Path:
        """Write the model to the folder ``path`` atomically (replacing an existing one)."""
        from safetensors.numpy import save_file

        self._check_fitted()
        state = {k: np.ascontiguousarray(v) for k, v in self._get_state().items()}
        config = {"model": self.model_name, "params": self.get_config(),
                  "modalities": list(self.modalities_), "jointspace_version": __version__,
                  "extra": self._get_extra()}
        with atomic_dir(path) as tmp:
            save_file(state, str(tmp / STATE_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=_json_default))
        return Path(path)

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

    def _check_fitted(self) -> None:
        if not hasattr(self, "modalities_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")


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
    try:
        return factory(**params)
    except TypeError as exc:
        raise InputError(f"model {name!r}: bad parameters: {exc}") from None


def list_models() -> list[str]:
    """Names of the registered models."""
    _import_builtin_models()
    return MODELS.names()


def load_model(path) -> JointModel:
    """Load any saved model folder.

    Raises
    ------
    InputError
        The folder, its config or its state file is missing, truncated or of another kind.
    """
    from safetensors.numpy import load_file

    _import_builtin_models()
    path = Path(path)
    cfg_path = path / CONFIG_FILE
    if not path.is_dir():
        raise InputError(f"model: expected a saved model folder, got {str(path)!r} (not a folder)")
    if not cfg_path.is_file():
        raise InputError(f"model: {str(path)!r} has no {CONFIG_FILE}; is it a saved model folder?")
    try:
        config = json.loads(cfg_path.read_text())
        name = config["model"]
    except (ValueError, KeyError) as exc:
        raise InputError(f"model: {cfg_path} is not a valid model config ({exc})") from None
    cls = MODELS.get(name)
    try:
        state = load_file(str(path / STATE_FILE)) if (path / STATE_FILE).exists() else None
    except Exception as exc:
        raise InputError(f"model: {path / STATE_FILE} is unreadable or truncated ({exc})") from None
    if state is None:
        raise InputError(f"model: {str(path)!r} has no {STATE_FILE}; the folder is incomplete")
    model = cls.from_config(config["params"]) if hasattr(cls, "from_config") else cls(**config["params"])
    try:
        model._set_extra(config.get("extra", {}))
        model._set_state(state)
    except KeyError as exc:
        raise JointspaceError(f"model: {path / STATE_FILE} lacks the array {exc}; it belongs to another model") from None
    model.modalities_ = tuple(config["modalities"])
    return model


def _import_builtin_models() -> None:
    from . import _builtin  # noqa: F401  (registers the built-in models)
