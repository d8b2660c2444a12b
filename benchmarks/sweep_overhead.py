"""Sweep overhead: 16 trials of 5 s fixed compute, concurrency 2, on 2 CPUs, through the real ``run_sweep``.

Everything but the model is real: Ray start-up, Optuna (TPE) sampling, Tune scheduling, the per-epoch report with
its Tune checkpoint, and the run-directory writes. The objective busy-computes for ``--compute`` seconds in
``--epochs`` equal steps. Prints one JSON object:

    overhead_ratio = wall / (sum of trial compute / concurrency)     (goal ≤ 1.15, Ray start included)

Usage: python benchmarks/sweep_overhead.py [--trials 16] [--compute 5] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def fixed_compute_objective(cfg: Any, run_dir: Path, report: Any = None) -> dict[str, Any]:
    """Busy-compute ``meta``-free fixed work and write a minimal but valid run directory."""
    from zsl_bench.config import to_dict
    from zsl_bench.rundir import RunWriter

    seconds, epochs = cfg.model.options["compute_s"], cfg.train.epochs
    writer = RunWriter(run_dir)
    writer.config(to_dict(cfg))
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        end = start + seconds * epoch / epochs
        x = 0.0
        while time.perf_counter() < end:  # CPU-bound work, not sleep: it competes with Ray for the cores
            x += sum(i * i for i in range(2000))
        rec = {"czsl": 0.5, "u": 0.5, "s": 0.5, "h": 0.5 * cfg.optim.lr, "gamma": 0.0}
        writer.metrics({"epoch": epoch, "split": "val", **rec})
        if report is not None:
            report({"epoch": epoch, "val/h": rec["h"]})
    compute = time.perf_counter() - start
    best = {"epoch": epochs, "czsl_epoch": epochs, "gamma": 0.0, "val": rec, "test": rec}
    summary = {"status": "completed", "best_by_val": best, "compute_s": compute, "stage": "search"}
    writer.summary(summary)
    writer.done()
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--compute", type=float, default=5.0, help="seconds of compute per trial")
    parser.add_argument("--epochs", type=int, default=5, help="reports per trial")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    from zsl_bench.config import build_config
    from zsl_bench.search.space import SearchSpace
    from zsl_bench.search.tune_backend import run_sweep

    space = SearchSpace.model_validate(
        {
            "base": "quickstart",
            "sweep": {
                "num_samples": args.trials,
                "max_concurrent": args.concurrency,
                "scheduler": "fifo",  # every trial does its full fixed compute
                "top_k": 0,
                "resources_per_trial": {"cpu": 1},
            },
            "space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        }
    )
    base = build_config(None, {"train.epochs": args.epochs, "model.options.compute_s": args.compute})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = run_sweep(
            space, base, Path(tmp), "overhead", num_cpus=args.concurrency, objective=fixed_compute_objective
        )
        wall = time.perf_counter() - start
    ideal = out.compute_s / args.concurrency
    print(
        json.dumps(
            {
                "trials": args.trials,
                "compute_per_trial_s": args.compute,
                "concurrency": args.concurrency,
                "completed": out.completed,
                "sum_compute_s": round(out.compute_s, 2),
                "wall_s": round(wall, 2),
                "ideal_wall_s": round(ideal, 2),
                "overhead_ratio": round(wall / ideal, 3),
                "goal_ratio": 1.15,
                "meets_goal": wall / ideal <= 1.15,
            }
        )
    )


if __name__ == "__main__":
    main()
