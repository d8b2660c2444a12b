"""Aggregate runs into leaderboard rows: one per (dataset, model, protocol), mean ± std over seeds, plus cost.

Protocols (the ``protocol`` field of a row):

``val``          final-stage runs; epoch and calibration γ chosen on validation (``best_by_val``). The default.
``test``         the same final-stage runs; epoch and γ chosen on test itself (``best_by_test``), as the official
                 ZeroMamba/DUET code does. Optimistic: only for comparing with numbers papers report.
``search-val``   a (dataset, model) without any final-stage run: its search-stage runs (trained on the train
``search-test``  classes only), selected as above. Shown only as a fallback, clearly labelled.
``reported``     numbers quoted from papers (``results/reference``), never measured here.

Accuracy (the ``accuracy`` field of a row): ``per_class`` (per-class means, the xlsa17 standard) or ``per_sample``
(overall accuracies, what the official DUET code reports on AwA2 and SUN with ``--all``). Runs trained with
``eval.accuracy=per_sample`` never mix with per-class runs: they aggregate into rows of their own (same dataset and
model, ``accuracy: per_sample``), with their own cost, and the tables mark them.

Which configuration a row shows: final-stage runs are grouped by configuration (seeds aside) and the group whose
*parent search trial* has the best validation H wins — the same evidence the sweep used to choose it; test numbers
never choose. Search-stage fallback rows rank configurations by their own mean validation H. The same configuration
serves both the ``val`` and the ``test`` row, so the two differ only in how epoch and γ were chosen.

Cost: every readable run of the (dataset, model), search and final stage, failed and unfinished ones included, with
the compute its ``summary.json`` recorded; a run's wall time counts once, as GPU-hours if it ran on CUDA, else as
CPU-hours (not multiplied by threads or by GPU shares).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zsl_bench.record import METRIC, metric_columns
from zsl_bench.report.runs import SELECTIONS, Collected, RunInfo

PROTOCOLS = ("val", "test", "search-val", "search-test")
REPORTED = "reported"
ROW_KEYS = (
    "dataset",
    "model",
    "protocol",
    "accuracy",
    "n_seeds",
    *metric_columns(),
    "gpu_hours",
    "cpu_hours",
    "trials",
)
"""The keys of a JSON row (accuracies in percent)."""

_GROUP = ["dataset", "model", "accuracy"]


@dataclass(frozen=True)
class Row:
    """One leaderboard row; accuracies in percent, ``None`` where unknown.

    The metrics of :data:`zsl_bench.record.METRICS` read as attributes: ``row.h`` is ``row.scores["h"]``,
    ``row.h_std`` its standard deviation over seeds."""

    dataset: str
    model: str
    protocol: str
    scores: Mapping[str, float | None] = field(default_factory=dict)  # metric → mean over seeds
    stds: Mapping[str, float | None] = field(default_factory=dict)  # metric → sample std (None below 2 seeds)
    n_seeds: int | None = None
    gpu_hours: float | None = None
    cpu_hours: float | None = None
    trials: int | None = None
    search_trials: int | None = None
    final_trials: int | None = None
    backbone: str | None = None  # reported rows
    source: str | None = None  # reported rows
    runs: tuple[str, ...] = ()  # the run directories averaged
    accuracy: str = "per_class"  # per_class | per_sample (overall): how CZSL, U and S average
    accuracy_source: str | None = None  # reported rows: where the metric used is documented

    def __getattr__(self, name: str) -> Any:
        if name in METRIC:
            return self.scores.get(name)
        if name.endswith("_std") and name.removesuffix("_std") in METRIC:
            return self.stds.get(name.removesuffix("_std"))
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def per_sample(self) -> bool:
        """Whether CZSL, U and S are per-sample (overall) accuracies, not per-class means."""
        return self.accuracy == "per_sample"

    @property
    def selection(self) -> str:
        """``val`` or ``test`` (how epoch and γ were chosen); ``reported`` for quoted numbers."""
        return self.protocol.removeprefix("search-")

    @property
    def kind(self) -> str:
        """``measured``, ``search stage`` or ``reported``: how to label the row in a table."""
        if self.protocol == REPORTED:
            return REPORTED
        return "search stage" if self.protocol.startswith("search-") else "measured"

    def as_json(self) -> dict[str, object]:
        """The JSON row: exactly ``ROW_KEYS``."""
        return {k: getattr(self, k) for k in ROW_KEYS}


def _frame(runs: list[RunInfo]) -> pd.DataFrame:
    """One line per run: its group, stage and compute on GPU / CPU (seconds)."""
    lines = [
        {
            "dataset": r.dataset,
            "model": r.model,
            "accuracy": r.accuracy,
            "gpu_s": r.compute_s if r.on_gpu else 0.0,
            "cpu_s": 0.0 if r.on_gpu else r.compute_s,
            "final": int(r.stage == "final"),
            "search": int(r.stage != "final"),
        }
        for r in runs
    ]
    return pd.DataFrame(lines, columns=[*_GROUP, "gpu_s", "cpu_s", "final", "search"])


def _costs(runs: list[RunInfo]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per (dataset, model, accuracy): compute of every trial (any status) and the search / final trial counts."""
    totals = _frame(runs).groupby(_GROUP, sort=False)[["gpu_s", "cpu_s", "final", "search"]].sum()
    return {key: dict(values) for key, values in totals.to_dict(orient="index").items()}


def aggregate(collected: Collected) -> tuple[list[Row], list[str]]:
    """Measured rows (ordered by dataset, protocol, model) and notes about choices made without evidence."""
    costs = _costs(collected.runs)
    by_path = {r.path: r for r in collected.runs}
    groups: dict[tuple[str, str, str], list[RunInfo]] = {}
    for run in collected.scored:
        groups.setdefault((run.dataset, run.model, run.accuracy), []).append(run)

    rows: list[Row] = []
    notes: list[str] = []
    for (dataset, model, accuracy), runs in groups.items():
        finals = [r for r in runs if r.stage == "final"]
        pool, prefix = (finals, "") if finals else (runs, "search-")
        chosen, note = _choose(pool, by_path, final=bool(finals))
        name = f"{dataset}/{model}" + (" (per-sample)" if accuracy == "per_sample" else "")
        if note:
            notes.append(f"{name}: {note}")
        seeds = [repr(r.seed) for r in chosen]
        if len(set(seeds)) < len(seeds):
            notes.append(f"{name}: {len(seeds)} runs averaged but only {len(set(seeds))} distinct seeds")
        for selection in SELECTIONS:
            rows.append(_row(prefix + selection, chosen, costs[(dataset, model, accuracy)]))
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    rows.sort(key=lambda r: (r.dataset, order[r.protocol], r.model, r.accuracy))
    return rows, notes


def _evidence(group: list[RunInfo], by_path: dict[Path, RunInfo], final: bool) -> float | None:
    """Mean validation H behind a configuration: of its parent search trials (final) or of its own runs."""
    if final:
        parents = [by_path.get(r.path.parent / r.parent) for r in group if r.parent]
        values = [p.val_h for p in parents if p is not None and p.scored and p.val_h is not None]
    else:
        values = [r.val_h for r in group if r.val_h is not None]
    return statistics.fmean(values) if values else None


def _choose(pool: list[RunInfo], by_path: dict[Path, RunInfo], final: bool) -> tuple[list[RunInfo], str | None]:
    """The configuration group to show and, if it was chosen without validation evidence, a note saying so."""
    by_config: dict[str, list[RunInfo]] = {}
    for run in pool:
        by_config.setdefault(run.config_key, []).append(run)
    groups = [sorted(g, key=lambda r: str(r.path)) for g in by_config.values()]
    scored = [(_evidence(g, by_path, final), g) for g in groups]
    # best validation evidence first; without any, most seeds, then the first path (deterministic)
    scored.sort(key=lambda eg: (eg[0] is None, -(eg[0] or 0.0), -len(eg[1]), str(eg[1][0].path)))
    evidence, chosen = scored[0]
    note = None
    if evidence is None and len(groups) > 1:
        note = (
            f"{len(groups)} configurations and no validation evidence (no parent search trial found); "
            f"showing the one with most seeds ({chosen[0].path.parent.name}/{chosen[0].path.name})"
        )
    return chosen, note


def _number(value: Any) -> float | None:
    """A pandas statistic as a float, ``None`` for NaN (no value, or a std of fewer than two seeds)."""
    return None if pd.isna(value) else float(value)


def seed_stats(tests: list[dict[str, float]]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Mean and sample standard deviation over seeds of each metric, in percent where the metric is a percentage."""
    frame = pd.DataFrame(tests, columns=list(METRIC), dtype="float64")
    scale = pd.Series({m.name: 100.0 if m.percent else 1.0 for m in METRIC.values()})
    frame = frame * scale
    means, stds = frame.mean(), frame.std(ddof=1)
    return {m: _number(means[m]) for m in METRIC}, {m: _number(stds[m]) for m in METRIC}


def _row(protocol: str, runs: list[RunInfo], cost: dict[str, Any]) -> Row:
    means, stds = seed_stats([r.tests[protocol.removeprefix("search-")] for r in runs])
    return Row(
        dataset=runs[0].dataset,
        model=runs[0].model,
        protocol=protocol,
        scores=means,
        stds={m: v for m, v in stds.items() if METRIC[m].std},
        n_seeds=len(runs),
        gpu_hours=float(cost["gpu_s"]) / 3600.0,
        cpu_hours=float(cost["cpu_s"]) / 3600.0,
        trials=int(cost["search"] + cost["final"]),
        search_trials=int(cost["search"]),
        final_trials=int(cost["final"]),
        runs=tuple(str(r.path) for r in runs),
        accuracy=runs[0].accuracy,
    )
