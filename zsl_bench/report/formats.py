"""Leaderboard output formats as registered plugins: ``md`` (the default), ``csv``, ``tex``, ``json`` and ``html``.

A format is one :class:`LeaderboardFormat` — its name (``zsl-bench leaderboard --format NAME``), the file
extension of its output and ``render(board) -> str`` (no trailing newline). A format whose output is a folder of
files (``html``: a static site) also has ``write(board, out_dir, results_root) -> list[Path]``, which writes that
folder (its entry page first); ``render`` then gives its main page alone. An outside package adds one with
:func:`register_format` in a module named by the ``zsl_bench.formats`` entry-point group. The built-in renderers
live in :mod:`zsl_bench.report.tables` and :mod:`zsl_bench.report.site`, imported only when one is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsl_bench.registry import Registry

if TYPE_CHECKING:
    from zsl_bench.report.leaderboard import Leaderboard


@dataclass(frozen=True)
class LeaderboardFormat:
    """One output format of the leaderboard."""

    name: str
    extension: str  # of a file holding this output, without the dot
    render: Callable[[Leaderboard], str]
    summary: str = ""  # one line for --help and docs
    # a folder format: write(board, out_dir, results_root) writes the folder, returns its files (entry page first)
    write: Callable[[Leaderboard, Path, Path], list[Path]] | None = None


FORMATS: Registry[LeaderboardFormat] = Registry("leaderboard format", group="zsl_bench.formats")


def register_format(fmt: LeaderboardFormat) -> LeaderboardFormat:
    """Register ``fmt`` under ``fmt.name`` (attributed to the module that defines its ``render``)."""
    FORMATS.add(fmt.name, fmt, getattr(fmt.render, "__module__", None))
    return fmt


class RegistryChoices:
    """``argparse`` choices backed by a registry: a membership test looks the name up (plugins are discovered only
    for a name that is not built in), listing them (``--help``, a wrong value) shows every name."""

    def __init__(self, registry: Registry[Any]) -> None:
        self.registry = registry

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.registry

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry.names())


def _md(board: Leaderboard) -> str:
    from zsl_bench.report import tables

    return tables.render_md(board.rows, board.reported, board.header(), board.notes)


def _tex(board: Leaderboard) -> str:
    from zsl_bench.report import tables

    return tables.render_tex(board.rows, board.reported, board.header(), board.notes)


def _csv(board: Leaderboard) -> str:
    from zsl_bench.report import tables

    return tables.render_csv(board.rows, board.reported)


def _json(board: Leaderboard) -> str:
    from zsl_bench.report import tables

    return tables.render_json(board.rows)


def _html(board: Leaderboard) -> str:
    from zsl_bench.report.site import render_index

    return render_index(board).rstrip("\n")


def _html_site(board: Leaderboard, out: Path, results: Path) -> list[Path]:
    from zsl_bench.report.site import write_site

    return write_site(board, out, results)


register_format(
    LeaderboardFormat("md", "md", _md, "markdown tables (the default; also written to <results>/leaderboard.md)")
)
register_format(LeaderboardFormat("csv", "csv", _csv, "one line per row, raw numbers, reported rows included"))
register_format(LeaderboardFormat("tex", "tex", _tex, "LaTeX booktabs tables"))
register_format(LeaderboardFormat("json", "json", _json, "a list of the measured rows"))
register_format(
    LeaderboardFormat(
        "html", "html", _html, "a static site: sortable tables, a page per row with plots", write=_html_site
    )
)
