"""Issue 19's integrity findings, each as a test that failed on 7c5a61c: a killed checkpoint write leaves no temp
file for good, a resumed run keeps its last summary, a truncated ``latest.pt`` falls back to an intact checkpoint
(with one warning) instead of restarting the trial from epoch 1."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from zsl_bench.cli import main
from zsl_bench.engine import checkpoint
from zsl_bench.rundir import DONE, SUMMARY, RunWriter


def train_args(synth_root: Path, out: Path, epochs: int = 1) -> list[str]:
    """A small ``train`` on the synthetic data into ``out``."""
    args = ["train", "--model", "resnet_test", "--dataset", "synth", "--data-root", str(synth_root)]
    for key, value in {"train.epochs": epochs, "train.batch_size": 32, "train.num_threads": 1}.items():
        args += ["--set", f"{key}={value}"]
    return [*args, "--out", str(out)]


def epochs_of(run: Path) -> list[int]:
    """The epoch of every ``metrics.jsonl`` record of ``run``."""
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines() if line]


def test_temp_files_of_a_killed_write_are_removed_when_the_run_reopens(synth_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(synth_root, run)) == 0
    (run / DONE).unlink()  # interrupted: the next train continues it
    planted = [run / "checkpoint" / ".best.pt.k1ll3d.tmp", run / ".summary.json.x7q2.tmp"]
    for path in planted:
        path.write_bytes(b"\0" * 4096)  # what a SIGKILL during torch.save / a summary write leaves
    assert main(train_args(synth_root, run)) == 0
    assert not [p for p in planted if p.exists()]
    assert (run / DONE).exists()


def test_a_resumed_writer_keeps_the_last_summary_until_a_new_one(tmp_path):
    run = tmp_path / "run"
    first = RunWriter(run)
    for epoch in (1, 2):
        first.metrics({"epoch": epoch, "split": "val"})
    first.summary({"status": "running", "epochs_run": 2})
    resumed = RunWriter(run, resume_after=1)  # a checkpoint of epoch 1: the epoch 2 record goes, the summary stays
    assert json.loads((run / SUMMARY).read_text())["epochs_run"] == 2
    assert epochs_of(run) == [1]
    resumed.summary({"status": "running", "epochs_run": 2})
    assert RunWriter(run) and not (run / SUMMARY).exists()  # a fresh start still clears it


def test_a_truncated_latest_pt_falls_back_to_an_intact_checkpoint(synth_root, tmp_path, capsys, caplog):
    run = tmp_path / "run"
    args = [*train_args(synth_root, run, epochs=3), "--set", "train.keep_checkpoints=3"]
    assert main(args) == 0
    folder = run / "checkpoint"
    for name in ("epoch_0003.pt", checkpoint.BEST):  # the intact one left is epoch 2's
        (folder / name).unlink()
    latest = folder / checkpoint.LATEST
    latest.write_bytes(latest.read_bytes()[:1000])  # a crash or a full disk cut it short
    (run / DONE).unlink()
    with caplog.at_level(logging.WARNING, logger="zsl_bench.engine.checkpoint"):
        state = checkpoint.load_latest(run)
        assert state is not None and state["epoch"] == 2  # not None: the trial does not restart from epoch 1
        lines = [r.getMessage() for r in caplog.records if r.name == "zsl_bench.engine.checkpoint"]
        assert len(lines) == 1 and str(latest) in lines[0] and "epoch_0002.pt" in lines[0], lines
        caplog.clear()
        assert main(args) == 0
    assert len([r for r in caplog.records if "cannot be read" in r.getMessage()]) == 1
    assert (run / DONE).exists()
    assert epochs_of(run) == [e for e in range(1, 4) for _ in ("val", "test")]
    assert checkpoint.load(latest)["epoch"] == 3


def test_a_truncated_latest_pt_prefers_the_newest_kept_epoch(tmp_path, caplog):
    run = tmp_path / "run"
    for epoch in (1, 2, 3):
        checkpoint.save(run, {"epoch": epoch, "history": []}, best=epoch == 1, keep=2)
    (run / "checkpoint" / checkpoint.LATEST).write_bytes(b"PK\x03\x04 cut")
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load_latest(run)["epoch"] == 3
    (run / "checkpoint" / "epoch_0003.pt").write_bytes(b"")
    assert checkpoint.load_latest(run)["epoch"] == 2
    for path in (run / "checkpoint").glob("*.pt"):
        path.write_bytes(b"")
    assert checkpoint.load_latest(run) is None  # nothing intact: afresh, with a warning
    assert "starts afresh" in caplog.records[-1].getMessage()
