"""Helpers of the tests of ``benchmarks/`` (the ``make bench`` scripts): import a script as a
module, stop it after its arguments, capture what it saves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def script(name: str):
    """The module ``benchmarks/<name>.py``, imported as its own module (not run)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_benchmarks_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Ran(Exception):
    """Raised by a stubbed first step: the script got past its arguments."""


def ran(*args, **kwargs):
    raise Ran


def capture_save(module, monkeypatch) -> dict:
    saved = {}

    def save(name, payload):
        saved[name] = payload
        return BENCH / "results" / f"{name}.json"

    monkeypatch.setattr(module, "save", save)
    return saved


def longest_run(calls: list) -> int:
    longest = run = 1
    for before, now in zip(calls, calls[1:]):
        run = run + 1 if now == before else 1
        longest = max(longest, run)
    return longest
