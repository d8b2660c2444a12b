"""Searchers — how a sweep proposes trials — as typed, registered plugins.

A searcher is one :class:`SearcherSpec`: its name, a pydantic class for ``sweep.searcher_options`` (validated when
the space file loads), the parameter types it can sample, whether it learns from results (``adaptive``), whether
``--resume`` tops a sweep up by sampling afresh (``resumes_from_journal``), and ``build``, which returns the Ray
Tune search algorithm. Built-ins: ``optuna`` (TPE, CMA-ES, GP, QMC or random sampler, its study kept in the
sweep's Optuna journal), ``random`` and ``grid`` (Ray's basic variant generator). An outside package adds one with
:func:`register_searcher` in a module named by the ``zsl_bench.searchers`` entry-point group (docs/searchers.md).

Nothing here imports ray or optuna at module level: ``build`` does, in the sweep driver.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zsl_bench.registry import Registry, close_matches

if TYPE_CHECKING:
    from zsl_bench.search.space import Param, SweepSettings

log = logging.getLogger(__name__)

ParamType = Literal["float", "int", "choice", "grid"]
PARAM_TYPES: frozenset[str] = frozenset(("float", "int", "choice", "grid"))


class Options(BaseModel):
    """Base of every searcher's and scheduler's options: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(Options):
    """For an entry that takes no options."""


def parse_options(kind: str, name: str, cls: type[BaseModel], raw: dict[str, Any]) -> BaseModel:
    """``raw`` validated as ``cls``; a problem is a one-line ``ValueError`` naming ``<kind>_options`` and the key."""
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(_options_message(kind, name, cls, exc)) from None


def _options_message(kind: str, name: str, cls: type[BaseModel], exc: ValidationError) -> str:
    err = exc.errors()[0]
    valid = list(cls.model_fields)
    where = f"{kind}_options"
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        hint = close_matches(key, valid, n=1)
        guess = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"unknown {where} key {key!r} for {kind} {name}{guess} (valid: {', '.join(valid) or 'none'})"
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    got = f" (got {err['input']!r})" if loc else ""
    return f"{where}{'.' + loc if loc else ''} ({kind} {name}): {msg}{got}"


def unsupported_types(supports: frozenset[str], space: dict[str, Param]) -> dict[str, list[str]]:
    """The parameters of ``space`` whose type is not in ``supports``, grouped by type."""
    out: dict[str, list[str]] = {}
    for key, param in space.items():
        if param.type not in supports:
            out.setdefault(param.type, []).append(key)
    return out


@dataclass(frozen=True)
class SearcherSpec:
    """One searcher: what ``sweep.searcher: <name>`` builds.

    ``build(options, settings, ray_dir, param_space)`` gets the validated ``options`` (an instance of
    ``options``), the sweep's settings (``seed``, ``metric``, ``mode``, ``max_concurrent``, …), the sweep's private
    Ray folder (``<results>/<sweep>/_ray``, where state such as a journal may live) and the Tune parameter space;
    it returns a Ray Tune ``Searcher`` or ``SearchAlgorithm``. ``check(options, space)``, if given, runs when the
    space file loads: it may log a note, or raise ``ValueError`` (one line) for a space it cannot search.
    """

    name: str
    build: Callable[[Any, SweepSettings, Path, dict[str, Any]], Any]
    options: type[BaseModel] = NoOptions
    supports: frozenset[str] = PARAM_TYPES  # parameter types it samples: float, int, choice, grid
    adaptive: bool = True  # learns from results (a Ray Searcher); a population-evolving scheduler cannot take one
    resumes_from_journal: bool = False  # --resume samples the missing trials anew (reloading its journal, if any)
    check: Callable[[Any, dict[str, Param]], None] | None = None
    summary: str = ""  # one line for docs and listings

    def parse_options(self, raw: dict[str, Any]) -> BaseModel:
        """``sweep.searcher_options`` validated (one-line ``ValueError`` on a problem)."""
        return parse_options("searcher", self.name, self.options, raw)

    def check_space(self, options: BaseModel, space: dict[str, Param]) -> None:
        """Raise a one-line ``ValueError`` if ``space`` has parameter types this searcher cannot sample."""
        bad = unsupported_types(self.supports, space)
        for kind, keys in bad.items():
            able = [s for s in SEARCHERS.names() if kind in SEARCHERS.get(s).supports]
            raise ValueError(
                f"searcher {self.name} cannot take {kind} parameters ({', '.join(keys)}); "
                f"searchers that can: {', '.join(able) or 'none'}"
            )
        if self.check is not None:
            self.check(options, space)


SEARCHERS: Registry[SearcherSpec] = Registry("searcher", group="zsl_bench.searchers")
FALLBACK = "random"  # what a smoke run of a space with nothing left to search uses


def register_searcher(spec: SearcherSpec) -> SearcherSpec:
    """Register ``spec`` under ``spec.name`` (attributed to the module that defines its ``build``)."""
    SEARCHERS.add(spec.name, spec, getattr(spec.build, "__module__", None))
    return spec


# ------------------------------------------------------------------------------------------- basic variants


def _variant_generator(options: Any, settings: SweepSettings, ray_dir: Path, param_space: dict[str, Any]) -> Any:
    """Random draws of ranges and choices, every value of each grid parameter; Tune applies
    ``max_concurrent_trials`` only to a Searcher, so this generator gets its own limit."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=settings.seed, max_concurrent=settings.max_concurrent)


register_searcher(
    SearcherSpec(
        name="random",
        build=_variant_generator,
        adaptive=False,
        resumes_from_journal=True,  # stateless: the missing trials are simply drawn anew
        summary="independent random draws (grid parameters: every value, times num_samples)",
    )
)
register_searcher(
    SearcherSpec(
        name="grid",
        build=_variant_generator,
        supports=frozenset(("grid", "choice")),
        adaptive=False,
        summary="the cross product of the grid values (choice parameters drawn at random), num_samples times",
    )
)


# ---------------------------------------------------------------------------------------------------- optuna

Sampler = Literal["tpe", "cmaes", "gp", "qmc", "random"]
_KNOB_SAMPLERS: dict[str, tuple[str, ...]] = {
    "n_startup_trials": ("tpe", "cmaes", "gp"),
    "multivariate": ("tpe",),
    "sigma0": ("cmaes",),
    "qmc_type": ("qmc",),
}
_SAMPLER_PACKAGES: dict[str, tuple[str, ...]] = {"cmaes": ("cmaes",), "gp": ("scipy", "torch"), "qmc": ("scipy",)}
_INDEPENDENT_CHOICES = {"cmaes": "CMA-ES", "qmc": "QMC"}  # samplers that draw choice parameters at random


class OptunaOptions(Options):
    """``sweep.searcher_options`` of ``searcher: optuna``; unset knobs keep the sampler's own defaults."""

    sampler: Sampler = "tpe"
    n_startup_trials: int | None = Field(None, ge=0)  # tpe, cmaes, gp: random trials before the model is used
    multivariate: bool | None = None  # tpe: model the parameters jointly
    sigma0: float | None = Field(None, gt=0)  # cmaes: initial step size
    qmc_type: Literal["sobol", "halton"] | None = None  # qmc: the low-discrepancy sequence

    @model_validator(mode="after")
    def _knobs_fit_sampler(self) -> OptunaOptions:
        for knob, samplers in _KNOB_SAMPLERS.items():
            if getattr(self, knob) is not None and self.sampler not in samplers:
                raise ValueError(f"{knob} applies to sampler {' / '.join(samplers)}, not {self.sampler}")
        missing = [p for p in _SAMPLER_PACKAGES.get(self.sampler, ()) if importlib.util.find_spec(p) is None]
        if missing:
            raise ValueError(f"sampler {self.sampler} needs {', '.join(missing)}: pip install {' '.join(missing)}")
        return self

    def knobs(self, *names: str) -> dict[str, Any]:
        """The given knobs that the space file set (the others keep Optuna's defaults)."""
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def _tpe(o: OptunaOptions, seed: int) -> Any:
    from optuna.samplers import TPESampler

    return TPESampler(seed=seed, **o.knobs("n_startup_trials", "multivariate"))


def _cmaes(o: OptunaOptions, seed: int) -> Any:
    from optuna.samplers import CmaEsSampler

    return CmaEsSampler(seed=seed, **o.knobs("n_startup_trials", "sigma0"))


def _gp(o: OptunaOptions, seed: int) -> Any:
    from optuna.samplers import GPSampler

    return GPSampler(seed=seed, **o.knobs("n_startup_trials"))


def _qmc(o: OptunaOptions, seed: int) -> Any:
    from optuna.exceptions import ExperimentalWarning
    from optuna.samplers import QMCSampler

    with warnings.catch_warnings():  # chosen on purpose in the space file
        warnings.simplefilter("ignore", ExperimentalWarning)
        return QMCSampler(seed=seed, **o.knobs("qmc_type"))


def _random(o: OptunaOptions, seed: int) -> Any:
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed)


SAMPLERS: dict[str, Callable[[OptunaOptions, int], Any]] = {
    "tpe": _tpe,
    "cmaes": _cmaes,
    "gp": _gp,
    "qmc": _qmc,
    "random": _random,
}


def _optuna(options: OptunaOptions, settings: SweepSettings, ray_dir: Path, param_space: dict[str, Any]) -> Any:
    """OptunaSearch with the chosen sampler (seeded with the sweep's seed) and the study in ``optuna.journal``."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(ray_dir / "optuna.journal")))
    sampler = SAMPLERS[options.sampler](options, settings.seed)
    return OptunaSearch(sampler=sampler, storage=storage, study_name=ray_dir.parent.name)


def _check_optuna(options: OptunaOptions, space: dict[str, Param]) -> None:
    """CMA-ES and QMC draw choice parameters independently (Optuna falls back to its random sampler for them),
    and CMA-ES needs two or more numeric parameters: allowed, with a note, since the rest is still searched."""
    method = _INDEPENDENT_CHOICES.get(options.sampler)
    if method is None:
        return
    choices = sorted(k for k, p in space.items() if p.type == "choice")
    if choices:
        names = ", ".join(choices)
        log.warning("sampler %s draws %s at random (Optuna samples choices outside %s)", options.sampler, names, method)
    numeric = [k for k, p in space.items() if p.type in ("float", "int")]
    if options.sampler == "cmaes" and len(numeric) < 2:
        log.warning("sampler cmaes needs two or more float/int parameters (has %d): it samples at random", len(numeric))


register_searcher(
    SearcherSpec(
        name="optuna",
        build=_optuna,
        options=OptunaOptions,
        supports=frozenset(("float", "int", "choice")),
        resumes_from_journal=True,
        check=_check_optuna,
        summary="Optuna with sampler tpe (default) | cmaes | gp | qmc | random; the study in _ray/optuna.journal",
    )
)
