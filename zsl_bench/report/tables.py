"""Render a leaderboard as markdown (tabulate), CSV (raw numbers), LaTeX (booktabs) or JSON (the built-in
``formats``).

Wide tables have one row per model and, per dataset, one CZSL column and three GZSL columns (U, S, H); the
``val`` and ``test`` selections get separate, labelled tables. Accuracies are shown in percent with one decimal,
``mean ± sample std`` for CZSL and H when a row averages two or more seeds. Bold marks the best *measured* value
of each column (compared as displayed; ties are all bold); reported rows never take the bold.

Per-sample numbers (``accuracy: per_sample``: overall accuracies, as the official DUET code reports AwA2 and SUN)
are never set beside per-class ones unmarked: their cells carry a † (md; ``$^\\dagger$`` in LaTeX) explained by a
footnote, measured per-sample rows get their own line (``measured, per-sample``) and never take the bold, and the
CSV/JSON rows have an ``accuracy`` column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass

from zsl_bench.record import METRIC, metric_names
from zsl_bench.report.aggregate import REPORTED, ROW_KEYS, Row

SELECTION_TITLES = {
    "val": "Selection on validation — protocol `val` (default)",
    "test": "Selection on test — protocol `test` (optimistic: the papers' protocol)",
}
SELECTION_TEXT = {
    "val": "Final-stage runs (retrained on trainval) of the configuration that won on validation; epoch and "
    "calibration γ chosen on validation. No test number chose anything.",
    "test": "The same runs and configurations, but epoch and γ chosen on test itself, as the official "
    "ZeroMamba/DUET code does. Use these only to compare with reported numbers.",
}
SEARCH_NOTE = (
    "*search stage*: no final-stage run exists for this dataset and model, so its search-stage runs (trained on "
    "the train classes only) are shown instead; not comparable with final-stage rows."
)
REPORTED_NOTE = (
    "*reported*: numbers quoted from the papers (`results/reference/*.yaml`), not reproduced here; papers choose "
    "epoch and γ on test, so compare them with the `test` tables."
)
PER_SAMPLE_NOTE = (
    "†: per-sample (overall) accuracy — correct / samples for CZSL, U and S, e.g. the official DUET code's `--all` "
    "(its AwA2 and SUN scripts) — not comparable with the per-class means of the other cells; compare it with a "
    "`measured, per-sample` row (runs with `eval.accuracy=per_sample`)."
)
PER_SAMPLE_KIND = "measured, per-sample"
DAGGER = "†"
LABELS = {m.name: m.label for m in METRIC.values()}
CZSL = metric_names("czsl")
GZSL = metric_names("gzsl")
DECIMALS = 6  # CSV and JSON: raw numbers, rounded only to drop float noise


@dataclass(frozen=True)
class Cell:
    """One displayed accuracy."""

    mean: float
    std: float | None
    bold: bool
    per_sample: bool = False  # an overall accuracy, not a per-class mean: shown marked


@dataclass(frozen=True)
class Wide:
    """A wide table: ``columns`` are (dataset, metric); ``lines`` are (model, kind, cells)."""

    columns: list[tuple[str, str]]
    lines: list[tuple[str, str, list[Cell | None]]]


def _shown(value: float) -> float:
    return round(value, 1)


def kind_of(row: Row) -> str:
    """The row's label in the Result column: ``measured``, ``search stage``, ``reported``, or ``measured,
    per-sample`` (``search stage, per-sample``) for measured per-sample rows."""
    return f"{row.kind}, per-sample" if row.per_sample and row.kind != REPORTED else row.kind


def wide_table(rows: list[Row], reported: list[Row], selection: str, metrics: tuple[str, ...]) -> Wide:
    """The ``selection`` table over ``metrics``: measured rows by model, then search-stage, then reported rows."""
    measured = [r for r in rows if r.selection == selection]
    datasets = sorted({r.dataset for r in measured})
    columns = [(d, m) for d in datasets for m in metrics]
    by_line: dict[tuple[str, str], dict[str, Row]] = {}
    kind_order = {"measured": 0, "search stage": 1}
    for row in sorted(measured, key=lambda r: (kind_order[r.kind], r.per_sample, r.model)):
        by_line.setdefault((row.model, kind_of(row)), {})[row.dataset] = row
    for row in reported:
        if row.dataset in datasets:
            by_line.setdefault((row.model, REPORTED), {})[row.dataset] = row
    best: dict[tuple[str, str], float] = {}
    for d, m in columns:  # the bold: among measured per-class rows only
        values = [_shown(getattr(r, m)) for r in _with(measured, d, m) if not r.per_sample]
        if values:
            best[(d, m)] = METRIC[m].best(values)
    lines = []
    for (model, kind), cells_by_dataset in by_line.items():
        cells: list[Cell | None] = []
        for d, m in columns:
            row = cells_by_dataset.get(d)
            value = getattr(row, m) if row else None
            if value is None:
                cells.append(None)
                continue
            std = getattr(row, f"{m}_std", None)
            bold = kind in kind_order and _shown(value) == best.get((d, m))
            cells.append(Cell(value, std, bold, row.per_sample))
        if any(c is not None for c in cells):  # e.g. an H-only reported row has no line in the CZSL table
            lines.append((model, kind, cells))
    return Wide(columns, lines)


def _with(rows: list[Row], dataset: str, metric: str) -> list[Row]:
    """The rows of ``dataset`` that have a value for ``metric``."""
    return [r for r in rows if r.dataset == dataset and getattr(r, metric) is not None]


def any_per_sample(table: Wide) -> bool:
    """Whether a cell of ``table`` is a per-sample accuracy (then the table needs :data:`PER_SAMPLE_NOTE`)."""
    return any(c is not None and c.per_sample for _, _, cells in table.lines for c in cells)


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _cost_lines(rows: list[Row]) -> list[list[str]]:
    """Dataset, model, kind, seeds, trials (search + final), GPU-h, CPU-h: once per (dataset, model)."""
    out = []
    for r in rows:
        if r.selection == "val":
            trials = f"{r.trials} ({r.search_trials} + {r.final_trials})"
            row = [r.dataset, r.model, kind_of(r), str(r.n_seeds), trials, _hours(r.gpu_hours), _hours(r.cpu_hours)]
            out.append(row)
    return out


COST_HEADERS = ["Dataset", "Model", "Result", "Seeds", "Trials (search + final)", "GPU-h", "CPU-h"]


# ------------------------------------------------------------------------------------------------- markdown


def _md_cell(cell: Cell | None) -> str:
    if cell is None:
        return "–"
    text = f"{cell.mean:.1f}" + (f" ± {cell.std:.1f}" if cell.std is not None else "")
    text = f"**{text}**" if cell.bold else text
    return text + DAGGER if cell.per_sample else text


def _md_wide(table: Wide, gzsl: bool) -> str:
    from tabulate import tabulate

    headers = ["Model", "Result"] + [f"{d} {LABELS[m]}" if gzsl else d for d, m in table.columns]
    body = [[model, kind, *(_md_cell(c) for c in cells)] for model, kind, cells in table.lines]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def render_md(rows: list[Row], reported: list[Row], header: list[str], notes: list[str]) -> str:
    """The markdown document: ``header`` lines, a CZSL and a GZSL table per selection, cost, sources, notes."""
    from tabulate import tabulate

    parts = ["# Leaderboard", "", *header]
    if not rows:
        return "\n".join([*parts, "", "No finished runs."])
    marked = False
    for selection in ("val", "test"):
        czsl, gzsl = wide_table(rows, reported, selection, CZSL), wide_table(rows, reported, selection, GZSL)
        marked = marked or any_per_sample(czsl) or any_per_sample(gzsl)
        parts += ["", f"## {SELECTION_TITLES[selection]}", "", SELECTION_TEXT[selection]]
        parts += ["", "### CZSL top-1 (%)", "", _md_wide(czsl, False)]
        parts += ["", f"### GZSL {' / '.join(LABELS[m] for m in GZSL)} (%)", "", _md_wide(gzsl, True)]
    parts += ["", "## Runs and cost", ""]
    parts.append(tabulate(_cost_lines(rows), headers=COST_HEADERS, tablefmt="github", disable_numparse=True))
    parts += ["", "Cost counts every trial behind a row — search and final stage, failed ones included — as "]
    parts[-1] += "wall-clock hours on its device (GPU-h if it ran on CUDA, else CPU-h)."
    shown = _reported_shown(rows, reported)
    if shown:
        parts += ["", "## Reported numbers: sources", ""]
        table = [[r.model, r.backbone or "", r.source or ""] for r in shown]
        parts.append(tabulate(table, headers=["Method", "Backbone", "Source"], tablefmt="github"))
    footnotes = []
    if marked:
        footnotes.append(PER_SAMPLE_NOTE + "".join(f" {line}" for line in _per_sample_sources(rows, reported)))
    if any(r.kind == "search stage" for r in rows):
        footnotes.append(SEARCH_NOTE)
    if shown:
        footnotes.append(REPORTED_NOTE)
    footnotes += [f"Note: {n}" for n in notes]
    if footnotes:
        parts += ["", *[f"- {f}" for f in footnotes]]
    return "\n".join(parts)


def _per_sample_sources(rows: list[Row], reported: list[Row]) -> list[str]:
    """One sentence per reported method with per-sample numbers shown: its datasets and the metric's source."""
    datasets = {r.dataset for r in rows}
    by_method: dict[str, list[Row]] = {}
    for r in reported:
        if r.per_sample and r.dataset in datasets:
            by_method.setdefault(r.model, []).append(r)
    return [
        f"{m} on {', '.join(r.dataset for r in rs)}: per-sample ({rs[0].accuracy_source})."
        for m, rs in by_method.items()
    ]


def _reported_shown(rows: list[Row], reported: list[Row]) -> list[Row]:
    """One reported row per method among those shown in the tables (first appearance order)."""
    datasets = {r.dataset for r in rows}
    seen: dict[str, Row] = {}
    for r in reported:
        if r.dataset in datasets:
            seen.setdefault(r.model, r)
    return list(seen.values())


# ----------------------------------------------------------------------------------------------- csv / json


def _raw(value: object) -> object:
    return round(value, DECIMALS) if isinstance(value, float) else value


def render_csv(rows: list[Row], reported: list[Row]) -> str:
    """Measured rows then the reported rows shown in the tables: ``ROW_KEYS`` + backbone, source; raw numbers."""
    datasets = {r.dataset for r in rows}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    keys = (*ROW_KEYS, "backbone", "source", "accuracy_source")
    writer.writerow(keys)
    for row in [*rows, *(r for r in reported if r.dataset in datasets)]:
        writer.writerow(["" if getattr(row, k) is None else _raw(getattr(row, k)) for k in keys])
    return buf.getvalue().rstrip("\n")


def render_json(rows: list[Row]) -> str:
    """A JSON list of the measured rows, exactly ``ROW_KEYS`` each (percent)."""
    return json.dumps([{k: _raw(v) for k, v in r.as_json().items()} for r in rows], indent=2)


# ---------------------------------------------------------------------------------------------------- LaTeX

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX table cell."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def _tex_cell(cell: Cell | None) -> str:
    if cell is None:
        return "--"
    mean = f"\\textbf{{{cell.mean:.1f}}}" if cell.bold else f"{cell.mean:.1f}"
    mark = "$^\\dagger$" if cell.per_sample else ""
    return mean + (f"{{\\scriptsize$\\pm${cell.std:.1f}}}" if cell.std is not None else "") + mark


def _tex_tabular(spec: str, head: list[str], body: list[list[str]], rule_before: Callable[[int], bool]) -> list[str]:
    out = [f"  \\begin{{tabular}}{{{spec}}}", "    \\toprule", *head, "    \\midrule"]
    for i, cells in enumerate(body):
        if i and rule_before(i):
            out.append("    \\midrule")
        out.append("    " + " & ".join(cells) + r" \\")
    return [*out, "    \\bottomrule", "  \\end{tabular}"]


def _tex_wide(table: Wide, selection: str) -> list[str]:
    datasets = list(dict.fromkeys(d for d, _ in table.columns))
    per = len(table.columns) // max(1, len(datasets))
    groups = " & ".join(f"\\multicolumn{{{per}}}{{c}}{{{tex_escape(d)}}}" for d in datasets)
    rules = " ".join(f"\\cmidrule(lr){{{3 + i * per}-{2 + (i + 1) * per}}}" for i in range(len(datasets)))
    labels = " & ".join(LABELS[m] for _, m in table.columns)
    head = [f"     &  & {groups} \\\\", f"    {rules}", f"    Model & Result & {labels} \\\\"]
    body = [[tex_escape(model), kind, *(_tex_cell(c) for c in cells)] for model, kind, cells in table.lines]
    kinds = [kind for _, kind, _ in table.lines]
    caption = {
        "val": "Selection on validation (protocol \\texttt{val}): epoch and calibration $\\gamma$ chosen on "
        "validation.",
        "test": "Selection on test (protocol \\texttt{test}, optimistic): epoch and $\\gamma$ chosen on test, as "
        "in the papers.",
    }[selection]
    caption += " Accuracy in \\%, mean$\\pm$std over seeds; bold: best measured."
    if any_per_sample(table):
        caption += (
            " $^\\dagger$: per-sample (overall) accuracy (correct / samples), not comparable with the per-class means."
        )
    return [
        "\\begin{table}[t]",
        "  \\centering",
        f"  \\caption{{{caption}}}",
        f"  \\label{{tab:zsl-{selection}}}",
        *_tex_tabular("ll" + "c" * len(table.columns), head, body, lambda i: kinds[i] != kinds[i - 1]),
        "\\end{table}",
    ]


def render_tex(rows: list[Row], reported: list[Row], header: list[str], notes: list[str]) -> str:
    """LaTeX (booktabs): per selection one table with CZSL, U, S, H per dataset; then cost; sources as comments."""
    out = ["% Generated by `zsl-bench leaderboard --format tex`; needs \\usepackage{booktabs}."]
    out += [f"% {line}".rstrip() for line in header]
    if not rows:
        return "\n".join([*out, "% No finished runs."])
    for selection in ("val", "test"):
        out += ["", *_tex_wide(wide_table(rows, reported, selection, metric_names()), selection)]
    body = [[tex_escape(c) for c in line] for line in _cost_lines(rows)]
    head = ["    " + " & ".join(tex_escape(h) for h in COST_HEADERS) + r" \\"]
    out += ["", "\\begin{table}[t]", "  \\centering", "  \\caption{Runs and compute behind each row.}"]
    out += ["  \\label{tab:zsl-cost}", *_tex_tabular("lllrrrr", head, body, lambda i: False), "\\end{table}"]
    shown = _reported_shown(rows, reported)
    if shown:
        out += ["", "% Reported rows (not reproduced here):"]
        out += [f"% - {r.model}: backbone {r.backbone}; source: {r.source}" for r in shown]
    out += [f"% Note: {n}" for n in notes]
    return "\n".join(out)
