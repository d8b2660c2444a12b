"""Pure helpers around the two sweep stages and the smoke variant (no Ray here).

- ``final_runs``: after the search, the top-k search trials (by their validation selection) become final-stage
  runs — retrained on trainval with ``seeds_final`` seeds, for the epoch count and gamma chosen on validation.
- ``smoke_variant``: any space turned into a 2-trial × 1-epoch check on the synthetic data with the family's
  tiny model, before cluster time is spent.

Callers: ``tune_stages`` (``final_runs``), ``resume`` and ``tune_backend``'s summary (reading runs), the ``sweep``
command (``smoke_variant``) and ``benchmarks/search_efficiency.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_bench.config import ExperimentConfig, build_config, to_dict
from zsl_bench.record import read_summary
from zsl_bench.rundir import Run, UnreadableRun, find_run_dirs, read_run
from zsl_bench.search.space import Param, SearchSpace, SweepSettings


@dataclass(frozen=True)
class PlannedRun:
    """A run to execute with a known configuration (final stage, or an unfinished trial to continue)."""

    name: str  # run directory name, e.g. final-1-seed0
    config: dict[str, Any]  # the full, validated experiment config


def selection_value(run: Run, metric: str) -> float | None:
    """``metric`` ``split/key`` (e.g. ``val/h``) of a finished run, read from its ``best_by_val`` selection."""
    split, _, key = metric.partition("/")
    if not run.done or run.error or not run.summary:
        return None
    block = read_summary(run.summary).scores("val", split) or {}
    return block.get(key)


def read_runs(sweep_dir: Path) -> list[Run]:
    """Every readable run of a sweep directory (search and final stages)."""
    runs = []
    for path in find_run_dirs(sweep_dir):
        try:
            runs.append(read_run(path))
        except UnreadableRun:
            continue
    return runs


def stage_of(run: Run) -> str:
    return run.config.get("meta", {}).get("stage", "search")


def search_runs(sweep_dir: Path) -> list[Run]:
    """The readable search-stage runs of a sweep directory."""
    return [run for run in read_runs(sweep_dir) if stage_of(run) == "search"]


def final_runs(sweep_dir: Path, metric: str, mode: str, top_k: int, seeds: int) -> list[PlannedRun]:
    """Final-stage configs for the ``top_k`` best finished search trials × ``seeds`` seeds."""
    scored = [(v, r) for r in search_runs(sweep_dir) if (v := selection_value(r, metric)) is not None]
    scored.sort(key=lambda vr: (-vr[0] if mode == "max" else vr[0], vr[1].path.name))
    out = []
    for rank, (_, run) in enumerate(scored[:top_k], start=1):
        best = read_summary(run.summary).best_by_val
        tree = {k: v for k, v in run.config.items() if k != "meta"}
        for seed in range(seeds):
            name = f"final-{rank}-seed{seed}"
            overrides = {
                "train.seed": tree["train"]["seed"] + seed,
                "train.epochs": best.epoch,
                "eval.gamma": best.gamma,
                "meta.stage": "final",
                "meta.sweep": run.config.get("meta", {}).get("sweep"),
                "meta.trial_id": name,
                "meta.sweep_settings": run.config.get("meta", {}).get("sweep_settings", {}),
                "meta.parent": run.path.name,
            }
            out.append(PlannedRun(name, to_dict(build_config(tree, overrides, source=str(run.path)))))
    return out


def dotted(tree: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` (``optim.lr``) of a config tree, or None where the path is missing."""
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def tiny_model_for(name: str) -> str:
    """The CPU test model its family declares for model ``name`` (``zeromamba_vmamba_s`` → ``zeromamba_test``)."""
    from zsl_bench.models import MODELS

    return MODELS.get(name).tiny


def smoke_variant(space: SearchSpace, base: ExperimentConfig, data_root: Path) -> tuple[SearchSpace, ExperimentConfig]:
    """``space``/``base`` shrunk to 2 trials × 1 epoch on the synthetic data with the tiny model of each family."""
    models = {base.model.name}
    params = dict(space.space)
    if "model.name" in params:
        models = set(params["model.name"].values or [])
    tiny = sorted({tiny_model_for(m) for m in models})
    for key in list(params):
        if key.startswith(("model.", "data.")):
            del params[key]  # sizes and options of the real model/dataset do not apply to the tiny ones
    if len(tiny) > 1:
        params["model.name"] = Param(type="choice", values=tiny)
    tree = to_dict(base)
    tree["model"] = {"name": tiny[0], "options": {}}
    tree["data"] = {**tree["data"], "name": "synth", "root": str(data_root), "image_size": None}
    tree["train"] = {**tree["train"], "epochs": 1, "device": "cpu", "batch_size": 64}
    sweep = space.sweep.model_copy(
        update={
            "num_samples": 2,
            "max_concurrent": 2,
            "resources_per_trial": space.sweep.resources_per_trial.model_copy(update={"cpu": 1, "gpu": 0}),
            "top_k": min(space.sweep.top_k, 1),
            "seeds_final": 1,
            **smoke_plugins(space.sweep, params),
        }
    )
    smoke = space.model_copy(update={"space": params, "sweep": sweep, "set": {}})
    return smoke, build_config(tree, source="smoke variant")


def smoke_plugins(sweep: SweepSettings, params: dict[str, Param]) -> dict[str, Any]:
    """Settings updates for a smoke space: the plain searcher (``searchers.FALLBACK``) where the space's own cannot
    sample what is left (nothing, or the tiny models' choice), and the plain scheduler where the space's own cannot
    run with that (e.g. PBT with nothing to mutate); the options of a replaced entry are dropped."""
    from zsl_bench.search import schedulers, searchers

    update: dict[str, Any] = {}
    searcher = sweep.searcher_spec()
    if not params or searchers.unsupported_types(searcher.supports, params):
        update = {"searcher": searchers.FALLBACK, "searcher_options": {}}
        searcher = searchers.SEARCHERS.get(searchers.FALLBACK)
    try:
        sweep.scheduler_spec().check_space(searcher, params)
    except ValueError:
        update |= {"scheduler": schedulers.FALLBACK, "scheduler_options": {}}
    return update
