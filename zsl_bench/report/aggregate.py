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
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from zsl_bench.report.runs import METRICS, SELECTIONS, Collected, RunInfo

PROTOCOLS = ("val", "test", "search-val", "search-test")
REPORTED = "reported"
ROW_KEYS = (
    "dataset",
    "model",
    "protocol",
    "accuracy",
    "n_seeds",
    "czsl",
    "czsl_std",
    "u",
    "s",
    "h",
    "h_std",
    "gpu_hours",
    "cpu_hours",
    "trials",
)
"""The keys of a JSON row (accuracies in percent)."""


@dataclass(frozen=True)
class Row:
    """One leaderboard row; accuracies in percent, ``None`` where unknown."""

    dataset: str
    model: str
    protocol: str
    czsl: float | None
    u: float | None
    s: float | None
    h: float | None
    n_seeds: int | None = None
    czsl_std: float | None = None
    h_std: float | None = None
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


@dataclass
class Cost:
    """Compute of every trial behind a (dataset, model)."""

    gpu_s: float = 0.0
    cpu_s: float = 0.0
    search: int = 0
    final: int = 0

    def add(self, run: RunInfo) -> None:
        """Count ``run`` (any status)."""
        if run.on_gpu:
            self.gpu_s += run.compute_s
        else:
            self.cpu_s += run.compute_s
        if run.stage == "final":
            self.final += 1
        else:
            self.search += 1


def aggregate(collected: Collected) -> tuple[list[Row], list[str]]:
    """Measured rows (ordered by dataset, protocol, model) and notes about choices made without evidence."""
    costs: dict[tuple[str, str, str], Cost] = defaultdict(Cost)
    for run in collected.runs:
        costs[(run.dataset, run.model, run.accuracy)].add(run)
    by_path = {r.path: r for r in collected.runs}
    groups: dict[tuple[str, str, str], list[RunInfo]] = defaultdict(list)
    for run in collected.scored:
        groups[(run.dataset, run.model, run.accuracy)].append(run)

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
            rows.append(_row(dataset, model, prefix + selection, chosen, costs[(dataset, model, accuracy)]))
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
    by_config: dict[str, list[RunInfo]] = defaultdict(list)
    for run in pool:
        by_config[run.config_key].append(run)
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


def _stats(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` with fewer than two values), in percent."""
    pct = [100.0 * v for v in values]
    return statistics.fmean(pct), (statistics.stdev(pct) if len(pct) > 1 else None)


def _row(dataset: str, model: str, protocol: str, runs: list[RunInfo], cost: Cost) -> Row:
    selection = protocol.removeprefix("search-")
    means: dict[str, float] = {}
    stds: dict[str, float | None] = {}
    for metric in METRICS:
        means[metric], stds[metric] = _stats([r.tests[selection][metric] for r in runs])
    return Row(
        dataset=dataset,
        model=model,
        protocol=protocol,
        n_seeds=len(runs),
        czsl=means["czsl"],
        czsl_std=stds["czsl"],
        u=means["u"],
        s=means["s"],
        h=means["h"],
        h_std=stds["h"],
        gpu_hours=cost.gpu_s / 3600.0,
        cpu_hours=cost.cpu_s / 3600.0,
        trials=cost.search + cost.final,
        search_trials=cost.search,
        final_trials=cost.final,
        runs=tuple(str(r.path) for r in runs),
        accuracy=runs[0].accuracy,
    )
