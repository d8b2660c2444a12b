"""The Tune experiments of a sweep: the search stage, the final stage, and on ``--resume`` the continue and top-up
experiments that complete an interrupted search.

Caller: ``tune_backend.run_sweep`` (:class:`SweepContext`, :func:`run_stages`), inside a Ray session. Each
experiment is a fresh Tune ``Tuner`` under ``<sweep>/_ray/<experiment>``; its trials run through
``ray_adapter.run_objective`` into ``<sweep>/<run>/``, and ``crashes.record_crashes`` finalises the run directories
of trials that died. What a resumed sweep still owes comes from ``resume``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_bench.config import build_config, validate
from zsl_bench.search import resume
from zsl_bench.search.crashes import record_crashes, replayed_name
from zsl_bench.search.ray_adapter import Objective, run_config, run_objective, to_tune_domain, trial_resources
from zsl_bench.search.space import SearchSpace
from zsl_bench.search.stages import PlannedRun, final_runs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepContext:
    """The fixed facts of one sweep, shared by all its experiments."""

    name: str  # the sweep's name: meta.sweep of every run
    sweep_dir: Path  # <results>/<name>: one run directory per trial
    ray_dir: Path  # <sweep_dir>/_ray: Tune experiments, auth token, Optuna journal
    base_tree: dict[str, Any]  # the base config (paths absolute) every search trial overrides
    objective: Objective  # engine.run_trial, or a stand-in
    space: SearchSpace  # the validated space, max_concurrent fitted to the cluster

    @property
    def multi_worker(self) -> bool:
        """Whether trials train in several Ray Train workers (``ddp``/``deepspeed``)."""
        return self.base_tree["train"]["strategy"] != "single"


def run_stages(ctx: SweepContext, *, resume_sweep: bool) -> None:
    """The search stage (or, resuming, its completion from the run directories), then the final stage over the
    top-k search configurations; final runs already done are returned at once by ``run_trial``."""
    if resume_sweep:
        complete_search(ctx)
    else:
        record_crashes(search_stage(ctx, ctx.space, "search"), ctx.sweep_dir)
    settings = ctx.space.sweep
    finals = final_runs(ctx.sweep_dir, settings.metric, settings.mode, settings.top_k, settings.seeds_final)
    if finals:
        replay_stage(ctx, finals, "final")


def search_stage(
    ctx: SweepContext, space: SearchSpace, experiment: str, param_space: dict[str, Any] | None = None
) -> Any:
    """A fresh Tune experiment ``experiment`` of ``space``'s searcher and scheduler (``param_space``, default the
    space's domains; a ``_point`` entry holds several parameters' values at once, see :func:`complete_search`).
    Returns Tune's ``ResultGrid``."""
    from ray import tune

    settings = space.sweep
    multi = ctx.multi_worker
    if param_space is None:
        param_space = {key: to_tune_domain(p) for key, p in space.space.items()}
    searcher = settings.searcher_spec().build(settings.searcher_config(), settings, ctx.ray_dir, param_space)
    epochs = ctx.base_tree["train"]["epochs"]
    scheduler = settings.scheduler_spec().build(settings.scheduler_config(), settings, epochs, space.space, multi)
    tuner = tune.Tuner(
        tune.with_resources(_search_trainable(ctx, space), trial_resources(settings, multi)),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=settings.metric,
            mode=settings.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=settings.num_samples,
            max_concurrent_trials=settings.max_concurrent,
            reuse_actors=not multi,  # a driver blocked in trainer.fit() cannot be reset for the next trial
        ),
        run_config=run_config(experiment, ctx.ray_dir, settings.max_failures, space.space),
    )
    return tuner.fit()


def _search_trainable(ctx: SweepContext, space: SearchSpace) -> Callable[[dict[str, Any]], None]:
    """The Tune trainable of a search trial: the base config with the sampled parameters (a ``_point`` entry
    spread into its parameters) and the sweep's meta, trained into ``<sweep>/<trial id>/``."""
    from ray import tune

    settings = space.sweep
    keep = settings.scheduler_spec().keeps_checkpoints  # the epochs other trials may copy (PBT)
    record = settings.record()

    def trainable(params: dict[str, Any]) -> None:
        trial_id = tune.get_context().get_trial_id()
        params = {**{k: v for k, v in params.items() if k != "_point"}, **params.get("_point", {})}
        overrides = {**params, "meta.sweep": ctx.name, "meta.trial_id": trial_id, "meta.stage": "search"}
        overrides["meta.sweep_settings"] = record  # the searcher, scheduler and their resolved options
        cfg = build_config(ctx.base_tree, overrides, source=f"sweep {ctx.name}")
        if cfg.train.num_threads is None:
            cfg.train.num_threads = max(1, int(settings.resources_per_trial.cpu))
        if keep:
            cfg.train.keep_checkpoints = max(cfg.train.keep_checkpoints, keep)
        run_objective(ctx.objective, cfg, ctx.sweep_dir / trial_id, settings=settings, ray_dir=ctx.ray_dir)

    return trainable


def complete_search(ctx: SweepContext) -> None:
    """On ``--resume``: continue unfinished run directories (to their last epoch: the scheduler's rung records
    are not restored), then run the trials still missing (``resume.plan_top_up``): over a grid, exactly the grid
    points no run directory holds; else fresh draws of a searcher seeded past the ones already made (the Optuna
    one reloads its study from the journal), so a top-up does not repeat a finished configuration."""
    settings = ctx.space.sweep
    leftovers = resume.unfinished_runs(ctx.sweep_dir)
    if leftovers:
        log.warning("continuing %d unfinished trial(s) from their checkpoints", len(leftovers))
        replay_stage(ctx, leftovers, "continue")
    top_up = resume.plan_top_up(ctx.space, ctx.sweep_dir, len(leftovers))
    if top_up.missing <= 0:
        return
    log.warning("running %d trial(s) the interrupted sweep had not recorded", top_up.missing)
    if not settings.searcher_spec().resumes_from_journal:
        log.warning("searcher %s starts afresh for them (it keeps no journal to reload)", settings.searcher)
    update = {"num_samples": top_up.samples, "seed": top_up.seed}
    resumed = ctx.space.model_copy(update={"sweep": settings.model_copy(update=update)})
    experiment = f"search-topup-{time.strftime('%Y%m%d-%H%M%S')}"
    param_space = None if top_up.points is None else _point_space(ctx.space, top_up.points)
    record_crashes(search_stage(ctx, resumed, experiment, param_space), ctx.sweep_dir)


def _point_space(space: SearchSpace, points: list[dict[str, Any]]) -> dict[str, Any]:
    """The Tune parameter space running each grid point of ``points`` once (``_point``: a grid over them), the
    other parameters' domains as they are."""
    from ray import tune

    param_space = {k: to_tune_domain(p) for k, p in space.space.items() if p.type != "grid"}
    return {**param_space, "_point": tune.grid_search(points)}


def replay_stage(ctx: SweepContext, runs: list[PlannedRun], label: str) -> Any:
    """Run known configurations into their named run directories (``run_trial`` returns finished ones at once
    and continues interrupted ones from their checkpoints), as the Tune experiment ``<label>-<time>``. Returns
    Tune's ``ResultGrid``."""
    from ray import tune

    settings = ctx.space.sweep

    def trainable(params: dict[str, Any]) -> None:
        run = params["run"]
        cfg = validate(run["config"], f"{label} run {run['name']}")
        if cfg.train.num_threads is None:
            cfg.train.num_threads = max(1, int(settings.resources_per_trial.cpu))
        run_objective(ctx.objective, cfg, ctx.sweep_dir / run["name"], settings=settings, ray_dir=ctx.ray_dir)

    multi = any(r.config["train"].get("strategy", "single") != "single" for r in runs)
    tuner = tune.Tuner(
        tune.with_resources(trainable, trial_resources(settings, multi)),
        param_space={"run": tune.grid_search([{"name": r.name, "config": r.config} for r in runs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=settings.max_concurrent, reuse_actors=not multi),
        run_config=run_config(
            f"{label}-{time.strftime('%Y%m%d-%H%M%S')}", ctx.ray_dir, settings.max_failures, ctx.space.space
        ),
    )
    grid = tuner.fit()
    record_crashes(grid, ctx.sweep_dir, name_of=replayed_name)
    return grid
