"""Optimiser and learning-rate schedule of a run, built from ``optim.*`` and the model's named parameter groups."""

from __future__ import annotations

import logging
import math

import torch

from zsl_bench.config import ExperimentConfig
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS
from zsl_bench.models.base import ZslModel

log = logging.getLogger(__name__)


def build_optimizer(model: ZslModel, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW over the trainable parameters, one group per named group of ``model.param_groups()``.

    A group's lr is ``optim.group_lr[name]``, else ``optim.backbone_lr``/``optim.head_lr`` for the groups named
    ``backbone``/``head``, else ``optim.lr``. ``model.freeze_backbone`` calls ``model.freeze_backbone()`` first
    (requires_grad False, eval-mode norms), so the frozen parameters leave the optimiser.
    """
    o = cfg.optim
    if cfg.model.freeze_backbone:
        if not MODELS.get(cfg.model.name).backbone_split:
            raise UserError(f"model {cfg.model.name!r} has no backbone to freeze; set model.freeze_backbone=false")
        model.freeze_backbone()
    named = model.param_groups() if isinstance(model, ZslModel) else None
    if named is None:
        if o.backbone_lr is not None or o.head_lr is not None or o.group_lr:
            log.warning("model %s has no parameter groups: optim.backbone_lr/head_lr/group_lr ignored", cfg.model.name)
        named = {"all": list(model.parameters())}
    unknown = sorted(set(o.group_lr) - set(named))
    if unknown:
        raise UserError(
            f"optim.group_lr names unknown group(s) {', '.join(unknown)} of model {cfg.model.name!r}; "
            f"its groups: {', '.join(named)}"
        )
    _check_disjoint(named, cfg.model.name)
    shorthand = {"backbone": o.backbone_lr, "head": o.head_lr}
    groups = []
    for name, params in named.items():
        trainable = [p for p in params if p.requires_grad]
        if trainable:
            lr = o.group_lr.get(name) or shorthand.get(name) or o.lr
            groups.append({"params": trainable, "lr": lr, "name": name})
    if not groups:
        raise UserError(f"model {cfg.model.name!r} has no trainable parameters (is everything frozen?)")
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)


def _check_disjoint(named: dict[str, list[torch.nn.Parameter]], model_name: str) -> None:
    seen: dict[int, str] = {}
    for name, params in named.items():
        for p in params:
            if id(p) in seen:
                raise ValueError(f"model {model_name}: a parameter is in both groups {seen[id(p)]!r} and {name!r}")
            seen[id(p)] = name


def lr_factor(cfg: ExperimentConfig, epoch: int) -> float:
    """The multiplier of every group's base lr during ``epoch`` (1-based), from ``optim.schedule``/``warmup_epochs``.

    Epoch-wise and stateless, so a resumed run gets the same lr as an uninterrupted one: multistep halves (×lr_decay)
    from each milestone epoch on (milestone m: epochs m+1… use the decayed lr, as torch's MultiStepLR stepped at the
    end of every epoch), step decays every ``step_size`` epochs, cosine anneals to 0 over ``train.epochs``.
    """
    o = cfg.optim
    done = epoch - 1  # epochs finished before this one
    if o.warmup_epochs and epoch <= o.warmup_epochs:
        return epoch / (o.warmup_epochs + 1)
    if o.schedule == "multistep":
        return o.lr_decay ** sum(done >= m for m in o.milestones)
    if o.schedule == "step":
        return o.lr_decay ** (done // o.step_size)
    if o.schedule == "cosine":
        span = max(cfg.train.epochs - o.warmup_epochs, 1)
        t = (done - o.warmup_epochs) / span
        return 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
    return 1.0


def start_epoch(optimizer: torch.optim.Optimizer, cfg: ExperimentConfig, epoch: int) -> None:
    """Set every group's lr for ``epoch`` and, with ``optim.reset_state_each_epoch``, forget the moments."""
    factor = lr_factor(cfg, epoch)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * factor
    if cfg.optim.reset_state_each_epoch:
        optimizer.state.clear()
