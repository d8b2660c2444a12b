"""Trial checkpoints in the run directory: ``checkpoint/latest.pt`` every epoch, ``checkpoint/best.pt`` on a new
best validation H. Written atomically (synced before the rename); read with ``torch.load(..., weights_only=True)``.
A ``latest.pt`` that cannot be read (truncated by a crash or a full disk) falls back, with one warning, to the
newest intact checkpoint of the run (a kept ``epoch_NNNN.pt`` or ``best.pt``, which hold the same state at an earlier
epoch), so the trial loses a few epochs instead of restarting from the first.

A checkpoint holds ``{"epoch", "model", "optimizer", "generator", "history", "compute_s"}`` — everything needed
to continue the trial at ``epoch + 1`` with the same data order and the same selection history.

With a frozen backbone (:class:`FrozenPart`) the tensors that training never changes are written once per run, into
``checkpoint/frozen-<digest>.pt`` (atomic and synced like every checkpoint; a hard link to the same file of the
previous trial of this process when there is one, as in a head-only sweep): each checkpoint's ``model`` holds the
rest, and its ``"frozen": {"file", "keys"}`` names that file; :func:`load` merges it back, so a loaded checkpoint
always holds the whole state dict. A checkpoint whose frozen file is missing or unreadable counts as unreadable.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from zsl_bench.atomic import atomic_path, write_bytes
from zsl_bench.errors import UserError
from zsl_bench.memo import KeepLast

log = logging.getLogger(__name__)

DIR = "checkpoint"
LATEST = "latest.pt"
BEST = "best.pt"
FROZEN = "frozen"  # the entry of a checkpoint that names its frozen file
_FROZEN_WRITTEN: KeepLast[Path] = KeepLast()  # the frozen file this process wrote last, by its name
_FOREIGN = "zsl-bench did not write it: delete that run directory (or its checkpoint folder) and run again"


def epoch_file(run_dir: Path, epoch: int) -> Path:
    """Where ``keep > 0`` keeps the checkpoint of ``epoch`` (PBT restarts other trials from it)."""
    return Path(run_dir) / DIR / f"epoch_{epoch:04d}.pt"


def save(
    run_dir: Path, state: dict[str, Any], best: bool = False, keep: int = 0, *, frozen: FrozenPart | None = None
) -> Path:
    """Write ``state`` to ``checkpoint/latest.pt`` (and ``best.pt`` when ``best``); with ``keep`` > 0 also to
    ``epoch_NNNN.pt``, keeping the newest ``keep`` of those. With ``frozen``, the frozen tensors of
    ``state["model"]`` go to (or are already in) its frozen file and the checkpoints name it."""
    folder = Path(run_dir) / DIR
    folder.mkdir(parents=True, exist_ok=True)
    if frozen is not None and "model" in state:
        rest, ref = frozen.split(folder, state["model"])
        state = {**state, "model": rest, **({FROZEN: ref} if ref is not None else {})}
    path = folder / LATEST
    targets = [path] + ([folder / BEST] if best else []) + ([epoch_file(run_dir, state["epoch"])] if keep > 0 else [])
    data = _serialise(state)  # once, for every file that holds this state
    for target in targets:
        write_bytes(target, data, fsync=True)  # on disk before the rename makes it the checkpoint
    if keep > 0:
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
    state = _read(path, "the checkpoint ")
    if state is None:
        return None
    if not isinstance(state, dict) or "epoch" not in state:
        raise UserError(f"refused to load the checkpoint {path}: it is not a zsl-bench checkpoint; {_FOREIGN}")
    if FROZEN in state:
        return _with_frozen(path, state)
    return state


def _with_frozen(path: Path, state: dict[str, Any]) -> dict[str, Any] | None:
    """``state`` (read from ``path``) with its model's frozen tensors read back from the file it names; None when
    that file is missing, unreadable or holds other tensors than the checkpoint lists."""
    ref = state[FROZEN]
    named = isinstance(ref, dict) and re.fullmatch(r"frozen-[0-9a-f]{16}\.pt", str(ref.get("file")))
    if not named or not isinstance(state.get("model"), dict):
        raise UserError(f"refused to load the checkpoint {path}: it names no frozen file of its run; {_FOREIGN}")
    tensors = load_tensors(path.parent / ref["file"])
    if tensors is None or sorted(tensors) != sorted(ref.get("keys", ())):
        return None
    return {**{k: v for k, v in state.items() if k != FROZEN}, "model": {**state["model"], **tensors}}


def load_tensors(path: Path) -> dict[str, torch.Tensor] | None:
    """A file of named tensors (a frozen file), or None when it is missing or cannot be read; a file holding
    anything else is a one-line ``UserError``."""
    tensors = _read(path, "")
    if tensors is None:
        return None
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise UserError(f"refused to load {path}: it is not a file of named tensors; {_FOREIGN}")
    return tensors


class FrozenPart:
    """The tensors of a model's state dict that training does not change (a frozen backbone's), saved once.

    ``keys``: their names in the state dict. :meth:`split` writes them to ``frozen-<digest>.pt`` the first time
    (and again only if one of them was replaced or changed in place since: another storage, or a bumped version
    counter) and returns the state dict without them, with the reference to that file.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = frozenset(keys)
        self._written: dict[str, tuple[torch.Tensor, int]] = {}  # name → (tensor as written, its version then)
        self._ref: dict[str, Any] | None = None
        self._folder: Path | None = None

    @classmethod
    def matching(cls, state: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor]) -> FrozenPart:
        """The entries of the state dict ``state`` that view the same memory as a tensor of ``frozen`` (what a
        model's frozen part returns, under its own names)."""
        places = {_place(t) for t in frozen.values() if t.numel()}
        return cls(k for k, t in state.items() if t.numel() and _place(t) in places)

    def split(
        self, folder: Path, model_state: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
        """(``model_state`` without the frozen tensors, ``{"file", "keys"}`` of their file in ``folder``); None
        for the reference when ``model_state`` holds none of them."""
        rest, frozen = {}, {}
        for k, t in model_state.items():
            (frozen if k in self.keys else rest)[k] = t
        if not frozen:
            return model_state, None
        if self._ref is None or self._folder != folder or not self._unchanged(frozen):
            self._write(folder, frozen)
        return rest, self._ref

    def _unchanged(self, frozen: dict[str, torch.Tensor]) -> bool:
        """Whether ``frozen`` holds the very tensors last written (the same memory, still held so never reused),
        none modified in place since."""
        if frozen.keys() != self._written.keys():
            return False
        for k, t in frozen.items():
            old, version = self._written[k]
            same = t.data_ptr() == old.data_ptr() and t.shape == old.shape and t.stride() == old.stride()
            if not same or t._version != version:
                return False
        return True

    def _write(self, folder: Path, frozen: dict[str, torch.Tensor]) -> None:
        name = f"frozen-{tensors_digest(frozen)[:16]}.pt"
        if not _link_written(name, folder / name):
            write_bytes(folder / name, _serialise({k: t.detach().cpu() for k, t in frozen.items()}), fsync=True)
            _FROZEN_WRITTEN.put(name, folder / name)
        self._written = {k: (t, t._version) for k, t in frozen.items()}
        self._ref = {"file": name, "keys": sorted(frozen)}
        self._folder = folder


def _place(t: torch.Tensor) -> tuple[Any, ...]:
    """Where ``t``'s elements lie: device, storage address, offset, shape and strides."""
    return (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of ``state``'s tensors (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _read(path: Path, what: str) -> Any:
    """``torch.load`` of ``path`` (tensors and plain containers only), or None when it is missing or cannot be
    read; a file the weights-only unpickler refuses is a one-line ``UserError`` (``what``: how to name it)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"refused to load {what}{path}: {_refused(exc)}; {_FOREIGN}") from None
    except (OSError, RuntimeError, EOFError, ValueError):
        return None


def _refused(exc: Exception) -> str:
    """Why the weights-only unpickler refused a file, in a few words."""
    what = re.search(r"GLOBAL (\S+)", str(exc))
    return f"it asks for {what.group(1)}" if what else "it is not a tensors-only torch file"


def _serialise(state: dict[str, Any]) -> bytes:
    """``torch.save`` of ``state`` into bytes."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _link_written(name: str, path: Path) -> bool:
    """Hard-link the frozen file ``name`` this process wrote last (the same digest: the same tensors; a trial of
    the same sweep on the same filesystem) to ``path``; False when there is none to link. Every checkpoint file is
    replaced, never changed, so linked files never change under each other."""
    source = _FROZEN_WRITTEN.peek(name)
    if source is None or source == path:
        return False
    try:
        with atomic_path(path) as tmp:
            tmp.unlink()
            os.link(source, tmp)
    except OSError:  # removed since, or another filesystem: write it instead
        return False
    return True
