"""The run directory: the contract between the engine (writer) and the leaderboard (reader).

``<run>/config.yaml``  resolved config (with ``meta``)
``<run>/metrics.jsonl`` one JSON object per evaluation (:class:`zsl_bench.record.EvalRecord`)
``<run>/summary.json``  the selected epoch / gamma and its metrics (:class:`zsl_bench.record.RunSummary`)
``<run>/error.txt``     present when the trial failed (what went wrong)
``<run>/test_scores.npz`` test scores at the validation-selected epoch (seen-unseen curves, AUSUC)
``<run>/done``          empty, written last: only runs with it are complete

Every file is written atomically (temp file ``.NAME.*.tmp`` in the same directory, renamed into place by
:mod:`zsl_bench.atomic`), so a reader never sees half a file; the temp files a killed write leaves behind are
deleted when a writer reopens the run.
A resumed run keeps its last ``summary.json`` until the first new epoch replaces it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from zsl_bench import atomic, safe_yaml
from zsl_bench.record import EvalRecord, RunRecord, RunSummary, parse_summary

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
ERROR = "error.txt"
DONE = "done"
TEST_SCORES = "test_scores.npz"  # scores of the test split at the validation-selected epoch
CHECKPOINT_DIR = "checkpoint"  # engine.checkpoint.DIR (not imported here: readers do not need torch)


def clean_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temp files (``.NAME.*.tmp``) that a write killed mid-way left in ``run_dir`` and its checkpoint
    folder; returns them. Only for a run directory that no other process is writing (a writer reopening it)."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT_DIR):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in folder.glob(".*.tmp"):
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("%s: removed %d temp file(s) of an interrupted write", run_dir, len(removed))
    return removed


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file and a rename (:func:`zsl_bench.atomic.write_text`)."""
    atomic.write_text(path, text)


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's emitter where PyYAML has it: same text, faster


def write_yaml(path: Path, obj: Any) -> None:
    write_text_atomic(path, yaml.dump(obj, Dumper=_DUMPER, sort_keys=False))


class RunWriter:
    """Writes one run directory; ``metrics.jsonl`` is rewritten whole (atomically) on every append.

    A fresh writer clears the markers and records of an earlier attempt; ``resume_after=k`` instead keeps the
    metric records of epochs ≤ k (the ones a checkpoint covers), drops the rest, and keeps ``summary.json`` (the
    last good one) until the next epoch's replaces it. Either way, temp files of killed writes are deleted.
    """

    def __init__(self, run_dir: Path, resume_after: int | None = None) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        clean_temp_files(self.dir)
        self._lines: list[str] = []
        if resume_after is not None and (self.dir / METRICS).exists():
            for line in (self.dir / METRICS).read_text().splitlines():
                if line.strip() and json.loads(line).get("epoch", 0) <= resume_after:
                    self._lines.append(line)
        # a resumed run keeps its last summary and the scores of its selected epoch (which may precede the checkpoint)
        stale = [DONE, ERROR] + ([] if resume_after is not None else [SUMMARY, TEST_SCORES])
        for name in stale:
            (self.dir / name).unlink(missing_ok=True)
        if self._lines:  # replaced in one step: a kill here leaves the old records, never none
            write_text_atomic(self.dir / METRICS, "\n".join(self._lines) + "\n")
        else:
            (self.dir / METRICS).unlink(missing_ok=True)

    def inherit_metrics(self, source: Path, up_to: int) -> None:
        """Start ``metrics.jsonl`` with ``source``'s records of epochs ≤ ``up_to``, marked ``inherited_from``."""
        path = Path(source) / METRICS
        lines = path.read_text().splitlines() if path.exists() else []
        records = [json.loads(line) for line in lines if line.strip()]
        kept = [{**r, "inherited_from": Path(source).name} for r in records if r.get("epoch", 0) <= up_to]
        if kept:
            self.metrics(*kept)

    def config(self, config: dict[str, Any]) -> None:
        write_yaml(self.dir / CONFIG, config)

    def metrics(self, *records: EvalRecord | dict[str, Any]) -> None:
        """Append ``records`` (one evaluation each; all of an epoch at once) and rewrite the file once."""
        for record in records:
            self._lines.append(json.dumps(record.dump() if isinstance(record, EvalRecord) else record, sort_keys=True))
        write_text_atomic(self.dir / METRICS, "\n".join(self._lines) + "\n")

    def summary(self, summary: RunSummary | dict[str, Any]) -> None:
        write_json(self.dir / SUMMARY, summary.dump() if isinstance(summary, RunSummary) else summary)

    def test_scores(
        self, scores: np.ndarray, y_true: np.ndarray, seen: np.ndarray, unseen: np.ndarray, *, epoch: int, gamma: float
    ) -> None:
        """``scores`` float32 [N, C] (calibrated score space, before gamma), ``y_true`` [N], class id sets."""
        arrays = {
            "scores": np.asarray(scores, dtype=np.float32),
            "y_true": np.asarray(y_true, dtype=np.int64),
            "seen": np.asarray(seen, dtype=np.int64),
            "unseen": np.asarray(unseen, dtype=np.int64),
            "epoch": np.int64(epoch),
            "gamma": np.float64(gamma),
        }
        with atomic.atomic_open(self.dir / TEST_SCORES) as fh:
            np.savez(fh, **arrays)  # float scores barely compress: zlib would cost 10x the time for ~15 % less

    def error(self, message: str) -> None:
        self.record_error(self.dir, message)

    @staticmethod
    def record_error(run_dir: Path, message: str) -> None:
        """Mark ``run_dir`` as failed with ``message`` (also used by a sweep for trials killed from outside)."""
        write_text_atomic(Path(run_dir) / ERROR, message.rstrip() + "\n")

    def done(self) -> None:
        write_text_atomic(self.dir / DONE, "")


@dataclass
class Run:
    """What a reader sees of one run directory."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    done: bool = False


class UnreadableRun(Exception):
    """A run directory whose files cannot be parsed."""


def read_run(path: Path) -> Run:
    """Parse ``path``; raises ``UnreadableRun`` for missing/corrupt config or summary."""
    path = Path(path)
    try:
        config = safe_yaml.load_file(path / CONFIG, "run config")  # bounded: a results folder may be shared
        summary = json.loads((path / SUMMARY).read_text()) if (path / SUMMARY).exists() else None
        lines = (path / METRICS).read_text().splitlines() if (path / METRICS).exists() else []
        metrics = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UnreadableRun(f"{path}: {exc}") from None
    if not isinstance(config, dict):
        raise UnreadableRun(f"{path}: {CONFIG} is not a mapping")
    error = (path / ERROR).read_text().strip() if (path / ERROR).exists() else None
    return Run(path, config, summary, metrics, error, (path / DONE).exists())


def read_record(path: Path) -> RunRecord:
    """``path`` parsed and checked as a :class:`~zsl_bench.record.RunRecord`; raises ``UnreadableRun`` when its
    config or summary has the wrong shape."""
    run = read_run(path)
    summary = None
    if run.summary is not None:
        try:
            summary = parse_summary(run.summary)
        except ValueError as exc:
            raise UnreadableRun(f"{run.path}: {SUMMARY} {exc}") from None
    if run.done and run.error is None and not run.summary:
        raise UnreadableRun(f"{run.path}: done but no {SUMMARY}")
    return RunRecord(run.path, run.config, summary, run.error, run.done, tuple(run.metrics))


def reopen_stopped(run_dir: Path) -> bool:
    """Make a run finalised as ``stopped`` unfinished again (its ``done`` removed), so ``run_trial`` continues it
    from its latest checkpoint. For a scheduler that pauses a trial by stopping it and later resumes it (PBT).
    Returns whether it did; any other run is left alone."""
    path = Path(run_dir)
    try:
        summary = parse_summary(json.loads((path / SUMMARY).read_text()))
    except (OSError, ValueError):
        return False
    if not (path / DONE).exists() or summary.status != "stopped":
        return False
    (path / DONE).unlink()
    return True


def find_run_dirs(root: Path) -> Iterator[Path]:
    """Every directory below ``root`` holding a ``config.yaml`` (hidden and ``_``-prefixed dirs skipped)."""
    root = Path(root)
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        if CONFIG in filenames:
            yield Path(dirpath)
            dirnames[:] = []
