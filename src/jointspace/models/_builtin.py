"""Importing this module registers every built-in model (every module of this package)."""

import importlib
import pkgutil

from .. import models as _pkg

for _info in pkgutil.iter_modules(_pkg.__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{_pkg.__name__}.{_info.name}")
