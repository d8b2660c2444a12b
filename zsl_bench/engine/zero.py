"""``train.strategy=deepspeed``: DeepSpeed ZeRO stages 0-3 (the ``deepspeed`` extra) in every worker process.

:func:`zsl_bench.engine.strategies.from_config` makes :class:`DeepSpeed`; what it shares with ``ddp`` (sharded
data, gathered scores, rank-0 writing) is :class:`zsl_bench.engine.distributed._Distributed`. Its checkpoints are
DeepSpeed's own: every rank's ZeRO shards under ``checkpoint/zero-NNNN/``, named by ``checkpoint/latest.pt``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from zsl_bench.config import ExperimentConfig
from zsl_bench.engine import checkpoint, ds_checkpoint, ds_config
from zsl_bench.engine.distributed import StepModule, _Distributed
from zsl_bench.engine.ds_import import import_deepspeed
from zsl_bench.errors import TrialFailed
from zsl_bench.models.base import ZslModel

log = logging.getLogger(__name__)

TAG_PREFIX = "zero-"  # DeepSpeed checkpoint tags: checkpoint/zero-<epoch>/


class DeepSpeed(_Distributed):
    """``train.strategy=deepspeed``: ``deepspeed.initialize`` over ``StepModule(model)`` with the config of
    :func:`zsl_bench.engine.ds_config.resolve`; checkpoints through ``save_checkpoint``/``load_checkpoint``.

    DeepSpeed accumulates (``gradient_accumulation_steps``) and clips (``gradient_clipping``) itself: the loop
    tells it where a step's boundary is, and ``engine.step`` runs after every micro-batch."""

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

    def accumulate(self, boundary: bool) -> contextlib.AbstractContextManager[Any]:
        self.engine.set_gradient_accumulation_boundary(boundary)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, grad_accum: int) -> None:
        self.engine.backward(loss)  # divides by gradient_accumulation_steps itself

    def step(self, optimizer: Any, *, boundary: bool, clip: float | None) -> None:
        self.engine.step()  # reduces, clips and steps at the boundary only

    def save_checkpoint(
        self,
        run_dir: Path,
        state: dict[str, Any],
        model: nn.Module,
        optimizer: Any,
        *,
        best: bool,
        keep: int,
        frozen: checkpoint.FrozenPart | None = None,
    ) -> None:
        """Every rank saves its ZeRO shards under ``checkpoint/<tag>/``; rank 0 then writes ``latest.pt`` (the
        engine ``state`` naming the tag) and prunes tags no checkpoint names. ``frozen`` is not split off: the
        shards hold every weight."""
        folder = Path(run_dir) / checkpoint.DIR
        tag = f"{TAG_PREFIX}{state['epoch']:04d}"
        self.engine.save_checkpoint(str(folder), tag=tag, save_latest=False)  # collective: every rank's shards
        dist.barrier()  # all shards are on disk before latest.pt names them
        if self.is_main:
            checkpoint.save(run_dir, {**state, "zero_tag": tag, "workers": self.world_size}, best=best, keep=keep)
            prune_tags(folder)
        dist.barrier()


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
