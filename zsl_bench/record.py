"""The typed run record: what the engine writes into a run directory and what search and reports read back.

``summary.json`` is a :class:`RunSummary` (``schema_version`` :data:`SCHEMA_VERSION`; a summary without the field
was written before it existed, version 0, and reads the same). Each ``metrics.jsonl`` line is an
:class:`EvalRecord`. A whole run directory, parsed and checked, is a :class:`RunRecord`.

:data:`METRICS` is the one table of reported metrics (key, display label, direction, percent or not): the
engine's records, the leaderboard rows and columns, plots and JSON outputs all take their metrics from it, so a
new leaderboard column is one entry there. :func:`config_identity` is the one rule for "the same configuration".
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

__all__ = [
    "METRIC",
    "METRICS",
    "SCHEMA_VERSION",
    "EvalRecord",
    "Metric",
    "RunRecord",
    "RunSummary",
    "Selection",
    "config_identity",
    "config_key",
    "mean_scores",
    "metric_columns",
    "metric_names",
    "parse_summary",
    "read_summary",
]

SCHEMA_VERSION = 1
"""Version of the ``summary.json`` written now; summaries without ``schema_version`` are version 0."""

ACCURACY_MODES = ("per_class", "per_sample")
"""How CZSL, U and S average (``eval.accuracy``; runs written before the option: ``per_class``)."""

SELECTIONS = {"val": "best_by_val", "test": "best_by_test"}
"""Selection name → the ``summary.json`` block holding the numbers at the epoch/γ it chose."""


@dataclass(frozen=True)
class Metric:
    """One reported metric: how records name it and how tables show it."""

    name: str  # key in metrics.jsonl records, summary.json score blocks and leaderboard rows
    label: str  # column header in tables and plots
    direction: str = "max"  # "max" or "min": which value is best (bold in tables)
    percent: bool = True  # a fraction in records, shown ×100 in tables and JSON rows
    table: str = "gzsl"  # the leaderboard table that shows it: "czsl" or "gzsl"
    std: bool = False  # tables show mean ± std over seeds, JSON rows carry ``<name>_std``
    required: bool = True  # every score block has it (False for a metric added later: old runs lack it)

    def best(self, values: list[float]) -> float:
        """The best of ``values`` in this metric's direction."""
        return max(values) if self.direction == "max" else min(values)


METRICS: tuple[Metric, ...] = (
    Metric("czsl", "CZSL", table="czsl", std=True),
    Metric("u", "U"),
    Metric("s", "S"),
    Metric("h", "H", std=True),
)
"""Every reported metric, in column order."""

METRIC = {m.name: m for m in METRICS}
CZSL, H = "czsl", "h"


def metric_names(table: str | None = None) -> tuple[str, ...]:
    """Names of the metrics (of one leaderboard ``table``: ``czsl`` or ``gzsl``), in column order."""
    return tuple(m.name for m in METRICS if table is None or m.table == table)


def metric_columns() -> tuple[str, ...]:
    """The metric keys of a JSON leaderboard row: each name, followed by ``<name>_std`` where it has one."""
    return tuple(key for m in METRICS for key in (m.name, *((f"{m.name}_std",) if m.std else ())))


def mean_scores(blocks: list[dict[str, float]]) -> dict[str, float]:
    """The mean over ``blocks`` (score blocks, e.g. one per seed) of each metric they all have, in column order."""
    names = [m for m in metric_names() if all(m in b for b in blocks)]
    return {m: sum(b[m] for b in blocks) / len(blocks) for m in names}


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


Finite = Annotated[float, BeforeValidator(_finite)]


def _scores(block: Any) -> dict[str, float] | None:
    """A score block ``{czsl, u, s, h, …}``: every required metric a finite number, others kept if numbers."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError("not a mapping")
    out = {}
    for metric in METRICS:
        if metric.required or block.get(metric.name) is not None:
            try:
                out[metric.name] = _finite(block.get(metric.name))
            except ValueError as exc:
                raise ValueError(f"{metric.name}: {exc}") from None
    return out


Scores = Annotated[dict[str, float] | None, BeforeValidator(_scores)]


class Selection(BaseModel):
    """A ``best_by_val`` / ``best_by_test`` block: the epochs and γ chosen and the scores there."""

    model_config = ConfigDict(extra="allow")

    epoch: int | None = None  # the GZSL epoch (best H)
    czsl_epoch: int | None = None  # the CZSL epoch (best CZSL)
    gamma: float | None = None
    val: Scores = None  # absent in stage final (no validation split)
    test: Scores = None


class RunSummary(BaseModel):
    """``summary.json``: where a run stands and the numbers at its selected epochs."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = 0
    status: str = "running"  # running | completed | stopped
    epochs_run: int = 0
    best_by_val: Selection | None = None
    best_by_test: Selection | None = None
    compute_s: Finite = 0.0
    device: str | None = None  # "cpu", "cuda", "cuda:0", …
    stage: str | None = None  # search | final
    accuracy: str | None = None  # eval.accuracy of the run
    model_info: dict[str, Any] | None = None

    @field_validator("compute_s", mode="before")
    @classmethod
    def _no_compute(cls, value: Any) -> Any:
        return 0.0 if value is None else value

    def selection(self, name: str) -> Selection | None:
        """The block of selection ``name`` (``val`` or ``test``)."""
        return getattr(self, SELECTIONS[name])

    def scores(self, selection: str, split: str) -> dict[str, float] | None:
        """The ``split`` scores (``val`` or ``test``) at the epoch/γ that ``selection`` chose; None when absent."""
        chosen = self.selection(selection)
        return getattr(chosen, split, None) if chosen is not None else None

    def dump(self) -> dict[str, Any]:
        """The JSON object written to ``summary.json`` (the fields it was given)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def written(cls, **fields: Any) -> RunSummary:
        """A summary as the engine writes it now (``schema_version`` :data:`SCHEMA_VERSION`)."""
        return cls.model_validate({**fields, "schema_version": SCHEMA_VERSION})


class EvalRecord(BaseModel):
    """One ``metrics.jsonl`` line: one evaluation split after one epoch (the metrics of :data:`METRICS`, fractions,
    as extra fields)."""

    model_config = ConfigDict(extra="allow")

    epoch: int
    split: str  # val | test
    gamma: float | None = None
    gamma_from: str | None = None  # val | fixed
    score_space: str | None = None
    accuracy: str | None = None
    calibrated_on_test: dict[str, Any] | None = None  # test split: γ calibrated on test and its u, s, h
    train_loss: float | None = None
    time_s: float | None = None
    inherited_from: str | None = None  # PBT: the run whose records these epochs copy

    def scores(self) -> dict[str, float]:
        """The metrics of this evaluation by name."""
        return _scores(self.model_extra or {}) or {}

    def dump(self) -> dict[str, Any]:
        """The JSON object of its ``metrics.jsonl`` line (the fields it was given)."""
        return self.model_dump(mode="json", exclude_unset=True)


def parse_summary(summary: Any) -> RunSummary:
    """``summary.json``'s object as a :class:`RunSummary`; ``ValueError`` naming the bad field."""
    if not isinstance(summary, dict):
        raise ValueError("not a mapping")
    try:
        return RunSummary.model_validate(summary)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None


def read_summary(summary: Any) -> RunSummary:
    """``summary.json``'s object as a :class:`RunSummary`, for readers that only skip bad runs: a missing or
    malformed summary reads as an empty one (status ``running``, nothing selected)."""
    try:
        return parse_summary(summary)
    except ValueError:
        return RunSummary()


@dataclass(frozen=True)
class RunRecord:
    """One run directory, parsed and checked (see :func:`zsl_bench.rundir.read_record`)."""

    path: Path
    config: dict[str, Any]
    summary: RunSummary | None
    error: str | None = None
    done: bool = False
    metrics: tuple[dict[str, Any], ...] = ()  # the metrics.jsonl lines, as read

    def evals(self) -> list[EvalRecord]:
        """The ``metrics.jsonl`` lines as :class:`EvalRecord`; ``ValueError`` for a line of the wrong shape."""
        try:
            return [EvalRecord.model_validate(line) for line in self.metrics]
        except ValidationError as exc:
            raise ValueError(f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None

    @property
    def status(self) -> str:
        """``failed`` when ``error.txt`` exists, else the summary's status (``running`` without one)."""
        if self.error is not None:
            return "failed"
        return self.summary.status if self.summary is not None else "running"

    @property
    def scored(self) -> bool:
        """Finished (``done``, no error) with status completed or stopped: its numbers count."""
        return self.done and self.error is None and self.status in ("completed", "stopped")

    def section(self, name: str) -> dict[str, Any]:
        """The config section ``name`` (empty when absent)."""
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def stage(self) -> str:
        """``search`` or ``final``: from the config's meta, else the summary, else ``search``."""
        return str(self.section("meta").get("stage") or (self.summary and self.summary.stage) or "search")

    @property
    def accuracy(self) -> str:
        """The run's ``eval.accuracy`` (``per_class`` when absent)."""
        return str(self.section("eval").get("accuracy") or "per_class")


# ------------------------------------------------------------------------------------- configuration identity

RUN_SETTINGS: dict[str, tuple[str, ...]] = {
    "data": ("root",),
    "train": ("device", "num_threads", "checkpoint"),
    "eval": ("batch_size",),
}
"""Config keys that do not change what is trained or measured (besides ``meta``)."""

SEED_KEYS: dict[str, tuple[str, ...]] = {"train": ("seed",)}


def config_identity(config: dict[str, Any], *, seeds: bool = True) -> dict[str, Any]:
    """What makes two configurations the same: ``config`` without ``meta`` and :data:`RUN_SETTINGS` (and the seed
    unless ``seeds``); ``eval.accuracy: per_class``, the default, is dropped so runs written before the option
    match."""
    tree = {k: v for k, v in config.items() if k != "meta"}
    dropped = [RUN_SETTINGS] if seeds else [RUN_SETTINGS, SEED_KEYS]
    for keys_of in dropped:
        for section, keys in keys_of.items():
            if isinstance(tree.get(section), dict):
                tree[section] = {k: v for k, v in tree[section].items() if k not in keys}
    if isinstance(tree.get("eval"), dict) and tree["eval"].get("accuracy") == "per_class":
        tree["eval"] = {k: v for k, v in tree["eval"].items() if k != "accuracy"}
    return tree


def config_key(config: dict[str, Any]) -> str:
    """A short hash of a configuration's identity across seeds."""
    tree = config_identity(config, seeds=False)
    return hashlib.sha1(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()[:12]
