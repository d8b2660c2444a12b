"""What a row page shows, read from the run directories: the seed runs and their records, the search trials that
chose the configuration, per-epoch series from ``metrics.jsonl``, and the config the winning one is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_bench.config import build_config, to_dict
from zsl_bench.errors import UserError
from zsl_bench.record import RunRecord, config_identity
from zsl_bench.report.aggregate import Row
from zsl_bench.report.plots import LEARNING_METRICS, Series
from zsl_bench.report.runs import Collected, RunInfo
from zsl_bench.report.trials import flat
from zsl_bench.rundir import METRICS, UnreadableRun, read_record

NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class RowEvidence:
    """Everything behind one leaderboard row."""

    row: Row
    runs: list[RunInfo]  # the seed runs averaged, in the row's order
    records: dict[Path, RunRecord]  # of the seed runs and their parents (those still readable)
    parents: list[RunInfo]  # the search trials the seed runs retrain (final stage), once each
    search: list[RunInfo]  # the search-stage trials of the sweep folders behind the row (same dataset and model)
    final: list[RunInfo]  # the final-stage runs of those folders (their compute is noted in the progress plot)

    @property
    def chosen(self) -> set[Path]:
        """The search trials the row's configuration comes from (its runs themselves for a search-stage row)."""
        return {r.path for r in (self.parents or self.runs)}


def gather(row: Row, collected: Collected) -> RowEvidence:
    """The evidence of ``row`` among the ``collected`` runs of the results tree."""
    by_path = {r.path.resolve(): r for r in collected.runs}
    runs = [by_path[Path(p).resolve()] for p in row.runs]
    parents: dict[Path, RunInfo] = {}
    for run in runs:
        parent = by_path.get((run.path.parent / run.parent).resolve()) if run.parent else None
        if parent is not None:
            parents.setdefault(parent.path, parent)
    folders = {r.path.parent for r in runs}
    same = [
        r
        for r in collected.runs
        if r.path.parent in folders and (r.dataset, r.model, r.accuracy) == (row.dataset, row.model, row.accuracy)
    ]
    records = {}
    for run in [*runs, *parents.values()]:
        try:
            records[run.path] = read_record(run.path)
        except UnreadableRun:
            continue
    search = [r for r in same if r.stage == "search"]
    return RowEvidence(row, runs, records, list(parents.values()), search, [r for r in same if r.stage == "final"])


def series(evidence: RowEvidence) -> tuple[list[Series], list[str]]:
    """Per-epoch validation and test series of the seed runs and their parent search trials, and why a run has
    none."""
    out: list[Series] = []
    problems: list[str] = []
    labelled = [(f"seed {r.seed}", r) for r in evidence.runs] + [(f"search {p.path.name}", p) for p in evidence.parents]
    for label, run in labelled:
        record = evidence.records.get(run.path)
        try:
            evals = record.evals() if record is not None else []
        except ValueError as exc:
            problems.append(f"{run.path.name}: {METRICS} has a malformed line ({exc})")
            continue
        if not evals:
            problems.append(f"{run.path.name}: no {METRICS} records")
        for split in ("val", "test"):
            lines = sorted((e.epoch, e.scores()) for e in evals if e.split == split)
            if lines:
                values = {k: tuple(s.get(k, float("nan")) for _, s in lines) for k in LEARNING_METRICS}
                out.append(Series(label, split, tuple(e for e, _ in lines), values))
    return out, problems


def baseline(config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The config the winning one is compared with, and a sentence saying which it is: the preset named by the
    run's ``meta.preset`` when it records one, else the default config for its model and dataset."""
    meta = config.get("meta") if isinstance(config.get("meta"), dict) else {}
    preset = meta.get("preset") if meta else None
    model, dataset = config.get("model", {}).get("name"), config.get("data", {}).get("name")
    if isinstance(preset, str) and preset:
        try:
            return to_dict(build_config(preset)), f"Compared with the preset it started from, {preset}."
        except UserError as exc:
            unusable = f"The run records preset {preset}, which cannot be read here ({exc}); "
    else:
        unusable = "The run does not record the preset it started from; "
    tree = to_dict(build_config(None, {"model.name": model, "data.name": dataset}))
    return tree, unusable + f"compared with zsl-bench's default config for model {model} on dataset {dataset}."


def differences(config: dict[str, Any], base: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value here, value in base)`` for every identity key whose values differ (seeds aside); keys a
    run's config leaves out count at their defaults."""
    mine, theirs = (
        {k: v for k, v in flat(config_identity(tree, seeds=False)).items() if v != {}}  # an empty mapping: no keys
        for tree in (complete(config), base)
    )
    keys = sorted(set(mine) | set(theirs))
    missing = "(absent)"
    return [(k, mine.get(k, missing), theirs.get(k, missing)) for k in keys if mine.get(k) != theirs.get(k)]


def complete(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (its ``meta`` aside) with the defaults of the keys it leaves out; as read when it does not
    validate against today's schema (a run of an older version)."""
    try:
        return to_dict(build_config({k: v for k, v in config.items() if k != "meta"}))
    except UserError:
        return config


def recorded(value: Any) -> str:
    """A provenance value as shown: ``not recorded`` when empty."""
    if value is None or value == "" or value == {}:
        return NOT_RECORDED
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)
