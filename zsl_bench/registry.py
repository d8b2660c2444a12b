"""Name → entry registries (models, datasets, searchers, …) that outside packages extend without a fork.

A :class:`Registry` holds entries registered three ways, all equal once registered:

* directly, by the module that defines them (``@MODELS.register("name")``);
* lazily by module path (``REG.register_lazy("name", "zsl_bench.models.baselines")``), so that heavy modules are
  imported only when one of their entries is used;
* by **discovery**, the first time a name is not found (or every name is listed): the Python entry points of the
  registry's ``group`` (e.g. ``zsl_bench.models``) and the modules named in ``$ZSL_BENCH_PLUGINS`` are imported.
  An entry point names a module (importing it registers its entries) or an object (registered under the entry
  point's name unless importing its module already registered it).

Every entry remembers its :class:`Provider` — the distribution and version that registered it — which run
directories record. Discovery happens in whatever process looks a name up: the sweep driver, each Ray worker and
each SLURM job find the same plugins, because entry points live in the environment and ``$ZSL_BENCH_PLUGINS`` is
passed on to every process a sweep starts (:mod:`zsl_bench.plugins`).

Lazy loading is thread-safe: two threads (e.g. two ``run_trial`` calls of one process) that look up entries at once
import a lazy module, run discovery, or import an optional package through :func:`import_names` one at a time,
under one re-entrant lock, and a thread sees a lazy entry only once its module has finished importing. The import
system alone does not cover this: a module registers its entries (and transformers installs its lazy module)
before it has finished executing.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any, Generic, TypeVar

from zsl_bench.errors import UserError

T = TypeVar("T")

PLUGINS_ENV = "ZSL_BENCH_PLUGINS"  # comma-separated modules imported by every registry lookup that misses

# Held while a lazy module, a plugin or an optional package is imported. Re-entrant: importing a lazy module may
# look entries up (and import further lazy modules) in the same thread.
_LOAD_LOCK = threading.RLock()


def import_names(module: str, *names: str) -> tuple[Any, ...]:
    """The attributes ``names`` of ``module``, imported under the registries' load lock.

    For heavy optional packages imported on first use (``import_names("transformers", "ViTConfig", "ViTModel")``):
    transformers, imported cold by two threads at once, raises ``ImportError: cannot import name ...`` in one.

    Raises:
        ImportError: ``module`` is missing, or has no attribute among ``names``.
    """
    with _LOAD_LOCK:
        mod = importlib.import_module(module)
        try:
            return tuple(getattr(mod, name) for name in names)
        except AttributeError as exc:
            raise ImportError(f"cannot import name {exc.name!r} from {module!r}") from None


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


@dataclass(frozen=True)
class Provider:
    """Who registered an entry: a distribution (``zsl-bench``, ``zsl-proto``) or a plugin module not installed as
    one (``module:my_plugin``), with its version when known."""

    distribution: str
    version: str | None = None

    def record(self) -> dict[str, str | None]:
        return {"distribution": self.distribution, "version": self.version}


def _own_version() -> str | None:
    try:
        return metadata.version("zsl-bench")
    except metadata.PackageNotFoundError:
        return None


BUILTIN = Provider("zsl-bench", _own_version())


class _Attribution(threading.local):
    """Per thread, the providers of the ``providing`` blocks it is inside (innermost last)."""

    def __init__(self) -> None:
        self.stack: list[Provider] = [BUILTIN]


_current = _Attribution()


@contextlib.contextmanager
def providing(provider: Provider) -> Iterator[None]:
    """Entries registered inside this block are attributed to ``provider``."""
    _current.stack.append(provider)
    try:
        yield
    finally:
        _current.stack.pop()


class Registry(Generic[T]):
    """A named collection of entries of one kind, extended by outside packages through entry-point ``group``."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._providers: dict[str, Provider] = {}
        self._loaded: set[str] = set()  # lazy modules whose import has finished
        self._discovered = False  # discovery has finished (or failed: it is not retried)
        self._discovering = False  # discovery is under way in the thread holding the load lock

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or obj.__name__  # type: ignore[attr-defined]
            self.add(key, obj, getattr(obj, "__module__", None))
            return obj

        return deco

    def add(self, name: str, obj: T, module: str | None = None) -> None:
        """Register ``obj`` under ``name``; a name taken by another entry is an error naming both providers.

        ``module`` (where ``obj`` is defined) attributes an entry registered outside discovery, e.g. by a plugin
        module the user imported themselves, to that module's distribution rather than to zsl-bench."""
        provider = _current.stack[-1]
        if provider is BUILTIN and module and module.split(".", 1)[0] not in ("zsl_bench", "__main__", "builtins"):
            provider = module_provider(module)
        if name in self._entries:
            first = self._providers[name]
            if first == provider:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            raise UserError(
                f"{self.kind} {name!r} from {provider.distribution} is already registered by {first.distribution}; "
                "rename one of them (names are global across plugins)"
            )
        self._entries[name] = obj
        self._providers[name] = provider

    def register_lazy(self, name: str, module: str) -> None:
        """Declare that importing ``module`` registers ``name``."""
        self._lazy[name] = module

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style ``pattern``, plugins included."""
        self.discover()
        every = set(self._entries) | set(self._lazy)
        return sorted(n for n in every if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> T:
        """The entry called ``name``; unknown names raise ``UserError`` with close matches."""
        if name not in self._entries and name not in self._lazy:
            self.discover()
        module = self._lazy.get(name)
        if module is not None and module not in self._loaded:
            self._load(module)
        if name not in self._entries:
            raise UserError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]

    def _load(self, module: str) -> None:
        """Import lazy ``module`` (once; other threads wait until it has finished registering its entries)."""
        with _LOAD_LOCK:
            if module not in self._loaded:
                importlib.import_module(module)
                self._loaded.add(module)

    def provider(self, name: str) -> Provider:
        """The provider of a registered entry (imports a lazy one)."""
        self.get(name)
        return self._providers[name]

    def __contains__(self, name: str) -> bool:
        if name not in self._entries and name not in self._lazy:
            self.discover()
        return name in self._entries or name in self._lazy

    def discover(self) -> None:
        """Import the plugin modules of ``$ZSL_BENCH_PLUGINS`` and this registry's entry points (once)."""
        if self._discovered:
            return
        with _LOAD_LOCK:
            if self._discovered or self._discovering:  # done by another thread, or a plugin looking names up
                return
            self._discovering = True
            try:
                import_env_plugins()
                for ep in metadata.entry_points(group=self.group) if self.group is not None else ():
                    self._load_entry_point(ep)
            finally:
                self._discovering = False
                self._discovered = True

    def _load_entry_point(self, ep: metadata.EntryPoint) -> None:
        dist = ep.dist
        provider = Provider(dist.name, dist.version) if dist is not None else Provider(f"entry point {ep.value}")
        with providing(provider):
            try:
                obj = ep.load()
            except Exception as exc:
                raise UserError(
                    f"plugin {provider.distribution}: entry point {ep.name} = {ep.value} (group {self.group}) "
                    f"failed to load ({type(exc).__name__}: {exc}); fix or uninstall that package"
                ) from None
            if not isinstance(obj, ModuleType) and not any(v is obj for v in self._entries.values()):
                self.add(ep.name, obj)


_imported_env: set[str] = set()


def plugin_modules() -> list[str]:
    """The module names listed in ``$ZSL_BENCH_PLUGINS`` (comma- or whitespace-separated)."""
    raw = os.environ.get(PLUGINS_ENV, "")
    return [m for m in raw.replace(",", " ").split() if m]


def module_provider(module: str) -> Provider:
    """The distribution that ships top-level package ``module``, else ``module:<name>`` (its ``__version__``)."""
    top = module.split(".", 1)[0]
    dists = metadata.packages_distributions().get(top, [])
    if dists:
        return Provider(dists[0], metadata.version(dists[0]))
    return Provider(f"module:{module}")


def import_env_plugins() -> None:
    """Import every ``$ZSL_BENCH_PLUGINS`` module not imported yet; a failing one is a one-line ``UserError``."""
    with _LOAD_LOCK:
        for module in plugin_modules():
            if module in _imported_env:
                continue
            _imported_env.add(module)
            with providing(module_provider(module)):
                try:
                    importlib.import_module(module)
                except Exception as exc:
                    _imported_env.discard(module)
                    raise UserError(
                        f"plugin module {module!r} (--plugin / ${PLUGINS_ENV}) failed to import "
                        f"({type(exc).__name__}: {exc}); check the name and that its folder is on PYTHONPATH"
                    ) from None
