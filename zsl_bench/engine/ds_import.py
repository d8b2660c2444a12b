"""Importing DeepSpeed (the ``deepspeed`` extra): whether it is installed, and ``import deepspeed`` prepared for
the device it will train on.

:func:`zsl_bench.engine.strategies.check` asks :func:`deepspeed_available` before any worker starts;
:class:`zsl_bench.engine.zero.DeepSpeed` calls :func:`import_deepspeed` in every worker process.
"""

from __future__ import annotations

import logging
import os
from importlib.util import find_spec
from typing import Any

from zsl_bench.errors import UserError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'zsl-bench[deepspeed]' (or: pip install deepspeed==0.19.8)"
MISSING = f"train.strategy=deepspeed needs DeepSpeed, which is not installed: {INSTALL_HINT}"


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
        raise UserError(MISSING) from None
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
