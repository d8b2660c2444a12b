"""Training-step time of DeepSpeed ZeRO-2 on 2 CPU worker processes vs ``single``, same model; one JSON object.

Usage::

    python benchmarks/deepspeed_steps.py [--model vit_test] [--options '{"hidden": 192, "layers": 6, "heads": 6}']
                                         [--size 64] [--batch 16] [--steps 10] [--workers 2] [--stage 2]

Both measurements run in this one invocation, on random images (no data loading), with the engine's own
pieces: ``model.training_loss`` + backward + AdamW step. ``single`` is one process with 1 torch thread and with
``--workers`` threads (the whole machine); ``zero`` is ``--workers`` processes of 1 thread each, started with
torchrun over gloo, each with its own micro-batch of ``--batch`` images (so a ZeRO step trains ``workers ×
batch`` images): ``deepspeed.initialize`` of :class:`~zsl_bench.engine.distributed.StepModule` with the config
``ds_config.generate`` writes. Seconds per step: the minimum over ``--steps`` timed steps after 3 warm-ups
(``…_median_s`` the median), and images per second from the minimum. The 1-minute load average before and
after is reported (other processes on the machine inflate the times).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from zsl_bench.config import build_config
from zsl_bench.engine import ds_config, ds_import, process_group
from zsl_bench.engine.distributed import StepModule
from zsl_bench.models import build_model
from zsl_bench.models.base import TrainContext
from zsl_bench.ports import free_ports

ATTRIBUTES, CLASSES = 13, 24
WARMUP = 3


def inputs(batch: int, size: int, seed: int) -> tuple[dict[str, torch.Tensor], TrainContext]:
    """A random batch ``{"image" [B, 3, S, S], "target" [B]}`` and a context over ``CLASSES`` seen classes."""
    gen = torch.Generator().manual_seed(seed)
    att = torch.rand(CLASSES, ATTRIBUTES, generator=gen)
    ctx = TrainContext(
        class_attributes=att,
        seen_classes=torch.arange(CLASSES),
        unseen_classes=torch.arange(0),
        epoch=1,
        generator=gen,
    )
    batch = {"image": torch.rand(batch, 3, size, size, generator=gen), "target": torch.arange(batch) % CLASSES}
    return batch, ctx


def timed(step: Any, steps: int) -> list[float]:
    """Seconds of ``steps`` calls of ``step()`` after ``WARMUP`` untimed ones."""
    times = []
    for i in range(steps + WARMUP):
        start = time.perf_counter()
        step()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return times


def single(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(args.model, ATTRIBUTES, args.size, **json.loads(args.options))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch, ctx = inputs(args.batch, args.size, 0)
    model.train()

    def step() -> None:
        loss = model.training_loss(batch, ctx)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = timed(step, args.steps)
    params = sum(p.numel() for p in model.parameters())
    return {
        "threads": threads,
        "images_per_step": args.batch,
        "params_m": round(params / 1e6, 3),
        **stats(times, args.batch),
    }


def worker(args: argparse.Namespace) -> None:
    """One torchrun worker: ZeRO-``stage`` steps; rank 0 prints its JSON line."""
    torch.set_num_threads(1)
    overrides = {
        "train.strategy": "deepspeed",
        "train.num_workers": args.workers,
        "train.zero_stage": args.stage,
        "train.batch_size": args.batch,
    }
    cfg = build_config(None, overrides)
    rank, world, _ = process_group.join_process_group("cpu", args.workers)
    ds = ds_import.import_deepspeed("cpu")
    torch.manual_seed(0)
    model = build_model(args.model, ATTRIBUTES, args.size, **json.loads(args.options))
    module = StepModule(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    engine, _, _, _ = ds.initialize(model=module, optimizer=opt, config=ds_config.generate(cfg, world))
    batch, module.ctx = inputs(args.batch, args.size, rank)

    def step() -> None:
        engine.set_gradient_accumulation_boundary(True)
        loss = engine(batch)["total"]
        engine.backward(loss)
        engine.step()

    times = timed(step, args.steps)
    if rank == 0:
        images = args.batch * world
        print(
            json.dumps({"workers": world, "threads_per_worker": 1, "images_per_step": images, **stats(times, images)})
        )
    process_group.close_process_group()


def zero(args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(args.workers)]
    argv += ["--master-addr", "127.0.0.1", "--master-port", str(free_ports(1, "127.0.0.1")[0]), __file__, "--worker"]
    argv += ["--model", args.model, "--options", args.options, "--size", str(args.size), "--batch", str(args.batch)]
    argv += ["--steps", str(args.steps), "--workers", str(args.workers), "--stage", str(args.stage)]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"the ZeRO workers failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def stats(times: list[float], images: int) -> dict[str, float]:
    best = min(times)
    return {
        "step_s": round(best, 4),
        "step_median_s": round(statistics.median(times), 4),
        "images_per_s": round(images / best, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_test")
    parser.add_argument("--options", default='{"hidden": 192, "layers": 6, "heads": 6}', help="model options (JSON)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="images per step and worker")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stage", type=int, default=2, choices=[0, 1, 2, 3])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {"model": args.model, "options": json.loads(args.options), "image_size": args.size}
    result["single_1_thread"] = single(args, 1)
    result[f"single_{args.workers}_threads"] = single(args, args.workers)
    result[f"zero{args.stage}_{args.workers}_workers"] = zero(args)
    base = result["single_1_thread"]["step_s"]
    zero_step = result[f"zero{args.stage}_{args.workers}_workers"]["step_s"]
    result["zero_step_over_single_1_thread"] = round(zero_step / base, 2)
    result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
