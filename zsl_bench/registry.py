"""Name → factory registries (models, datasets, …) with helpful errors for unknown names."""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from zsl_bench.errors import UserError

T = TypeVar("T")


def close_matches(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` candidates that look like ``name`` (for 'did you mean' hints)."""
    return difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)


def unknown_name_message(kind: str, name: str, candidates: list[str]) -> str:
    """One line: unknown ``kind`` ``name``, the closest candidates, and where to see them all."""
    hint = close_matches(name, candidates)
    msg = f"unknown {kind} {name!r}"
    if hint:
        msg += f"; did you mean {', '.join(repr(h) for h in hint)}?"
    else:
        msg += f"; known {kind}s: {', '.join(sorted(candidates)) or '(none)'}"
    return msg


class Registry(Generic[T]):
    """A named collection of factories.

    Entries are either registered directly (``@REG.register("name")``) or lazily by module path
    (``REG.register_lazy("name", "zsl_bench.models.baselines")``), so that heavy modules are imported only
    when one of their entries is used.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or obj.__name__  # type: ignore[attr-defined]
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return deco

    def register_lazy(self, name: str, module: str) -> None:
        """Declare that importing ``module`` registers ``name``."""
        self._lazy[name] = module

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style ``pattern``."""
        every = set(self._entries) | set(self._lazy)
        return sorted(n for n in every if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> T:
        """The entry called ``name``; unknown names raise ``UserError`` with close matches."""
        if name not in self._entries and name in self._lazy:
            importlib.import_module(self._lazy[name])
        if name not in self._entries:
            raise UserError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._lazy
