"""The leaderboard: paper-ready tables built only from run directories (docs/architecture.md#the-run-directory), plus
reported rows.

``build(results, reference)`` reads and aggregates (see ``aggregate`` for how rows, protocols and cost are
defined); ``render(board, fmt)`` writes it in a registered format (``formats``: ``md``, the default, ``csv``, ``tex``,
``json``, and any a plugin adds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zsl_bench.errors import UserError
from zsl_bench.report.aggregate import Row, aggregate
from zsl_bench.report.formats import FORMATS
from zsl_bench.report.reference import load_reference
from zsl_bench.report.runs import Collected, Skipped, collect


@dataclass
class Leaderboard:
    """Measured rows, the reported rows available, and what was skipped or decided without evidence."""

    rows: list[Row]
    reported: list[Row] = field(default_factory=list)
    skipped: Skipped = field(default_factory=Skipped)
    notes: list[str] = field(default_factory=list)
    runs_read: int = 0
    collected: Collected | None = None  # the runs read (a folder format's row pages read them again otherwise)

    def header(self) -> list[str]:
        """Lines describing the tables and their inputs (no paths: the output is stable across machines)."""
        s = self.skipped
        skipped = f"; {s.total} skipped ({s.failed} failed, {s.incomplete} incomplete, {s.unreadable} unreadable)"
        return [
            "Accuracies in % (CZSL: per-class top-1 on unseen classes; GZSL: per-class U, S and H = 2US/(U+S)), "
            "mean ± sample standard deviation over seeds (H is the mean of the per-seed H). Bold: best measured "
            "value per column.",
            "",
            f"Built from {self.runs_read} run directories{skipped if s.total else ''}.",
        ]


def build(results: Path, reference: Path | None = None) -> Leaderboard:
    """Aggregate every run below ``results``; add the reported rows of ``reference/*.yaml`` when given."""
    results = Path(results)
    if not results.is_dir():
        raise UserError(f"results directory not found: {results} (run a sweep or pass --results DIR)")
    collected = collect(results)
    rows, notes = aggregate(collected)
    reported = load_reference(reference) if reference is not None else []
    runs_read = len(collected.runs) + collected.skipped.unreadable
    return Leaderboard(rows, reported, collected.skipped, notes, runs_read, collected)


def render(board: Leaderboard, fmt: str = "md") -> str:
    """The leaderboard in the registered format ``fmt`` (no trailing newline); an unknown one is a ``UserError``."""
    return FORMATS.get(fmt).render(board)
