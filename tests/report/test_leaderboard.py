"""Leaderboard: aggregation decisions on the tree of conftest.py, golden md/csv/tex/json outputs, CLI errors.

Golden files live in tests/report/golden/. After an intended change of the output, regenerate them with

    ZSL_BENCH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/report -q

and review the diff before committing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from zsl_bench.cli import main
from zsl_bench.report.aggregate import ROW_KEYS, aggregate
from zsl_bench.report.leaderboard import build, render
from zsl_bench.report.runs import collect

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ZSL_BENCH_UPDATE_GOLDEN") == "1"


def keyed(rows):
    return {(r.dataset, r.model, r.protocol): r for r in rows}


def md_line(text: str, *first_cells: str) -> list[str]:
    """The cells of the first markdown table line of ``text`` starting with ``first_cells``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[: len(first_cells)] == list(first_cells):
            return cells
    raise AssertionError(f"no table line starting with {first_cells}")


def test_skipped_runs_are_counted_not_fatal(results_tree):
    collected = collect(results_tree)
    s = collected.skipped
    assert (s.failed, s.incomplete, s.unreadable) == (1, 1, 2)  # t4; t5; t6 and junk
    assert "skipped 4 run(s)" in s.line() and "1 failed" in s.line() and "2 unreadable" in s.line()
    assert all(r.model != "ignored_model" for r in collected.runs)  # _ray/ is not a results folder


def test_rows_use_final_runs_of_the_config_chosen_on_validation(results_tree):
    rows, notes = aggregate(collect(results_tree))
    by = keyed(rows)
    assert set(by) == {
        ("cub", "resnet_test", "val"),
        ("cub", "resnet_test", "test"),
        ("synth", "vit_test", "val"),
        ("synth", "vit_test", "test"),
        ("synth", "resnet_test", "search-val"),
        ("synth", "resnet_test", "search-test"),
        ("awa2", "vit_test", "val"),
        ("awa2", "vit_test", "test"),
    }
    cub = by[("cub", "resnet_test", "val")]
    # final-1-* (parent t1, best validation H), not final-2-* (better on test): 3 seeds, mean ± sample std
    assert cub.n_seeds == 3 and [Path(p).name for p in cub.runs] == [f"final-1-seed{i}" for i in range(3)]
    assert cub.czsl == pytest.approx(62.0) and cub.czsl_std == pytest.approx(2.0)
    assert cub.u == pytest.approx(42.0) and cub.s == pytest.approx(70.0)
    assert cub.h == pytest.approx(100 * sum(2 * u * 0.7 / (u + 0.7) for u in (0.40, 0.42, 0.44)) / 3)
    # the test row: same runs, the best_by_test blocks (+2 points each in the fixture)
    cub_test = by[("cub", "resnet_test", "test")]
    assert cub_test.runs == cub.runs and cub_test.czsl == pytest.approx(64.0)
    # cost: every readable trial (search + final, failed and unfinished too), on the GPU; t6 is unreadable
    assert (cub.search_trials, cub.final_trials, cub.trials) == (5, 5, 10)
    assert cub.gpu_hours == pytest.approx((3600 + 1800 + 600 + 120 + 300 + 5 * 900) / 3600)
    assert cub.cpu_hours == 0.0
    # search-stage runs never score when final runs exist; the fallback row is labelled
    assert by[("synth", "vit_test", "val")].n_seeds == 2
    fallback = by[("synth", "resnet_test", "search-val")]
    assert fallback.kind == "search stage" and fallback.h == pytest.approx(100 * 2 * 0.35 * 0.45 / 0.8)
    # no validation evidence (no parent): the configuration with most seeds, and a note says so
    awa2 = by[("awa2", "vit_test", "val")]
    assert awa2.n_seeds == 2 and awa2.czsl == pytest.approx(32.0)
    assert len(notes) == 1 and notes[0].startswith("awa2/vit_test: 2 configurations") and "runs/v-seed0" in notes[0]


def test_json_rows_have_exactly_the_documented_keys(results_tree):
    data = json.loads(render(build(results_tree), "json"))
    assert len(data) == 8 and all(tuple(row) == ROW_KEYS for row in data)
    assert {row["protocol"] for row in data} == {"val", "test", "search-val", "search-test"}


@pytest.mark.parametrize("fmt", ["md", "csv", "tex", "json"])
def test_golden_outputs(results_tree, reference_dir, tmp_path, capsys, fmt):
    out = tmp_path / f"leaderboard.{fmt}"
    argv = ["leaderboard", "--results", str(results_tree), "--format", fmt, "--out", str(out)]
    assert main([*argv, "--reference", str(reference_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("skipped 4 run(s)") == 1  # one warning line, not a crash
    text = out.read_text()
    assert captured.out == text
    golden = GOLDEN / f"leaderboard.{fmt}"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"missing {golden}: run with ZSL_BENCH_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{fmt} output differs from {golden} (ZSL_BENCH_UPDATE_GOLDEN=1 to accept)"


def test_markdown_structure(results_tree, reference_dir):
    md = render(build(results_tree, reference_dir), "md")
    val, test = md.index("protocol `val`"), md.index("protocol `test`")
    assert val < test  # validation selection first, test selection separate and labelled
    czsl = md[val:test].split("### GZSL")[0]
    assert md_line(czsl, "Model") == ["Model", "Result", "awa2", "cub", "synth"]
    assert md_line(czsl, "resnet_test", "measured")[3] == "**62.0 ± 2.0**"  # cub: best measured, bold, mean ± std
    assert md_line(czsl, "resnet_test", "search stage")[4] == "55.0"  # one seed: no ±; synth best is vit_test
    assert md_line(czsl, "PaperNet (CVPR'99)", "reported")[3] == "70.1"  # shown beside, but never bold
    assert "Other_Net" not in czsl  # H only: no line in the CZSL table ...
    assert md_line(md[val:test], "Other_Net", "reported")[4] == "99.9"  # ... but its awa2 H is in the GZSL one
    assert "sun" not in md.split("## Runs and cost")[0]  # datasets without measured rows add no columns
    assert "| ResNet-101" in md and "a test table" in md  # backbone and source of the reported rows


def test_default_output_and_reference_folder(results_tree, capsys, monkeypatch, tmp_path):
    (results_tree / "reference").mkdir()
    (results_tree / "reference" / "r.yaml").write_text(
        "rows:\n  - {method: M, backbone: B, source: S, results: {cub: {h: 1.0}}}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard", "--results", str(results_tree)]) == 0
    written = (results_tree / "leaderboard.md").read_text()
    assert "| M " in written and written == capsys.readouterr().out
    assert main(["leaderboard", "--results", str(results_tree), "--format", "json", "--no-reference"]) == 0
    assert not (results_tree / "leaderboard.json").exists()  # only md has a default file


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["leaderboard", "--results", "{tmp}/nowhere"], "results directory not found"),
        (["leaderboard", "--results", "{tree}", "--format", "xls"], "invalid choice: 'xls'"),
        (["leaderboard", "--results", "{tree}", "--reference", "{tmp}/nope"], "reference folder not found"),
        (["leaderboard", "--results", "{tree}", "--reference", "{bad}"], "bad.yaml"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(results_tree, tmp_path, capsys, argv, message):
    bad = tmp_path / "badref"
    bad.mkdir()
    (bad / "bad.yaml").write_text("rows: [unclosed\n")
    argv = [a.format(tmp=tmp_path, tree=results_tree, bad=bad) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("zsl-bench: error:")


def test_empty_results(tmp_path):
    board = build(tmp_path)
    assert board.rows == [] and board.skipped.total == 0
    assert render(board, "json") == "[]"
    assert render(board, "md").endswith("No finished runs.")
    assert render(board, "csv").splitlines() == [",".join((*ROW_KEYS, "backbone", "source", "accuracy_source"))]


@pytest.mark.parametrize(
    "summary",
    [
        "[]",
        '{"status": "completed", "best_by_val": "x"}',
        '{"status": "completed", "compute_s": "abc", "best_by_val": {}, "best_by_test": {}}',
        '{"status": "completed", "best_by_val": {"test": {"czsl": NaN, "u": 0, "s": 0, "h": 0}}}',
        '{"status": "completed", "best_by_val": {"test": null}, "best_by_test": {"test": null}}',
    ],
)
def test_malformed_summaries_are_skipped_as_unreadable(results_tree, summary):
    (results_tree / "runs" / "v-seed1" / "summary.json").write_text(summary)
    board = build(results_tree)
    assert board.skipped.unreadable == 3  # t6, junk and this one
    awa2 = keyed(board.rows)[("awa2", "vit_test", "val")]
    assert awa2.n_seeds == 1  # v-seed0 alone now


def test_odd_config_values_do_not_crash(results_tree):
    path = results_tree / "runs" / "v-seed1" / "config.yaml"
    path.write_text(path.read_text().replace("parent: null", "parent: 7").replace("seed: 1", "seed: 0"))
    rows, notes = aggregate(collect(results_tree))
    assert keyed(rows)[("awa2", "vit_test", "val")].n_seeds == 2
    assert any("only 1 distinct seeds" in n for n in notes)


def test_per_sample_runs_get_rows_of_their_own_marked(results_tree, reference_dir):
    from tests.report.conftest import gzsl, write_run

    kw = {"dataset": "awa2", "model": "vit_test", "stage": "final", "accuracy": "per_sample", "compute_s": 36}
    for seed in range(2):
        write_run(results_tree / "persample", f"p-seed{seed}", seed=seed, test=gzsl(0.99, 0.99, 0.99), **kw)
    rows, _ = aggregate(collect(results_tree))
    awa2 = [r for r in rows if r.dataset == "awa2" and r.protocol == "val"]
    by = {r.accuracy: r for r in awa2}
    assert set(by) == {"per_class", "per_sample"}  # never averaged together
    assert by["per_class"].czsl == pytest.approx(32.0) and by["per_sample"].czsl == pytest.approx(99.0)
    assert by["per_sample"].trials == 2 and by["per_class"].trials == 3  # cost follows the row
    md = render(build(results_tree, reference_dir), "md")
    czsl = md[md.index("protocol `val`") : md.index("protocol `test`")].split("### GZSL")[0]
    assert md_line(czsl, "vit_test", "measured")[2] == "**32.0 ± 2.8**"  # per-class: the bold stays here
    assert md_line(czsl, "vit_test", "measured, per-sample")[2] == "99.0 ± 0.0†"  # higher, marked, never bold
    assert md_line(czsl, "PaperNet (CVPR'99)", "reported")[2] == "50.0†"
    assert "†: per-sample (overall) accuracy" in md
    data = json.loads(render(build(results_tree), "json"))
    assert {(r["dataset"], r["accuracy"]) for r in data if r["model"] == "vit_test"} >= {("awa2", "per_sample")}
