"""Conformance: every registered searcher and scheduler runs a real 2-trial sweep through ``run_sweep`` on a real
local Ray instance, with a stub objective (no model: a score from the learning rate, written as a valid run
directory with per-epoch checkpoints, so pausing, stopping and PBT's exploit work as with ``run_trial``).

A new registry entry is covered by registering it: the parameters of its sweep are chosen from the types it
supports, and a scheduler is paired with the first searcher its checks accept. The sweeps share one Ray instance
(started once here; ``run_sweep``'s own Ray session is stubbed out) to keep the module near a minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from zsl_bench.config import build_config, to_dict
from zsl_bench.search.schedulers import SCHEDULERS
from zsl_bench.search.searchers import SEARCHERS
from zsl_bench.search.space import SearchSpace

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCHS = 3


def stub_objective(cfg: Any, run_dir: Path, report: Any = None, init_from: Any = None) -> dict[str, Any]:
    """A stand-in for ``engine.run_trial``: same run-directory contract, no model; ``val/h`` grows with the epoch
    and the learning rate. Continues from its own latest checkpoint (a paused trial) or, with ``init_from``,
    from another trial's epoch checkpoint (PBT's exploit)."""
    from zsl_bench.engine.checkpoint import LATEST, epoch_file
    from zsl_bench.rundir import RunWriter

    run_dir = Path(run_dir)
    latest = run_dir / "checkpoint" / LATEST
    start = 0
    if init_from is not None:
        start = json.loads(Path(init_from).read_text())["epoch"]
        writer = RunWriter(run_dir)
        writer.inherit_metrics(Path(init_from).parents[1], up_to=start)
    else:
        if latest.exists() and not (run_dir / "done").exists():
            start = json.loads(latest.read_text())["epoch"]
        writer = RunWriter(run_dir, resume_after=start or None)
    writer.config(to_dict(cfg))
    record = _last_val_record(run_dir) if start else {}  # a run started at its last epoch has no epoch to run
    final = None
    for epoch in range(start + 1, cfg.train.epochs + 1):
        h = epoch / cfg.train.epochs * (1.0 + math.log10(cfg.optim.lr) / 10)
        record = {"czsl": h, "u": h, "s": h, "h": h, "gamma": 0.0}
        writer.metrics({"epoch": epoch, "split": "val", **record})
        latest.parent.mkdir(exist_ok=True)
        for path in (latest, epoch_file(run_dir, epoch)):
            path.write_text(json.dumps({"epoch": epoch}))
        if epoch == cfg.train.epochs:  # as run_trial: before the last report, inside which Tune may end the trial
            final = _finish(writer, "completed", epoch, record)
        try:
            if report is not None:
                report({"epoch": epoch, "val/h": h})
        except SystemExit:  # the scheduler stopped or paused the trial
            if final is None:
                _finish(writer, "stopped", epoch, record)
            raise
    return final or _finish(writer, "completed", cfg.train.epochs, record)


def _last_val_record(run_dir: Path) -> dict[str, float]:
    """The scores of the last validation record in ``run_dir``'s ``metrics.jsonl`` (inherited or its own)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r.get("split") == "val"][-1]
    return {k: last[k] for k in ("czsl", "u", "s", "h", "gamma")}


def _finish(writer: Any, status: str, epoch: int, record: dict[str, float]) -> dict[str, Any]:
    best = {"epoch": epoch, "czsl_epoch": epoch, "gamma": 0.0, "val": record, "test": record}
    summary = {"status": status, "best_by_val": best, "compute_s": 0.01, "stage": "search"}
    writer.summary(summary)
    writer.done()
    return summary


def conformance_space(searcher: str, scheduler: str) -> dict[str, Any]:
    """A 2-trial space the searcher can sample: a float and a choice where supported, else a 2-value grid."""
    supports = SEARCHERS.get(searcher).supports
    space: dict[str, Any] = {}
    samples = 2
    if "float" in supports:
        space["optim.lr"] = {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}
    elif "grid" in supports:
        space["optim.lr"] = {"type": "grid", "values": [1e-3, 1e-2]}
        samples = 1  # one pass over the 2 grid values
    if "choice" in supports:
        space["optim.weight_decay"] = {"type": "choice", "values": [0.0, 1e-4]}
    sweep = {
        "searcher": searcher,
        "scheduler": scheduler,
        "num_samples": samples,
        "max_concurrent": 2,
        "top_k": 0,
        "resources_per_trial": {"cpu": 1},
    }
    if scheduler == "pbt":
        sweep["scheduler_options"] = {"perturbation_interval": 1}  # an exploit step within the 3 epochs
    return {"base": "quickstart", "sweep": sweep, "space": space}


def searcher_for(scheduler: str) -> str:
    """The first searcher (the default one first) whose conformance space the scheduler accepts."""
    for searcher in ["optuna", *SEARCHERS.names()]:
        try:
            SearchSpace.model_validate(conformance_space(searcher, scheduler))
        except ValidationError:
            continue
        return searcher
    raise AssertionError(f"no registered searcher works with scheduler {scheduler}")


CASES = [(s, "fifo") for s in SEARCHERS.names()] + [(searcher_for(s), s) for s in SCHEDULERS.names() if s != "fifo"]


@pytest.fixture(scope="module")
def shared_ray(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One local Ray instance (2 CPUs, token auth) for every sweep of this module."""
    from zsl_bench.search import tune_backend
    from zsl_bench.search.ray_adapter import ensure_local_token

    keys = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    saved = {k: os.environ.get(k) for k in keys}
    patch = pytest.MonkeyPatch()
    try:  # the variables are restored even when Ray fails to start: later tests start their own with the CLI
        ensure_local_token(tmp_path_factory.mktemp("ray") / "_ray")
        import ray
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        ray.init(address="local", num_cpus=2, include_dashboard=False, **quiet)
        # run_sweep runs on this instance instead of starting (and stopping) its own
        patch.setattr(tune_backend, "ray_session", lambda **_kwargs: contextlib.nullcontext())
        yield ray
        patch.undo()
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    finally:
        patch.undo()
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


@pytest.mark.parametrize(("searcher", "scheduler"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_two_trial_sweep(searcher: str, scheduler: str, shared_ray: Any, synth_root: Path, tmp_path: Path) -> None:
    from zsl_bench.search.tune_backend import run_sweep

    space = SearchSpace.model_validate(conformance_space(searcher, scheduler))
    base = build_config("quickstart", {"data.root": str(synth_root), "train.epochs": EPOCHS})
    name = f"{searcher}-{scheduler}"
    out = run_sweep(space, base, tmp_path, name, num_cpus=2, objective=stub_objective)
    assert (out.completed + out.stopped, out.failed) == (2, 0), out
    runs = sorted(p for p in (tmp_path / name).iterdir() if not p.name.startswith("_"))
    assert len(runs) == 2, runs
    for run in runs:
        assert (run / "done").exists() and not (run / "error.txt").exists(), run
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] in {"completed", "stopped"} and summary["best_by_val"]["val"]["h"] > 0
        assert (run / "metrics.jsonl").read_text().strip()
    assert out.best_trial in {r.name for r in runs} and out.best_metric is not None
