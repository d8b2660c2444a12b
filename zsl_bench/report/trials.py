"""What the sweep report and the leaderboard site both show of runs: the searched keys and the trial table of a
search, its progress plot, the seen–unseen curves of a row's runs, and safe file names.

Nothing here writes text documents; callers lay the pieces out as markdown (``sweep_report``) or HTML
(``report.site``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from zsl_bench.record import config_identity
from zsl_bench.report import plots
from zsl_bench.report.aggregate import Row
from zsl_bench.report.runs import RunInfo
from zsl_bench.report.scores import TEST_SCORES, Curve, load_test_scores, seen_unseen_curve

TRIAL_HEADERS = ["Trial", "Status", "Epochs", "Val H (%)", "Compute (min)"]
"""The fixed columns of :func:`trial_table`; the searched keys follow."""


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{dotted key: value}`` (an empty mapping stays one value)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def varying(runs: list[RunInfo]) -> list[str]:
    """Config keys whose values differ between the runs (what the sweep searched)."""
    flats = [flat(config_identity(r.config)) for r in runs]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]


def fmt(value: Any) -> str:
    """A config value as shown in a table (floats with 4 significant digits)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_table(search: list[RunInfo], limit: int | None = None) -> tuple[list[str], list[tuple[RunInfo, list[str]]]]:
    """Headers and ``(trial, cells)`` lines of the search trials with a validation result, best validation H first
    (at most ``limit``): :data:`TRIAL_HEADERS` then the searched keys."""
    ranked = sorted((r for r in search if r.val_h is not None), key=lambda r: (-(r.val_h or 0.0), str(r.path)))
    keys = varying(search)
    lines = []
    for r in ranked[:limit]:
        values = flat(r.config)
        cells = [r.path.name, r.status, str(r.epochs_run), f"{100.0 * (r.val_h or 0.0):.1f}", f"{r.compute_s / 60:.1f}"]
        lines.append((r, cells + [fmt(values.get(k)) for k in keys]))
    return [*TRIAL_HEADERS, *keys], lines


def draw_search_progress(search: list[RunInfo], final: list[RunInfo], path: Path, title: str) -> bool:
    """Best validation H against the cumulative compute of ``search`` (in the order the trials finished) into
    ``path``; the ``final`` runs' compute is noted. False (nothing drawn) without a search trial."""
    ordered = sorted(search, key=lambda r: (r.finished_at, str(r.path)))
    if not ordered:
        return False
    trials = [plots.Trial(r.compute_s, r.val_h if r.scored else None) for r in ordered]
    plots.plot_search_progress(trials, path, title, sum(r.compute_s for r in final), len(final))
    return True


def row_curves(row: Row, by_path: dict[str, RunInfo], notes: list[str]) -> list[Curve]:
    """The seen–unseen curve of each run behind ``row`` that saved its test scores; problems go to ``notes``."""
    curves = []
    for path in row.runs:
        run = by_path[path]
        ts, problem = load_test_scores(run.path)
        if problem:
            notes.append(problem)
        if ts is None:
            continue
        test = run.tests.get("val")
        same_epoch = ts.epoch is not None and ts.epoch == run.selected_epoch
        point = (test["s"], test["u"]) if test and same_epoch else None
        try:
            curves.append(seen_unseen_curve(f"seed {run.seed}", ts, point))
        except ValueError as exc:
            notes.append(f"{run.path / TEST_SCORES}: {exc}")
    return curves


def slug(text: str) -> str:
    """``text`` as a safe file name part: runs of other characters than letters, digits, ``.`` and ``-`` become
    ``_``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")
