"""The DeepSpeed JSON of a run: generated from ``train.*``, or read from ``train.deepspeed_config``.

What ``train.*`` maps to (``cluster/deepspeed/*.json`` are examples of the output):

=========================  =====================================================================================
``train.batch_size``       ``train_micro_batch_size_per_gpu`` (per worker; a step sees batch × grad_accum × workers)
``train.grad_accum``       ``gradient_accumulation_steps`` (DeepSpeed accumulates; the loop does not divide again)
``train.grad_clip``        ``gradient_clipping`` (0: off)
``train.zero_stage``       ``zero_optimization.stage`` (0 plain data parallel, 1 optimizer states, 2 + gradients,
                           3 + parameters)
``train.offload_optimizer``  ``zero_optimization.offload_optimizer: {device: cpu}`` (ZeRO 1-3)
``train.precision``        ``torch_autocast: {enabled, dtype}``: fp32 master weights, forward/backward under
                           ``torch.autocast`` (bf16 or fp16 with a gradient scaler); Linear/Conv gradients are
                           reduced in that dtype
=========================  =====================================================================================

DeepSpeed's own ``bf16``/``fp16`` sections (weights stored in half precision) are not generated: they need
every input and buffer of the model in that dtype, which BatchNorm backbones and fp32 attribute matrices are not.
A ``deepspeed_config`` file is used as it is, except the batch keys above, which always come from ``train.*``
(a file value that disagrees is an error); it may not hold ``optimizer`` or ``scheduler`` sections (``optim.*``
builds the optimiser and its epoch-wise schedule).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zsl_bench.config import ExperimentConfig
from zsl_bench.errors import UserError

_NEVER_PRINT = 2**31 - 1  # DeepSpeed's steps_per_print: its own progress lines stay off
_AUTOCAST_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}
_SOURCES = {  # the DeepSpeed keys the engine's loop depends on, and the config keys they come from
    "train_micro_batch_size_per_gpu": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accum",
    "train_batch_size": "train.batch_size x train.grad_accum x train.num_workers",
    "gradient_clipping": "train.grad_clip",
}


def generate(cfg: ExperimentConfig, world_size: int | None = None, device_type: str = "cpu") -> dict[str, Any]:
    """The DeepSpeed config of ``cfg`` for ``world_size`` workers (default ``train.num_workers``)."""
    t = cfg.train
    world = world_size or t.num_workers
    zero: dict[str, Any] = {"stage": t.zero_stage}
    if t.offload_optimizer:
        if t.zero_stage == 0:
            raise UserError("train.offload_optimizer=true needs ZeRO: set train.zero_stage to 1, 2 or 3")
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": device_type == "cuda"}
    if t.zero_stage >= 2:
        zero["contiguous_gradients"] = True
        zero["overlap_comm"] = device_type == "cuda"  # overlaps reductions with backward on GPUs (side streams)
    out: dict[str, Any] = {
        **_engine_keys(cfg, world),
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,  # the optimiser is optim.* (torch SGD, Adam, AdamW), passed in
        "steps_per_print": _NEVER_PRINT,
        "wall_clock_breakdown": False,
    }
    if t.precision != "fp32":
        out["torch_autocast"] = {"enabled": True, "dtype": _AUTOCAST_DTYPE[t.precision]}
    return out


def resolve(cfg: ExperimentConfig, world_size: int | None = None, device_type: str = "cpu") -> dict[str, Any]:
    """``train.deepspeed_config`` (with the batch keys of ``train.*``) when set, else :func:`generate`."""
    if cfg.train.deepspeed_config is None:
        return generate(cfg, world_size, device_type)
    path = Path(cfg.train.deepspeed_config).expanduser()
    loaded = read(path)
    for section in ("optimizer", "scheduler"):
        if section in loaded:
            raise UserError(
                f"{path}: remove the {section!r} section; the optimiser and its schedule come from optim.* "
                f"(name, lr, schedule)"
            )
    engine = _engine_keys(cfg, world_size or cfg.train.num_workers)
    for key, value in engine.items():
        if key in loaded and loaded[key] != "auto" and loaded[key] != value:
            raise UserError(
                f"{path}: {key}={loaded[key]!r} disagrees with {_SOURCES[key]} ({value!r}); remove it from the file or "
                f"change the config"
            )
    return {"steps_per_print": _NEVER_PRINT, **loaded, **engine}


def _engine_keys(cfg: ExperimentConfig, world: int) -> dict[str, Any]:
    t = cfg.train
    return {
        "train_micro_batch_size_per_gpu": t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "train_batch_size": t.batch_size * t.grad_accum * world,
        "gradient_clipping": t.grad_clip or 0.0,
    }


def read(path: Path) -> dict[str, Any]:
    """A DeepSpeed JSON file as a dict; a missing or malformed file is a one-line ``UserError``."""
    if not path.is_file():
        raise UserError(f"train.deepspeed_config: file not found: {path} (check the path)")
    try:
        loaded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"train.deepspeed_config: {path} is not valid JSON: {exc} (fix the file)") from None
    if not isinstance(loaded, dict):
        raise UserError(f"train.deepspeed_config: {path} must hold a JSON object, not {type(loaded).__name__}")
    return loaded


def uses_offload(ds: dict[str, Any]) -> bool:
    """Whether a DeepSpeed config moves the optimizer to the CPU (then its step runs there)."""
    offload = ds.get("zero_optimization", {}).get("offload_optimizer") or {}
    return str(offload.get("device", "none")).lower() in ("cpu", "nvme")
