"""Read run directories for reports: which runs count towards scores, which only towards cost, which are skipped.

A run counts towards **scores** when it has ``done``, no ``error.txt`` and a complete ``summary.json`` with status
``completed`` or ``stopped``. Every readable run (failed and unfinished ones too) counts towards **cost** with the
compute its ``summary.json`` recorded, if any. Runs that do not count towards scores are *skipped* and counted by
reason (failed / incomplete / unreadable) for one warning line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_bench.record import ACCURACY_MODES, SELECTIONS, H, RunRecord, config_key
from zsl_bench.rundir import CONFIG, DONE, SUMMARY, UnreadableRun, find_run_dirs, read_record

__all__ = ["ACCURACY_MODES", "SELECTIONS", "Collected", "RunInfo", "Skipped", "collect", "config_key"]


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


def collect(results: Path) -> Collected:
    """Read every run directory below ``results`` (never raises for a bad run: it is skipped and counted)."""
    runs: list[RunInfo] = []
    skipped = Skipped()
    for path in find_run_dirs(Path(results)):
        try:
            info = _info(read_record(path))
        except UnreadableRun:
            skipped.add("unreadable", path)
            continue
        runs.append(info)
        if not info.scored:
            skipped.add("failed" if info.status == "failed" else "incomplete", path)
    return Collected(runs, skipped)


def _mtime(path: Path) -> float:
    for name in (DONE, SUMMARY, CONFIG):
        if (path / name).exists():
            return (path / name).stat().st_mtime
    return 0.0


def _tests(record: RunRecord) -> dict[str, dict[str, float]]:
    """Selection → the test scores at the epoch/γ it chose; raises ``UnreadableRun`` when one is missing."""
    tests = {}
    for selection in SELECTIONS:
        chosen = record.summary.selection(selection) if record.summary else None
        if chosen is None or chosen.test is None:
            raise UnreadableRun(f"{record.path}: {SUMMARY} has no test numbers ({SELECTIONS[selection]})")
        tests[selection] = chosen.test
    return tests


def _info(record: RunRecord) -> RunInfo:
    """Reduce a run record to what reports need; raises ``UnreadableRun`` for a config of the wrong shape."""
    cfg, path, summary = record.config, record.path, record.summary
    try:
        dataset, model = str(cfg["data"]["name"]), str(cfg["model"]["name"])
    except (KeyError, TypeError):
        raise UnreadableRun(f"{path}: config.yaml has no data.name / model.name") from None
    if record.accuracy not in ACCURACY_MODES:
        modes = ", ".join(ACCURACY_MODES)
        raise UnreadableRun(f"{path}: config.yaml eval.accuracy is {record.accuracy!r}, not one of {modes}")
    chosen = summary.best_by_val if summary else None
    val = chosen.val if chosen and record.scored else None
    parent = record.section("meta").get("parent")
    return RunInfo(
        path=path,
        dataset=dataset,
        model=model,
        stage=record.stage,
        seed=record.section("train").get("seed"),
        config_key=config_key(cfg),
        parent=parent if isinstance(parent, str) and parent else None,
        config=cfg,
        compute_s=summary.compute_s if summary else 0.0,
        device=(summary.device if summary else None) or "cpu",
        status=record.status,
        scored=record.scored,
        tests=_tests(record) if record.scored else {},
        val_h=val[H] if val else None,
        finished_at=_mtime(path),
        epochs_run=summary.epochs_run if summary else 0,
        selected_epoch=chosen.epoch if chosen else None,
        accuracy=record.accuracy,
    )
