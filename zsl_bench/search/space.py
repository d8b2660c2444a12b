"""Search-space files (docs/architecture.md#the-search-space-file): parse and validate before anything is launched.

```yaml
base: quickstart                 # preset name or path to an experiment YAML (relative to this file or cwd)
set: {train.epochs: 6}           # fixed overrides applied to the base
sweep: {metric: val/h, mode: max, searcher: optuna, searcher_options: {sampler: tpe}, scheduler: asha,
        scheduler_options: {grace_period: 2}, num_samples: 8, max_concurrent: 2, resources_per_trial: {cpu: 1}}
space:
  optim.lr:    {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  model.name:  {type: choice, values: [resnet_test, vit_test]}
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zsl_bench.config import ExperimentConfig, build_config, check_key, read_yaml, resolve_base, to_dict
from zsl_bench.errors import UserError
from zsl_bench.registry import Registry, close_matches
from zsl_bench.search.schedulers import SCHEDULERS, SchedulerSpec
from zsl_bench.search.searchers import SEARCHERS, SearcherSpec

MAX_SAMPLES = 1_000_000  # trials of one sweep (num_samples: 1.0e+30 is a typo, not a plan)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # high: 1.0e999 is inf: refused here, not in Ray


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


_MOVED = ("grace_period", "reduction_factor", "perturbation_interval")  # flat knobs now in scheduler_options
_NOT_IN_SWEEP_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")  # separators and control characters


def sweep_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name a sweep's folder under the results root, or None when it can: it must be one
    path component (no ``/`` or ``\\``, no control characters, not ``.``, ``..`` or ``~...``, at most 200
    bytes), so nothing is written outside ``--results``. Spaces and quotes are fine: a space file called
    ``my sweep.yaml`` names the sweep ``my sweep``, and the SLURM script quotes it."""
    if (
        not isinstance(name, str)
        or not name
        or len(name.encode()) > 200
        or name in (".", "..")
        or name.startswith("~")
        or _NOT_IN_SWEEP_NAME.search(name)
    ):
        return (
            f"sweep name {name!r} is not one folder name: no '/', '\\' or control characters, not '.', '..' "
            "or '~...', at most 200 bytes"
        )
    return None


def check_sweep_name(name: Any, source: str) -> None:
    """``UserError`` (naming ``source``: --name, the space file) unless :func:`sweep_name_problem` accepts it."""
    problem = sweep_name_problem(name)
    if problem:
        raise UserError(f"{problem} (from {source})")


class SweepSettings(_Strict):
    """The ``sweep:`` block. ``searcher`` and ``scheduler`` name registered plugins (``search.searchers``,
    ``search.schedulers``); their ``*_options`` are validated against the plugin's typed options when the space
    loads, and stored resolved (defaults filled in)."""

    name: str | None = None  # default: the space file's stem
    metric: str = "val/h"
    mode: Literal["max", "min"] = "max"
    searcher: str = "optuna"
    searcher_options: dict[str, Any] = Field(default_factory=dict)
    scheduler: str = "asha"
    scheduler_options: dict[str, Any] = Field(default_factory=dict)
    num_samples: int = Field(8, ge=1, le=MAX_SAMPLES)
    max_concurrent: int = Field(2, ge=1, le=MAX_SAMPLES)
    resources_per_trial: Resources = Field(default_factory=Resources)
    seed: int = 0  # searcher seed
    max_failures: int = Field(0, ge=0)  # retries of a crashed trial, from its last checkpoint
    top_k: int = Field(1, ge=0)  # stage final retrains the k best search trials (0: no final stage)
    seeds_final: int = Field(1, ge=1)  # ... each with this many seeds, on trainval, evaluated on test

    @field_validator("name")
    @classmethod
    def _one_folder(cls, name: str | None) -> str | None:
        problem = None if name is None else sweep_name_problem(name)
        if problem:
            raise ValueError(problem)
        return name

    @model_validator(mode="before")
    @classmethod
    def _moved_knobs(cls, data: Any) -> Any:
        for key in _MOVED if isinstance(data, dict) else ():
            if key in data:
                raise ValueError(f"{key} moved: write it as scheduler_options: {{{key}: {data[key]}}}")
        return data

    @model_validator(mode="after")
    def _resolve_plugins(self) -> SweepSettings:
        self.searcher_options = _plugin(SEARCHERS, self.searcher).parse_options(self.searcher_options).model_dump()
        self.scheduler_options = _plugin(SCHEDULERS, self.scheduler).parse_options(self.scheduler_options).model_dump()
        return self

    def searcher_spec(self) -> SearcherSpec:
        """The registered searcher these settings name."""
        return SEARCHERS.get(self.searcher)

    def scheduler_spec(self) -> SchedulerSpec:
        """The registered scheduler these settings name."""
        return SCHEDULERS.get(self.scheduler)

    def searcher_config(self) -> BaseModel:
        """``searcher_options`` as the searcher's typed options."""
        return self.searcher_spec().parse_options(self.searcher_options)

    def scheduler_config(self) -> BaseModel:
        """``scheduler_options`` as the scheduler's typed options."""
        return self.scheduler_spec().parse_options(self.scheduler_options)

    def replace(self, **changes: Any) -> SweepSettings:
        """A validated copy with ``changes``; a searcher or scheduler changed by name drops the options of the old
        one (unless new ones are given). Prefer it to ``model_copy``, which validates nothing."""
        data = self.model_dump()
        for kind in ("searcher", "scheduler"):
            if kind in changes and changes[kind] != data[kind]:
                data[f"{kind}_options"] = {}
        return SweepSettings.model_validate({**data, **changes})

    def record(self) -> dict[str, Any]:
        """These settings as plain data, the searcher's and scheduler's options resolved (for a run's meta)."""
        out = self.model_dump(mode="json")
        out["searcher_options"] = self.searcher_config().model_dump(mode="json")
        out["scheduler_options"] = self.scheduler_config().model_dump(mode="json")
        return out


def _plugin(registry: Registry[Any], name: str) -> Any:
    """The registered entry ``name``; an unknown name is a ``ValueError`` (pydantic adds where it was)."""
    try:
        return registry.get(name)
    except UserError as exc:
        raise ValueError(str(exc)) from None


class Param(_Strict):
    type: Literal["float", "int", "choice", "grid"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.type in ("choice", "grid"):
            if not self.values:
                raise ValueError(f"type {self.type} needs a non-empty 'values' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"type {self.type} needs 'low' and 'high'")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0 (got {self.low})")
        if self.type == "int" and not (self.low.is_integer() and self.high.is_integer()):
            raise ValueError(f"type int needs whole numbers for low and high (got {self.low:g} and {self.high:g})")
        return self

    def example(self) -> Any:
        """A value of the right type, used to check the key against the config schema."""
        if self.type in ("choice", "grid"):
            return self.values[0]  # type: ignore[index]
        return int(self.low) if self.type == "int" else self.low  # type: ignore[arg-type]


class SearchSpace(_Strict):
    base: str
    set: dict[str, Any] = Field(default_factory=dict)
    sweep: SweepSettings = Field(default_factory=SweepSettings)
    space: dict[str, Param]

    @model_validator(mode="after")
    def _plugins_fit_space(self) -> SearchSpace:
        """The searcher samples every parameter type of the space; the scheduler runs with both."""
        searcher = self.sweep.searcher_spec()
        searcher.check_space(self.sweep.searcher_config(), self.space)
        self.sweep.scheduler_spec().check_space(searcher, self.space)
        return self


def load_space(path: str | Path) -> tuple[SearchSpace, ExperimentConfig]:
    """Parse and validate a space file; returns it with its base config (``set`` applied).

    Every problem — unknown key, bad distribution, a value the config rejects — is one ``UserError`` line
    naming the file and the key.
    """
    path = Path(path)
    raw = read_yaml(path, "search-space file")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a search-space file is a mapping with base, sweep and space")
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {_explain(exc, SearchSpace)}") from None
    for key in space.set:
        check_key(key, f"{path} (set)")
    base_tree = to_dict(build_config(_base_path(space.base, path)))  # an error in the base file names that file
    base_cfg = build_config(base_tree, space.set, source=f"{path} (set)")  # and one under 'set' this file
    _check_names(base_cfg, f"{path} (base)")
    for key, param in space.space.items():
        check_key(key, f"{path} (space)")
        values = param.values if param.type in ("choice", "grid") else [param.example()]
        for value in values:  # every choice, and one value of each numeric range, must fit the schema
            try:
                _check_names(build_config(base_tree, {**space.set, key: value}, source="the space"), "")
            except UserError as exc:
                raise UserError(f"{path}: space key {key!r}: {exc}") from None
    return space, base_cfg


def _check_names(cfg: ExperimentConfig, where: str) -> None:
    """Model and dataset names must be registered and the model's options must fit its declared options (checked
    here, not after the cluster has started)."""
    from zsl_bench.data.datasets import DATASETS
    from zsl_bench.models import MODELS

    try:
        MODELS.get(cfg.model.name).check_options(cfg.model.options)
        DATASETS.get(cfg.data.name)
    except UserError as exc:
        raise UserError(f"{where}: {exc}" if where else str(exc)) from None


def _base_path(base: str, space_file: Path) -> str | Path:
    """``base`` relative to the space file if that file exists there, else as given (preset or cwd path)."""
    beside = space_file.parent / base
    if beside.is_file():
        return beside
    resolve_base(base)  # raises a UserError for an unknown preset
    return base


def _explain(exc: ValidationError, model: type[BaseModel]) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        name = str(err["loc"][-1])
        parent: Any = model
        for part in err["loc"][:-1]:
            if getattr(parent, "__origin__", None) is dict:  # a free-named entry, e.g. space.<key>
                parent = parent.__args__[1]
                continue
            fields = getattr(parent, "model_fields", {})
            parent = fields[part].annotation if part in fields else None
        choices = list(getattr(parent, "model_fields", {}))
        hint = close_matches(name, choices, n=1)
        return f"unknown key {loc!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
    if err["type"] == "missing":
        return f"missing required key {loc!r}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg  # a check across blocks (searcher vs. space) has no single place
