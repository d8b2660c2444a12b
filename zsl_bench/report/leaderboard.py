"""The leaderboard: one row per (dataset, model, protocol), built only from run directories.

Within a row's runs, configurations (everything but ``meta`` and ``train.seed``) are ranked by their mean
validation H — never by test — and the winner's test CZSL / U / S / H are averaged over its seeds. The
``protocol`` is the run's stage: ``search`` (trained on the train classes, selected on val) or ``final``
(retrained on trainval).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_bench.rundir import Run, UnreadableRun, find_run_dirs, read_run

METRICS = ("czsl", "u", "s", "h")


@dataclass
class Skipped:
    """Runs left out of the table, by reason."""

    failed: int = 0
    incomplete: int = 0
    unreadable: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.failed + self.incomplete + self.unreadable

    def line(self) -> str:
        return (
            f"leaderboard: skipped {self.total} run(s): {self.failed} failed, {self.incomplete} incomplete, "
            f"{self.unreadable} unreadable (e.g. {', '.join(self.examples[:3])})"
        )


def collect(results: Path) -> tuple[list[dict[str, Any]], Skipped]:
    """Read every run under ``results`` and aggregate; returns (rows, what was skipped)."""
    skipped = Skipped()
    groups: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for path in find_run_dirs(results):
        try:
            run = read_run(path)
        except UnreadableRun:
            skipped.unreadable += 1
            skipped.examples.append(str(path))
            continue
        if run.error is not None:
            skipped.failed += 1
            skipped.examples.append(str(path))
            continue
        if not run.done or not run.summary or not run.summary.get("best_by_val"):
            skipped.incomplete += 1
            skipped.examples.append(str(path))
            continue
        cfg = run.config
        key = (cfg["data"]["name"], cfg["model"]["name"], cfg.get("meta", {}).get("stage", "search"))
        groups[key].append(run)
    rows = [_row(key, runs) for key, runs in groups.items()]
    rows.sort(key=lambda r: (r["dataset"], r["protocol"], -r["h"], r["model"]))
    return rows, skipped


def _config_key(config: dict[str, Any]) -> str:
    """Identity of a configuration across seeds: the config without ``meta`` and ``train.seed``."""
    tree = {k: v for k, v in config.items() if k != "meta"}
    tree["train"] = {k: v for k, v in tree.get("train", {}).items() if k != "seed"}
    return hashlib.sha1(json.dumps(tree, sort_keys=True).encode()).hexdigest()


def _mean(runs: list[Run], split: str, metric: str) -> float | None:
    values = [r.summary["best_by_val"][split][metric] for r in runs if r.summary["best_by_val"].get(split)]
    return sum(values) / len(values) if values else None


def _row(key: tuple[str, str, str], runs: list[Run]) -> dict[str, Any]:
    by_config: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_config[_config_key(run.config)].append(run)

    def rank(group: list[Run]) -> float:
        val_h = _mean(group, "val", "h")
        return val_h if val_h is not None else _mean(group, "test", "h")  # final stage: no val split

    best = max(by_config.values(), key=rank)
    dataset, model, protocol = key
    row: dict[str, Any] = {"dataset": dataset, "model": model, "protocol": protocol}
    row["n_seeds"] = len({r.config.get("train", {}).get("seed") for r in best})
    for metric in METRICS:
        row[metric] = round(100.0 * _mean(best, "test", metric), 1)
    row["runs"] = len(runs)
    row["best_run"] = str(best[0].path)
    return row


def render(rows: list[dict[str, Any]], fmt: str = "md") -> str:
    """``md`` (tabulate, GitHub style) or ``json`` (a list of rows, accuracies in percent)."""
    if fmt == "json":
        keys = ("dataset", "model", "protocol", "n_seeds", *METRICS)
        return json.dumps([{k: r[k] for k in keys} for r in rows], indent=2)
    from tabulate import tabulate

    if not rows:
        return "(no finished runs)"
    table = [[r["dataset"], r["model"], r["protocol"], r["n_seeds"], *(f"{r[m]:.1f}" for m in METRICS)] for r in rows]
    headers = ["Dataset", "Model", "Protocol", "Seeds", "CZSL top-1", "GZSL U", "GZSL S", "GZSL H"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)
