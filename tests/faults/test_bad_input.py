"""Issue 19's table-driven bad-input suite: every case of ``fault_cases*.py`` run in-process through
``zsl_bench.cli.main`` in its own folder must exit with code 2, print exactly one ``zsl-bench: error:`` line and no
traceback, and leave no file behind (``fault_harness.py``). Sweep cases must fail before Ray starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the case table's modules, beside this file

from fault_cases_more import all_cases
from fault_harness import run_case, snapshot
from fault_setups import runs, trained_run

CASES = all_cases()


def test_the_table_covers_every_command():
    """At least 120 cases, and each command of the CLI is among them."""
    assert len(CASES) >= 120
    heads = {" ".join(a for a in c.argv[:2] if not a.startswith("-")) for c in CASES}
    for command in ("data synth", "data inspect", "data fetch", "data list", "models list", "config keys", "train"):
        assert any(h.startswith(command) for h in heads), command
    for command in ("sweep", "spaces show", "leaderboard", "report", "cache ls", "cache rm", "cluster down"):
        assert any(h.startswith(command) for h in heads), command
    for command in ("cluster status", "cluster slurm", "cluster up"):
        assert any(h.startswith(command) for h in heads), command


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(item, tmp_path):
    outcome = run_case(item, tmp_path / "case")
    assert outcome.problems(item.expect) == [], outcome.stderr


def test_unreadable_runs_are_skipped_with_a_count_not_an_error(tmp_path, capsys):
    """The leaderboard's contract: a corrupt run directory beside good ones is skipped and counted (exit 0)."""
    from zsl_bench.cli import main

    trained_run(tmp_path)
    runs(summary="{not json")(tmp_path / "other")
    (tmp_path / "other" / "res" / "sweep" / "run1").rename(tmp_path / "res" / "sweep" / "run2")
    before = snapshot(tmp_path / "res")
    assert main(["leaderboard", "--results", str(tmp_path / "res"), "--out", "-", "--no-reference"]) == 0
    err = capsys.readouterr().err
    assert "1 unreadable" in err and "Traceback" not in err, err
    assert snapshot(tmp_path / "res") == before
