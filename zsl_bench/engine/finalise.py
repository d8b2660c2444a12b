"""Finalising a multi-worker run from outside its worker processes.

A sweep (:mod:`zsl_bench.search`) calls :func:`mark_stopped` for a ``ddp``/``deepspeed`` trial its scheduler
stopped: Tune ends the workers before they can write the run's summary and ``done``.
"""

from __future__ import annotations

from pathlib import Path

from zsl_bench.engine import checkpoint
from zsl_bench.engine.selection import summarise
from zsl_bench.rundir import RunWriter, UnreadableRun, read_run

_REBUILT = ("status", "epochs_run", "compute_s", "schema_version", "best_by_val", "best_by_test")


def mark_stopped(run_dir: Path) -> bool:
    """Finalise a multi-worker run that its scheduler ended from outside (Tune kills the workers of a stopped
    trial before they can write ``done``): the epochs its latest checkpoint covers become a ``stopped`` summary.

    Returns False (and changes nothing) for a single-process run, which finalises itself, or a run without a
    checkpoint."""
    run_dir = Path(run_dir)
    try:
        run = read_run(run_dir)
    except UnreadableRun:
        return False
    if run.config.get("train", {}).get("strategy", "single") == "single":
        return False  # it finalises itself; a trial Tune ended between two of its writes is left as it is
    state = checkpoint.load_latest(run_dir)
    if state is None:
        return False
    earlier = run.summary or {"device": "?", "stage": run.config.get("meta", {}).get("stage", "search")}
    info = {k: v for k, v in earlier.items() if k not in _REBUILT}
    summary = summarise(list(state["history"]), status="stopped", compute_s=state["compute_s"], **info)
    writer = RunWriter(run_dir, resume_after=state["epoch"])  # drops records of an epoch the checkpoint lacks
    writer.summary(summary)
    writer.done()
    return True
