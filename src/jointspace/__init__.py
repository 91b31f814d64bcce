"""jointspace: learn one embedding space for several modalities and search across it.

The public names are imported lazily, so ``import jointspace`` stays fast and a part whose
optional dependency is missing fails only when it is used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Pairs": "jointspace.data.pairs",
    "load_dataset": "jointspace.data.datasets",
    "list_datasets": "jointspace.data.datasets",
    "JointModel": "jointspace.models.base",
    "create_model": "jointspace.models.base",
    "list_models": "jointspace.models.base",
    "load_model": "jointspace.models.base",
    "FusionClassifier": "jointspace.models.fusion",
    "evaluate_retrieval": "jointspace.eval.retrieval",
    "Index": "jointspace.index.faiss_index",
    "InputError": "jointspace.errors",
    "JointspaceError": "jointspace.errors",
    "MissingDependencyError": "jointspace.errors",
    "NotFittedError": "jointspace.errors",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'jointspace' has no attribute {name!r}")


def __dir__():
    return __all__
