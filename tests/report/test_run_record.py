"""The typed run record: a run directory written before ``schema_version`` existed still loads, and the one metric
table drives the leaderboard's columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zsl_bench.cli import main
from zsl_bench.record import (
    METRICS,
    SCHEMA_VERSION,
    RunSummary,
    config_identity,
    config_key,
    mean_scores,
    metric_columns,
    parse_summary,
    read_summary,
)
from zsl_bench.report.aggregate import ROW_KEYS
from zsl_bench.report.runs import collect
from zsl_bench.report.tables import CZSL, GZSL, LABELS
from zsl_bench.rundir import RunWriter, read_record

FIXTURE = Path(__file__).parent / "fixtures" / "run_v0"
"""A 1-epoch resnet_test run on the synthetic data as the engine wrote it before ``schema_version`` (checkpoint and
test scores left out)."""


@pytest.fixture
def old_results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    shutil.copytree(FIXTURE, results / "fixture" / "t1")
    return results


def test_the_fixture_is_a_run_directory_of_today() -> None:
    assert sorted(p.name for p in FIXTURE.iterdir()) == ["config.yaml", "done", "metrics.jsonl", "summary.json"]
    assert "schema_version" not in json.loads((FIXTURE / "summary.json").read_text())


def test_an_old_run_directory_reads_as_a_record(old_results: Path) -> None:
    record = read_record(old_results / "fixture" / "t1")
    on_disk = json.loads((FIXTURE / "summary.json").read_text())
    assert record.summary is not None and record.summary.schema_version == 0
    assert record.summary.dump() == on_disk  # nothing added, nothing lost
    assert record.scored and record.status == "completed" and record.stage == "search"
    assert record.accuracy == "per_class"
    evals = record.evals()
    assert [(e.epoch, e.split) for e in evals] == [(1, "val"), (1, "test")]
    test_line = json.loads((FIXTURE / "metrics.jsonl").read_text().splitlines()[1])
    assert evals[1].scores() == {m.name: test_line[m.name] for m in METRICS}


def test_an_old_run_directory_loads_in_the_leaderboard(old_results: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["leaderboard", "--results", str(old_results), "--format", "json", "--no-reference"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    summary = json.loads((FIXTURE / "summary.json").read_text())
    assert [r["protocol"] for r in rows] == ["search-val", "search-test"]
    for row, block in zip(rows, ("best_by_val", "best_by_test"), strict=True):
        assert row["dataset"] == "synth" and row["model"] == "resnet_test" and row["n_seeds"] == 1
        for m in METRICS:
            assert row[m.name] == pytest.approx(100.0 * summary[block]["test"][m.name], abs=1e-6)
        assert row["czsl_std"] is None and row["trials"] == 1
        assert row["cpu_hours"] == pytest.approx(summary["compute_s"] / 3600.0, abs=1e-6)


def test_a_summary_written_now_has_the_schema_version_and_loads_like_an_old_one(old_results: Path) -> None:
    old = json.loads((FIXTURE / "summary.json").read_text())
    new_dir = old_results / "fixture" / "t2"
    shutil.copytree(FIXTURE, new_dir)
    RunWriter(new_dir, resume_after=1).summary(RunSummary.written(**old))
    (new_dir / "done").write_text("")
    written = json.loads((new_dir / "summary.json").read_text())
    assert written == {**old, "schema_version": SCHEMA_VERSION}
    runs = sorted(collect(old_results).runs, key=lambda r: r.path.name)
    assert [r.path.name for r in runs] == ["t1", "t2"]
    assert runs[0].tests == runs[1].tests and runs[0].config_key == runs[1].config_key


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"compute_s": True},
        {"compute_s": float("nan")},
        {"best_by_val": "x"},
        {"best_by_val": {"test": {"czsl": "n/a", "u": 0, "s": 0, "h": 0}}},
        {"best_by_val": {"test": {"u": 0, "s": 0, "h": 0}}},
    ],
)
def test_malformed_summaries_are_rejected_with_the_field_named(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_summary(bad)
    assert read_summary(bad) == RunSummary()  # readers that only skip see an empty summary


def test_no_compute_recorded_reads_as_zero() -> None:
    assert parse_summary({"status": "running", "compute_s": None}).compute_s == 0.0


def test_the_metric_table_drives_the_leaderboard_columns() -> None:
    assert ROW_KEYS[5:-3] == metric_columns() == ("czsl", "czsl_std", "u", "s", "h", "h_std")
    assert tuple(m.name for m in METRICS) == CZSL + GZSL
    assert LABELS == {"czsl": "CZSL", "u": "U", "s": "S", "h": "H"}


def test_mean_scores_over_seeds() -> None:
    blocks = [{"czsl": 0.2, "u": 0.1, "s": 0.3, "h": 0.15}, {"czsl": 0.4, "u": 0.3, "s": 0.5, "h": 0.35}]
    assert mean_scores(blocks) == pytest.approx({"czsl": 0.3, "u": 0.2, "s": 0.4, "h": 0.25})


def test_one_rule_for_the_same_configuration() -> None:
    base = {"model": {"name": "m"}, "train": {"seed": 0, "device": "cpu"}, "eval": {"accuracy": "per_class"}}
    moved = {**base, "train": {"seed": 0, "device": "cuda"}, "eval": {}, "meta": {"trial_id": "x"}}
    reseeded = {**base, "train": {"seed": 1, "device": "cpu"}}
    assert config_identity(base) == config_identity(moved) == {"model": {"name": "m"}, "train": {"seed": 0}, "eval": {}}
    assert config_identity(base) != config_identity(reseeded)
    assert config_key(base) == config_key(reseeded)  # the same configuration across seeds
