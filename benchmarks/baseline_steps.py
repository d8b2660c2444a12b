"""CPU seconds per training step of the full-size baselines at batch 2; prints one JSON object.

Usage::

    python benchmarks/baseline_steps.py [--models resnet101_ale,vit_b16_ale,...] [--sizes 224,448] [--batch 2]
                                        [--steps 3] [--threads 2]

For every model and image size, a randomly initialised full-size model (``pretrained=none``: the timing does not
depend on the weights) runs ``--steps`` timed training steps after two warm-up steps, each = forward, loss,
backward, AdamW step; and, for the frozen-backbone mode, the same with ``freeze_backbone()`` (the backbone runs
without autograd). ``forward_s`` is a ``torch.no_grad`` evaluation forward. Reported in seconds: the minimum over
the steps (the best estimate of the cost on an otherwise idle machine) and the median (``…_median_s``), with
``params_m`` (millions), the torch threads and the 1-minute load average before and after (other processes on the
machine inflate the medians). 312 attributes (CUB) and 150 seen classes.
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
DEFAULT_MODELS = "resnet101_ale,resnet101_attn,vit_b16_ale,vit_b16_attn,deit_b16_ale,deit_b16_attn"


def step_times(model: torch.nn.Module, images: torch.Tensor, att: torch.Tensor, steps: int) -> list[float]:
    """Seconds of ``steps`` training steps (after two warm-up steps) over the trainable parameters."""
    target = torch.arange(images.shape[0]) % att.shape[0]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
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
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--sizes", default="224")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    att = torch.nn.functional.normalize(torch.rand(SEEN, ATTRIBUTES), dim=1)
    rows = []
    load_before = os.getloadavg()[0]
    for size in [int(s) for s in args.sizes.split(",")]:
        images = torch.randn(args.batch, 3, size, size)
        for name in args.models.split(","):
            model = build_model(name, ATTRIBUTES, size, pretrained="none")
            row = {
                "model": name,
                "image_size": size,
                "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                **summary("forward", forward_times(model, images, args.steps)),
                **summary("train_step", step_times(model, images, att, args.steps)),
            }
            model.freeze_backbone()
            row.update(summary("frozen_step", step_times(model, images, att, args.steps)))
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
