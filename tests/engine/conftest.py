"""Fixtures of the engine tests: the test-only hooks of ddp/deepspeed worker processes (rank_hooks/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HOOKS = Path(__file__).parent / "rank_hooks"  # sitecustomize.py: what the hooks do in a worker process


@pytest.fixture
def rank_hooks(monkeypatch: pytest.MonkeyPatch):
    """``rank_hooks(digest_dir=DIR, interrupt_after=K)`` turns the worker hooks of ``rank_hooks/sitecustomize.py``
    on (a value) or off (None) for every process this test starts from now on: each rank writes
    ``DIR/rank<r>.json`` (a hash of its parameters) at the trial's end; every rank stops after epoch K."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HOOKS), os.environ.get("PYTHONPATH")])))

    def turn(*, digest_dir: Path | None = None, interrupt_after: int | None = None) -> None:
        for name, value in (("ZSL_TEST_DIGEST_DIR", digest_dir), ("ZSL_TEST_INTERRUPT_AFTER_EPOCH", interrupt_after)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, str(value))

    return turn
