"""The default torch.distributed process group of a ``ddp``/``deepspeed`` worker process.

:class:`zsl_bench.engine.distributed._Distributed` joins it when the strategy is made; the worker process
(:mod:`zsl_bench.engine.worker`) closes it when the trial has ended.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from zsl_bench.errors import UserError
from zsl_bench.ports import free_ports

_TIMEOUT = timedelta(minutes=30)  # a collective waits this long for a slow rank (first JIT build, large eval)
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def join_process_group(device_type: str, expected: int) -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process in the default process group.

    Joins an existing group (Ray Train makes one), or makes one from torchrun's environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), or, for one worker and no environment, a group of one on
    a free loopback port. Its size must be ``train.num_workers``."""
    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed; use train.strategy=single")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        _make_group(device_type, expected, local_rank)
    world = dist.get_world_size()
    if world != expected:
        raise UserError(f"train.num_workers={expected}, but the process group has {world} workers; make them agree")
    return dist.get_rank(), world, local_rank


def _make_group(device_type: str, expected: int, local_rank: int) -> None:
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if all(k in os.environ for k in _TORCHRUN_ENV):
        dist.init_process_group(backend, init_method="env://", timeout=_TIMEOUT)
    elif expected == 1:
        url = f"tcp://127.0.0.1:{free_ports(1, '127.0.0.1')[0]}"
        dist.init_process_group(backend, init_method=url, rank=0, world_size=1, timeout=_TIMEOUT)
    else:
        raise UserError(
            f"train.num_workers={expected} needs its worker processes: run `zsl-bench train` (it starts them), "
            "or `torchrun --nproc-per-node N -m zsl_bench.engine.worker CONFIG RUN_DIR`"
        )


def close_process_group() -> None:
    """End of a worker process: wait for every rank, then destroy the group (a rank leaving first can abort)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
