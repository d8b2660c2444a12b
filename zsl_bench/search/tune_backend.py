"""Run a validated search space on a local Ray cluster with Ray Tune + Optuna (TPE) + ASHA.

The only module that imports ray and optuna. Each trial is ``engine.run_trial`` writing its own run directory
``<results>/<sweep>/<trial_id>/``; Ray's own state goes to ``<results>/<sweep>/_ray/`` (ignored by readers).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_bench.config import ExperimentConfig, to_dict
from zsl_bench.search.space import Param, SearchSpace

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    """What the sweep command prints at the end."""

    name: str
    sweep_dir: Path
    completed: int
    stopped: int
    failed: int
    best_trial: str | None
    best_metric: float | None
    best_params: dict[str, Any]
    wall_s: float


def ensure_local_token(ray_dir: Path) -> None:
    """Turn on Ray token auth for the cluster this process starts, with a private per-sweep token file.

    Keeps the user's ``~/.ray`` untouched; every Ray process started from here inherits the two variables.
    An already configured token (``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``) is respected.
    """
    os.environ["RAY_AUTH_MODE"] = "token"
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    ray_dir.mkdir(parents=True, exist_ok=True)
    token = ray_dir / "auth_token"
    if not token.exists():
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)


def to_tune_domain(param: Param) -> Any:
    """One validated ``Param`` → the Ray Tune sampling domain."""
    from ray import tune

    if param.type == "choice":
        return tune.choice(param.values)
    low, high = param.low, param.high
    if param.type == "int":  # both ends inclusive, as the space file says
        if param.log:
            return tune.lograndint(int(low), int(high) + 1)
        if param.step and param.step > 1:
            return tune.qrandint(int(low), int(high), int(param.step))
        return tune.randint(int(low), int(high) + 1)
    if param.step:
        return tune.qloguniform(low, high, param.step) if param.log else tune.quniform(low, high, param.step)
    return tune.loguniform(low, high) if param.log else tune.uniform(low, high)


def run_sweep(
    space: SearchSpace, base: ExperimentConfig, results_root: Path, name: str, num_cpus: int | None = None
) -> SweepOutcome:
    """Run the sweep to the end on a Ray instance started (and shut down) here.

    Ray reads ``RAY_AUTH_MODE`` when it is first imported, so the token is set up before ``import ray``.
    """
    sweep_dir = (results_root / name).resolve()
    ray_dir = sweep_dir / "_ray"
    ensure_local_token(ray_dir)

    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from zsl_bench.config import build_config
    from zsl_bench.engine import run_trial

    start = time.perf_counter()
    base_tree = to_dict(base)
    if base_tree["data"]["root"]:  # trials run in other processes: make the data path absolute
        base_tree["data"]["root"] = str(Path(base_tree["data"]["root"]).resolve())
    settings = space.sweep

    def trainable(params: dict[str, Any]) -> None:
        trial_id = tune.get_context().get_trial_id()
        overrides = {**params, "meta.sweep": name, "meta.trial_id": trial_id, "meta.stage": "search"}
        cfg = build_config(base_tree, overrides, source=f"sweep {name}")
        if cfg.train.num_threads is None:
            cfg.train.num_threads = max(1, int(settings.resources_per_trial.cpu))
        run_trial(cfg, sweep_dir / trial_id, report=tune.report)

    resources = {"cpu": settings.resources_per_trial.cpu, "gpu": settings.resources_per_trial.gpu}
    scheduler = (
        ASHAScheduler(
            time_attr="training_iteration",
            max_t=base.train.epochs,
            grace_period=settings.grace_period,
            reduction_factor=settings.reduction_factor,
        )
        if settings.scheduler == "asha"
        else FIFOScheduler()
    )
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={key: to_tune_domain(p) for key, p in space.space.items()},
            tune_config=tune.TuneConfig(
                metric=settings.metric,
                mode=settings.mode,
                search_alg=_searcher(settings),
                scheduler=scheduler,
                num_samples=settings.num_samples,
                max_concurrent_trials=settings.max_concurrent,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(name="tune", storage_path=str(ray_dir), verbose=1),
        )
        grid = tuner.fit()
    finally:
        ray.shutdown()
    return _outcome(grid, name, sweep_dir, settings.metric, settings.mode, time.perf_counter() - start)


def _searcher(settings: Any) -> Any:
    if settings.searcher == "random":
        return None  # Tune's BasicVariantGenerator: random sampling
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=settings.seed)


def _outcome(grid: Any, name: str, sweep_dir: Path, metric: str, mode: str, wall: float) -> SweepOutcome:
    """Count trials by how their run directory ended and pick the best by its validation selection.

    The run directories are the source of truth; ``metric`` ``split/key`` (e.g. ``val/h``) is read from
    ``summary.json``'s ``best_by_val`` so the best trial is judged at its best epoch, not its last.
    """
    from zsl_bench.rundir import UnreadableRun, read_run

    split, _, key = metric.partition("/")
    counts = {"completed": 0, "stopped": 0, "failed": 0}
    best: tuple[float, str, dict[str, Any]] | None = None
    for result in grid:
        trial_id = (result.metrics or {}).get("trial_id") or _trial_id_from_path(result.path)
        try:
            run = read_run(sweep_dir / trial_id)
        except UnreadableRun:
            counts["failed"] += 1
            continue
        if run.error or not run.done or run.summary is None:
            counts["failed"] += 1
            continue
        counts["stopped" if run.summary.get("status") == "stopped" else "completed"] += 1
        value = (run.summary["best_by_val"].get(split) or {}).get(key)
        if value is None:
            continue
        score = value if mode == "max" else -value
        if best is None or score > best[0]:
            best = (score, trial_id, dict(result.config))
    return SweepOutcome(
        name=name,
        sweep_dir=sweep_dir,
        completed=counts["completed"],
        stopped=counts["stopped"],
        failed=counts["failed"],
        best_trial=best[1] if best else None,
        best_metric=(best[0] if mode == "max" else -best[0]) if best else None,
        best_params=best[2] if best else {},
        wall_s=wall,
    )


def _trial_id_from_path(path: str) -> str:
    """Tune names trial dirs ``<trainable>_<experiment>_<index>_…``; the trial id is ``<experiment>_<index>``."""
    parts = Path(path).name.split("_")
    return "_".join(parts[1:3])
