"""``zsl-bench report --sweep``: markdown report, progress plot, seen–unseen curves from test_scores.npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zsl_bench.cli import main
from zsl_bench.metrics import ausuc
from zsl_bench.report.scores import TEST_SCORES, load_test_scores
from zsl_bench.report.sweep_report import write_report

PNG = b"\x89PNG\r\n\x1a\n"


def save_scores(run: Path, epoch: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A ``test_scores.npz`` in the format the engine is asked to write (6 classes, 0-3 seen, 4-5 unseen)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(6), 8)
    scores = rng.normal(size=(48, 6)).astype(np.float32)
    scores[np.arange(48), y] += 1.0
    seen, unseen = np.arange(4), np.arange(4, 6)
    np.savez(run / TEST_SCORES, scores=scores, y_true=y, seen=seen, unseen=unseen, epoch=epoch, gamma=0.1)
    return scores, y


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG and path.stat().st_size > 2000


def test_report_without_scores_skips_the_curve(results_tree):
    report = write_report(results_tree, "cubsweep")
    out = results_tree / "cubsweep" / "_report"
    assert [p.name for p in report.files] == ["report.md", "search_progress.png"]
    assert is_png(out / "search_progress.png")
    md = (out / "report.md").read_text()
    assert "- Search stage: 5 trials (2 completed, 1 early-stopped, 1 failed, 1 incomplete)" in md
    assert "- Final stage: 5 runs (5 completed)" in md and "1 unreadable" in md
    top = md[md.index("### Best search trials") :]
    assert top.index("| t1 ") < top.index("| t2 ") < top.index("| t3 ")  # by validation H
    assert "optim.lr" in top.splitlines()[2] and "t4" not in top  # the searched key; failed trials have no H
    assert "no run saved `test_scores.npz`" in md and "protocol `val`" in md
    assert report.skipped.total == 3
    # the report folder starts with "_": a later leaderboard does not take it for a run
    assert main(["leaderboard", "--results", str(results_tree), "--out", "-"]) == 0


def test_report_draws_seen_unseen_curves_from_saved_scores(results_tree, tmp_path):
    scores, y = save_scores(results_tree / "cubsweep" / "final-1-seed0")
    save_scores(results_tree / "cubsweep" / "final-1-seed1", seed=1)
    (results_tree / "cubsweep" / "final-1-seed2" / TEST_SCORES).write_bytes(b"not a zip")
    report = write_report(results_tree, "cubsweep", tmp_path / "rep")
    png = tmp_path / "rep" / "seen_unseen_cub_resnet_test.png"
    assert png in report.files and is_png(png)
    area, _, _ = ausuc(scores, y, np.arange(4), np.arange(4, 6))
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"seed 0 {100 * area:.1f}" in md and "seed 1 " in md
    assert any("final-1-seed2" in n and "cannot be read" in n for n in report.notes)  # noted, not fatal


def test_load_test_scores_absent_or_incomplete(tmp_path):
    assert load_test_scores(tmp_path) == (None, None)
    np.savez(tmp_path / TEST_SCORES, scores=np.zeros((2, 2)))
    ts, problem = load_test_scores(tmp_path)
    assert ts is None and "missing y_true, seen, unseen" in problem


@pytest.mark.parametrize(("sweep", "message"), [("nosuch", "sweep not found"), ("junk", "no readable run directory")])
def test_report_bad_sweep_is_a_user_error(results_tree, capsys, sweep, message):
    assert main(["report", "--results", str(results_tree), "--sweep", sweep]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
