"""``rows/<slug>.html``: one measured row — its configuration and how it differs from where it started, every seed
run with its provenance, learning curves, the seen–unseen curve with AUSUC, and the search that chose it.

Plots are PNG files in ``rows/<slug>/``; a section whose data is missing holds ``<p class="missing">`` saying why.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from zsl_bench.record import METRIC, SELECTIONS, config_identity, metric_names
from zsl_bench.report import plots, trials
from zsl_bench.report.runs import RunInfo
from zsl_bench.report.scores import TEST_SCORES
from zsl_bench.report.site import markup as m
from zsl_bench.report.site.index_page import plain
from zsl_bench.report.site.row_data import NOT_RECORDED, RowEvidence, baseline, differences, recorded, series
from zsl_bench.report.tables import SELECTION_TITLES


@dataclass
class PlotCache:
    """Plots already drawn for the same runs (a row's ``val`` and ``test`` pages share them): copied, not redrawn."""

    drawn: dict[tuple[str, tuple[str, ...]], Path] = field(default_factory=dict)

    def draw(self, key: tuple[str, tuple[str, ...]], path: Path, draw: Callable[[Path], bool]) -> bool:
        """Put the plot ``key`` at ``path`` (drawing it with ``draw`` unless already drawn); whether it exists."""
        done = self.drawn.get(key)
        if done is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(done, path)
            return True
        if not draw(path):
            return False
        self.drawn[key] = path
        return True


@dataclass(frozen=True)
class RowPage:
    """Where one row page goes and how it names its runs."""

    slug: str
    out: Path  # the site folder
    results: Path  # the results root (run paths are shown relative to it)

    @property
    def folder(self) -> Path:
        """``rows/<slug>/``: the page's plots."""
        return self.out / "rows" / self.slug

    def shown(self, path: Path) -> str:
        """A run path as shown: relative to the results root when below it."""
        try:
            return str(path.resolve().relative_to(self.results.resolve()))
        except ValueError:
            return str(path)


def _config_section(ev: RowEvidence) -> str:
    config = ev.runs[0].config
    base, which = baseline(config)
    diffs = differences(config, base)
    parts = [m.text("p", which, {"class": "note"})]
    if ev.parents:
        names = ", ".join(p.path.name for p in ev.parents)
        parts.append(m.text("p", f"Final-stage runs retraining search trial {names} (meta.parent).", {"class": "note"}))
    if diffs:
        body = [[k, _setting(mine), _setting(theirs)] for k, mine, theirs in diffs]
        parts.append(m.simple_table(["Key", "This configuration", "Compared with"], body, {"class": "diff"}))
    else:
        parts.append(m.text("p", "No difference: every key has the value it is compared with."))
    full = yaml.safe_dump(config_identity(config, seeds=False), sort_keys=False)
    parts.append(m.tag("details", m.text("summary", "The whole configuration (seed aside)") + m.text("pre", full)))
    return m.section("config", "Configuration", "\n".join(parts))


SEED_HEADERS = ["Run", "Seed", "Status", "Epoch", "γ", *(METRIC[k].label for k in metric_names())]
SEED_HEADERS += ["Git sha", "Package versions", "Device", "Compute", "Config"]


def _seed_line(ev: RowEvidence, run: RunInfo, page: RowPage) -> str:
    record = ev.records.get(run.path)
    summary = record.summary if record else None
    chosen = summary.selection(ev.row.selection) if summary and ev.row.selection in SELECTIONS else None
    meta = record.section("meta") if record else {}
    test = run.tests.get(ev.row.selection, {})
    cells = [m.text("td", page.shown(run.path), {"class": "text"}), m.text("td", run.seed), m.text("td", run.status)]
    cells += [m.text("td", chosen.epoch if chosen else "–"), m.text("td", _number(chosen.gamma if chosen else None))]
    cells += [m.text("td", f"{100.0 * test[k]:.1f}" if k in test else "–") for k in metric_names()]
    cells += [m.text("td", recorded(meta.get("git_sha")), {"class": "text"})]
    cells += [m.text("td", recorded(meta.get("versions")), {"class": "text"})]
    cells += [m.text("td", recorded(summary.device if summary else None))]
    cells += [m.text("td", f"{summary.compute_s:.0f} s" if summary else NOT_RECORDED)]
    config = yaml.safe_dump({k: v for k, v in run.config.items() if k != "meta"}, sort_keys=False)
    cells.append(m.tag("td", m.tag("details", m.text("summary", "config.yaml") + m.text("pre", config))))
    return m.tag("tr", "".join(cells), {"class": "seed-run"})


def _setting(value: object) -> str:
    """A config value in the diff table; YAML's ``null`` (the key left to its automatic choice) as such."""
    return "null (unset)" if value is None else trials.fmt(value)


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _seeds_section(ev: RowEvidence, page: RowPage) -> str:
    head = m.tag("tr", "".join(m.text("th", h) for h in SEED_HEADERS))
    lines = "\n".join(_seed_line(ev, run, page) for run in ev.runs)
    table = m.tag("table", f"<thead>{head}</thead>\n<tbody>\n{lines}\n</tbody>", {"class": "seeds"})
    what = f"Scores: test, at the epoch and γ chosen on {'validation' if ev.row.selection == 'val' else 'test'} (%)."
    return m.section("seeds", "Seed runs", m.text("p", what, {"class": "note"}) + "\n" + table)


def _curves_section(ev: RowEvidence, page: RowPage, cache: PlotCache) -> str:
    found, problems = series(ev)
    notes = m.paragraphs(problems, "note")
    if not found:
        why = "No run behind this row has per-epoch records in metrics.jsonl: " + "; ".join(problems or ["none read"])
        return m.section("curves", "Learning curves", m.missing(why))
    title = f"{ev.row.dataset} / {ev.row.model}: per epoch"

    def draw(path: Path) -> bool:
        plots.plot_learning_curves(found, path, title)
        return True

    cache.draw(("curves", ev.row.runs), page.folder / "curves.png", draw)
    text = "Validation (dashed) and test (solid) per epoch, from each run's metrics.jsonl."
    if ev.runs[0].stage == "final":
        text += " Final-stage runs have no validation split"
        text += ": the validation curve is their parent search trial's." if ev.parents else " (test only)."
    body = [m.text("p", text, {"class": "note"}), m.image(f"{page.slug}/curves.png", "learning curves"), notes]
    return m.section("curves", "Learning curves", "\n".join(body))


def _seen_unseen_section(ev: RowEvidence, page: RowPage, cache: PlotCache) -> str:
    problems: list[str] = []
    curves = trials.row_curves(ev.row, dict(zip(ev.row.runs, ev.runs, strict=True)), problems)
    notes = m.paragraphs(problems, "note")
    if not curves:
        why = f"No run behind this row saved {TEST_SCORES} (the test scores at the epoch chosen on validation)."
        return m.section("seen-unseen", "Seen–unseen curve", m.missing(why) + notes)
    title = f"{ev.row.dataset} / {ev.row.model}: seen–unseen (test)"

    def draw(path: Path) -> bool:
        plots.plot_seen_unseen(curves, path, title)
        return True

    cache.draw(("seen-unseen", ev.row.runs), page.folder / "seen_unseen.png", draw)
    areas = ", ".join(f"{c.label} {100.0 * c.area:.1f}" for c in curves)
    body = [m.image(f"{page.slug}/seen_unseen.png", "seen-unseen curve"), m.text("p", f"AUSUC (%): {areas}.")]
    return m.section("seen-unseen", "Seen–unseen curve", "\n".join([*body, notes]))


def _search_section(ev: RowEvidence, page: RowPage, cache: PlotCache) -> str:
    title = f"{ev.row.dataset} / {ev.row.model}: best validation H vs compute"
    path = page.folder / "search.png"
    if not cache.draw(
        ("search", ev.row.runs), path, lambda p: trials.draw_search_progress(ev.search, ev.final, p, title)
    ):
        why = "No search-stage trial beside these runs: the configuration was not chosen by a search recorded here."
        return m.section("search", "Search", m.missing(why))
    headers, lines = trials.trial_table(ev.search)
    chosen = ev.chosen
    body = "\n".join(
        m.tag("tr", "".join(m.text("td", c) for c in cells), {"class": "chosen" if r.path in chosen else None})
        for r, cells in lines
    )
    head = m.tag("tr", "".join(m.text("th", h) for h in headers))
    table = m.tag("table", f"<thead>{head}</thead>\n<tbody>\n{body}\n</tbody>", {"class": "trials"})
    text = (
        f"{len(ev.search)} search trials in the order they finished (failed or unfinished ones at H = 0); the table "
        "ranks those with a validation result, the one this row retrains highlighted. Test numbers of search "
        "trials never chose anything."
    )
    parts = [m.image(f"{page.slug}/search.png", "search progress"), m.text("p", text, {"class": "note"}), table]
    return m.section("search", "Search", "\n".join(parts))


def _summary(ev: RowEvidence) -> str:
    row = ev.row
    scores = ", ".join(
        f"{METRIC[k].label} {getattr(row, k):.1f}" + (f" ± {row.stds[k]:.1f}" if row.stds.get(k) is not None else "")
        for k in metric_names()
        if getattr(row, k) is not None
    )
    hours = f"{row.gpu_hours or 0.0:.3f} GPU-h + {row.cpu_hours or 0.0:.3f} CPU-h over {row.trials} trials"
    how = plain(SELECTION_TITLES[row.selection]) + (" — search stage" if row.kind == "search stage" else "")
    lines = [how, f"{scores} (%), mean over {row.n_seeds} seed(s); {row.accuracy.replace('_', '-')} accuracy.", hours]
    return m.paragraphs(lines, "header-line")


def render_row(ev: RowEvidence, page: RowPage, cache: PlotCache) -> str:
    """The row page's HTML; its plots are written into ``page.folder`` on the way."""
    row = ev.row
    title = f"{row.dataset} / {row.model} — protocol {row.protocol}"
    body = [
        m.tag("p", m.link("../index.html", "← leaderboard")),
        m.text("h1", title),
        _summary(ev),
        _config_section(ev),
        _seeds_section(ev, page),
        _curves_section(ev, page, cache),
        _seen_unseen_section(ev, page, cache),
        _search_section(ev, page, cache),
    ]
    return m.page(f"{title} · zsl-bench", "\n".join(body))
