"""Crash records: after a Tune experiment, every trial that died without finalising its run directory gets one.

Caller: ``tune_stages`` (after each search, top-up, continue and final experiment). No Ray import: it reads the
results a Tune ``ResultGrid`` yields (``error``, ``metrics``, ``path``, ``config``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from zsl_bench.errors import UserError
from zsl_bench.rundir import DONE, ERROR, RunWriter

_TRIAL_DIR = re.compile(r"^trainable_([0-9a-f]+(?:_\d{5})?)_")


def record_crashes(grid: Iterable[Any], sweep_dir: Path, name_of: Callable[[Any], str] | None = None) -> None:
    """Trials that died without writing ``error.txt`` (killed for memory, lost worker) get one from Tune; a
    multi-worker trial the scheduler ended is marked stopped. ``name_of`` maps a result to its run directory's
    name (default: the trial id, :func:`trial_id`)."""
    for result in grid:
        run_name = name_of(result) if name_of else trial_id(result)
        run_dir = sweep_dir / run_name
        if not run_dir.is_dir() or (run_dir / ERROR).exists() or (run_dir / DONE).exists():
            continue
        if result.error is not None:
            RunWriter.record_error(run_dir, f"{type(result.error).__name__}: {result.error}")
        else:  # a multi-worker trial the scheduler ended: Tune killed its workers before they could finalise
            _finalise_stopped(run_dir)


def _finalise_stopped(run_dir: Path) -> None:
    """Mark a stopped multi-worker run; one whose checkpoint cannot be read gets that as its error record
    instead, so one bad trial never ends the sweep."""
    from zsl_bench.engine.finalise import mark_stopped

    try:
        mark_stopped(run_dir)
    except UserError as exc:
        RunWriter.record_error(run_dir, f"UserError: {exc}")


def replayed_name(result: Any) -> str:
    """The run directory name of a result of a replayed (final or continued) experiment: its ``run`` entry."""
    return result.config["run"]["name"]


def trial_id(result: Any) -> str:
    """The trial id of a Tune result: from its metrics, else from its directory ``trainable_<trial id>_<n>_…``
    (ids are ``3f2a9c1d`` from a Searcher, ``87130_00000`` from the basic variant generator)."""
    found = (result.metrics or {}).get("trial_id")
    if found:
        return found
    match = _TRIAL_DIR.match(Path(result.path).name)
    return match.group(1) if match else Path(result.path).name
