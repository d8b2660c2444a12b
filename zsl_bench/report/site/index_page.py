"""``index.html``: per dataset, one sortable table per protocol the markdown leaderboard shows, reported rows marked
with their source, the header lines, notes and skipped runs.

Every measured value cell carries ``data-value``: the number of the ``--format json`` row for that key, as JSON
writes it (percent for accuracies, rounded to :data:`~zsl_bench.report.tables.DECIMALS` decimals), empty for null.
"""

from __future__ import annotations

import json
import re
from typing import Any

from zsl_bench.record import METRIC, metric_names
from zsl_bench.report.aggregate import PROTOCOLS, Row
from zsl_bench.report.leaderboard import Leaderboard
from zsl_bench.report.site import markup as m
from zsl_bench.report.tables import (
    DECIMALS,
    PER_SAMPLE_NOTE,
    REPORTED_NOTE,
    SEARCH_NOTE,
    SELECTION_TEXT,
    SELECTION_TITLES,
    render_json,
)
from zsl_bench.report.trials import slug

KEYS = ("model", "n_seeds", *metric_names(), "gpu_hours", "cpu_hours", "trials")
"""The sortable columns: ``data-key`` of each header and value cell (keys of a ``--format json`` row)."""
HEADERS = {"model": "Model", "n_seeds": "Seeds", "gpu_hours": "GPU-h", "cpu_hours": "CPU-h", "trials": "Trials"}
COST_NOTE = (
    "Cost counts every trial behind a row — search and final stage, failed ones included — as wall-clock hours on "
    "its device (GPU-h if it ran on CUDA, else CPU-h); Trials: total (search + final)."
)


def plain(text: str) -> str:
    """A note of the markdown tables without its markdown marks (``*emphasis*`` and backticks)."""
    return re.sub(r"\*([^*\s][^*]*?)\*", r"\1", text).replace("`", "")


def row_slugs(rows: list[Row]) -> list[str]:
    """The row pages' file stems, aligned with ``rows``: dataset, model, protocol and accuracy, made safe and
    unique."""
    out: list[str] = []
    for row in rows:
        stem = slug(f"{row.dataset}--{row.model}--{row.protocol}--{row.accuracy}") or "row"
        name, n = stem, 1
        while name in out:
            n += 1
            name = f"{stem}-{n}"
        out.append(name)
    return out


def data_value(value: Any) -> str | None:
    """A ``data-value``: text as is, a number as JSON writes it, empty for ``None``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(round(value, DECIMALS) if isinstance(value, float) else value)


def _display(key: str, row: Row, values: dict[str, Any]) -> str:
    """The visible text of a cell: ``values`` (the JSON row's, or a reported row's) rounded as the markdown shows
    them."""
    value = values.get(key)
    if value is None:
        return "–"
    if key in METRIC:
        std = values.get(f"{key}_std")
        return f"{value:.1f}" + (f" ± {std:.1f}" if std is not None else "")
    if key.endswith("_hours"):
        return f"{value:.3f}"
    if key == "trials" and row.search_trials is not None:
        return f"{value} ({row.search_trials} + {row.final_trials})"
    return str(value)


def _badges(row: Row) -> str:
    out = m.text("span", "reported", {"class": "badge"}) if row.kind == "reported" else ""
    if row.kind == "search stage":
        out += m.text("span", "search stage", {"class": "badge search"})
    if row.per_sample:
        out += m.text("span", "per-sample", {"class": "badge per-sample"})
    return out


def _best(rows: list[Row]) -> dict[str, float]:
    """Per metric, the best displayed value among the measured per-class rows (bold, as in the markdown)."""
    best = {}
    for key in metric_names():
        values = [round(getattr(r, key), 1) for r in rows if not r.per_sample and getattr(r, key) is not None]
        if values:
            best[key] = METRIC[key].best(values)
    return best


def _measured(row: Row, json_row: dict[str, Any], href: str, best: dict[str, float]) -> str:
    cells = []
    for key in KEYS:
        values = _cell(key, json_row[key])
        if key in METRIC and row.stds.get(key) is not None:
            values["data_std"] = data_value(json_row.get(f"{key}_std"))
        if key == "model":
            inner = m.link(href, row.model, {"class": "row-link"}) + _badges(row)
        else:
            inner = m.esc(_display(key, row, json_row))
            shown = getattr(row, key)
            if key in best and shown is not None and not row.per_sample and round(shown, 1) == best[key]:
                values["class"] = "best"
        cells.append(m.tag("td", inner, values))
    cells.append(m.tag("td", "", {"class": "source"}))
    line = {"class": "row", "data_model": row.model, "data_protocol": row.protocol, "data_accuracy": row.accuracy}
    return m.tag("tr", "".join(cells), line)


def reported_source(row: Row) -> str:
    """A reported row's source and the metric its numbers use."""
    metric = "per-sample (overall) accuracy" if row.per_sample else "per-class accuracy"
    detail = f"{metric}: {row.accuracy_source}" if row.accuracy_source else metric
    backbone = f"; backbone {row.backbone}" if row.backbone else ""
    return f"{row.source or 'source not given'}{backbone} ({detail})"


def _reported(row: Row) -> str:
    cells = [m.tag("td", m.esc(row.model) + _badges(row), _cell("model", row.model))]
    values = row.as_json()
    cells += [m.text("td", _display(key, row, values), _cell(key, values[key])) for key in KEYS[1:]]
    cells.append(m.text("td", reported_source(row), {"data_key": "source"}))
    line = {"class": "reported", "data_model": row.model, "data_protocol": row.protocol, "data_accuracy": row.accuracy}
    return m.tag("tr", "".join(cells), line)


def _cell(key: str, value: Any) -> m.Attrs:
    return {"data_key": key, "data_value": data_value(value)}


def _caption(protocol: str) -> str:
    selection = protocol.removeprefix("search-")
    if protocol == selection:
        title, body = plain(SELECTION_TITLES[selection]), plain(SELECTION_TEXT[selection])
    else:
        chosen = "validation" if selection == "val" else "test itself (optimistic)"
        title = f"Search stage, selection on {chosen} — protocol {protocol}"
        body = f"{plain(SEARCH_NOTE)} Epoch and calibration γ chosen on {chosen}."
    return m.tag("caption", m.text("strong", title) + m.esc(body))


def _table(dataset: str, protocol: str, lines: list[str]) -> str:
    heads = "".join(m.text("th", HEADERS.get(k) or METRIC[k].label + " (%)", {"data_key": k}) for k in KEYS)
    head = m.tag("tr", heads + m.text("th", "Source", {"class": "source"}))
    body = "\n".join(lines)
    inner = f"{_caption(protocol)}\n<thead>{head}</thead>\n<tbody>\n{body}\n</tbody>"
    return m.tag("table", inner, {"class": "board", "data_dataset": dataset, "data_protocol": protocol}) + "\n"


def _dataset_section(board: Leaderboard, dataset: str, hrefs: dict[int, str], json_rows: list[dict[str, Any]]) -> str:
    rows = [(i, r) for i, r in enumerate(board.rows) if r.dataset == dataset]
    reported = [r for r in board.reported if r.dataset == dataset]
    protocols = [p for p in PROTOCOLS if any(r.protocol == p for _, r in rows)]
    parts = [m.text("h2", dataset)]
    for protocol in protocols:
        mine = [(i, r) for i, r in rows if r.protocol == protocol]
        best = _best([r for _, r in mine])
        lines = [_measured(r, json_rows[i], hrefs[i], best) for i, r in mine]
        selection = protocol.removeprefix("search-")
        if protocol == selection or selection not in protocols:  # reported rows: once per selection
            lines += [_reported(r) for r in reported]
        parts.append(_table(dataset, protocol, lines))
    return m.tag("section", "\n".join(parts), {"class": "dataset", "id": f"ds-{dataset}"}) + "\n"


def _notes(board: Leaderboard) -> list[str]:
    datasets = {r.dataset for r in board.rows}
    shown = [r for r in board.reported if r.dataset in datasets]
    notes = [COST_NOTE]
    if any(r.per_sample for r in [*board.rows, *shown]):
        notes.append(plain(PER_SAMPLE_NOTE))
    if any(r.kind == "search stage" for r in board.rows):
        notes.append(plain(SEARCH_NOTE))
    if shown:
        notes.append(plain(REPORTED_NOTE))
    return notes + [f"Note: {n}" for n in board.notes]


def _skipped(board: Leaderboard) -> str:
    s = board.skipped
    if not s.total:
        return m.section("skipped", "Skipped runs", m.text("p", "No run directory was skipped."))
    items = "\n".join(m.tag("li", m.text("code", path)) for path in s.examples)
    return m.section("skipped", "Skipped runs", m.text("p", s.line()) + f"\n<ul>\n{items}\n</ul>")


def render_index(board: Leaderboard, *, in_site: bool = False) -> str:
    """The index page as one HTML document (row links point to ``rows/<slug>.html``); ``in_site``: beside the
    written row pages and ``board.json``, which it then mentions."""
    json_rows = json.loads(render_json(board.rows))
    hrefs = {i: f"rows/{s}.html" for i, s in enumerate(row_slugs(board.rows))}
    datasets = sorted({r.dataset for r in board.rows})
    body = [m.text("h1", "Leaderboard"), m.paragraphs(board.header(), "header-line")]
    if datasets:
        body.append(m.tag("nav", " ".join(m.link(f"#ds-{d}", d) for d in datasets)))
    else:
        body.append(m.text("p", "No finished runs.", {"class": "header-line"}))
    body += [_dataset_section(board, d, hrefs, json_rows) for d in datasets]
    body.append(m.section("notes", "Notes", m.paragraphs(_notes(board), "note")))
    body.append(_skipped(board))
    if in_site:
        body.append(m.tag("p", f"The numbers as JSON: {m.link('board.json', 'board.json')}", {"class": "note"}))
    return m.page("zsl-bench leaderboard", "\n".join(body))
