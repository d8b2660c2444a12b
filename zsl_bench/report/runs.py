"""Read run directories for reports: which runs count towards scores, which only towards cost, which are skipped.

A run counts towards **scores** when it has ``done``, no ``error.txt`` and a complete ``summary.json`` with status
``completed`` or ``stopped``. Every readable run (failed and unfinished ones too) counts towards **cost** with the
compute its ``summary.json`` recorded, if any. Runs that do not count towards scores are *skipped* and counted by
reason (failed / incomplete / unreadable) for one warning line.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_bench.rundir import DONE, SUMMARY, Run, UnreadableRun, find_run_dirs, read_run

METRICS = ("czsl", "u", "s", "h")
ACCURACY = ("per_class", "per_sample")
"""How a run's CZSL, U and S average (its ``eval.accuracy``; runs written before the option: ``per_class``)."""
SELECTIONS = {"val": "best_by_val", "test": "best_by_test"}
"""Selection name → the ``summary.json`` block holding the test numbers at the epoch/γ it chose."""

# Config keys that do not change what is trained or measured: left out of a configuration's identity.
_NOT_IDENTITY = {"data": ("root",), "train": ("seed", "device", "num_threads", "checkpoint"), "eval": ("batch_size",)}


@dataclass(frozen=True)
class RunInfo:
    """What the reports need of one readable run directory."""

    path: Path
    dataset: str
    model: str
    stage: str  # "search" or "final"
    seed: Any
    config_key: str  # identity of the configuration across seeds
    parent: str | None  # final stage: the search trial whose configuration it retrains
    config: dict[str, Any]
    compute_s: float  # 0.0 when nothing was recorded
    device: str  # "cpu", "cuda", "cuda:0", … ("cpu" when unknown)
    status: str  # completed | stopped | running | failed
    scored: bool  # counts towards scores
    tests: dict[str, dict[str, float]]  # selection → test {czsl, u, s, h} (fractions); empty unless scored
    val_h: float | None  # validation H at the validation-selected epoch (search stage)
    finished_at: float  # mtime of done / summary.json / config.yaml: the order in which trials ended
    epochs_run: int = 0
    selected_epoch: int | None = None  # the GZSL epoch best_by_val chose
    accuracy: str = "per_class"  # eval.accuracy: per-class means or per-sample (overall) accuracies

    @property
    def on_gpu(self) -> bool:
        """Whether the run's compute was spent on a GPU."""
        return self.device.startswith("cuda")


@dataclass
class Skipped:
    """Runs left out of the scores, by reason, with a few example paths."""

    failed: int = 0
    incomplete: int = 0
    unreadable: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of skipped runs."""
        return self.failed + self.incomplete + self.unreadable

    def add(self, reason: str, path: Path) -> None:
        """Count one skipped run."""
        setattr(self, reason, getattr(self, reason) + 1)
        self.examples.append(str(path))

    def line(self, prefix: str = "leaderboard") -> str:
        """The one warning line: how many runs were skipped, why, and where to look."""
        more = f" (e.g. {', '.join(self.examples[:3])})" if self.examples else ""
        return (
            f"{prefix}: skipped {self.total} run(s) for scores: {self.failed} failed, {self.incomplete} incomplete "
            f"(no done), {self.unreadable} unreadable{more}"
        )


@dataclass
class Collected:
    """Every readable run under a results directory, plus what was skipped."""

    runs: list[RunInfo]
    skipped: Skipped

    @property
    def scored(self) -> list[RunInfo]:
        """The runs that count towards scores."""
        return [r for r in self.runs if r.scored]


def config_key(config: dict[str, Any]) -> str:
    """Identity of a configuration across seeds: the config without ``meta``, the seed and run-time settings."""
    tree = {k: v for k, v in config.items() if k != "meta"}
    for section, keys in _NOT_IDENTITY.items():
        if isinstance(tree.get(section), dict):
            tree[section] = {k: v for k, v in tree[section].items() if k not in keys}
    if isinstance(tree.get("eval"), dict) and tree["eval"].get("accuracy") == "per_class":
        tree["eval"] = {k: v for k, v in tree["eval"].items() if k != "accuracy"}  # the default: as before it existed
    return hashlib.sha1(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()[:12]


def collect(results: Path) -> Collected:
    """Read every run directory below ``results`` (never raises for a bad run: it is skipped and counted)."""
    runs: list[RunInfo] = []
    skipped = Skipped()
    for path in find_run_dirs(Path(results)):
        try:
            info = _info(read_run(path))
        except UnreadableRun:
            skipped.add("unreadable", path)
            continue
        runs.append(info)
        if not info.scored:
            skipped.add("failed" if info.status == "failed" else "incomplete", path)
    return Collected(runs, skipped)


def _mtime(path: Path) -> float:
    for name in (DONE, SUMMARY, "config.yaml"):
        if (path / name).exists():
            return (path / name).stat().st_mtime
    return 0.0


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UnreadableRun(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _block(summary: dict[str, Any], selection: str, split: str, path: Path) -> dict[str, float] | None:
    """``summary[best_by_<selection>][split]`` as {czsl, u, s, h}; raises ``UnreadableRun`` when malformed."""
    where = f"{path}: {SUMMARY} {SELECTIONS[selection]}.{split}"
    chosen = summary.get(SELECTIONS[selection])
    if not isinstance(chosen, dict):
        raise UnreadableRun(f"{where}: missing")
    block = chosen.get(split)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise UnreadableRun(f"{where}: not a mapping")
    return {m: _number(block.get(m), f"{where}.{m}") for m in METRICS}


def _accuracy(cfg: dict[str, Any], path: Path) -> str:
    """The run's ``eval.accuracy`` (``per_class`` when absent); raises ``UnreadableRun`` for an unknown value."""
    section = cfg.get("eval") if isinstance(cfg.get("eval"), dict) else {}
    value = section.get("accuracy") or "per_class"
    if value not in ACCURACY:
        raise UnreadableRun(f"{path}: config.yaml eval.accuracy is {value!r}, not one of {', '.join(ACCURACY)}")
    return str(value)


def _info(run: Run) -> RunInfo:
    """Reduce a parsed run to what reports need; raises ``UnreadableRun`` for a config or summary of the wrong shape."""
    cfg, path = run.config, run.path
    try:
        dataset, model = str(cfg["data"]["name"]), str(cfg["model"]["name"])
    except (KeyError, TypeError):
        raise UnreadableRun(f"{path}: config.yaml has no data.name / model.name") from None
    meta = cfg.get("meta") if isinstance(cfg.get("meta"), dict) else {}
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    summary = run.summary if isinstance(run.summary, dict) else {}
    if run.summary is not None and not isinstance(run.summary, dict):
        raise UnreadableRun(f"{path}: {SUMMARY} is not a mapping")
    compute = summary.get("compute_s", 0.0)
    status = "failed" if run.error is not None else str(summary.get("status", "running"))
    scored = run.done and run.error is None and status in ("completed", "stopped")
    if run.done and run.error is None and not summary:
        raise UnreadableRun(f"{path}: done but no {SUMMARY}")
    tests: dict[str, dict[str, float]] = {}
    val_h = None
    selected = summary.get("best_by_val")
    selected_epoch = selected.get("epoch") if isinstance(selected, dict) else None
    if scored:
        for selection in SELECTIONS:
            test = _block(summary, selection, "test", path)
            if test is None:
                raise UnreadableRun(f"{path}: {SUMMARY} has no test numbers")
            tests[selection] = test
        val = _block(summary, "val", "val", path)
        val_h = val["h"] if val else None
    return RunInfo(
        path=path,
        dataset=dataset,
        model=model,
        stage=str(meta.get("stage") or summary.get("stage") or "search"),
        seed=train.get("seed"),
        config_key=config_key(cfg),
        parent=meta["parent"] if isinstance(meta.get("parent"), str) and meta["parent"] else None,
        config=cfg,
        compute_s=_number(compute, f"{path}: compute_s") if compute is not None else 0.0,
        device=str(summary.get("device") or "cpu"),
        status=status,
        scored=scored,
        tests=tests,
        val_h=val_h,
        finished_at=_mtime(path),
        epochs_run=summary["epochs_run"] if isinstance(summary.get("epochs_run"), int) else 0,
        selected_epoch=selected_epoch if isinstance(selected_epoch, int) else None,
        accuracy=_accuracy(cfg, path),
    )
