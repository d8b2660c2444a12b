"""Sweeps as SLURM jobs on a real (local, two-node) SLURM: a smoke sweep end to end, and scancel + --resume."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from zsl_bench.search.shipped import SPACES_DIR

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

QUICKSTART = SPACES_DIR / "quickstart.yaml"
JOB_TIMEOUT_S = 420


def submit(cli, slurm, *args: str) -> str:
    code, out, err = cli("cluster", "slurm", *args, env={"SLURM_CONF": slurm.env["SLURM_CONF"]}, timeout=180)
    assert code == 0, err[-3000:]
    match = re.search(r"submitted SLURM job (\d+)", out)
    assert match, out
    return match.group(1)


def job_log(results: Path, job_id: str) -> str:
    log = results / "_slurm" / f"slurm-{job_id}.out"
    return log.read_text(errors="replace") if log.exists() else f"(no log at {log})"


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))


def processes_with_env(entry: str) -> list[int]:
    """PIDs of live processes whose environment holds ``entry`` (``NAME=value``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            marked = entry.encode() in (proc / "environ").read_bytes().split(b"\0")
            if marked and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def assert_no_job_process_left(job_id: str) -> None:
    """Every process of the job (Ray head, worker, driver) carries SLURM_JOB_ID in its environment."""
    deadline = time.monotonic() + 30
    left = processes_with_env(f"SLURM_JOB_ID={job_id}")
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = processes_with_env(f"SLURM_JOB_ID={job_id}")
    assert not left, f"processes of job {job_id} still running: {left}"


def test_smoke_sweep_as_a_two_node_slurm_job(slurm, cli, tmp_path, record_property):
    results = tmp_path / 'it\'s a "results" dir'  # a space and both quotes in the path and in the sweep name
    name = 'o\'brien "quick" sweep'
    start = time.monotonic()
    job_id = submit(
        cli,
        slurm,
        *("--space", str(QUICKSTART), "--smoke", "--name", name, "--results", str(results)),
        *("--nodes", "2", "--cpus-per-node", "2", "--gpus-per-node", "0", "--time", "00:15:00"),
        *("--object-store-mb", "200"),
    )
    state = slurm.wait_job(job_id, JOB_TIMEOUT_S)
    wall = time.monotonic() - start
    record_property("slurm_smoke_wall_s", round(wall, 1))
    print(f"SLURM smoke sweep (submit to COMPLETED, 2 nodes): {wall:.1f} s")
    log = job_log(results, job_id)
    assert state == "COMPLETED", log[-5000:]
    assert "2 Ray node(s) alive: 127.0.0.2, 127.0.0.3" in log, log[-3000:]

    sweep_dir = results / f"{name}-smoke"
    dirs = run_dirs(sweep_dir)
    search = [d for d in dirs if not d.name.startswith("final-")]
    final = [d for d in dirs if d.name.startswith("final-")]
    assert len(search) == 2 and len(final) == 1, [d.name for d in dirs]
    for d in dirs:
        assert (d / "done").exists() and (d / "config.yaml").exists(), d
    assert not (sweep_dir / "_ray" / "auth_token").exists()  # attached with the job's token, no private one
    assert not (results / "_slurm" / f"job-{job_id}").exists()  # the job's token is gone with the job

    code, out, err = cli("leaderboard", "--results", str(results), "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows and all(r["dataset"] == "synth" for r in rows), rows
    assert {r["model"] for r in rows} <= {"resnet_test", "vit_test"}
    assert_no_job_process_left(job_id)


@pytest.mark.faults
def test_cancelled_sweep_job_resumes_with_resume(slurm, cli, tmp_path, synth_root):
    epochs = 4  # the cancel lands between a trial's first checkpoint and its end: 2 epochs left too short a window
    space = {
        "base": "quickstart",
        "set": {"data.root": str(synth_root), "train.epochs": epochs, "model.options.width": 8},
        "sweep": {
            "num_samples": 2,
            "max_concurrent": 2,
            "scheduler": "fifo",  # every trial runs all its epochs: the counts below are exact
            "top_k": 0,
            "resources_per_trial": {"cpu": 1},
        },
        "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    }
    space_file = tmp_path / "cancel me.yaml"
    space_file.write_text(yaml.safe_dump(space))
    results = tmp_path / "results"
    sweep_dir = results / "cancel me"
    args = ("--space", str(space_file), "--results", str(results), "--nodes", "1", "--cpus-per-node", "2")
    job_id = submit(cli, slurm, *args, "--object-store-mb", "200")

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:  # cancel once a trial has a checkpoint but has not finished
        dirs = run_dirs(sweep_dir) if sweep_dir.exists() else []
        if any((d / "checkpoint" / "latest.pt").exists() and not (d / "done").exists() for d in dirs):
            break
        state = slurm.job_state(job_id)
        assert state not in ("COMPLETED", "FAILED", "CANCELLED"), (
            f"job ended ({state}) before the cancel: " + (job_log(results, job_id)[-3000:])
        )
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.2)
    slurm.run("scancel", job_id)
    assert slurm.wait_job(job_id, 120) == "CANCELLED"
    assert_no_job_process_left(job_id)
    before = {d.name: (d / "done").stat().st_mtime_ns for d in run_dirs(sweep_dir) if (d / "done").exists()}
    assert len(before) < 2, "both trials had finished before the cancel"

    job_id = submit(cli, slurm, *args, "--object-store-mb", "200", "--resume")
    state = slurm.wait_job(job_id, JOB_TIMEOUT_S)
    assert state == "COMPLETED", job_log(results, job_id)[-5000:]
    dirs = run_dirs(sweep_dir)
    assert len(dirs) == 2, [d.name for d in dirs]  # nothing lost, nothing sampled again
    for d in dirs:
        assert (d / "done").exists(), d
        lines = (d / "metrics.jsonl").read_text().splitlines()
        epochs_seen = [json.loads(line)["epoch"] for line in lines]
        # continued from its checkpoint: every epoch evaluated once (val and test), none trained twice
        assert epochs_seen == [e for e in range(1, epochs + 1) for _ in ("val", "test")], (d.name, epochs_seen)
    for name, stamp in before.items():
        assert (sweep_dir / name / "done").stat().st_mtime_ns == stamp, f"{name} ran again"
