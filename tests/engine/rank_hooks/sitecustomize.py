"""Test-only hooks in the worker processes of a ddp/deepspeed run (tests/engine/test_distributed.py).

The ``rank_hooks`` fixture (tests/engine/conftest.py) puts this folder first on ``PYTHONPATH``, so Python imports
this module when every process the test starts begins (the CLI, torchrun, its workers). In a torchrun worker
(``LOCAL_RANK`` set) it wraps ``zsl_bench.engine.run_trial``, which the worker looks up when it runs:

* ``ZSL_TEST_DIGEST_DIR=DIR``: when the trial has finished, every rank writes ``DIR/rank<r>.json``, a sha256 of
  its full parameters (gathered under ZeRO-3), so the test can compare the ranks' parameters;
* ``ZSL_TEST_INTERRUPT_AFTER_EPOCH=K``: every rank raises ``KeyboardInterrupt`` from the trial's report right
  after epoch K's checkpoint, leaving the run directory as a kill at that moment would (the worker exits 130).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

DIGEST_DIR = "ZSL_TEST_DIGEST_DIR"
INTERRUPT_AFTER = "ZSL_TEST_INTERRUPT_AFTER_EPOCH"


def _install() -> None:
    digest_dir, after = os.environ.get(DIGEST_DIR), os.environ.get(INTERRUPT_AFTER)
    if "LOCAL_RANK" not in os.environ or not (digest_dir or after):
        return
    import zsl_bench.engine as engine
    from zsl_bench.engine import strategies

    real_run, real_from_config = engine.run_trial, strategies.from_config

    def run_trial(config: Any, run_dir: Any, report: Any = None, **kwargs: Any) -> dict[str, Any]:
        made = []

        def from_config(cfg: Any) -> Any:
            made.append(real_from_config(cfg))
            return made[-1]

        strategies.from_config = from_config
        try:
            summary = real_run(config, run_dir, report=_interrupting(report, after), **kwargs)
        finally:
            strategies.from_config = real_from_config
        if digest_dir and made:
            _write_digest(made[-1], Path(digest_dir))
        return summary

    engine.run_trial = run_trial


def _interrupting(report: Any, after: str | None) -> Any:
    """``report`` that raises ``KeyboardInterrupt`` after epoch ``after`` (None: ``report`` unchanged)."""
    if not after:
        return report

    def interrupting(metrics: dict[str, Any]) -> None:
        if report is not None:
            report(metrics)
        if metrics["epoch"] == int(after):
            raise KeyboardInterrupt

    return interrupting


def _write_digest(strategy: Any, folder: Path) -> None:
    """sha256 of every parameter's name and float32 bytes, in module order (collective under ZeRO-3)."""
    module = strategy.step_module
    ds = getattr(strategy, "ds", None)  # the DeepSpeed strategy: gather the ZeRO-3 partitions first
    params = list(module.parameters())
    whole = ds.zero.GatheredParameters(params, modifier_rank=None) if ds is not None else contextlib.nullcontext()
    with whole:
        h = hashlib.sha256()
        for name, p in module.named_parameters():
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    record = {"rank": strategy.rank, "world_size": strategy.world_size, "digest": h.hexdigest()}
    (folder / f"rank{strategy.rank}.json").write_text(json.dumps(record))


_install()
