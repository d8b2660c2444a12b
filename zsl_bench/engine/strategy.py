"""The training strategy interface and its one-process implementation, ``train.strategy=single``.

:class:`zsl_bench.engine.trial._Trial` holds one strategy (from :func:`zsl_bench.engine.strategies.from_config`)
and asks it for everything that differs between one process and a process group: the device, the run-directory
writer, the wrapping of model and optimiser, the steps of the training loop (:class:`~zsl_bench.engine.loops.Steps`,
inherited from :class:`~zsl_bench.engine.loops.LocalSteps`), the scores of an evaluation and the checkpoint.
:mod:`zsl_bench.engine.distributed` and :mod:`zsl_bench.engine.zero` derive the ``ddp`` and ``deepspeed`` ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from zsl_bench.engine import checkpoint, loops
from zsl_bench.models.base import ZslModel
from zsl_bench.rundir import RunWriter


class Single(loops.LocalSteps):
    """``train.strategy=single``: one process, the engine's own steps and checkpoint files."""

    name = "single"
    class_scores = staticmethod(loops.class_scores)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device, given the one ``train.device`` resolves to."""
        return device

    def writer(self, run_dir: Path, resume_after: int | None = None) -> RunWriter:
        """The run directory's writer (a :class:`NullWriter` on ranks other than 0)."""
        return RunWriter(run_dir, resume_after=resume_after)

    def setup(
        self, model: ZslModel, optimizer: torch.optim.Optimizer, state: dict[str, Any] | None, run_dir: Path
    ) -> Any:
        """Wrap ``model`` (already on its device) and return the optimiser whose ``param_groups`` the epoch
        schedule sets; ``state`` is the checkpoint the trial continues from (weights already loaded when it
        holds ``model``)."""
        return optimizer

    def save_checkpoint(
        self,
        run_dir: Path,
        state: dict[str, Any],
        model: nn.Module,
        optimizer: Any,
        *,
        best: bool,
        keep: int,
        frozen: checkpoint.FrozenPart | None = None,
    ) -> None:
        """Save the engine ``state`` (epoch, generator, history, compute_s) with the weights and optimiser: rank 0
        writes (data-parallel ranks hold the same weights and optimiser state), then every rank waits for it.
        ``frozen``: the weights training leaves unchanged, written once (:class:`checkpoint.FrozenPart`)."""
        if self.is_main:
            full = {**state, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
            checkpoint.save(run_dir, full, best=best, keep=keep, frozen=frozen)
        self._wait_for_all()

    def _wait_for_all(self) -> None:
        """A barrier across the ranks (nothing to wait for in a single process)."""

    def summary_info(self) -> dict[str, Any]:
        """Extra ``summary.json`` entries (none for a single process)."""
        return {}


SINGLE = Single()


class NullWriter:
    """The run-directory writer of ranks other than 0: every call does nothing."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None
