"""Reproducible benchmark tables (``jointspace bench NAME``), one module per suite.

A suite module defines ``NAME``, ``DESCRIPTION`` and ``run(**options) -> report`` where the
report is :func:`jointspace.eval.report.make_report`'s dict.  Every module of this package is a
suite; they are found by name.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import InputError


def _suites() -> dict:
    from .. import bench as pkg

    out = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            out[mod.NAME] = mod
    return out


def list_suites() -> dict[str, str]:
    """Suite name -> one-line description."""
    return {name: mod.DESCRIPTION for name, mod in sorted(_suites().items())}


def run_suite(name: str, **options) -> dict:
    """Run one suite and return its report."""
    suites = _suites()
    if name not in suites:
        raise InputError(f"bench: unknown suite {name!r}; known: {', '.join(sorted(suites))}")
    return suites[name].run(**options)
