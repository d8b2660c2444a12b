"""Kill a running sweep for real (SIGKILL to the driver's whole process group), then ``--resume`` it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUM_SAMPLES = 6
EPOCHS = 4


def run_dirs(sweep_dir):
    return (
        sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))
        if sweep_dir.exists()
        else []
    )


def test_killed_sweep_resumes_without_losing_or_rerunning_trials(synth_root, tmp_path, cli):
    space = {
        "base": "quickstart",
        "set": {"data.root": str(synth_root), "train.epochs": EPOCHS, "model.options.width": 8},
        "sweep": {
            "num_samples": NUM_SAMPLES,
            "max_concurrent": 2,
            "scheduler": "fifo",  # every trial runs all its epochs: the final count is exact
            "top_k": 0,
            "resources_per_trial": {"cpu": 1},
        },
        "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    }
    space_file = tmp_path / "killme.yaml"
    space_file.write_text(yaml.safe_dump(space))
    results = tmp_path / "results"
    sweep_dir = results / "killme"
    cmd = [sys.executable, "-m", "zsl_bench.cli", "sweep", "--space", str(space_file), "--results", str(results)]
    driver = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            dirs = run_dirs(sweep_dir)
            finished = [d for d in dirs if (d / "done").exists()]
            running = [d for d in dirs if not (d / "done").exists() and (d / "checkpoint" / "latest.pt").exists()]
            if len(finished) >= 2 and running:
                break
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("sweep made no progress")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = {d.name: (d / "done").stat().st_mtime_ns for d in run_dirs(sweep_dir) if (d / "done").exists()}
    interrupted = [d.name for d in run_dirs(sweep_dir) if d.name not in before]
    assert before and interrupted

    code, out, err = cli("sweep", "--space", str(space_file), "--results", str(results), "--resume")
    assert code == 0, err[-3000:]
    dirs = run_dirs(sweep_dir)
    assert len(dirs) == NUM_SAMPLES, [d.name for d in dirs]  # nothing lost, nothing sampled twice
    for d in dirs:
        assert (d / "done").exists(), d
        epochs = [json.loads(line)["epoch"] for line in (d / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [e for e in range(1, EPOCHS + 1) for _ in ("val", "test")], (d.name, epochs)
    for name, stamp in before.items():  # finished trials were not run again
        assert (sweep_dir / name / "done").stat().st_mtime_ns == stamp, name
    assert f"search {NUM_SAMPLES} completed" in out

    code, _, err = cli("sweep", "--space", str(space_file), "--results", str(results))
    assert code == 2 and "--resume" in err  # a second plain start does not mix into the existing sweep

    # `make quickstart` passes --resume every time: on a finished sweep it reruns nothing ...
    code, out, err = cli("sweep", "--space", str(space_file), "--results", str(results), "--resume")
    assert code == 0, err[-3000:]
    assert len(run_dirs(sweep_dir)) == NUM_SAMPLES
    for name, stamp in before.items():
        assert (sweep_dir / name / "done").stat().st_mtime_ns == stamp, name
    # ... and with nothing on disk yet it runs the whole sweep
    code, out, err = cli(
        "sweep", "--space", str(space_file), "--results", str(results), "--name", "fresh", "--resume",
        "--num-samples", "2",
    )  # fmt: skip
    assert code == 0, err[-3000:]
    fresh = run_dirs(results / "fresh")
    assert len(fresh) == 2 and all((d / "done").exists() for d in fresh), fresh
    assert "search 2 completed" in out
