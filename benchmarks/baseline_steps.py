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
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from _steps import add_timing_arguments, emit, forward_times, params_m, print_report, start, summary, train_step_times

from zsl_bench.models import build_model

ATTRIBUTES, SEEN = 312, 150
DEFAULT_MODELS = "resnet101_ale,resnet101_attn,vit_b16_ale,vit_b16_attn,deit_b16_ale,deit_b16_attn"


def step_times(model: torch.nn.Module, images: torch.Tensor, att: torch.Tensor, steps: int) -> list[float]:
    """Seconds of ``steps`` training steps (after two warm-up steps) with AdamW over the trainable parameters."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return train_step_times(model, images, att, steps, opt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--sizes", default="224")
    add_timing_arguments(parser, steps=7)
    args = parser.parse_args()
    load_before = start(args)
    att = torch.nn.functional.normalize(torch.rand(SEEN, ATTRIBUTES), dim=1)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        images = torch.randn(args.batch, 3, size, size)
        for name in args.models.split(","):
            model = build_model(name, ATTRIBUTES, size, pretrained="none")
            row = {
                "model": name,
                "image_size": size,
                "params_m": params_m(model),
                **summary("forward", forward_times(model, images, args.steps)),
                **summary("train_step", step_times(model, images, att, args.steps)),
            }
            model.freeze_backbone()
            row.update(summary("frozen_step", step_times(model, images, att, args.steps)))
            emit(rows, row)
    print_report(args.batch, load_before, rows)


if __name__ == "__main__":
    main()
