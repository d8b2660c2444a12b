"""Write the leaderboard site into a folder, all or nothing.

The site is built in a hidden temp folder beside the target (``.NAME.*.tmp``, which run discovery skips) and then
renamed into place (:func:`zsl_bench.atomic.move_into_place`); an earlier site there is first moved aside and then
deleted. A failure leaves the earlier site, or none, never half a new one. A folder that holds anything but an
earlier site (no :data:`SITE_MARK` file) is never replaced.

Layout::

    index.html              the tables (see ``index_page``)
    board.json              the ``--format json`` text of the same board
    rows/<slug>.html        one page per measured row (see ``row_page``)
    rows/<slug>/*.png       its plots: curves.png, seen_unseen.png, search.png (each when its data exists)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from zsl_bench.atomic import move_into_place
from zsl_bench.errors import UserError
from zsl_bench.report.leaderboard import Leaderboard
from zsl_bench.report.runs import collect
from zsl_bench.report.site.index_page import render_index, row_slugs
from zsl_bench.report.site.row_data import gather
from zsl_bench.report.site.row_page import PlotCache, RowPage, render_row
from zsl_bench.report.tables import render_json

SITE_MARK = ".zsl-bench-site"
"""An empty file in every written site: a folder without it is not replaced."""


def check_replaceable(out: Path) -> None:
    """``UserError`` unless ``out`` is absent, an empty folder or an earlier site."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder; give another path or remove it")
    if any(out.iterdir()) and not (out / SITE_MARK).exists():
        raise UserError(f"--out {out}: a folder that is not a zsl-bench site (no {SITE_MARK}); give another path")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _build(board: Leaderboard, tmp: Path, results: Path) -> list[Path]:
    """Every file of the site, written into ``tmp``; index.html first."""
    files = [_write(tmp / "index.html", render_index(board, in_site=True))]
    files.append(_write(tmp / "board.json", render_json(board.rows) + "\n"))
    collected = board.collected if board.collected is not None else collect(results)
    cache = PlotCache()
    for row, slug in zip(board.rows, row_slugs(board.rows), strict=True):
        page = RowPage(slug, tmp, results)
        files.append(_write(tmp / "rows" / f"{slug}.html", render_row(gather(row, collected), page, cache)))
        if page.folder.is_dir():
            files += sorted(page.folder.iterdir())
    _write(tmp / SITE_MARK, "")
    return files


def _swap(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an earlier ``out`` is moved aside first and deleted after."""
    aside = None
    if out.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        move_into_place(out, aside)
    move_into_place(tmp, out)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def write_site(board: Leaderboard, out: Path, results: Path) -> list[Path]:
    """Write the site of ``board`` (built from the run directories under ``results``) into the folder ``out``;
    returns its files, ``out/index.html`` first."""
    out, results = Path(out), Path(results)
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        files = _build(board, tmp, results)
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the site from a web server
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / f.relative_to(tmp) for f in files]
