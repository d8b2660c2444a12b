"""Trial checkpoints in the run directory: ``checkpoint/latest.pt`` every epoch, ``checkpoint/best.pt`` on a new
best validation H. Written atomically; read with ``torch.load(..., weights_only=True)``.

A checkpoint holds ``{"epoch", "model", "optimizer", "generator", "history", "compute_s"}`` — everything needed
to continue the trial at ``epoch + 1`` with the same data order and the same selection history.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from zsl_bench.errors import UserError

DIR = "checkpoint"
LATEST = "latest.pt"
BEST = "best.pt"
_FOREIGN = "zsl-bench did not write it: delete that run directory (or its checkpoint folder) and run again"


def epoch_file(run_dir: Path, epoch: int) -> Path:
    """Where ``keep > 0`` keeps the checkpoint of ``epoch`` (PBT restarts other trials from it)."""
    return Path(run_dir) / DIR / f"epoch_{epoch:04d}.pt"


def save(run_dir: Path, state: dict[str, Any], best: bool = False, keep: int = 0) -> Path:
    """Write ``state`` to ``checkpoint/latest.pt`` (and ``best.pt`` when ``best``); with ``keep`` > 0 also to
    ``epoch_NNNN.pt``, keeping the newest ``keep`` of those."""
    folder = Path(run_dir) / DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LATEST
    _atomic_save(state, path)
    if best:
        _atomic_save(state, folder / BEST)
    if keep > 0:
        _atomic_save(state, epoch_file(run_dir, state["epoch"]))
        for old in sorted(folder.glob("epoch_*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
    return path


def load_latest(run_dir: Path) -> dict[str, Any] | None:
    """The latest checkpoint of ``run_dir``, or None when there is none (or it cannot be read)."""
    return load(Path(run_dir) / DIR / LATEST)


def load(path: Path) -> dict[str, Any] | None:
    """A checkpoint file, or None when it is missing or cannot be read. A file holding anything but tensors and
    plain containers (not one zsl-bench wrote: a planted pickle) is a one-line ``UserError`` naming it."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"refused to load the checkpoint {path}: {_refused(exc)}; {_FOREIGN}") from None
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    if not isinstance(state, dict) or "epoch" not in state:
        raise UserError(f"refused to load the checkpoint {path}: it is not a zsl-bench checkpoint; {_FOREIGN}")
    return state


def _refused(exc: Exception) -> str:
    """Why the weights-only unpickler refused a file, in a few words."""
    what = re.search(r"GLOBAL (\S+)", str(exc))
    return f"it asks for {what.group(1)}" if what else "it is not a tensors-only torch file"


def _atomic_save(state: dict[str, Any], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
