"""CPU seconds per ZeroMamba training step (forward, loss, backward, SGD step); prints one JSON object.

Usage::

    python benchmarks/zeromamba_steps.py [--cases zeromamba_test:64,zeromamba_vmamba_s:224] [--batch 2]
                                         [--steps 5] [--threads 2]

Each case ``model:image_size`` builds the model with random weights (the timing does not depend on them) and random
attribute embeddings, for CUB's 312 attributes and 150 seen classes, and runs ``--steps`` timed training steps after
two warm-up steps with the official optimiser (SGD, momentum 0.9, weight decay 1e-3, lrs 1e-3 / 1e-3 / 1e-4 for the
backbone+SLP / GRL / SeF groups). Drop-path stays at the model's default (VMamba-S: 0.3, active in training).
``forward_s`` is a ``torch.no_grad`` evaluation forward. Reported in seconds: the minimum over the steps (the best
estimate on an otherwise idle machine) and the median (``…_median_s``), with ``params_m`` (millions), the torch
threads and the 1-minute load average before and after (other processes inflate the medians).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from zsl_bench.models import build_model

ATTRIBUTES, SEEN = 312, 150
DEFAULT_CASES = "zeromamba_test:64,zeromamba_vmamba_s:224"
GROUP_LR = {"backbone": 1e-3, "head": 1e-3, "sef": 1e-4}


def step_times(model: torch.nn.Module, images: torch.Tensor, att: torch.Tensor, steps: int) -> list[float]:
    """Seconds of ``steps`` training steps (after two warm-up steps) with the official SGD groups."""
    target = torch.arange(images.shape[0]) % att.shape[0]
    groups = [{"params": params, "lr": GROUP_LR[name]} for name, params in model.param_groups().items()]
    opt = torch.optim.SGD(groups, lr=1e-3, momentum=0.9, weight_decay=1e-3)
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


def forward_times(model: torch.nn.Module, images: torch.Tensor, steps: int) -> list[float]:
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
    return {f"{prefix}_s": round(min(times), 3), f"{prefix}_median_s": round(statistics.median(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated model:image_size")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    att = torch.nn.functional.normalize(torch.rand(SEEN, ATTRIBUTES), dim=1)
    rows = []
    load_before = os.getloadavg()[0]
    for case in args.cases.split(","):
        name, _, size_text = case.partition(":")
        size = int(size_text or 224)
        images = torch.randn(args.batch, 3, size, size)
        model = build_model(name, ATTRIBUTES, size, attribute_embeddings="random")
        row = {
            "model": name,
            "image_size": size,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            **summary("forward", forward_times(model, images, args.steps)),
            **summary("train_step", step_times(model, images, att, args.steps)),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    out = {
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "results": rows,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
