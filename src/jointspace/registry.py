"""Name -> factory registries for models, towers, datasets and other pluggable parts."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories.

    Parameters
    ----------
    kind : str
        What the entries are ("model", "dataset", ...), used in error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = ""):
        """Decorator registering ``factory`` under ``name``."""

        def deco(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = factory
            doc = help or (factory.__doc__ or "").strip().splitlines()[0:1]
            self._help[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return factory

        return deco

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory for ``name`` or raise :class:`InputError` listing the known names."""
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise InputError(f"{self.kind}: unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def create(self, name: str, **kwargs) -> T:
        """Build the entry ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self, name: str) -> str:
        return self._help.get(name, "")

    def __contains__(self, name: str) -> bool:
        return name in self._entries
