"""Check a leaderboard site (``zsl-bench leaderboard --format html``) in headless Chromium against its board.json.

Usage: ``python tests/browser/site_check.py SITE_DIR [--screens DIR] [--max-pages N]`` prints one JSON object (the
fields of :class:`SiteReport`) and exits 0 when the site passes every check, 1 when it does not, 2 when it cannot
run (no Chromium, no site). The browser tests call :func:`check_site` on the sites they build.

What it checks, from ``file://`` with no server: every measured row of ``index.html`` is a row of ``board.json``
and back, each value cell's ``data-value`` is the JSON value's ``repr()`` and its visible text that value rounded;
reported rows carry a source and are visibly marked; clicking ``th[data-key=h]`` sorts the rows by H and a second
click reverses them; each row's page has its sections and its ``img.plot`` images load; no page logs a console
error, requests anything off this machine, or links a ``src``/``href`` to an http(s) URL.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from headless import Browser, missing_browser, start_chromium

VALUE_KEYS = ("n_seeds", "czsl", "u", "s", "h", "gpu_hours", "cpu_hours", "trials")
PLOT_SECTIONS = ("curves", "seen-unseen", "search")
ROW_SECTIONS = ("config", "seeds", *PLOT_SECTIONS)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

_READ_TABLES = """
const style = r => { const s = getComputedStyle(r.cells[0] || r), t = getComputedStyle(r);
  return [t.backgroundColor, s.backgroundColor, s.color, s.fontStyle, s.fontWeight, t.opacity].join('|'); };
return Array.from(document.querySelectorAll('table.board')).map(t => ({
  dataset: t.dataset.dataset, protocol: t.dataset.protocol,
  caption: t.caption ? t.caption.textContent.trim() : '',
  headers: Array.from(t.querySelectorAll('th[data-key]')).map(h => [h.dataset.key, h.getAttribute('data-sort')]),
  rows: Array.from(t.tBodies).flatMap(b => Array.from(b.rows)).map(r => ({
    kind: r.classList.contains('row') ? 'row' : (r.classList.contains('reported') ? 'reported' : 'other'),
    model: r.dataset.model || null, protocol: r.dataset.protocol || null, accuracy: r.dataset.accuracy || null,
    link: r.querySelector('a.row-link') ? r.querySelector('a.row-link').getAttribute('href') : null,
    href: r.querySelector('a.row-link') ? r.querySelector('a.row-link').href : null,
    text: r.innerText, style: style(r),
    cells: Object.fromEntries(Array.from(r.querySelectorAll('td[data-key]')).map(
      c => [c.dataset.key, {value: c.getAttribute('data-value'), text: c.innerText.trim()}])),
  })),
}));
"""

_READ_ROW_PAGE = """
const sections = Array.from(document.querySelectorAll('section[id]')).map(s => s.id);
const plots = Array.from(document.querySelectorAll('img.plot')).map(i => ({
  section: i.closest('section[id]') ? i.closest('section[id]').id : null,
  src: i.getAttribute('src'), width: i.naturalWidth}));
const missing = Array.from(document.querySelectorAll('p.missing')).map(
  p => p.closest('section[id]') ? p.closest('section[id]').id : null);
const back = Array.from(document.querySelectorAll('a[href]')).some(
  a => /(^|\\/)index\\.html$/.test(a.getAttribute('href')));
return {sections, plots, missing, back, seeds: document.querySelectorAll('#seeds tr.seed-run').length};
"""

_OUTSIDE_REFS = """
return Array.from(document.querySelectorAll('[src], [href]')).map(e => e.getAttribute('src') || e.getAttribute('href'))
  .filter(u => /^\\s*(https?:)?\\/\\//i.test(u));
"""


@dataclass
class SiteReport:
    """What :func:`check_site` found; ``ok`` when every check passed."""

    site: str
    board_rows: int = 0
    rows_checked: int = 0
    rows_matching: int = 0
    row_problems: list[str] = field(default_factory=list)
    reported_rows: int = 0
    reported_marked: int = 0
    sort_ok: bool | None = None  # None: no table has two different H values to sort
    sort_problem: str | None = None
    row_pages: int = 0
    row_pages_with_plots: int = 0
    loaded_plots: dict[str, list[str]] = field(default_factory=dict)  # row page → sections whose plots loaded
    page_problems: list[str] = field(default_factory=list)
    skipped: str | None = None
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    external_refs: list[str] = field(default_factory=list)
    screenshots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every row matches, sorting works, every page passed, nothing logged or left the machine."""
        clean = not (self.row_problems or self.page_problems or self.console_errors)
        local = not (self.external_requests or self.external_refs)
        complete = self.rows_matching == self.board_rows == self.rows_checked
        return clean and local and complete and self.sort_ok is not False


def display_problem(key: str, text: str, value: Any, std: Any = None) -> str | None:
    """Why ``text`` is not ``value`` (± ``std``) rounded to the places it shows, or None when it is."""
    if value is None:
        return f"shows {text!r} for null" if _NUMBER.search(text) else None
    numbers = _NUMBER.findall(text)
    if not numbers:
        return f"shows {text!r} for {value!r}"
    shown = numbers[0]
    places = len(shown.partition(".")[2])
    if shown != f"{value:.{places}f}":
        return f"shows {shown} for {value!r}"
    if std is not None:
        after = _NUMBER.findall(text.partition("±")[2])
        if not after or after[0] != f"{std:.{len(after[0].partition('.')[2])}f}":
            return f"shows {text!r}, not ± {std!r}"
    return None


def row_problems(dataset: str, row: dict[str, Any], board_row: dict[str, Any]) -> list[str]:
    """How a measured ``tr.row`` differs from its board.json row (data-value and visible text of each cell)."""
    where = f"{dataset}/{row['model']}/{row['protocol']}/{row['accuracy']}"
    out = []
    for key in VALUE_KEYS:
        cell = row["cells"].get(key)
        if cell is None:
            out.append(f"{where}: no td[data-key={key}]")
            continue
        value = board_row.get(key)
        wanted = "" if value is None else repr(value)
        if cell["value"] != wanted:
            out.append(f"{where}: {key} data-value={cell['value']!r}, board.json has {wanted!r}")
        problem = display_problem(key, cell["text"], value, board_row.get(f"{key}_std"))
        if problem:
            out.append(f"{where}: {key} {problem}")
    model = row["cells"].get("model")
    if model is None or row["model"] not in model["text"]:
        out.append(f"{where}: the model cell does not show {row['model']!r}")
    if not (row["link"] or "").startswith("rows/") or not row["link"].endswith(".html"):
        out.append(f"{where}: no a.row-link to rows/<slug>.html (found {row['link']!r})")
    return out


def compare_rows(tables: list[dict[str, Any]], board: list[dict[str, Any]], report: SiteReport) -> None:
    """Match the measured rows of every table with board.json's rows, both ways, into ``report``."""
    wanted = {(r["dataset"], r["model"], r["protocol"], r["accuracy"]): r for r in board}
    seen: dict[tuple, int] = {}
    for table in tables:
        where = f"table {table['dataset']}/{table['protocol']}"
        missing = [k for k in ("model", *VALUE_KEYS) if k not in dict(table["headers"])]
        if missing:
            report.row_problems.append(f"{where}: no th[data-key] for {', '.join(missing)}")
        if not table["caption"]:
            report.row_problems.append(f"{where}: no caption saying how its numbers were selected")
        for row in table["rows"]:
            if row["kind"] != "row":
                continue
            report.rows_checked += 1
            key = (table["dataset"], row["model"], row["protocol"], row["accuracy"])
            seen[key] = seen.get(key, 0) + 1
            if row["protocol"] != table["protocol"]:
                report.row_problems.append(f"{key}: row protocol differs from its table's {table['protocol']!r}")
            if key not in wanted:
                report.row_problems.append(f"{key}: a row that board.json does not have")
                continue
            problems = row_problems(table["dataset"], row, wanted[key])
            report.row_problems += problems
            report.rows_matching += not problems and seen[key] == 1
    for key in wanted:
        if seen.get(key, 0) != 1:
            report.row_problems.append(f"{key}: board.json row shown {seen.get(key, 0)} times")


def check_reported(tables: list[dict[str, Any]], report: SiteReport) -> None:
    """Reported rows: a non-empty source cell, no row page, and a 'reported' badge or a style of their own."""
    for table in tables:
        measured = {r["style"] for r in table["rows"] if r["kind"] == "row"}
        for row in table["rows"]:
            if row["kind"] != "reported":
                continue
            report.reported_rows += 1
            where = f"{table['dataset']}/{table['protocol']}: reported {row['model']}"
            if not row["cells"].get("source", {}).get("text"):
                report.row_problems.append(f"{where}: empty or missing td[data-key=source]")
            if row["link"]:
                report.row_problems.append(f"{where}: has a row-link")
            if "reported" in row["text"].lower() or (measured and row["style"] not in measured):
                report.reported_marked += 1
            else:
                report.row_problems.append(f"{where}: not visibly marked")


def sort_values(table: dict[str, Any], key: str) -> list[float | None]:
    """The body rows' ``key`` values in DOM order: data-value, else the visible number, else None (empty)."""
    out: list[float | None] = []
    for row in table["rows"]:
        cell = row["cells"].get(key, {"value": "", "text": ""})
        raw = cell["value"]
        if raw is None:
            found = _NUMBER.search(cell["text"])
            raw = found.group() if found else ""
        out.append(float(raw) if raw else None)
    return out


def order_problem(values: list[float | None], direction: str) -> str | None:
    """Why ``values`` are not sorted in ``direction`` (empty values last for asc, at one end for desc)."""
    numbers = [v for v in values if v is not None]
    if numbers != sorted(numbers, reverse=direction == "desc"):
        return f"{direction} click gave {numbers}"
    empty = [i for i, v in enumerate(values) if v is None]
    at_end = empty == list(range(len(values) - len(empty), len(values)))
    if empty and not at_end and (direction == "asc" or empty != list(range(len(empty)))):
        return f"{direction} click left empty values at rows {empty} of {len(values)}"
    return None


def check_sort(browser: Browser, key: str = "h") -> tuple[bool | None, str | None]:
    """Click ``th[data-key=KEY]`` twice in the table with the most distinct values: (passed, why not).

    ``(None, why)`` when no table has two different values of ``key``, so there is nothing to sort.
    """
    from selenium.webdriver.common.by import By

    tables = browser.driver.execute_script(_READ_TABLES)
    spread = [len({v for v in sort_values(t, key) if v is not None}) for t in tables]
    if not spread or max(spread) < 2:
        return None, f"no table has two different {key} values to sort"
    index = spread.index(max(spread))
    header = browser.driver.find_elements(By.CSS_SELECTOR, "table.board")[index]
    header = header.find_element(By.CSS_SELECTOR, f"th[data-key='{key}']")
    directions = []
    for _ in range(2):
        header.click()
        table = browser.driver.execute_script(_READ_TABLES)[index]
        marked = [(k, d) for k, d in table["headers"] if d]
        if len(marked) != 1 or marked[0][0] != key or marked[0][1] not in ("asc", "desc"):
            return False, f"after a click on {key} the headers' data-sort is {marked}"
        directions.append(marked[0][1])
        problem = order_problem(sort_values(table, key), marked[0][1])
        if problem:
            return False, f"{table['dataset']}/{table['protocol']}: {problem}"
    browser.screenshot("index-sorted")
    if directions[0] == directions[1]:
        return False, f"the second click did not reverse ({directions})"
    return True, None


def page_problems(name: str, page: dict[str, Any]) -> list[str]:
    """What a row page lacks: a section, a plot or its 'missing' note, a loaded image, a seed run, the way back."""
    out = [f"{name}: no section #{s}" for s in ROW_SECTIONS if s not in page["sections"]]
    for section in PLOT_SECTIONS:
        if not any(p["section"] == section for p in page["plots"]) and section not in page["missing"]:
            out.append(f"{name}: #{section} has neither img.plot nor p.missing")
    out += [f"{name}: img.plot {p['src']} did not load" for p in page["plots"] if not p["width"]]
    if not page["seeds"]:
        out.append(f"{name}: no tr.seed-run in #seeds")
    if not page["back"]:
        out.append(f"{name}: no link back to index.html")
    return out


def check_row_pages(browser: Browser, tables: list[dict[str, Any]], report: SiteReport, limit: int | None) -> None:
    """Open each row's page (the first by clicking its link on the index) and check its sections and plots."""
    from selenium.webdriver.common.by import By

    links = {r["href"]: r["link"] for t in tables for r in t["rows"] if r["kind"] == "row" and r["href"]}
    for number, (href, link) in enumerate(list(links.items())[:limit]):
        name = "row-" + Path(href).stem
        if number == 0:
            browser.driver.find_element(By.CSS_SELECTOR, f"a.row-link[href='{link}']").click()
            browser.wait_loaded()
            browser.screenshot(name)
            if browser.driver.current_url != href:
                report.page_problems.append(f"clicking the row link opened {browser.driver.current_url}, not {href}")
        else:
            browser.open(href, name)
        page = browser.driver.execute_script(_READ_ROW_PAGE)
        problems = page_problems(name, page)
        report.page_problems += problems
        report.row_pages += 1
        report.loaded_plots[name] = sorted({p["section"] for p in page["plots"] if p["width"]})
        report.row_pages_with_plots += bool(page["plots"]) and not problems
        report.external_refs += browser.driver.execute_script(_OUTSIDE_REFS)


def check_site(browser: Browser, site: Path, *, max_pages: int | None = None) -> SiteReport:
    """Open ``site/index.html`` over file:// and run every check; screenshots go to ``browser.screens``."""
    report = SiteReport(site=str(site))
    board = json.loads((site / "board.json").read_text())
    report.board_rows = len(board)
    browser.open((site / "index.html").resolve().as_uri(), "index")
    tables = browser.driver.execute_script(_READ_TABLES)
    compare_rows(tables, board, report)
    check_reported(tables, report)
    report.skipped = browser.driver.execute_script(
        "const s = document.getElementById('skipped'); return s ? s.innerText.trim() : null;"
    )
    report.external_refs += browser.driver.execute_script(_OUTSIDE_REFS)
    report.sort_ok, report.sort_problem = check_sort(browser)
    check_row_pages(browser, tables, report, max_pages)
    report.console_errors = browser.errors()
    report.external_requests = browser.outside()
    report.screenshots = [str(p) for p in browser.shots]
    return report


def main(argv: list[str] | None = None) -> int:
    """The script mode: check SITE_DIR, print the report as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the folder holding index.html and board.json")
    parser.add_argument("--screens", type=Path, help="where to save the screenshots (default: a temporary folder)")
    parser.add_argument("--max-pages", type=int, default=None, help="check at most N row pages (default: all)")
    args = parser.parse_args(argv)
    problem = missing_browser()
    if problem is None and not (args.site / "index.html").is_file():
        problem = f"no index.html in {args.site}; build it with zsl-bench leaderboard --format html --out {args.site}"
    if problem is None and not (args.site / "board.json").is_file():
        problem = f"no board.json in {args.site}; the html format writes it beside index.html"
    if problem:
        print(f"site_check: {problem}", file=sys.stderr)
        return 2
    screens = args.screens or Path(tempfile.mkdtemp(prefix="site-screens-"))
    driver = start_chromium()
    try:
        report = check_site(Browser(driver, screens), args.site, max_pages=args.max_pages)
    finally:
        driver.quit()
    print(json.dumps({**asdict(report), "ok": report.ok}))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
