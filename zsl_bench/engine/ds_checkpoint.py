"""DeepSpeed checkpoints read as tensors only: no file of a run directory can run code when a run resumes.

DeepSpeed's own ``TorchCheckpointEngine`` reads its shards with ``torch.load(..., weights_only=False)``, so a
pickle planted in ``<run>/checkpoint/zero-NNNN/`` (a results folder is often a shared filesystem) would run
its ``__reduce__`` on resume. Here:

* :class:`SafeCheckpointEngine` wraps the engine DeepSpeed made (:func:`install`, right after
  ``deepspeed.initialize``) and replaces its ``load`` by :func:`load_tensors`: ``weights_only=True`` plus the
  few plain DeepSpeed classes its saved dicts hold (:data:`ALLOWED`). Saving is DeepSpeed's, unchanged;
* :func:`check_tag` is the pre-flight of ``zsl-bench train`` before it starts the workers: every file of the
  tag a resumed run will load is inspected (its globals listed, nothing unpickled), so a planted file is one
  line naming it, not a worker traceback.

A refused file is a ``UserError`` naming it, and nothing in it has run.
"""

from __future__ import annotations

import importlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from zsl_bench.engine import checkpoint
from zsl_bench.errors import UserError

# Non-tensor globals of DeepSpeed 0.19's saved states (ZeRO 1-3 optimiser shards; model states need none):
# plain data holders, unpickled by the weights-only unpickler from their fields (no code of theirs runs).
ALLOWED = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
)
TAG = re.compile(r"zero-[0-9]{4,}")  # the tags zsl-bench saves: checkpoint/zero-<epoch>/
_FIX = "it was not written by zsl-bench: delete that run directory (or its checkpoint folder) and run again"


def allowed_globals() -> list[Any]:
    """The classes of :data:`ALLOWED` (imports DeepSpeed)."""
    found = []
    for name in ALLOWED:
        module, _, attr = name.rpartition(".")
        found.append(getattr(importlib.import_module(module), attr))
    return found


def refusal(path: str | Path, exc: Exception) -> UserError:
    """The one-line error for a checkpoint file the weights-only unpickler refused with ``exc``."""
    text = str(exc)
    what = re.search(r"GLOBAL (\S+)", text)
    reason = f"it asks for {what.group(1)}" if what else "it is not a tensors-only torch file"
    return UserError(f"refused to load the checkpoint {path}: {reason}; {_FIX}")


def load_tensors(path: str | Path, map_location: Any = None) -> Any:
    """``torch.load`` of ``path`` with ``weights_only=True`` and :data:`ALLOWED`; a refused file is a
    ``UserError`` naming it."""
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise refusal(path, exc) from None


class SafeCheckpointEngine:
    """DeepSpeed's ``CheckpointEngine`` interface by delegation: every call goes to the engine DeepSpeed made,
    except ``load``, which reads tensors only."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = f"SafeLoad({getattr(inner, 'name', type(inner).__name__)})"

    def load(self, path: str, map_location: Any = None) -> Any:
        """What ``path`` holds, read by :func:`load_tensors`."""
        return load_tensors(path, map_location)

    def __getattr__(self, attr: str) -> Any:
        if attr == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(attr)
        return getattr(self.inner, attr)


def install(engine: Any) -> None:
    """Make ``engine`` (a ``DeepSpeedEngine``) read its checkpoints through :class:`SafeCheckpointEngine`.

    Universal checkpoints are refused: DeepSpeed reads those with ``torch.load`` directly, outside the engine."""
    if engine.load_universal_checkpoint():
        raise UserError(
            "train.deepspeed_config sets checkpoint.load_universal: zsl-bench does not load DeepSpeed universal "
            "checkpoints (read with pickle); remove that setting"
        )
    inner = engine.checkpoint_engine
    if getattr(inner, "zipfile_serialization", True) is False:
        inner.zipfile_serialization = True  # check_tag inspects zip-format files only (a config may turn it off)
    if not isinstance(inner, SafeCheckpointEngine):
        engine.checkpoint_engine = SafeCheckpointEngine(inner)


def tag_folder(folder: Path, tag: Any) -> Path:
    """``folder/tag`` for a tag of zsl-bench's form (``zero-NNNN``); any other (``../x``, an absolute path, a
    non-string) is a ``UserError``: ``latest.pt`` names it, and a run directory may hold a planted one."""
    if not isinstance(tag, str) or not TAG.fullmatch(tag):
        raise UserError(f"{Path(folder) / checkpoint.LATEST} names the DeepSpeed tag {tag!r}, not zero-NNNN; {_FIX}")
    return Path(folder) / tag


def check_run(run_dir: Path) -> None:
    """Pre-flight of a run about to resume: its ``latest.pt`` (tensors only) and the DeepSpeed tag it names."""
    state = checkpoint.load_latest(run_dir)
    if state is not None and "zero_tag" in state:
        check_tag(tag_folder(Path(run_dir) / checkpoint.DIR, state["zero_tag"]))


def check_tag(folder: Path) -> None:
    """Refuse (``UserError``) any ``*.pt`` under the tag folder ``folder`` that is not a zip-format torch file
    whose globals are all weights-only safe or in :data:`ALLOWED`. Lists globals; unpickles nothing."""
    for path in sorted(Path(folder).rglob("*.pt")):
        if not zipfile.is_zipfile(path):
            raise UserError(f"refused to load the checkpoint {path}: it is not a zip-format torch file; {_FIX}")
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
            raise refusal(path, exc) from None
        extra = sorted(set(unsafe) - set(ALLOWED))
        if extra:
            raise UserError(f"refused to load the checkpoint {path}: it asks for {', '.join(extra)}; {_FIX}")
