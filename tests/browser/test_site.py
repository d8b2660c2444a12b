"""The leaderboard site in a real browser: built by the CLI, opened from file://, checked against --format json.

Two sites: one from the report tests' results tree (several datasets, reference rows, broken runs that must be
listed as skipped), one from two real ``zsl-bench train`` runs of ``resnet_test`` on a small synthetic dataset (their
``metrics.jsonl`` and ``test_scores.npz`` give every row page its learning curves and seen–unseen curve).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from headless import Browser
from site_check import SiteReport, check_site, display_problem

from tests.report.conftest import REFERENCE_YAML, build_tree

pytestmark = pytest.mark.browser

SYNTH_REFERENCE = """\
source: a made-up table
rows:
  - method: SynthPaper
    backbone: ResNet-8
    results:
      synth: {czsl: 40.0, u: 30.0, s: 60.0, h: 40.0}
"""


@dataclass(frozen=True)
class BuiltSite:
    """A site written by ``leaderboard --format html`` and the ``--format json`` text of the same tree."""

    site: Path
    json_text: str
    html_stderr: str


def run_all(commands: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Run ``zsl-bench`` commands side by side; fail the test with the stderr of any that does not exit 0."""
    procs = [
        subprocess.Popen([sys.executable, "-m", "zsl_bench.cli", *args], cwd=cwd, text=True, stdout=-1, stderr=-1)
        for args in commands
    ]
    done = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"zsl-bench {' '.join(args)} exited {proc.returncode}:\n{err}"
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def build_site(root: Path, results: str = "results") -> BuiltSite:
    """``leaderboard --format html --out site`` and ``--format json`` of ``root/results``, in parallel."""
    html, js = run_all(
        [
            ["leaderboard", "--results", results, "--format", "html", "--out", "site"],
            ["leaderboard", "--results", results, "--format", "json", "--out", "-"],
        ],
        cwd=root,
    )
    return BuiltSite(root / "site", js.stdout, html.stderr)


@pytest.fixture(scope="module")
def tree_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """The site of the report tests' results tree, with its reference rows."""
    root = tmp_path_factory.mktemp("tree")
    results = build_tree(root / "results")
    (results / "reference").mkdir()
    (results / "reference" / "papers.yaml").write_text(REFERENCE_YAML)
    return build_site(root)


@pytest.fixture(scope="module")
def trained_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """The site of two real final-stage runs (seeds 0 and 1, one epoch) of resnet_test on a small synthetic set,
    with a reported synth row to sort against."""
    from zsl_bench.data.synth import SynthSpec, generate

    root = tmp_path_factory.mktemp("trained")
    generate(root / "synth", SynthSpec(seed=0, image_size=32, images_per_class=10))
    common = ["train", "--model", "resnet_test", "--dataset", "synth", "--data-root", "synth"]
    sets = (
        "train.epochs=1",
        "model.options.width=8",
        "meta.stage=final",
        "train.num_threads=1",
        "train.checkpoint=false",
    )
    for value in sets:
        common += ["--set", value]
    run_all([[*common, "--set", f"train.seed={s}", "--out", f"results/runs/seed{s}"] for s in (0, 1)], cwd=root)
    (root / "results" / "reference").mkdir()
    (root / "results" / "reference" / "papers.yaml").write_text(SYNTH_REFERENCE)
    return build_site(root)


def assert_site_passes(report: SiteReport, built: BuiltSite) -> None:
    """The checks every built site must pass: the rows are board.json's, sorting, pages, nothing leaves."""
    board = json.loads(built.json_text)
    assert (built.site / "board.json").read_text().strip() == built.json_text.strip()
    assert report.board_rows == len(board) > 0
    assert report.row_problems == []
    assert report.rows_checked == report.rows_matching == len(board)
    assert report.sort_ok is True, report.sort_problem
    assert report.page_problems == []
    assert report.row_pages == len(board)
    assert report.console_errors == []
    assert report.external_requests == [] and report.external_refs == []
    assert {Path(s).name for s in report.screenshots} >= {"index.png", "index-sorted.png"}
    assert all(Path(s).stat().st_size > 1000 for s in report.screenshots)


def test_results_tree_site(browser: Browser, tree_site: BuiltSite) -> None:
    report = check_site(browser, tree_site.site)
    assert_site_passes(report, tree_site)
    assert report.reported_rows > 0 and report.reported_marked == report.reported_rows
    assert report.row_pages_with_plots == report.row_pages
    skipped = re.search(r"skipped (\d+) run\(s\).*\(e\.g\. ([^)]*)\)", tree_site.html_stderr)
    assert skipped, tree_site.html_stderr
    assert report.skipped and skipped.group(1) in report.skipped
    for counted in ("1 failed", "1 incomplete", "2 unreadable"):
        assert counted in report.skipped
    for example in skipped.group(2).split(", "):
        assert example in report.skipped, (example, report.skipped)


def test_trained_runs_site_shows_their_curves(browser: Browser, trained_site: BuiltSite) -> None:
    report = check_site(browser, trained_site.site)
    assert_site_passes(report, trained_site)
    assert report.row_pages_with_plots == report.row_pages == 2
    assert report.loaded_plots and all({"curves", "seen-unseen"} <= set(v) for v in report.loaded_plots.values())


def test_the_check_catches_a_wrong_number_and_an_outside_request(
    browser: Browser, tree_site: BuiltSite, tmp_path: Path
) -> None:
    site = Path(shutil.copytree(tree_site.site, tmp_path / "site"))
    index = site / "index.html"
    measured_h = re.compile(
        r'(<tr class="row\b[^>]*>(?:(?!</tr>).)*?<td[^>]*data-key="h"[^>]*data-value=")[^"]+"', re.S
    )
    text, changed = measured_h.subn(r'\g<1>12.25"', index.read_text(), count=1)
    assert changed == 1
    outside = "http://zsl-bench.invalid/pixel.png"
    index.write_text(text.replace("</body>", f'<img src="{outside}" alt=""></body>'))
    report = check_site(browser, site, max_pages=0)
    assert report.rows_matching == report.board_rows - 1
    assert any("h data-value='12.25'" in p for p in report.row_problems), report.row_problems
    assert outside in report.external_requests and report.external_refs == [outside]
    assert report.console_errors and not report.ok


@pytest.mark.parametrize(
    ("text", "value", "std", "wrong"),
    [
        ("49.4 ± 5.2", 49.41, 5.23, False),
        ("3.033", 3.033333, None, False),
        ("10 (5 + 5)", 10, None, False),
        ("–", None, None, False),
        ("49.5 ± 5.2", 49.41, 5.23, True),
        ("49.4", 49.41, 5.23, True),
        ("49.4 ± 5.3", 49.41, 5.23, True),
        ("0.0", None, None, True),
        ("–", 1.5, None, True),
    ],
)
def test_a_cell_shows_its_value_rounded(text: str, value: float | None, std: float | None, wrong: bool) -> None:
    assert (display_problem("h", text, value, std) is not None) == wrong
