"""Which training strategy a config asks for (``train.strategy``), and whether its settings can run.

``run_trial`` (:mod:`zsl_bench.engine.trial`) calls :func:`from_config` in every process of a trial;
:func:`check` also runs before anything is started: in :func:`zsl_bench.engine.launch.launch` and before a sweep
starts Ray (:mod:`zsl_bench.search`), so a setting that cannot run is one line, not a crashed worker.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from zsl_bench.config import ExperimentConfig
from zsl_bench.engine import ds_config
from zsl_bench.engine.distributed import DataParallel
from zsl_bench.engine.ds_import import MISSING, deepspeed_available
from zsl_bench.engine.strategy import SINGLE, Single
from zsl_bench.engine.zero import DeepSpeed
from zsl_bench.errors import UserError

STRATEGIES: dict[str, Callable[[ExperimentConfig, str], Single]] = {
    "single": lambda cfg, device_type: SINGLE,
    "ddp": DataParallel,
    "deepspeed": DeepSpeed,
}


def from_config(cfg: ExperimentConfig) -> Single:
    """The strategy of ``cfg``; for ``ddp``/``deepspeed`` this joins (or, for one worker, makes) the process group."""
    check(cfg)
    return STRATEGIES[cfg.train.strategy](cfg, device_type_of(cfg.train.device))


def check(cfg: ExperimentConfig) -> None:
    """Raise a one-line ``UserError`` for a strategy setting that cannot run (before any worker is started)."""
    t = cfg.train
    if t.strategy != "deepspeed":
        for key, value in (("offload_optimizer", t.offload_optimizer), ("deepspeed_config", t.deepspeed_config)):
            if value:
                raise UserError(f"train.{key} needs train.strategy=deepspeed (it is {t.strategy})")
    CHECKS[t.strategy](cfg)


def _check_single(cfg: ExperimentConfig) -> None:
    t = cfg.train
    if t.num_workers > 1:
        raise UserError(f"train.num_workers={t.num_workers} needs train.strategy=ddp or deepspeed")
    if t.precision != "fp32":
        raise UserError(f"train.precision={t.precision} needs train.strategy=ddp or deepspeed (single runs fp32)")


def _check_ddp(cfg: ExperimentConfig) -> None:
    if cfg.train.precision == "fp16":
        raise UserError("train.precision=fp16 with ddp has no gradient scaler; use bf16, or train.strategy=deepspeed")


def _check_deepspeed(cfg: ExperimentConfig) -> None:
    t = cfg.train
    if not deepspeed_available():
        raise UserError(MISSING)
    device_type = device_type_of(t.device)
    if t.precision == "fp16" and device_type == "cpu":
        raise UserError("train.precision=fp16 needs a CUDA device (DeepSpeed has no fp16 on CPU); use bf16 or fp32")
    if cfg.model.freeze_backbone and cfg.data.feature_cache:
        raise UserError(
            "train.strategy=deepspeed does not train from the frozen-backbone feature cache (a head alone needs no "
            "ZeRO); use train.strategy=single, or data.feature_cache=false"
        )
    ds_config.resolve(cfg, t.num_workers, device_type)  # a bad deepspeed_config file fails here, in one line


CHECKS: dict[str, Callable[[ExperimentConfig], None]] = {
    "single": _check_single,
    "ddp": _check_ddp,
    "deepspeed": _check_deepspeed,
}


def device_type_of(device: str) -> str:
    """``train.device`` → ``cpu`` or ``cuda``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
