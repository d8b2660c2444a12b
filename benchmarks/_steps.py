"""Timing helpers shared by the ``*_steps.py`` benchmarks (imported from the script's folder, which Python puts
first on ``sys.path`` when a script runs as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import torch


def add_timing_arguments(parser: argparse.ArgumentParser, steps: int) -> None:
    """``--batch`` (default 2), ``--steps`` (timed steps, default ``steps``) and ``--threads`` (default 2)."""
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--threads", type=int, default=2)


def start(args: argparse.Namespace) -> float:
    """Set the torch threads (``--threads``) and seed 0; return the 1-minute load average before the runs."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return os.getloadavg()[0]


def train_step_times(
    model: torch.nn.Module, images: torch.Tensor, att: torch.Tensor, steps: int, opt: torch.optim.Optimizer
) -> list[float]:
    """Seconds of ``steps`` training steps (forward, ``model.loss``, backward, ``opt`` step) after two warm-up
    steps; ``att`` [seen classes, A] are the class attributes, the targets cycle through them."""
    target = torch.arange(images.shape[0]) % att.shape[0]
    model.train()
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        loss = model.loss(model(images), {"image": images, "target": target}, att)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def forward_times(model: Any, images: torch.Tensor, steps: int) -> list[float]:
    """Seconds of ``steps`` evaluation forwards (no autograd), after one warm-up."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(steps + 1):
            start = time.perf_counter()
            model(images)
            if i:
                times.append(time.perf_counter() - start)
    return times


def summary(prefix: str, times: list[float]) -> dict[str, float]:
    """``{prefix}_s``: the minimum (the best estimate on an idle machine), ``{prefix}_median_s``: the median."""
    return {f"{prefix}_s": round(min(times), 3), f"{prefix}_median_s": round(statistics.median(times), 3)}


def params_m(model: torch.nn.Module) -> float:
    """Parameters in millions."""
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


def emit(rows: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """Keep ``row`` and show it on stderr at once (a long run reports as it goes)."""
    rows.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)


def print_report(batch: int, load_before: float, rows: list[dict[str, Any]], **extra: Any) -> None:
    """Print the benchmark's JSON object: batch, threads, torch version, ``extra``, load averages, the rows."""
    out = {
        "batch": batch,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **extra,
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "results": rows,
    }
    print(json.dumps(out, indent=2))
