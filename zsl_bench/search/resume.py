"""Resume reconciliation: what an interrupted sweep still owes, read from its run directories (no Ray here).

Caller: ``tune_stages.complete_search`` on ``--resume``. The record of a sweep is what zsl-bench itself wrote: the
run directories under ``<results>/<sweep>/`` and, for the Optuna searcher, its study journal
``_ray/optuna.journal`` (reloaded by ``searchers`` when the top-up experiment builds it). Tune's own experiment
state is never read back: it unpickles ``tuner.pkl`` from the results folder, and after a hard kill its trial list
can miss trials started just before it while its searcher still counts them as live.

- :func:`unfinished_runs`: search runs a killed driver left behind, to continue from their checkpoints.
- :func:`plan_top_up`: the search trials still missing once those are continued: the grid points no run directory
  holds (each once per sample), or ``num_samples`` minus the finished trials, drawn with a seed past the draws
  already made so a top-up does not repeat a finished configuration.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_bench.rundir import Run
from zsl_bench.search.space import SearchSpace
from zsl_bench.search.stages import PlannedRun, dotted, search_runs


@dataclass(frozen=True)
class TopUp:
    """The search trials an interrupted sweep still has to run, as one Tune experiment."""

    missing: int  # trials still to run (none: <= 0)
    samples: int  # the experiment's num_samples (1 over a grid of the missing points)
    seed: int  # the searcher's seed, past the draws the interrupted sweep made
    points: list[dict[str, Any]] | None = None  # grid spaces: {grid key: value} of each missing point


def unfinished_runs(sweep_dir: Path) -> list[PlannedRun]:
    """Search runs a killed driver left behind (neither done nor failed), to continue from their checkpoints."""
    return [PlannedRun(r.path.name, r.config) for r in search_runs(sweep_dir) if not r.done and r.error is None]


def finished(runs: list[Run]) -> int:
    """Search trials that count towards ``num_samples``: done (completed or early-stopped) or failed."""
    return sum(1 for r in runs if r.done or r.error is not None)


def plan_top_up(space: SearchSpace, sweep_dir: Path, continued: int) -> TopUp:
    """The trials ``space`` still owes after the ``continued`` unfinished runs were run to their end."""
    runs = search_runs(sweep_dir)
    done = finished(runs)
    seed = space.sweep.seed + done + continued  # another draw sequence than the interrupted one's
    if grid_keys(space):
        points = missing_grid_points(space, runs)
        return TopUp(missing=len(points), samples=1, seed=seed, points=points)
    missing = space.sweep.num_samples - done
    return TopUp(missing=missing, samples=missing, seed=seed)


def grid_keys(space: SearchSpace) -> list[str]:
    """The space's grid parameters, in order."""
    return [key for key, param in space.space.items() if param.type == "grid"]


def missing_grid_points(space: SearchSpace, runs: list[Run]) -> list[dict[str, Any]]:
    """The grid points (dicts of every grid parameter's value) that ``num_samples`` x the cross product asks for
    and no run of ``runs`` holds, in a stable order."""
    keys = grid_keys(space)
    product = list(itertools.product(*(space.space[key].values or [] for key in keys)))
    wanted = Counter({_frozen(point): space.sweep.num_samples for point in product})
    held = Counter(_frozen(tuple(dotted(run.config, key) for key in keys)) for run in runs)
    originals = {_frozen(point): point for point in product}
    return [dict(zip(keys, originals[p], strict=True)) for p in sorted((wanted - held).elements(), key=repr)]


def _frozen(value: Any) -> Any:
    """``value`` made hashable (lists → tuples, dicts → sorted item tuples) for counting grid points."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value
