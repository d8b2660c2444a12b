"""Trial schedulers — which trials stop early, pause or evolve — as typed, registered plugins.

A scheduler is one :class:`SchedulerSpec`: its name, a pydantic class for ``sweep.scheduler_options`` (validated
when the space file loads), what it needs from the sweep (a non-adaptive searcher for a population it evolves
itself, single-process trials for one that pauses and resumes trials from Tune checkpoints, per-epoch
checkpoints kept for other trials to copy) and ``build``, which returns the Ray Tune scheduler. Built-ins:
``asha``, ``hyperband``, ``median`` (median stopping rule), ``pbt`` (population-based training) and ``fifo``. An
outside package adds one with :func:`register_scheduler` from the ``zsl_bench.schedulers`` entry-point group.

Time is counted in epochs: the ``training_iteration`` of a single-process trial (one report per epoch, restored
with its Tune checkpoint), the reported ``epoch`` of a multi-worker one (which hands Tune no checkpoint).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from zsl_bench.registry import Registry
from zsl_bench.search.searchers import PARAM_TYPES, SEARCHERS, NoOptions, Options, SearcherSpec, parse_options
from zsl_bench.search.searchers import unsupported_types as _unsupported

if TYPE_CHECKING:
    from zsl_bench.search.space import Param, SweepSettings


@dataclass(frozen=True)
class SchedulerSpec:
    """One scheduler: what ``sweep.scheduler: <name>`` builds.

    ``build(options, settings, epochs, space, multi_worker)`` gets the validated ``options``, the sweep settings,
    the epoch budget of a trial (``train.epochs``: Tune's ``max_t``), the space's parameters and whether trials
    run in several Ray Train workers; it returns a Ray Tune ``TrialScheduler`` (metric and mode come from the
    sweep's ``TuneConfig``).
    """

    name: str
    build: Callable[[Any, SweepSettings, int, dict[str, Param], bool], Any]
    options: type[BaseModel] = NoOptions
    evolves_population: bool = False  # mutates configs itself: needs a non-adaptive searcher (random, grid)
    single_process: bool = False  # pauses/resumes trials from Tune checkpoints, which multi-worker trials lack
    keeps_checkpoints: int = 0  # per-epoch checkpoints each trial keeps (PBT copies another trial's epoch)
    supports: frozenset[str] = PARAM_TYPES  # parameter types it can handle (PBT mutates float/int/choice)
    summary: str = ""

    def parse_options(self, raw: dict[str, Any]) -> BaseModel:
        """``sweep.scheduler_options`` validated (one-line ``ValueError`` on a problem)."""
        return parse_options("scheduler", self.name, self.options, raw)

    def check_space(self, searcher: SearcherSpec, space: dict[str, Param]) -> None:
        """Raise a one-line ``ValueError`` if this scheduler cannot run with ``searcher`` on ``space``."""
        if self.evolves_population and searcher.adaptive:
            plain = [s for s in SEARCHERS.names() if not SEARCHERS.get(s).adaptive]
            raise ValueError(
                f"scheduler {self.name} evolves its own population: use searcher {' or '.join(plain)}, "
                f"not {searcher.name} (which learns from results)"
            )
        if self.evolves_population and not space:
            raise ValueError(f"scheduler {self.name} evolves a population: the space needs a parameter to mutate")
        for kind, keys in _unsupported(self.supports, space).items():
            raise ValueError(f"scheduler {self.name} cannot take {kind} parameters ({', '.join(keys)})")


SCHEDULERS: Registry[SchedulerSpec] = Registry("scheduler", group="zsl_bench.schedulers")
FALLBACK = "fifo"  # what a smoke run uses where the space's scheduler cannot run its shrunk space


def register_scheduler(spec: SchedulerSpec) -> SchedulerSpec:
    """Register ``spec`` under ``spec.name`` (attributed to the module that defines its ``build``)."""
    SCHEDULERS.add(spec.name, spec, getattr(spec.build, "__module__", None))
    return spec


def time_attr(multi_worker: bool) -> str:
    """The result field that counts epochs (see the module docstring)."""
    return "epoch" if multi_worker else "training_iteration"


# ------------------------------------------------------------------------------------------------ built-ins


class AshaOptions(Options):
    grace_period: int = Field(1, ge=1)  # epochs before a trial may be stopped
    reduction_factor: float = Field(2.0, gt=1)  # 1/reduction_factor of the trials go on at each rung
    brackets: int = Field(1, ge=1)


def _asha(o: AshaOptions, settings: SweepSettings, epochs: int, space: dict[str, Param], multi: bool) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr=time_attr(multi),
        max_t=epochs,
        grace_period=min(o.grace_period, epochs),
        reduction_factor=o.reduction_factor,
        brackets=o.brackets,
    )


class HyperBandOptions(Options):
    reduction_factor: float = Field(3.0, gt=1)
    stop_last_trials: bool = True  # stop trials that reach max_t (false: let them run on)


def _hyperband(o: HyperBandOptions, settings: SweepSettings, epochs: int, space: dict[str, Param], multi: bool) -> Any:
    return _hyperband_class()(
        time_attr=time_attr(multi),
        max_t=epochs,
        reduction_factor=o.reduction_factor,
        stop_last_trials=o.stop_last_trials,
    )


@functools.cache
def _hyperband_class() -> type:
    """Ray's ``HyperBandScheduler``, which also stops the trials it paused at ``max_t`` when the last other trial
    of their bracket ends without a separate last result (made on first use: ray is imported only here)."""
    from ray.tune.schedulers import HyperBandScheduler

    class HyperBand(HyperBandScheduler):
        """Ray 2.60 stops a finished bracket's paused trials only from ``on_trial_result``. A function trial's last
        report can reach Tune together with its end (``done``), which goes to ``on_trial_complete`` instead: a
        trial paused at ``max_t`` in the same bracket then stays paused, and ``Tuner.fit`` never returns."""

        def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
            bracket, _ = self._trial_info[trial]
            super().on_trial_remove(tune_controller, trial)
            if bracket.finished():
                bracket.cleanup_full(tune_controller)  # stops its paused trials: each reached max_t

    return HyperBand


class MedianOptions(Options):
    grace_period: int = Field(1, ge=0)  # epochs before a trial may be stopped
    min_samples_required: int = Field(3, ge=1)  # trials that must have reached an epoch before it is judged


def _median(o: MedianOptions, settings: SweepSettings, epochs: int, space: dict[str, Param], multi: bool) -> Any:
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(
        time_attr=time_attr(multi),
        grace_period=min(o.grace_period, epochs),
        min_samples_required=o.min_samples_required,
    )


class PbtOptions(Options):
    perturbation_interval: int = Field(2, ge=1)  # epochs between exploit (copy a better trial) and explore
    quantile_fraction: float = Field(0.25, gt=0, le=0.5)  # bottom fraction that copies the top fraction
    resample_probability: float = Field(0.25, ge=0, le=1)  # explore: resample instead of perturbing
    burn_in_period: int = Field(0, ge=0)  # epochs before the first exploit


def _pbt(o: PbtOptions, settings: SweepSettings, epochs: int, space: dict[str, Param], multi: bool) -> Any:
    """Exploit copies a better trial's weights (``run_trial(init_from=…)``), explore mutates its config."""
    from ray.tune.schedulers import PopulationBasedTraining

    from zsl_bench.search.ray_adapter import to_tune_domain

    return PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=o.perturbation_interval,
        quantile_fraction=o.quantile_fraction,
        resample_probability=o.resample_probability,
        burn_in_period=o.burn_in_period,
        hyperparam_mutations={key: to_tune_domain(p) for key, p in space.items()},
    )


def _fifo(o: NoOptions, settings: SweepSettings, epochs: int, space: dict[str, Param], multi: bool) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


for _spec in (
    SchedulerSpec("asha", _asha, AshaOptions, summary="asynchronous successive halving (the default)"),
    SchedulerSpec(
        "hyperband",
        _hyperband,
        HyperBandOptions,
        single_process=True,
        summary="synchronous HyperBand: pauses trials at each rung and resumes the best",
    ),
    SchedulerSpec("median", _median, MedianOptions, summary="stops a trial below the median of the others"),
    SchedulerSpec(
        "pbt",
        _pbt,
        PbtOptions,
        evolves_population=True,
        single_process=True,
        keeps_checkpoints=3,
        supports=frozenset(("float", "int", "choice")),
        summary="population-based training: exploit a better trial's weights, explore its config",
    ),
    SchedulerSpec("fifo", _fifo, summary="every trial runs all its epochs"),
):
    register_scheduler(_spec)
