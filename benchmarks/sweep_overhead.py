"""Sweep overhead: 16 trials of 5 s fixed compute, concurrency 2, on 2 CPUs, through the real ``run_sweep``.

Everything but the model is real: Ray start-up, Optuna (TPE) sampling, Tune scheduling, the per-epoch report with
its Tune checkpoint, the run-directory writes and Ray's shut-down. The objective busy-computes for ``--compute``
seconds in ``--epochs`` equal steps (SHA-256 over a buffer: it releases the GIL, so trials in threads get a core
each, as trials in processes do); the synthetic split files the driver checks are written before the clock
starts. Prints one JSON object:

    overhead_ratio = wall / (trials x compute / concurrency)     (goal <= 1.10, Ray start and shut-down included)

``--side-by-side`` runs the same workload (objective, space, TPE sampler and seed, Optuna journal) two more ways,
each side in a fresh Python process, the sides interleaved ``--repeats`` times (order rotating):

- ``plain_optuna``: ``optuna.create_study().optimize(n_jobs=concurrency)``, trials in threads of one process;
- ``zsl_bench_attached``: ``run_sweep`` attached to a Ray head started once before the clock (``zsl-bench
  cluster up``, then ``sweep --address``: how a researcher running many sweeps pays Ray's start-up once).

It reports ``overhead_ratio`` (zsl-bench starting its own Ray, the median), ``plain_optuna_ratio`` and
``attached_ratio``. Every side's entry splits its wall time into ``startup_s`` (start to the first trial's run
directory), ``trials_s`` and ``tail_s`` (the last trial's ``done`` marker to the end).

Usage: python benchmarks/sweep_overhead.py [--trials 16] [--compute 5] [--epochs 5] [--concurrency 2]
                                           [--side-by-side [--repeats 1]]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL = 1.10
SIDES = ("zsl_bench", "plain_optuna", "zsl_bench_attached")
_BLOCK = bytes(1 << 16)  # one SHA-256 pass over it: ~0.1-0.3 ms, the GIL released


def fixed_compute_objective(cfg: Any, run_dir: Path, report: Any = None) -> dict[str, Any]:
    """Busy-compute ``model.options.compute_s`` seconds in ``train.epochs`` steps, writing a minimal but valid run
    directory (config, per-epoch metrics, summary, ``done``) as a trial does."""
    from zsl_bench.config import to_dict
    from zsl_bench.rundir import RunWriter

    seconds, epochs = cfg.model.options["compute_s"], cfg.train.epochs
    writer = RunWriter(run_dir)
    writer.config(to_dict(cfg))
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        end = start + seconds * epoch / epochs
        while time.perf_counter() < end:  # CPU-bound work, not sleep: it competes with Ray for the cores
            hashlib.sha256(_BLOCK).digest()
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


def space_and_base(args: argparse.Namespace, root: Path) -> tuple[Any, Any]:
    """The search space (TPE over ``optim.lr``, FIFO: every trial does its full compute) and the base config, its
    data the synthetic split files under ``root`` (the driver checks them once before Ray starts)."""
    from zsl_bench.config import build_config
    from zsl_bench.search.space import SearchSpace

    space = SearchSpace.model_validate(
        {
            "base": "quickstart",
            "sweep": {
                "num_samples": args.trials,
                "max_concurrent": args.concurrency,
                "scheduler": "fifo",
                "top_k": 0,
                "resources_per_trial": {"cpu": 1},
            },
            "space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        }
    )
    overrides = {"train.epochs": args.epochs, "model.options.compute_s": args.compute, "data.root": str(root)}
    return space, build_config(None, overrides)


def run_zsl_bench(args: argparse.Namespace, root: Path) -> int:
    """The workload through ``run_sweep`` (Ray, Tune, the Optuna searcher); returns the trials completed."""
    from zsl_bench.search.tune_backend import run_sweep

    space, base = space_and_base(args, root / "_data" / "synth")
    out = run_sweep(space, base, root, "overhead", num_cpus=args.concurrency, objective=fixed_compute_objective)
    return out.completed


def run_zsl_bench_attached(args: argparse.Namespace, root: Path, address: str) -> int:
    """The workload through ``run_sweep`` attached to the running head at ``address``; returns the trials
    completed."""
    from zsl_bench.search.tune_backend import run_sweep

    space, base = space_and_base(args, root / "_data" / "synth")
    kw = {"address": address, "objective": fixed_compute_objective}
    return run_sweep(space, base, root, "overhead", **kw).completed


def start_head(args: argparse.Namespace, root: Path) -> tuple[str, Path]:
    """``zsl-bench cluster up`` of ``concurrency`` CPUs in ``root/_cluster`` (outside the clock, in its own
    process as a researcher runs it), this process set up to attach to it; returns its address and cluster dir."""
    from zsl_bench.cluster import head
    from zsl_bench.ports import free_ports

    cluster, (gcs, dash) = root / "_cluster", free_ports(2)
    zsl = [sys.executable, "-m", "zsl_bench.cli", "cluster"]
    up = [*zsl, "up", f"--num-cpus={args.concurrency}", f"--port={gcs}", f"--dashboard-port={dash}"]
    subprocess.run([*up, f"--cluster-dir={cluster}"], check=True, capture_output=True)
    state = head.load_state(cluster)
    head.attach_env(state.address, cluster)  # before this process imports ray
    return state.address, cluster


def stop_head(cluster: Path) -> None:
    """``zsl-bench cluster down`` of the head :func:`start_head` started."""
    zsl = [sys.executable, "-m", "zsl_bench.cli", "cluster", "down", f"--cluster-dir={cluster}"]
    subprocess.run(zsl, check=True, capture_output=True)


def run_plain_optuna(args: argparse.Namespace, root: Path) -> int:
    """The same workload through plain Optuna: the same sampler, seed, journal storage and objective, the trials
    in ``concurrency`` threads of this process; returns the trials completed."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from zsl_bench.config import build_config, to_dict
    from zsl_bench.search.tune_backend import absolute_paths

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, base = space_and_base(args, root / "_data" / "synth")
    base_tree, param = absolute_paths(to_dict(base)), space.space["optim.lr"]
    (root / "overhead").mkdir(parents=True)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(root / "overhead" / "optuna.journal")))
    sampler = optuna.samplers.TPESampler(seed=space.sweep.seed)
    study = optuna.create_study(study_name="overhead", direction="maximize", sampler=sampler, storage=storage)

    def objective(trial: Any) -> float:
        lr = trial.suggest_float("optim.lr", param.low, param.high, log=param.log)
        name = f"trial-{trial.number:03d}"
        overrides = {"optim.lr": lr, "meta.sweep": "overhead", "meta.trial_id": name, "meta.stage": "search"}
        cfg = build_config(base_tree, overrides, source="plain optuna")
        return fixed_compute_objective(cfg, root / "overhead" / name)["best_by_val"]["val"]["h"]

    study.optimize(objective, n_trials=args.trials, n_jobs=args.concurrency)
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def timeline(sweep_dir: Path, start: float, end: float) -> dict[str, float]:
    """Wall split from the run directories' file times: start-up (to the first trial's config), the trials, and
    the tail (the last ``done`` marker to the end)."""
    from zsl_bench.rundir import CONFIG, DONE

    first = min((p.stat().st_mtime for p in sweep_dir.glob(f"*/{CONFIG}")), default=end)
    last = max((p.stat().st_mtime for p in sweep_dir.glob(f"*/{DONE}")), default=end)
    return {"startup_s": round(first - start, 2), "trials_s": round(last - first, 2), "tail_s": round(end - last, 2)}


def run_side(args: argparse.Namespace, side: str) -> dict[str, Any]:
    """One side of the comparison in this process: wall, ratio and timeline."""
    ideal = args.trials * args.compute / args.concurrency
    from zsl_bench.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "_data" / "synth")  # before the clock starts: the workload's data, not overhead
        runner = {"zsl_bench": run_zsl_bench, "plain_optuna": run_plain_optuna}.get(side)
        cluster = None
        if runner is None:  # attached: the head starts before the clock and stops after it
            address, cluster = start_head(args, root)
            runner = functools.partial(run_zsl_bench_attached, address=address)
        try:
            start = time.time()
            completed = runner(args, root)
            end = time.time()
        finally:
            if cluster is not None:
                stop_head(cluster)
        parts = timeline(root / "overhead", start, end)
    wall = end - start
    return {"side": side, "completed": completed, "wall_s": round(wall, 2), "ratio": round(wall / ideal, 3), **parts}


def side_in_subprocess(args: argparse.Namespace, side: str) -> dict[str, Any]:
    """:func:`run_side` in a fresh Python process (no module imported by the other side), its JSON line."""
    cmd = [sys.executable, __file__, "--side", side, "--trials", str(args.trials), "--compute", str(args.compute)]
    cmd += ["--epochs", str(args.epochs), "--concurrency", str(args.concurrency)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def side_by_side(args: argparse.Namespace) -> dict[str, Any]:
    """Every side, interleaved ``repeats`` times in rotating order; the median ratio of each."""
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for r in range(args.repeats):
        for side in SIDES[r % 3 :] + SIDES[: r % 3]:
            runs[side].append(side_in_subprocess(args, side))
    ratio = {side: statistics.median(run["ratio"] for run in runs[side]) for side in SIDES}
    return {
        "overhead_ratio": ratio["zsl_bench"],
        "plain_optuna_ratio": ratio["plain_optuna"],
        "attached_ratio": ratio["zsl_bench_attached"],
        "zsl_bench_vs_plain_optuna": round(ratio["zsl_bench"] / ratio["plain_optuna"], 3),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--compute", type=float, default=5.0, help="seconds of compute per trial")
    parser.add_argument("--epochs", type=int, default=5, help="reports per trial")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--side-by-side", action="store_true", help="also run the workload through plain Optuna")
    parser.add_argument("--repeats", type=int, default=1, help="with --side-by-side: interleaved runs of each side")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one side, one JSON line (internal)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args, args.side)))
        return
    load_before = os.getloadavg()
    if args.side_by_side:
        result = side_by_side(args)
    else:
        run = run_side(args, "zsl_bench")
        result = {"overhead_ratio": run["ratio"], "runs": {"zsl_bench": [run]}}
    workload = {"trials": args.trials, "compute_per_trial_s": args.compute, "epochs": args.epochs}
    workload |= {"concurrency": args.concurrency, "ideal_wall_s": args.trials * args.compute / args.concurrency}
    print(
        json.dumps(
            {
                **workload,
                **result,
                "goal_ratio": GOAL,
                "meets_goal": result["overhead_ratio"] <= GOAL,
                "load_avg_before": [round(x, 2) for x in load_before],
                "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
