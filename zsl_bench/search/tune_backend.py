"""Run a validated search space on Ray with Ray Tune and the space's searcher and scheduler: the sweep's driver.

Callers: the ``sweep`` command (``cli``), ``benchmarks/sweep_overhead.py`` and ``benchmarks/search_efficiency.py``
(:func:`run_sweep`), and tests. Two stages, both through Ray Tune (``tune_stages``):

1. ``search``: trials sampled by the registered searcher, stopped early (or evolved) by the registered scheduler,
   each ``engine.run_trial`` on the honest validation split, writing ``<results>/<sweep>/<trial_id>/``.
2. ``final``: the top-k search configurations retrained on trainval with ``seeds_final`` seeds
   (``<results>/<sweep>/final-<rank>-seed<s>/``), evaluated on test.

Ray's own state lives in ``<results>/<sweep>/_ray/`` (ignored by readers): the Tune experiments, the private
auth token, and the Optuna study (``optuna.journal``, openable with optuna-dashboard). ``resume=True`` continues a
sweep after its driver died from what zsl-bench itself wrote, never through Tune's restore (``resume``):
unfinished run directories continue from their last checkpoint, the missing trials are sampled anew (grid points:
exactly the points no run directory holds; other draws: a searcher seeded past the ones already made, the Optuna
one reloading its study from the journal); the final stage skips runs that are already done. Everything that
touches Ray itself (tokens, starting Ray, resources, trial bodies) is ``ray_adapter``'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_bench.config import ExperimentConfig, to_dict
from zsl_bench.data.datasets import check_dataset
from zsl_bench.errors import UserError
from zsl_bench.record import mean_scores, read_summary
from zsl_bench.rundir import find_run_dirs
from zsl_bench.search.ray_adapter import (
    Objective,
    check_trial_fits,
    fit_concurrency,
    prepare_environment,
    ray_session,
    workers_per_trial,
)
from zsl_bench.search.space import SearchSpace, SweepSettings, check_sweep_name
from zsl_bench.search.stages import dotted, read_runs, selection_value, stage_of
from zsl_bench.search.tune_stages import SweepContext, run_stages


@dataclass
class SweepOutcome:
    """What the sweep command prints at the end."""

    name: str
    sweep_dir: Path
    completed: int = 0
    stopped: int = 0
    failed: int = 0
    best_trial: str | None = None
    best_metric: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    final_runs: int = 0
    final_failed: int = 0
    final_test: dict[str, float] = field(default_factory=dict)  # mean test czsl/u/s/h of the top config
    compute_s: float = 0.0  # summed over every run of the sweep
    wall_s: float = 0.0


def run_sweep(
    space: SearchSpace,
    base: ExperimentConfig,
    results_root: Path,
    name: str,
    *,
    resume: bool = False,
    num_cpus: int | None = None,
    objective: Objective | None = None,
    address: str | None = None,
) -> SweepOutcome:
    """Run both stages on a Ray instance started (and shut down) here, or, with ``address`` (``HOST:PORT``), on
    that running cluster: attached with its token (``RAY_AUTH_MODE=token`` plus ``RAY_AUTH_TOKEN_PATH`` or
    ``RAY_AUTH_TOKEN`` already in the environment; no private token is made) and only disconnected at the end."""
    check_sweep_name(name, "--name, sweep.name or the space file's name")  # one folder under results_root
    start = time.perf_counter()
    sweep_dir = (results_root / name).resolve()
    workers = workers_per_trial(space, base)
    _check_start(space, base, sweep_dir, name=name, resume=resume)
    ray_dir = sweep_dir / "_ray"
    ray_dir.mkdir(parents=True, exist_ok=True)
    prepare_environment(ray_dir, address)
    base_tree = absolute_paths(to_dict(base))  # trials run in other processes and working directories
    if objective is None:
        from zsl_bench.engine import run_trial as objective
    with ray_session(address=address, num_cpus=num_cpus, dashboard=bool(workers)):
        if workers:
            space = fit_concurrency(space, workers)
        else:
            check_trial_fits(space.sweep.resources_per_trial)
        ctx = SweepContext(
            name=name, sweep_dir=sweep_dir, ray_dir=ray_dir, base_tree=base_tree, objective=objective, space=space
        )
        run_stages(ctx, resume_sweep=resume)
    outcome = SweepOutcome(name=name, sweep_dir=sweep_dir)
    _summarise(outcome, sweep_dir, space.sweep, set(space.space))
    outcome.wall_s = time.perf_counter() - start
    return outcome


def _check_start(space: SearchSpace, base: ExperimentConfig, sweep_dir: Path, *, name: str, resume: bool) -> None:
    """Refuse a new sweep over existing runs, and (when no trial picks its own data) data the trials cannot read."""
    if not resume and any(True for _ in find_run_dirs(sweep_dir)):
        raise UserError(f"sweep {name!r} already has runs in {sweep_dir}; pass --resume to continue it or --name NEW")
    if any(key.startswith("data.") for key in space.space):
        return
    try:  # every trial reads this data: check it once, now
        check_dataset(base.data.name, base.data.root, base.data.features)
    except UserError as exc:
        raise UserError(f"{exc} (in a sweep: data.root under the space's 'set', or --set data.root=DIR)") from exc


def _summarise(outcome: SweepOutcome, sweep_dir: Path, settings: SweepSettings, searched: set[str]) -> None:
    """Fill the counts, the best search trial and the final-stage means from the run directories."""
    runs = read_runs(sweep_dir)
    outcome.compute_s = sum(read_summary(run.summary).compute_s for run in runs)
    best: tuple[float, Any] | None = None
    tests = []
    for run in runs:
        failed = run.error is not None or not run.done
        if stage_of(run) == "final":
            outcome.final_runs += 1
            outcome.final_failed += failed
            if not failed and run.path.name.startswith("final-1-"):
                tests.append(read_summary(run.summary).scores("val", "test") or {})
            continue
        if failed:
            outcome.failed += 1
            continue
        if read_summary(run.summary).status == "stopped":
            outcome.stopped += 1
        else:
            outcome.completed += 1
        value = selection_value(run, settings.metric)
        if value is not None:
            score = value if settings.mode == "max" else -value
            if best is None or score > best[0]:
                best = (score, run)
    if best is not None:
        run = best[1]
        outcome.best_trial = run.path.name
        outcome.best_metric = selection_value(run, settings.metric)
        outcome.best_params = {key: dotted(run.config, key) for key in sorted(searched)}
    if tests:
        outcome.final_test = mean_scores(tests)


def absolute_paths(tree: dict[str, Any]) -> dict[str, Any]:
    """``tree`` (a config dict) with its relative paths made absolute against this process's working directory:
    ``data.root`` (its default ``data/<name>`` when unset), ``data.cache_dir`` and every ``model.options`` string
    that names an existing file or directory (``pretrained``, ``attribute_embeddings``, …)."""
    from zsl_bench.data.datasets import default_root

    data = tree["data"]
    data["root"] = str(Path(data["root"] or default_root(data["name"])).resolve())
    if data.get("cache_dir"):
        data["cache_dir"] = str(Path(data["cache_dir"]).resolve())
    options = tree["model"]["options"]
    for key, value in options.items():
        if isinstance(value, str) and value and not Path(value).is_absolute() and Path(value).exists():
            options[key] = str(Path(value).resolve())
    return tree
