"""``benchmarks/gpu_check.py --dry-run``: every part of the GPU acceptance check runs at tiny shapes on the CPU and
the JSON object keeps its keys (the real check needs a GPU: ``make gpu-check``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("imports", "scan", "zeromamba_vmamba_s", "duet_deit_b", "resnet101_ale", "train_deepspeed", "train_ddp")


@pytest.mark.slow
def test_the_dry_run_runs_every_part(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ZSL_BENCH_SCAN", "TRITON_INTERPRET")}
    cmd = [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--steps", "1", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert {"device", "dry_run", "scan_backends", "total_s", "all_ok", *PARTS} <= set(report)
    assert report["dry_run"] and report["device"] == "cpu"
    for part in PARTS:
        assert report[part]["status"] in ("ok", "skipped"), (part, report[part])
        assert "seconds" in report[part] and "memory_after_mib" in report[part]
    assert report["imports"]["engine_imports_ray_or_optuna"] == "[]"
    for case in report["scan"].values():
        if isinstance(case, dict) and "torch" in case:
            for backend, row in case.items():
                assert row["max_rel_error"] <= 1e-5, (backend, row)
                assert {"forward_ms", "fwd_bwd_ms", "peak_mib", "forward_speedup_vs_torch"} <= set(row)
    assert report["zeromamba_vmamba_s"]["torch"]["scan_ran"] == "torch"
    assert {"step_s", "images_per_s", "peak_mib"} <= set(report["resnet101_ale"])
    if report["train_deepspeed"]["status"] == "ok":
        assert report["train_deepspeed"]["strategy"] == "deepspeed"
        assert {"config.yaml", "metrics.jsonl", "summary.json", "done"} <= set(report["train_deepspeed"]["files"])
    assert report["train_ddp"]["strategy"] == "ddp" and report["train_ddp"]["run_status"] == "completed"
