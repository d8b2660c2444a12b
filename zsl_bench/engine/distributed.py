"""Training strategies of a trial: ``single`` (this process), ``ddp`` (torch DistributedDataParallel) and
``deepspeed`` (ZeRO stages 0-3, the ``deepspeed`` extra), chosen by ``train.strategy``.

This module holds what ``ddp`` and ``deepspeed`` share (:class:`_Distributed`) and ``ddp`` itself
(:class:`DataParallel`); :mod:`zsl_bench.engine.zero` holds ``deepspeed``. ``run_trial`` asks
:func:`zsl_bench.engine.strategies.from_config` for the strategy and lets it do the parts that differ; ``single``
(:mod:`zsl_bench.engine.strategy`) is the engine in one process (``checkpoint/latest.pt``). Every strategy trains
through the one loop, :func:`zsl_bench.engine.loops.train_epoch`, supplying its steps. The two multi-process
strategies run in every worker process of a process group — started by ``zsl-bench train``
(:mod:`zsl_bench.engine.launch`, torchrun on this host), by torchrun on a cluster, or by Ray Train for a sweep
trial — and there:

* **data**: every rank draws the same shuffled order from the trial's generator (same seed, same draws) and
  trains on its own slice of it: ``train.batch_size`` is the per-worker micro-batch (DeepSpeed's
  ``train_micro_batch_size_per_gpu``), so an optimiser step sees ``batch_size × grad_accum × num_workers``
  images. The order is padded to a multiple of the world size so every rank runs the same number of steps;
* **step**: DeepSpeed accumulates (``gradient_accumulation_steps``) and clips (``gradient_clipping``) itself
  (see :mod:`zsl_bench.engine.ds_config`); DDP skips the gradient all-reduce inside an accumulation window
  (``no_sync``) and clips the synchronised gradients. Either way the optimiser steps every ``grad_accum``
  micro-batches and after the last one of an epoch, as ``single`` does (a model's ``keeps_grad_tail`` is honoured
  by ``single`` alone). A non-finite loss on any rank fails
  the trial on every rank (the loss is all-reduced before backward);
* **evaluation**: each rank scores its block of the evaluation images (every rank runs the forward, as ZeRO-3
  gathers parameters collectively) and the blocks are all-gathered; every rank computes the same metrics, so
  every rank takes the same decisions (best epoch, checkpoints). Float buffers (BatchNorm statistics) are
  averaged over the ranks first;
* **writing**: rank 0 alone writes the run directory; the other ranks get a
  :class:`~zsl_bench.engine.strategy.NullWriter`. DeepSpeed checkpoints are the exception:
  ``engine.save_checkpoint`` writes each rank's ZeRO shards into ``checkpoint/zero-NNNN/`` (every rank must reach
  it; a run directory on a shared filesystem when the workers span nodes). ``checkpoint/latest.pt`` then holds
  the small engine state (epoch, history, generator, compute time) and the name of that DeepSpeed tag, and is
  written only after every shard is on disk.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from zsl_bench.config import ExperimentConfig
from zsl_bench.engine import loops
from zsl_bench.engine.process_group import join_process_group
from zsl_bench.engine.strategy import NullWriter, Single
from zsl_bench.models.base import TrainContext, ZslModel
from zsl_bench.rundir import RunWriter


class StepModule(nn.Module):
    """What DDP / DeepSpeed wrap: ``forward(batch)`` is the model's training step (``training_loss`` with the
    epoch's ``ctx``) or, when ``batch`` holds ``class_att`` [C, A], the class scores [B, C] of ``batch["image"]``.

    Routing both through the wrapper's forward lets DDP prepare its gradient reduction and ZeRO-3 gather the
    model's own parameters; ``autocast`` (DDP with ``train.precision=bf16``) runs the forward in that dtype."""

    def __init__(self, model: ZslModel, autocast: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model
        self.ctx: TrainContext | None = None
        self.autocast = autocast

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        x = batch["image"]  # images [B, 3, S, S], or a dict of cached feature tensors
        device_type = (x if isinstance(x, torch.Tensor) else next(iter(x.values()))).device.type
        cast = contextlib.nullcontext() if self.autocast is None else torch.autocast(device_type, dtype=self.autocast)
        with cast:
            if "class_att" in batch:
                return {"scores": self.model.class_scores(self.model(batch["image"]), batch["class_att"])}
            assert self.ctx is not None, "set StepModule.ctx before training"
            return self.model.training_loss(batch, self.ctx)


class _Distributed(Single):
    """What ``ddp`` and ``deepspeed`` share: the process group, sharded data, gathered scores, rank-0 writing."""

    def __init__(self, cfg: ExperimentConfig, device_type: str) -> None:
        self.cfg = cfg
        self.device_type = device_type
        self.rank, self.world_size, self.local_rank = join_process_group(device_type, cfg.train.num_workers)
        self.step_module: StepModule | None = None
        self.wrapped: nn.Module | None = None  # what forward goes through (DDP / the DeepSpeed engine)

    def device(self, device: torch.device) -> torch.device:
        if device.type != "cuda":
            return device
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def writer(self, run_dir: Path, resume_after: int | None = None) -> RunWriter:
        dist.barrier()  # every rank has read the run directory before rank 0 rewrites it
        if not self.is_main:
            return NullWriter(run_dir)  # type: ignore[return-value]
        return RunWriter(run_dir, resume_after=resume_after)

    def summary_info(self) -> dict[str, Any]:
        return {"strategy": self.name, "workers": self.world_size}

    def _wait_for_all(self) -> None:
        dist.barrier()

    def keeps_grad_tail(self, model: ZslModel) -> bool:
        return False  # the ranks step after every epoch's last micro-batch

    def start_epoch(self, model: ZslModel, optimizer: Any, *, keep_tail: bool) -> None:
        assert self.wrapped is not None, "setup() first"
        self.wrapped.train()

    def forward(self, model: ZslModel, batch: dict[str, Any], ctx: TrainContext) -> dict[str, torch.Tensor]:
        """The losses of ``batch`` through the wrapper (DDP / the DeepSpeed engine) around ``model``."""
        assert self.step_module is not None and self.wrapped is not None, "setup() first"
        self.step_module.ctx = ctx
        return self.wrapped(batch)

    def check_finite(self, loss: torch.Tensor, seen: int) -> None:
        """Raise ``FloatingPointError`` on every rank when the loss of any rank is not finite."""
        total = loss.detach().float().reshape(1).cpu()
        dist.all_reduce(total)
        if not math.isfinite(total.item()):
            raise FloatingPointError(
                f"loss is {total.item()} (summed over {self.world_size} workers) after {seen} samples"
            )

    def reduce(self, sums: dict[str, float], seen: int) -> dict[str, float]:
        """The mean of every loss entry over all ranks' samples."""
        names = sorted(sums)
        totals = torch.tensor([float(seen), *(sums[n] for n in names)], dtype=torch.float64)
        dist.all_reduce(totals)
        return {n: float(v) / max(float(totals[0]), 1.0) for n, v in zip(names, totals[1:].tolist(), strict=True)}

    @torch.no_grad()
    def class_scores(
        self, model: ZslModel, inputs: loops.Inputs, indices: np.ndarray, class_att: torch.Tensor, *, batch_size: int
    ) -> np.ndarray:
        """Raw class scores [n, C] of the images ``indices`` [n]: each rank scores one block, all are gathered."""
        assert self.wrapped is not None, "setup() first"
        self.sync_buffers()
        self.wrapped.eval()
        n = len(indices)
        per = math.ceil(n / self.world_size)
        padded = np.concatenate([indices, np.repeat(np.asarray(indices)[-1:], per * self.world_size - n)])
        mine = padded[self.rank * per : (self.rank + 1) * per]
        wrapped = self.wrapped
        local = loops.score_batches(  # [per, C]
            lambda x: wrapped({"image": x, "class_att": class_att})["scores"], inputs, mine, batch_size=batch_size
        )
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(gathered, local)
        return torch.cat(gathered)[:n].cpu().numpy()

    def sync_buffers(self) -> None:
        """Average the floating-point buffers (BatchNorm running statistics) over the ranks."""
        assert self.step_module is not None
        for buf in self.step_module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf.div_(self.world_size)


class DataParallel(_Distributed):
    """``train.strategy=ddp``: torch DistributedDataParallel (gloo on CPU, nccl on GPUs), bf16 autocast."""

    name = "ddp"

    def setup(
        self, model: ZslModel, optimizer: torch.optim.Optimizer, state: dict[str, Any] | None, run_dir: Path
    ) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        autocast = torch.bfloat16 if self.cfg.train.precision == "bf16" else None
        self.step_module = StepModule(model, autocast)
        ids = [self.local_rank] if self.device_type == "cuda" else None
        # unused parameters (a head used only by some losses) must not stall the reduction
        self.wrapped = DistributedDataParallel(self.step_module, device_ids=ids, find_unused_parameters=True)
        return optimizer

    def start_epoch(self, model: ZslModel, optimizer: Any, *, keep_tail: bool) -> None:
        super().start_epoch(model, optimizer, keep_tail=keep_tail)
        optimizer.zero_grad(set_to_none=True)

    def accumulate(self, boundary: bool) -> contextlib.AbstractContextManager[Any]:
        """Inside an accumulation window the gradients stay local (``no_sync``); the boundary all-reduces them."""
        assert self.wrapped is not None
        return contextlib.nullcontext() if boundary else self.wrapped.no_sync()  # type: ignore[operator]
