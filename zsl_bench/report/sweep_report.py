"""``zsl-bench report --sweep NAME``: a short markdown report with plots for one sweep.

Writes into ``<results>/<sweep>/_report/`` (the ``_`` keeps it out of run discovery) unless told otherwise:

``report.md``                         counts, cost, the best search trials, the sweep's leaderboard tables
``search_progress.png``               best validation H against the cumulative compute of the search trials
``seen_unseen_<dataset>_<model>.png`` the seen–unseen curve and AUSUC of each run behind a row, when those runs
                                      saved ``test_scores.npz`` (see ``scores``); skipped otherwise
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from zsl_bench.errors import UserError
from zsl_bench.report import plots, tables, trials
from zsl_bench.report.aggregate import Row, aggregate
from zsl_bench.report.runs import Collected, RunInfo, Skipped, collect
from zsl_bench.report.scores import TEST_SCORES
from zsl_bench.rundir import write_text_atomic

TOP_TRIALS = 10


@dataclass
class SweepReport:
    """What ``write_report`` wrote and noticed."""

    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: Skipped = field(default_factory=Skipped)


def _hours(runs: list[RunInfo]) -> str:
    gpu = sum(r.compute_s for r in runs if r.on_gpu) / 3600.0
    cpu = sum(r.compute_s for r in runs if not r.on_gpu) / 3600.0
    return f"{gpu:.3f} GPU-h + {cpu:.3f} CPU-h"


def _counts(runs: list[RunInfo]) -> str:
    count = Counter("incomplete" if r.status == "running" else r.status for r in runs)
    names = {"completed": "completed", "stopped": "early-stopped", "failed": "failed", "incomplete": "incomplete"}
    return ", ".join(f"{count[k]} {v}" for k, v in names.items() if count[k])


def _top_trials(search: list[RunInfo]) -> list[str]:
    headers, lines = trials.trial_table(search, TOP_TRIALS)
    if not lines:
        return ["No search trial has a validation result."]
    from tabulate import tabulate

    body = [cells for _, cells in lines]
    note = "Test numbers of search trials are recorded but never shown or used here: selection is on validation."
    return [tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), "", note]


def _leaderboard_section(rows: list[Row]) -> list[str]:
    """The sweep's leaderboard tables, headings demoted below the report's."""
    text = tables.render_md(rows, [], [], [])
    lines = text.splitlines()[1:]  # drop "# Leaderboard"
    while lines and not lines[0].strip():
        lines.pop(0)
    return [f"#{line}" if line.startswith("#") else line for line in lines]


def _sweep_dir(results: Path, sweep: str) -> Path:
    """``results/sweep``; a ``UserError`` listing the sweeps there when it is not a folder."""
    sweep_dir = results / sweep
    if not sweep_dir.is_dir():
        known = sorted(p.name for p in results.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
        hint = f"sweeps in {results}: {', '.join(known)}" if known else f"no sweep in {results}"
        raise UserError(f"sweep not found: {sweep_dir} ({hint}; pass --results DIR or --sweep NAME)")
    return sweep_dir


def _progress_section(
    sweep: str, search: list[RunInfo], final: list[RunInfo], out: Path, report: SweepReport
) -> list[str]:
    """The search-progress plot and the best search trials."""
    md = ["", "## Search progress", ""]
    progress = out / "search_progress.png"
    if not trials.draw_search_progress(search, final, progress, f"{sweep}: best validation H vs compute"):
        return [*md, "No search-stage trial in this sweep."]
    report.files.append(progress)
    md += [f"![best validation H against cumulative compute]({progress.name})", ""]
    md += ["Trials in the order they finished; failed or unfinished ones at H = 0.", ""]
    return [*md, "### Best search trials (by validation H)", "", *_top_trials(search)]


def _curves_section(rows: list[Row], collected: Collected, out: Path, report: SweepReport) -> list[str]:
    """A seen–unseen curve (and AUSUC) per ``val`` row whose runs saved their test scores."""
    md = ["", "## Seen–unseen curves", ""]
    by_path = {str(r.path): r for r in collected.runs}
    drawn = 0
    for row in rows:
        if row.selection != "val":
            continue
        curves = trials.row_curves(row, by_path, report.notes)
        label = f"{row.dataset} / {row.model}" + (" (search stage)" if row.kind == "search stage" else "")
        if not curves:
            md.append(f"- {label}: no run saved `{TEST_SCORES}`, so no curve.")
            continue
        png = out / f"seen_unseen_{trials.slug(row.dataset)}_{trials.slug(row.model)}.png"
        plots.plot_seen_unseen(curves, png, f"{label}: seen–unseen curve (test)")
        report.files.append(png)
        drawn += 1
        areas = ", ".join(f"{c.label} {100.0 * c.area:.1f}" for c in curves)
        md += [f"![seen–unseen curve of {label}]({png.name})", "", f"AUSUC (%), {label}: {areas}.", ""]
    if not drawn:
        md += ["", "The engine saves no test scores for these runs, so the curves cannot be drawn."]
    return md


def write_report(results: Path, sweep: str, out: Path | None = None) -> SweepReport:
    """Write ``report.md`` and the plots of sweep ``results/sweep`` into ``out``; returns what was written."""
    results = Path(results)
    sweep_dir = _sweep_dir(results, sweep)
    collected: Collected = collect(sweep_dir)
    if not collected.runs:
        raise UserError(f"no readable run directory in {sweep_dir} (is it a sweep folder?)")
    out = Path(out) if out is not None else sweep_dir / "_report"
    report = SweepReport(skipped=collected.skipped)
    rows, report.notes = aggregate(collected)
    search = [r for r in collected.runs if r.stage == "search"]
    final = [r for r in collected.runs if r.stage == "final"]

    md = [f"# Sweep `{sweep}`", ""]
    md.append(f"- Search stage: {len(search)} trials ({_counts(search) or 'none'}); {_hours(search)}.")
    md.append(f"- Final stage: {len(final)} runs ({_counts(final) or 'none'}); {_hours(final)}.")
    if collected.skipped.unreadable:
        md.append(f"- {collected.skipped.unreadable} unreadable run directories were left out.")
    md += _progress_section(sweep, search, final, out, report)
    md += ["", "## Results", "", *_leaderboard_section(rows)]
    md += _curves_section(rows, collected, out, report)
    if report.notes:
        md += ["", "## Notes", "", *[f"- {n}" for n in report.notes]]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(md) + "\n")
    report.files.insert(0, path)
    return report
