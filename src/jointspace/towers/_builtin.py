"""Importing this module registers every built-in tower (every module of this package)."""

import importlib
import pkgutil

from .. import towers as _pkg

for _info in pkgutil.iter_modules(_pkg.__path__):
    if not _info.name.startswith("_") and _info.name not in ("base", "inputs", "cache", "runtime"):
        importlib.import_module(f"{_pkg.__name__}.{_info.name}")
