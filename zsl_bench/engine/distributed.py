"""Training strategies of a trial: ``single`` (this process), ``ddp`` (torch DistributedDataParallel) and
``deepspeed`` (ZeRO stages 0-3, the ``deepspeed`` extra), chosen by ``train.strategy``.

``run_trial`` asks :func:`from_config` for the strategy and lets it do the parts that differ; ``single`` is the
engine as it always was (``loops.train_epoch``, ``loops.class_scores``, ``checkpoint/latest.pt``). The two
multi-process strategies run in every worker process of a process group — started by ``zsl-bench train``
(:mod:`zsl_bench.engine.launch`, torchrun on this host), by torchrun on a cluster, or by Ray Train for a sweep
trial — and there:

* **data**: every rank draws the same shuffled order from the trial's generator (same seed, same draws) and
  trains on its own slice of it: ``train.batch_size`` is the per-worker micro-batch (DeepSpeed's
  ``train_micro_batch_size_per_gpu``), so an optimiser step sees ``batch_size × grad_accum × num_workers``
  images. The order is padded to a multiple of the world size so every rank runs the same number of steps;
* **step**: DeepSpeed accumulates (``gradient_accumulation_steps``) and clips (``gradient_clipping``) itself
  (see :mod:`zsl_bench.engine.ds_config`); DDP skips the gradient all-reduce inside an accumulation window
  (``no_sync``) and clips the synchronised gradients. Either way the optimiser steps every ``grad_accum``
  micro-batches and after the last one of an epoch, as ``single`` does. A non-finite loss on any rank fails
  the trial on every rank (the loss is all-reduced before backward);
* **evaluation**: each rank scores its block of the evaluation images (every rank runs the forward, as ZeRO-3
  gathers parameters collectively) and the blocks are all-gathered; every rank computes the same metrics, so
  every rank takes the same decisions (best epoch, checkpoints). Float buffers (BatchNorm statistics) are
  averaged over the ranks first;
* **writing**: rank 0 alone writes the run directory; the other ranks get a :class:`NullWriter`. DeepSpeed
  checkpoints are the exception: ``engine.save_checkpoint`` writes each rank's ZeRO shards into
  ``checkpoint/zero-NNNN/`` (every rank must reach it; a run directory on a shared filesystem when the workers
  span nodes). ``checkpoint/latest.pt`` then holds the small engine state (epoch, history, generator,
  compute time) and the name of that DeepSpeed tag, and is written only after every shard is on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import socket
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from zsl_bench.config import ExperimentConfig
from zsl_bench.data.stream import ImageSource, batches
from zsl_bench.data.transforms import TransformSpec
from zsl_bench.engine import checkpoint, ds_checkpoint, ds_config, loops
from zsl_bench.engine.selection import select_by_test, select_by_val
from zsl_bench.errors import TrialFailed, UserError
from zsl_bench.models.base import TrainContext, ZslModel
from zsl_bench.rundir import RunWriter, UnreadableRun, read_run

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'zsl-bench[deepspeed]' (or: pip install deepspeed==0.19.8)"
DIGEST_ENV = "ZSL_BENCH_PARAM_DIGEST_DIR"  # tests: each rank writes rank<r>.json (a hash of its full parameters)
TAG_PREFIX = "zero-"  # DeepSpeed checkpoint tags: checkpoint/zero-<epoch>/
_TIMEOUT = timedelta(minutes=30)  # a collective waits this long for a slow rank (first JIT build, large eval)


class Single:
    """``train.strategy=single``: one process, the engine's own loop and checkpoint files."""

    name = "single"
    rank = 0
    world_size = 1
    train_epoch = staticmethod(loops.train_epoch)
    class_scores = staticmethod(loops.class_scores)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device, given the one ``train.device`` resolves to."""
        return device

    def writer(self, run_dir: Path, resume_after: int | None = None) -> RunWriter:
        """The run directory's writer (a :class:`NullWriter` on ranks other than 0)."""
        return RunWriter(run_dir, resume_after=resume_after)

    def setup(
        self, model: ZslModel, optimizer: torch.optim.Optimizer, state: dict[str, Any] | None, run_dir: Path
    ) -> Any:
        """Wrap ``model`` (already on its device) and return the optimiser whose ``param_groups`` the epoch
        schedule sets; ``state`` is the checkpoint the trial continues from (weights already loaded when it
        holds ``model``)."""
        return optimizer

    def save_checkpoint(
        self,
        run_dir: Path,
        state: dict[str, Any],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        best: bool,
        keep: int,
    ) -> None:
        """Save the engine ``state`` (epoch, generator, history, compute_s) with the weights and optimiser: rank 0
        writes (data-parallel ranks hold the same weights and optimiser state), then every rank waits for it."""
        if self.is_main:
            full = {**state, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
            checkpoint.save(run_dir, full, best=best, keep=keep)
        self._wait_for_all()

    def _wait_for_all(self) -> None:
        """A barrier across the ranks (nothing to wait for in a single process)."""

    def summary_info(self) -> dict[str, Any]:
        """Extra ``summary.json`` entries (none for a single process)."""
        return {}

    def end(self) -> None:
        """Called once when training has finished."""


SINGLE = Single()


class NullWriter:
    """The run-directory writer of ranks other than 0: every call does nothing."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


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

    def shard(self, indices: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """This rank's part of the epoch: a shuffled order drawn from ``generator`` (as ``batches`` draws it),
        padded with its first images to a multiple of the world size, every ``world_size``-th from ``rank``."""
        order = np.asarray(indices, dtype=np.int64)[torch.randperm(len(indices), generator=generator).numpy()]
        pad = -len(order) % self.world_size
        order = np.concatenate([order, order[:pad]])
        return order[self.rank :: self.world_size]

    def train_epoch(
        self,
        model: ZslModel,
        optimizer: Any,
        source: ImageSource,
        train_idx: np.ndarray,
        targets: np.ndarray,
        ctx: TrainContext,
        settings: loops.TrainSettings,
        spec: TransformSpec,
        device: torch.device,
    ) -> dict[str, float]:
        """One epoch over this rank's shard of ``train_idx`` [n]; the mean of every loss entry over all ranks."""
        assert self.step_module is not None and self.wrapped is not None, "setup() first"
        self.wrapped.train()
        self.step_module.ctx = ctx
        mine = self.shard(train_idx, ctx.generator)
        steps = math.ceil(len(mine) / settings.batch_size)
        self._start_epoch()
        sums: dict[str, float] = {}
        seen = 0
        for i, (idx, raw) in enumerate(batches(source, mine, settings.batch_size)):
            x = loops.model_input(raw, spec, True, ctx.generator, device)
            batch = {"image": x, "target": torch.as_tensor(targets[idx], device=device)}
            boundary = (i + 1) % settings.grad_accum == 0 or i + 1 == steps
            losses = self._micro_batch(batch, boundary, settings, seen)
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(idx)
            seen += len(idx)
        names = sorted(sums)
        totals = torch.tensor([float(seen), *(sums[n] for n in names)], dtype=torch.float64)
        dist.all_reduce(totals)
        return {n: float(v) / max(float(totals[0]), 1.0) for n, v in zip(names, totals[1:].tolist(), strict=True)}

    def _start_epoch(self) -> None:
        pass

    def _micro_batch(
        self, batch: dict[str, Any], boundary: bool, settings: loops.TrainSettings, seen: int
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _check_finite(self, loss: torch.Tensor, seen: int) -> None:
        """Raise ``FloatingPointError`` on every rank when the loss of any rank is not finite."""
        total = loss.detach().float().reshape(1).cpu()
        dist.all_reduce(total)
        if not math.isfinite(total.item()):
            raise FloatingPointError(
                f"loss is {total.item()} (summed over {self.world_size} workers) after {seen} samples"
            )

    @torch.no_grad()
    def class_scores(
        self,
        model: ZslModel,
        source: ImageSource,
        indices: np.ndarray,
        class_att: torch.Tensor,
        batch_size: int,
        spec: TransformSpec,
        device: torch.device,
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
            lambda x: wrapped({"image": x, "class_att": class_att})["scores"], source, mine, batch_size, spec, device
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

    def end(self) -> None:
        folder = os.environ.get(DIGEST_ENV)
        if folder:
            digest = self.param_digest()
            record = {"rank": self.rank, "world_size": self.world_size, "digest": digest}
            Path(folder, f"rank{self.rank}.json").write_text(json.dumps(record))

    def param_digest(self) -> str:
        """sha256 of every parameter's name and float32 bytes, in module order (collective under ZeRO-3)."""
        assert self.step_module is not None
        with self._full_parameters():
            h = hashlib.sha256()
            for name, p in self.step_module.named_parameters():
                h.update(name.encode())
                h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _full_parameters(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()


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
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        return optimizer

    def _start_epoch(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def _micro_batch(
        self, batch: dict[str, Any], boundary: bool, settings: loops.TrainSettings, seen: int
    ) -> dict[str, torch.Tensor]:
        assert self.wrapped is not None
        sync = contextlib.nullcontext() if boundary else self.wrapped.no_sync()  # type: ignore[operator]
        with sync:
            losses = self.wrapped(batch)
            self._check_finite(losses["total"], seen)
            (losses["total"] / settings.grad_accum).backward()
        if boundary:
            if settings.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.params, settings.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return losses


class DeepSpeed(_Distributed):
    """``train.strategy=deepspeed``: ``deepspeed.initialize`` over ``StepModule(model)`` with the config of
    :func:`zsl_bench.engine.ds_config.resolve`; checkpoints through ``save_checkpoint``/``load_checkpoint``."""

    name = "deepspeed"

    def __init__(self, cfg: ExperimentConfig, device_type: str) -> None:
        super().__init__(cfg, device_type)
        self.ds = import_deepspeed(device_type)
        self.engine: Any = None

    def setup(
        self, model: ZslModel, optimizer: torch.optim.Optimizer, state: dict[str, Any] | None, run_dir: Path
    ) -> Any:
        ds = self.ds
        config = ds_config.resolve(self.cfg, self.world_size, self.device_type)
        self.step_module = StepModule(model)
        stage = int(config.get("zero_optimization", {}).get("stage", 0))
        if stage == 3:  # the model's own parameters, used outside its forward (in its loss), are gathered too
            for p in model.parameters(recurse=False):
                ds.zero.register_external_parameter(self.step_module, p)
        if ds_config.uses_offload(config):
            optimizer, forced = _offload_optimizer(optimizer, self.cfg)
            config["zero_force_ds_cpu_optimizer"] = forced
        self.engine, _, _, _ = ds.initialize(model=self.step_module, optimizer=optimizer, config=config)
        ds_checkpoint.install(self.engine)  # its checkpoints are read as tensors only, never unpickled
        self.wrapped = self.engine
        if state is not None and "zero_tag" in state:
            self._load(state, Path(run_dir) / checkpoint.DIR)
        return self.engine.optimizer

    def _load(self, state: dict[str, Any], folder: Path) -> None:
        tag = ds_checkpoint.tag_folder(folder, state["zero_tag"]).name
        if state.get("workers", self.world_size) != self.world_size:
            raise TrialFailed(
                f"{folder / tag} holds ZeRO shards of {state['workers']} workers; this run has {self.world_size}"
            )
        path, _ = self.engine.load_checkpoint(
            str(folder), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=False
        )
        if path is None:
            raise TrialFailed(f"cannot load the DeepSpeed checkpoint {folder / tag}")
        log.info("loaded DeepSpeed checkpoint %s", folder / tag)

    def _micro_batch(
        self, batch: dict[str, Any], boundary: bool, settings: loops.TrainSettings, seen: int
    ) -> dict[str, torch.Tensor]:
        self.engine.set_gradient_accumulation_boundary(boundary)
        losses = self.engine(batch)
        self._check_finite(losses["total"], seen)
        self.engine.backward(losses["total"])  # divides by gradient_accumulation_steps itself
        self.engine.step()  # reduces, clips and steps at the boundary only
        return losses

    def save_checkpoint(
        self, run_dir: Path, state: dict[str, Any], model: nn.Module, optimizer: Any, best: bool, keep: int
    ) -> None:
        """Every rank saves its ZeRO shards under ``checkpoint/<tag>/``; rank 0 then writes ``latest.pt`` (the
        engine ``state`` naming the tag) and prunes tags no checkpoint names."""
        folder = Path(run_dir) / checkpoint.DIR
        tag = f"{TAG_PREFIX}{state['epoch']:04d}"
        self.engine.save_checkpoint(str(folder), tag=tag, save_latest=False)  # collective: every rank's shards
        dist.barrier()  # all shards are on disk before latest.pt names them
        if self.is_main:
            checkpoint.save(run_dir, {**state, "zero_tag": tag, "workers": self.world_size}, best=best, keep=keep)
            prune_tags(folder)
        dist.barrier()

    def _full_parameters(self) -> contextlib.AbstractContextManager[Any]:
        params = list(self.step_module.parameters()) if self.step_module is not None else []
        return self.ds.zero.GatheredParameters(params, modifier_rank=None)


def mark_stopped(run_dir: Path) -> bool:
    """Finalise a multi-worker run that its scheduler ended from outside (Tune kills the workers of a stopped
    trial before they can write ``done``): the epochs its latest checkpoint covers become a ``stopped`` summary.

    Returns False (and changes nothing) for a single-process run, which finalises itself, or a run without a
    checkpoint."""
    run_dir = Path(run_dir)
    try:
        run = read_run(run_dir)
    except UnreadableRun:
        return False
    state = checkpoint.load_latest(run_dir)
    if run.config.get("train", {}).get("strategy", "single") == "single" or state is None:
        return False
    history = list(state["history"])
    summary = {
        **(run.summary or {"device": "?", "stage": run.config.get("meta", {}).get("stage", "search")}),
        "status": "stopped",
        "epochs_run": len(history),
        "best_by_val": select_by_val(history),
        "best_by_test": select_by_test(history),
        "compute_s": round(float(state["compute_s"]), 3),
    }
    writer = RunWriter(run_dir, resume_after=state["epoch"])  # drops records of an epoch the checkpoint lacks
    writer.summary(summary)
    writer.done()
    return True


def prune_tags(folder: Path) -> None:
    """Delete the DeepSpeed tag folders no checkpoint file (latest, best, kept epochs) refers to."""
    wanted = set()
    for path in folder.glob("*.pt"):
        state = checkpoint.load(path)
        if state is not None and "zero_tag" in state:
            wanted.add(state["zero_tag"])
    for tag_dir in folder.glob(f"{TAG_PREFIX}*"):
        if tag_dir.is_dir() and tag_dir.name not in wanted:
            shutil.rmtree(tag_dir, ignore_errors=True)


def _offload_optimizer(optimizer: torch.optim.Optimizer, cfg: ExperimentConfig) -> tuple[Any, bool]:
    """The optimiser for ZeRO-Offload: DeepSpeedCPUAdam (its vectorised CPU step) for adam/adamw, with the
    groups and learning rates of ``optimizer``; SGD stays torch's. Returns (optimiser, DeepSpeed must insist on
    its CPU optimiser)."""
    o = cfg.optim
    if o.name == "sgd":
        return optimizer, False
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    groups = [
        {"params": g["params"], "lr": g["lr"], "name": g.get("name", str(i))}
        for i, g in enumerate(optimizer.param_groups)
    ]
    return DeepSpeedCPUAdam(groups, lr=o.lr, weight_decay=o.weight_decay, adamw_mode=o.name == "adamw"), True


def from_config(cfg: ExperimentConfig) -> Single:
    """The strategy of ``cfg``; for ``ddp``/``deepspeed`` this joins (or, for one worker, makes) the process group."""
    check(cfg)
    if cfg.train.strategy == "single":
        return SINGLE
    device_type = device_type_of(cfg.train.device)
    if cfg.train.strategy == "ddp":
        return DataParallel(cfg, device_type)
    return DeepSpeed(cfg, device_type)


def check(cfg: ExperimentConfig) -> None:
    """Raise a one-line ``UserError`` for a strategy setting that cannot run (before any worker is started)."""
    t = cfg.train
    if t.strategy != "deepspeed":
        for key, value in (("offload_optimizer", t.offload_optimizer), ("deepspeed_config", t.deepspeed_config)):
            if value:
                raise UserError(f"train.{key} needs train.strategy=deepspeed (it is {t.strategy})")
    if t.strategy == "single":
        if t.num_workers > 1:
            raise UserError(f"train.num_workers={t.num_workers} needs train.strategy=ddp or deepspeed")
        if t.precision != "fp32":
            raise UserError(f"train.precision={t.precision} needs train.strategy=ddp or deepspeed (single runs fp32)")
        return
    if t.strategy == "ddp":
        if t.precision == "fp16":
            raise UserError(
                "train.precision=fp16 with ddp has no gradient scaler; use bf16, or train.strategy=deepspeed"
            )
        return
    if not deepspeed_available():
        raise UserError(f"train.strategy=deepspeed needs DeepSpeed, which is not installed: {INSTALL_HINT}")
    device_type = device_type_of(t.device)
    if t.precision == "fp16" and device_type == "cpu":
        raise UserError("train.precision=fp16 needs a CUDA device (DeepSpeed has no fp16 on CPU); use bf16 or fp32")
    if cfg.model.freeze_backbone and cfg.data.feature_cache:
        raise UserError(
            "train.strategy=deepspeed does not train from the frozen-backbone feature cache (a head alone needs no "
            "ZeRO); use train.strategy=single, or data.feature_cache=false"
        )
    ds_config.resolve(cfg, t.num_workers, device_type)  # a bad deepspeed_config file fails here, in one line


def deepspeed_available() -> bool:
    """Whether ``import deepspeed`` can work (without importing it)."""
    try:
        return find_spec("deepspeed") is not None
    except (ImportError, ValueError):
        return False


def import_deepspeed(device_type: str) -> Any:
    """``import deepspeed`` for ``device_type`` (cpu: ``DS_ACCELERATOR=cpu`` first, and no JIT build of the
    shared-memory inference all-reduce; see :func:`skip_shm_comm_build`); missing → one-line ``UserError``."""
    if device_type == "cpu":
        os.environ["DS_ACCELERATOR"] = "cpu"  # read once, when deepspeed is imported
    try:
        import deepspeed
    except ImportError:
        raise UserError(f"train.strategy=deepspeed needs DeepSpeed, which is not installed: {INSTALL_HINT}") from None
    if not log.isEnabledFor(logging.INFO):
        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    if device_type == "cpu":
        skip_shm_comm_build()
    return deepspeed


def skip_shm_comm_build() -> None:
    """Keep DeepSpeed on CPU from JIT-compiling ``deepspeed_shm_comm`` when its comm backend starts.

    That op (shared-memory all-reduce) only serves ``inference_all_reduce`` — DeepSpeed-Inference's tensor
    parallelism; training reduces through torch.distributed (gloo here). Its build costs ~35 s on an idle
    2-core machine (115 s measured under load) on every fresh machine or cache. A prebuilt op
    (``DS_BUILD_SHM_COMM=1`` at install) is left alone: it loads instantly.
    """
    try:
        from deepspeed.git_version_info import installed_ops

        if installed_ops.get("deepspeed_shm_comm"):
            return
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    except (ImportError, AttributeError, TypeError) as exc:  # another DeepSpeed layout: let it build
        log.debug("could not skip the shm_comm build: %s", exc)


def device_type_of(device: str) -> str:
    """``train.device`` → ``cpu`` or ``cuda``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def join_process_group(device_type: str, expected: int) -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process in the default process group.

    Joins an existing group (Ray Train makes one), or makes one from torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), or, for one worker and no environment, a group of one on
    a free loopback port. Its size must be ``train.num_workers``."""
    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed; use train.strategy=single")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        if all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
            dist.init_process_group(backend, init_method="env://", timeout=_TIMEOUT)
        elif expected == 1:
            url = f"tcp://127.0.0.1:{free_port()}"
            dist.init_process_group(backend, init_method=url, rank=0, world_size=1, timeout=_TIMEOUT)
        else:
            raise UserError(
                f"train.num_workers={expected} needs its worker processes: run `zsl-bench train` (it starts them), "
                "or `torchrun --nproc-per-node N -m zsl_bench.engine.worker CONFIG RUN_DIR`"
            )
    world = dist.get_world_size()
    if world != expected:
        raise UserError(f"train.num_workers={expected}, but the process group has {world} workers; make them agree")
    return dist.get_rank(), world, local_rank


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def close_process_group() -> None:
    """End of a worker process: wait for every rank, then destroy the group (a rank leaving first can abort)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
