"""Trials whose worker process dies (as under the kernel's OOM killer): retried from their checkpoint with
``max_failures``, and recorded as failed with Tune's error once the retries are spent — the sweep goes on."""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OBJECTIVE = '''
import os, signal
from pathlib import Path
from zsl_bench.engine import run_trial


def crashing_objective(cfg, run_dir, report=None):
    """Seed 1: the worker dies once, after epoch 2. Seed 2: it dies after every epoch from 2 on, so the retry
    (which resumes after epoch 2) dies too."""
    marker = Path(run_dir) / "crashed_once"

    def report_then_maybe_die(metrics):
        report(metrics)
        if (cfg.train.seed == 2 and metrics["epoch"] >= 2) or (metrics["epoch"] == 2 and not marker.exists()):
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    return run_trial(cfg, run_dir, report=report_then_maybe_die)
'''

DRIVER = """
import sys
from pathlib import Path
from crashing import crashing_objective
from zsl_bench.config import build_config
from zsl_bench.search.space import SearchSpace
from zsl_bench.search.tune_backend import run_sweep

space = SearchSpace.model_validate({
    "base": "quickstart",
    "sweep": {"searcher": "grid", "scheduler": "fifo", "num_samples": 1, "max_concurrent": 2, "top_k": 0,
              "max_failures": 1, "resources_per_trial": {"cpu": 1}},
    "space": {"train.seed": {"type": "grid", "values": [1, 2]}},
})
base = build_config("quickstart", {"data.root": sys.argv[1], "train.epochs": 4, "model.options.width": 8})
out = run_sweep(space, base, Path(sys.argv[2]), "crashy", objective=crashing_objective)
print(out.completed, out.failed)
"""


@pytest.mark.faults
def test_killed_workers_are_retried_from_checkpoint_then_recorded(synth_root, tmp_path):
    (tmp_path / "crashing.py").write_text(textwrap.dedent(OBJECTIVE))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(synth_root), str(tmp_path / "results")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["1", "1"]  # one completed, one failed
    runs = {}
    for run in (tmp_path / "results" / "crashy").iterdir():
        if not run.name.startswith("_"):
            config = (run / "config.yaml").read_text()
            runs[1 if "seed: 1" in config else 2] = run
    once, always = runs[1], runs[2]
    assert (once / "done").exists() and not (once / "error.txt").exists()
    epochs = [json.loads(line)["epoch"] for line in (once / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 1, 2, 2, 3, 3, 4, 4]  # the retry continued after epoch 2 instead of starting over
    assert not (always / "done").exists()
    assert "Error" in (always / "error.txt").read_text()  # written by the sweep from Tune's error
