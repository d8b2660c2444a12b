"""Time ``gzsl_accuracy`` + ``calibrate_gamma`` on large random scores and print one JSON object.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/metrics.py [--n 1000000] [--c 200] [--grid 50] [--seed 0]

The scores are seeded random float32 ``[n, c]``; a random 75 % / 25 % split of the class ids (interleaved,
so the column-gather path is measured, not the contiguous-slice fast path) gives the seen / unseen sets.
Building the data is not timed. The goal is ``total_s <= 2.0`` on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from zsl_bench.metrics import calibrate_gamma, gzsl_accuracy

GOAL_S = 2.0


def _threads() -> int:
    """The thread count the BLAS/OpenMP pools were told to use (all cores when unset)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else (os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> dict[str, float | int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of samples (rows)")
    parser.add_argument("--c", type=int, default=200, help="number of classes (columns)")
    parser.add_argument("--grid", type=int, default=50, help="number of γ values calibrate_gamma tries")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.c < 2 or args.n < 1 or args.grid < 1:
        parser.error("need --c >= 2, --n >= 1 and --grid >= 1")

    rng = np.random.default_rng(args.seed)
    scores = rng.random((args.n, args.c), dtype=np.float32)
    y_true = rng.integers(0, args.c, size=args.n)
    classes = rng.permutation(args.c)
    n_seen = max(1, min(args.c - 1, round(0.75 * args.c)))
    seen, unseen = np.sort(classes[:n_seen]), np.sort(classes[n_seen:])

    start = time.perf_counter()
    gamma = calibrate_gamma(scores, y_true, seen, unseen, grid=args.grid)
    calibrate_s = time.perf_counter() - start
    start = time.perf_counter()
    gzsl_accuracy(scores, y_true, seen, unseen, gamma=gamma)
    gzsl_s = time.perf_counter() - start

    result = {
        "n": args.n,
        "c": args.c,
        "grid": args.grid,
        "gzsl_accuracy_s": round(gzsl_s, 4),
        "calibrate_gamma_s": round(calibrate_s, 4),
        "total_s": round(gzsl_s + calibrate_s, 4),
        "goal_s": GOAL_S,
        "threads": _threads(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
