"""Runs one bad-input case of ``fault_cases.py`` in-process, as a user would meet it, and says what broke the contract.

The contract (``zsl_bench.errors``): bad input is exit code 2 and exactly one line on stderr — what, where, how
to fix — never a traceback, and nothing left in the folders the command was given. Each case runs in its own
folder (the working directory, ``$HOME`` and the XDG folders point into it), so a file written anywhere a command
may write by default shows up in the before/after comparison. Ray is never started: ``ray.init`` and
``start_local_ray`` (which starts a sweep's own node) are replaced by a function that raises, and a case that
reaches it is reported (a sweep must fail before Ray starts).

Shared by ``tests/faults/test_bad_input.py`` and ``benchmarks/faults.py``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

Setup = Callable[[Path], None]
PREFIX = "zsl-bench: error: "


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` run in a fresh folder after ``files`` (path → text or bytes; None: a folder) and
    ``setup`` have prepared it. ``{synth}`` in argv and text files is a valid synthetic dataset outside that
    folder. ``expect`` must appear in the error line (it names what and where)."""

    id: str
    argv: tuple[str, ...]
    files: tuple[tuple[str, str | bytes | None], ...] = ()
    setup: Setup | None = None
    expect: str = ""


def case(
    id: str,
    *argv: str,
    files: dict[str, str | bytes | None] | None = None,
    setup: Setup | None = None,
    expect: str = "",
) -> Case:
    """Shorthand for :class:`Case`."""
    return Case(id, tuple(argv), tuple((files or {}).items()), setup, expect)


@dataclass
class Outcome:
    """What a case did: exit code, stderr, an escaped exception, and the paths it created or changed."""

    code: int | None
    stderr: str
    exception: str | None = None
    changed: list[str] = field(default_factory=list)

    def problems(self, expect: str = "") -> list[str]:
        """Every way the outcome breaks the contract (empty: clean)."""
        out = []
        if self.exception is not None:
            out.append(f"traceback: {self.exception}")
        elif self.code != 2:
            out.append(f"exit code {self.code}, not 2")
        lines = self.stderr.splitlines()
        if "Traceback" in self.stderr:
            out.append("traceback text on stderr")
        if len(lines) != 1 or not lines[0].startswith(PREFIX):
            out.append(f"stderr is {len(lines)} lines, not one 'zsl-bench: error:' line: {self.stderr[-300:]!r}")
        elif expect and expect not in lines[0]:
            out.append(f"error line lacks {expect!r}: {lines[0]!r}")
        if self.changed:
            out.append(f"left or changed files: {self.changed[:5]}")
        return out

    @property
    def traceback(self) -> bool:
        """An exception escaped ``main`` or a traceback was printed."""
        return self.exception is not None or "Traceback" in self.stderr


class RayReached(RuntimeError):
    """Raised in place of ``ray.init``: the case got past validation."""


_SYNTH: list[Path] = []


def synth_root() -> Path:
    """A synthetic dataset generated once per process, outside every case's folder."""
    if not _SYNTH:
        from zsl_bench.data.synth import generate

        root = Path(tempfile.mkdtemp(prefix="zsl-faults-")) / "synth"
        generate(root)
        _SYNTH.append(root)
    return _SYNTH[0]


def run_case(item: Case, folder: Path) -> Outcome:
    """Prepare ``folder``, run ``zsl_bench.cli.main`` there and compare the folder's tree before and after."""
    from zsl_bench.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    argv = [arg.replace("{synth}", str(synth_root())) if "{synth}" in arg else arg for arg in item.argv]
    with _isolated(folder):
        _prepare(item, folder)
        before = snapshot(folder)
        err = io.StringIO()
        outcome = Outcome(None, "")
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                outcome.code = main(argv)
            except SystemExit as exc:
                outcome.code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # any escape is what the suite looks for
                outcome.exception = "".join(traceback.format_exception_only(exc)).strip()
            logging.shutdown()
        outcome.stderr = err.getvalue()
        outcome.changed = sorted(set(before.items()) ^ set(snapshot(folder).items()))
        outcome.changed = sorted({path for path, _ in outcome.changed})
    return outcome


def _prepare(item: Case, folder: Path) -> None:
    for rel, content in item.files:
        path = folder / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content.replace("{synth}", str(synth_root())) if isinstance(content, str) else content
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    if item.setup is not None:
        item.setup(folder)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path → (size, mtime in ns) of everything under ``root`` (folders too)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            is_dir = name in dirnames  # a folder counts by existence: a temp file made and removed is fine
            out[str(path.relative_to(root))] = (0, 0) if is_dir else (st.st_size, st.st_mtime_ns)
    return out


@contextlib.contextmanager
def _isolated(folder: Path) -> Iterator[None]:
    """Run inside ``folder`` as a fresh process would: its own cwd, environment, sys.path and logging, and a
    ``ray.init`` that refuses to start anything."""
    cwd, env, path = os.getcwd(), dict(os.environ), list(sys.path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    os.chdir(folder)
    home = folder / ".home"
    os.environ.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_STATE_HOME=str(home / "state"),
        RAY_AUTH_MODE="token",
        RAY_USAGE_STATS_ENABLED="0",
    )
    for key in ("ZSL_BENCH_CLUSTER_DIR", "ZSL_BENCH_PLUGINS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        os.environ.pop(key, None)
    root.handlers = []  # logging.basicConfig in main() then writes to this case's stderr
    try:
        with _ray_refused():
            yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.path[:] = path
        root.handlers, root.level = handlers, level


@contextlib.contextmanager
def _ray_refused() -> Iterator[None]:
    """``ray.init`` and ``local_ray.start_local_ray`` raise :class:`RayReached` (a stand-in ``ray`` module when ray
    was never imported)."""
    real = sys.modules.get("ray")
    module = real if real is not None else types.ModuleType("ray")
    saved = getattr(module, "init", None)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RayReached("ray.init reached: the sweep passed validation")

    from zsl_bench.search import local_ray  # a sweep's own node starts there, before its ray.init

    start_local = local_ray.start_local_ray
    module.init = refuse  # type: ignore[attr-defined]
    local_ray.start_local_ray = refuse  # type: ignore[assignment]
    if real is None:
        sys.modules["ray"] = module
    try:
        yield
    finally:
        local_ray.start_local_ray = start_local  # type: ignore[assignment]
        if real is None:
            sys.modules.pop("ray", None)
        elif saved is not None:
            module.init = saved  # type: ignore[attr-defined]


def run_all(cases: list[Case], keep: Path | None = None) -> dict[str, Outcome]:
    """Every case in its own temporary folder (removed afterwards unless ``keep`` is given)."""
    base = Path(tempfile.mkdtemp(prefix="zsl-faults-", dir=keep))
    try:
        return {c.id: run_case(c, base / c.id) for c in cases}
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
