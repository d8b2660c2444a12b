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
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from _steps import add_timing_arguments, emit, forward_times, params_m, print_report, start, summary, train_step_times

from zsl_bench.models import build_model

ATTRIBUTES, SEEN = 312, 150
DEFAULT_CASES = "zeromamba_test:64,zeromamba_vmamba_s:224"
GROUP_LR = {"backbone": 1e-3, "head": 1e-3, "sef": 1e-4}


def step_times(model: torch.nn.Module, images: torch.Tensor, att: torch.Tensor, steps: int) -> list[float]:
    """Seconds of ``steps`` training steps (after two warm-up steps) with the official SGD groups."""
    groups = [{"params": params, "lr": GROUP_LR[name]} for name, params in model.param_groups().items()]
    opt = torch.optim.SGD(groups, lr=1e-3, momentum=0.9, weight_decay=1e-3)
    return train_step_times(model, images, att, steps, opt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated model:image_size")
    add_timing_arguments(parser, steps=5)
    args = parser.parse_args()
    load_before = start(args)
    att = torch.nn.functional.normalize(torch.rand(SEEN, ATTRIBUTES), dim=1)
    rows = []
    for case in args.cases.split(","):
        name, _, size_text = case.partition(":")
        size = int(size_text or 224)
        images = torch.randn(args.batch, 3, size, size)
        model = build_model(name, ATTRIBUTES, size, attribute_embeddings="random")
        row = {
            "model": name,
            "image_size": size,
            "params_m": params_m(model),
            **summary("forward", forward_times(model, images, args.steps)),
            **summary("train_step", step_times(model, images, att, args.steps)),
        }
        emit(rows, row)
    print_report(args.batch, load_before, rows)


if __name__ == "__main__":
    main()
