"""Search-space files (DESIGN.md §4): parse and validate before anything is launched.

```yaml
base: quickstart                 # preset name or path to an experiment YAML (relative to this file or cwd)
set: {train.epochs: 6}           # fixed overrides applied to the base
sweep: {metric: val/h, mode: max, searcher: optuna, scheduler: asha, num_samples: 8, max_concurrent: 2,
        resources_per_trial: {cpu: 1, gpu: 0}}
space:
  optim.lr:    {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  model.name:  {type: choice, values: [resnet_test, vit_test]}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zsl_bench.config import ExperimentConfig, build_config, check_key, read_yaml, resolve_base
from zsl_bench.errors import UserError
from zsl_bench.registry import close_matches


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class SweepSettings(_Strict):
    name: str | None = None  # default: the space file's stem
    metric: str = "val/h"
    mode: Literal["max", "min"] = "max"
    searcher: Literal["optuna", "random", "grid"] = "optuna"
    scheduler: Literal["asha", "fifo", "pbt"] = "asha"
    num_samples: int = Field(8, ge=1)
    max_concurrent: int = Field(2, ge=1)
    resources_per_trial: Resources = Field(default_factory=Resources)
    grace_period: int = Field(1, ge=1)  # ASHA: epochs before a trial may be stopped
    reduction_factor: float = Field(2.0, gt=1)
    perturbation_interval: int = Field(2, ge=1)  # PBT: epochs between exploit/explore steps
    seed: int = 0  # searcher seed
    max_failures: int = Field(0, ge=0)  # retries of a crashed trial, from its last checkpoint
    top_k: int = Field(1, ge=0)  # stage final retrains the k best search trials (0: no final stage)
    seeds_final: int = Field(1, ge=1)  # ... each with this many seeds, on trainval, evaluated on test


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
    def _searcher_fits_space(self) -> SearchSpace:
        grids = [k for k, p in self.space.items() if p.type == "grid"]
        ranges = [k for k, p in self.space.items() if p.type in ("float", "int")]
        if self.sweep.searcher == "optuna" and grids:
            raise ValueError(f"searcher optuna cannot take grid parameters ({', '.join(grids)}); use searcher: grid")
        if self.sweep.searcher == "grid" and ranges:
            raise ValueError(f"searcher grid needs grid/choice values, not ranges ({', '.join(ranges)})")
        if self.sweep.scheduler == "pbt" and (self.sweep.searcher != "random" or grids):
            raise ValueError("scheduler pbt evolves a random population: use searcher: random and no grid parameters")
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
    base = _base_path(space.base, path)
    for key in space.set:
        check_key(key, f"{path} (set)")
    base_cfg = build_config(base, space.set)
    _check_names(base_cfg, f"{path} (base)")
    for key, param in space.space.items():
        check_key(key, f"{path} (space)")
        values = param.values if param.type in ("choice", "grid") else [param.example()]
        for value in values:  # every choice, and one value of each numeric range, must fit the schema
            try:
                _check_names(build_config(base, {**space.set, key: value}), "")
            except UserError as exc:
                raise UserError(f"{path}: space key {key!r}: {exc}") from None
    return space, base_cfg


def _check_names(cfg: ExperimentConfig, where: str) -> None:
    """Model and dataset names must be registered (checked here, not after the cluster has started)."""
    from zsl_bench.data.datasets import DATASETS
    from zsl_bench.models import MODELS

    try:
        MODELS.get(cfg.model.name)
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
    return f"{loc}: {err['msg'].removeprefix('Value error, ')}"
