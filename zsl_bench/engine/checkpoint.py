"""Trial checkpoints in the run directory: ``checkpoint/latest.pt`` every epoch, ``checkpoint/best.pt`` on a new
best validation H. Written atomically; read with ``torch.load(..., weights_only=True)``.

A checkpoint holds ``{"epoch", "model", "optimizer", "generator", "history", "compute_s"}`` — everything needed
to continue the trial at ``epoch + 1`` with the same data order and the same selection history.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

DIR = "checkpoint"
LATEST = "latest.pt"
BEST = "best.pt"


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
    """A checkpoint file, or None when it is missing or cannot be read."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None


def _atomic_save(state: dict[str, Any], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
