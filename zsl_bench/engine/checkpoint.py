"""Trial checkpoints in the run directory: ``checkpoint/latest.pt`` every epoch, ``checkpoint/best.pt`` on a new
best validation H. Written atomically (synced before the rename); read with ``torch.load(..., weights_only=True)``.
A ``latest.pt`` that cannot be read (truncated by a crash or a full disk) falls back, with one warning, to the
newest intact checkpoint of the run (a kept ``epoch_NNNN.pt`` or ``best.pt``, which hold the same state at an earlier
epoch), so the trial loses a few epochs instead of restarting from the first.

A checkpoint holds ``{"epoch", "model", "optimizer", "generator", "history", "compute_s"}`` — everything needed
to continue the trial at ``epoch + 1`` with the same data order and the same selection history.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from zsl_bench.atomic import atomic_open
from zsl_bench.errors import UserError

log = logging.getLogger(__name__)

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
    """The latest checkpoint of ``run_dir``, or None when there is none. An unreadable ``latest.pt`` falls back
    to the newest intact ``epoch_NNNN.pt`` / ``best.pt`` with one warning (None, also warned, when none is)."""
    path = Path(run_dir) / DIR / LATEST
    state = load(path)
    if state is not None or not path.exists():
        return state
    fallback = _newest_intact(path.parent)
    if fallback is None:
        log.warning("%s cannot be read and no earlier checkpoint is intact: the run starts afresh", path)
        return None
    source, state = fallback
    log.warning("%s cannot be read: continuing from %s (epoch %s)", path, source.name, state["epoch"])
    return state


def _newest_intact(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The readable checkpoint of ``folder`` (kept epochs and ``best.pt``) with the highest epoch, or None."""
    found: tuple[Path, dict[str, Any]] | None = None
    for path in [*sorted(folder.glob("epoch_*.pt")), folder / BEST]:
        state = load(path)
        if state is not None and (found is None or int(state["epoch"]) > int(found[1]["epoch"])):
            found = (path, state)
    return found


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
    with atomic_open(path, fsync=True) as fh:  # on disk before the rename makes it the checkpoint
        torch.save(state, fh)
