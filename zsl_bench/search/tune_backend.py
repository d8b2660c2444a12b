"""Run a validated search space on a local Ray cluster with Ray Tune and the space's searcher and scheduler.

With ``search.searchers`` and ``search.schedulers`` (whose ``build`` functions import them), the only module that
imports ray and optuna. Two stages, both through Ray Tune:

1. ``search``: trials sampled by the registered searcher, stopped early (or evolved) by the registered scheduler,
   each ``engine.run_trial`` on the honest validation split, writing ``<results>/<sweep>/<trial_id>/``.
2. ``final``: the top-k search configurations retrained on trainval with ``seeds_final`` seeds
   (``<results>/<sweep>/final-<rank>-seed<s>/``), evaluated on test.

Ray's own state lives in ``<results>/<sweep>/_ray/`` (ignored by readers): the Tune experiments, the private
auth token, and the Optuna study (``optuna.journal``, openable with optuna-dashboard). ``resume=True`` continues a
sweep after its driver died from what zsl-bench itself wrote, never through Tune's restore (which unpickles
``tuner.pkl`` from the results folder, a shared filesystem on a cluster, and can miss trials started just before a
hard kill): unfinished run directories continue from their last checkpoint, the missing trials are sampled anew
(grid points: exactly the points no run directory holds; other draws: a searcher seeded past the ones already
made, the Optuna one reloading its study from the journal); the final stage skips runs that are already done.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_bench.config import ExperimentConfig, build_config, to_dict, validate
from zsl_bench.data.datasets import check_dataset
from zsl_bench.errors import TrialFailed, UserError
from zsl_bench.plugins import ray_runtime_env
from zsl_bench.rundir import DONE, ERROR, RunWriter, find_run_dirs, reopen_stopped
from zsl_bench.search.space import Param, SearchSpace, SweepSettings, check_sweep_name
from zsl_bench.search.stages import (
    PlannedRun,
    final_runs,
    finished_count,
    read_runs,
    search_runs,
    selection_value,
    stage_of,
    unfinished_runs,
)

log = logging.getLogger(__name__)

Objective = Callable[..., Any]  # run_trial(config, run_dir, report=...) or a stand-in (benchmarks)


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


def ensure_local_token(ray_dir: Path) -> None:
    """Turn on Ray token auth for the cluster this process starts, with a private per-sweep token file.

    Keeps the user's ``~/.ray`` untouched; every Ray process started from here inherits the two variables.
    An already configured token (``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH``) is respected. A token left by an
    earlier run is reused only when it is this user's, mode 0600 (``cluster.auth.check_token_file``). Must run
    before ``import ray``: Ray reads ``RAY_AUTH_MODE`` on import.
    """
    from zsl_bench.cluster.auth import check_token_file, create_token

    os.environ["RAY_AUTH_MODE"] = "token"
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    token = ray_dir / "auth_token"
    if os.path.lexists(token):
        check_token_file(token)
    else:
        create_token(token)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)


def to_tune_domain(param: Param) -> Any:
    """One validated ``Param`` → the Ray Tune sampling domain."""
    from ray import tune

    if param.type == "grid":
        return tune.grid_search(param.values)
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
    ray_dir = sweep_dir / "_ray"
    workers = workers_per_trial(space, base)
    if not resume and any(True for _ in find_run_dirs(sweep_dir)):
        raise UserError(f"sweep {name!r} already has runs in {sweep_dir}; pass --resume to continue it or --name NEW")
    if not any(key.startswith("data.") for key in space.space):  # every trial reads this data: check it once, now
        try:
            check_dataset(base.data.name, base.data.root, base.data.features)
        except UserError as exc:
            raise UserError(f"{exc} (in a sweep: data.root under the space's 'set', or --set data.root=DIR)") from exc
    ray_dir.mkdir(parents=True, exist_ok=True)
    if "ray" in sys.modules and os.environ.get("RAY_AUTH_MODE") != "token":
        raise RuntimeError("ray was imported before run_sweep set up token auth; set RAY_AUTH_MODE=token first")
    if address:  # attach: the cluster's own token, never a per-sweep one
        os.environ["RAY_AUTH_MODE"] = "token"
        if not (os.environ.get("RAY_AUTH_TOKEN_PATH") or os.environ.get("RAY_AUTH_TOKEN")):
            raise UserError(
                f"--address {address}: no token for that cluster; export RAY_AUTH_TOKEN_PATH=FILE (its token file)"
            )
    else:
        ensure_local_token(ray_dir)
    # Save Tune's experiment state after every controller step (default: at most every 10 s), so a driver
    # killed mid-sweep does not forget trials it had already started.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")

    import ray

    base_tree = absolute_paths(to_dict(base))  # trials run in other processes and working directories
    if objective is None:
        from zsl_bench.engine import run_trial as objective
    runtime_env = ray_runtime_env() or None  # plugin modules given by --plugin / $ZSL_BENCH_PLUGINS
    temp = None
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
    else:
        temp = _start_local_ray(num_cpus, bool(workers), runtime_env)
    outcome = SweepOutcome(name=name, sweep_dir=sweep_dir)
    try:
        if workers:
            space = _fit_concurrency(space, workers)
        else:
            _check_trial_fits(space.sweep.resources_per_trial)
        settings = space.sweep
        # A resumed sweep never goes through Tune's own restore: it unpickles <sweep>/_ray/search/tuner.pkl (code
        # from the results folder), and after a hard kill its trial list can miss trials started just before it
        # while its searcher still counts them as live (Tune then blocks forever, seen in CI). The run
        # directories are the record instead (_complete_search).
        if resume:
            _complete_search(space, base_tree, name, sweep_dir, ray_dir, objective)
        else:
            grid = _search_stage(space, base_tree, name, sweep_dir, ray_dir, objective, "search")
            _record_crashes(grid, sweep_dir)
        finals = final_runs(sweep_dir, settings.metric, settings.mode, settings.top_k, settings.seeds_final)
        if finals:
            _replay_stage(finals, settings, sweep_dir, ray_dir, objective, "final")
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    _summarise(outcome, sweep_dir, space.sweep, set(space.space))
    outcome.wall_s = time.perf_counter() - start
    return outcome


def _start_local_ray(num_cpus: int | None, dashboard: bool, runtime_env: dict[str, Any] | None) -> Path:
    """Start this sweep's own Ray instance, private to this user and machine; returns its temp folder (to remove).

    Ray's temp dir (sessions, logs, sockets: made 0777 by Ray) lies inside a 0700 folder
    (``cluster.head.private_temp_dir``). The node's IP is the loopback one, so every Prometheus metrics server
    (the dashboard agent's ``metrics_export_port``, the dashboard's and the autoscaler's) binds 127.0.0.1: Ray 2.60
    binds them to loopback exactly when the node IP is loopback, and turns a loopback ``_node_ip_address`` into the
    routable IP unless clusters are off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which only forbids other nodes
    joining: none join this instance). Ray's gRPC servers (GCS, raylet, workers) still listen on every interface,
    behind the token."""
    import ray
    from ray._private import ray_constants

    from zsl_bench.cluster.head import check_private, private_temp_dir

    temp = private_temp_dir()
    saved = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the processes Ray starts read it too
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: this process may have imported ray already
    try:
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            # multi-worker trials need it: when Tune stops one, Ray Train frees its workers through the State API
            include_dashboard=dashboard,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env=runtime_env,
            _temp_dir=str(temp / "ray"),
            _node_ip_address="127.0.0.1",
        )
        check_private(temp)
    except BaseException:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        raise
    finally:  # the node knows its IP now; a later attach from this process must not see loopback
        ray_constants.ENABLE_RAY_CLUSTER = saved[0]
        if saved[1] is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = saved[1]
    return temp


def _search_stage(
    space: SearchSpace,
    base_tree: dict[str, Any],
    name: str,
    sweep_dir: Path,
    ray_dir: Path,
    objective: Objective,
    experiment: str,
    param_space: dict[str, Any] | None = None,
) -> Any:
    """A fresh Tune experiment ``experiment`` of the space's searcher and scheduler (``param_space``, default
    the space's domains; a ``_point`` entry holds several parameters' values at once, see :func:`_grid_top_up`)."""
    from ray import tune

    settings = space.sweep
    keep = settings.scheduler_spec().keeps_checkpoints  # the epochs other trials may copy (PBT)
    record = settings.record()

    def trainable(params: dict[str, Any]) -> None:
        trial_id = tune.get_context().get_trial_id()
        params = {**{k: v for k, v in params.items() if k != "_point"}, **params.get("_point", {})}
        overrides = {**params, "meta.sweep": name, "meta.trial_id": trial_id, "meta.stage": "search"}
        overrides["meta.sweep_settings"] = record  # the searcher, scheduler and their resolved options
        cfg = build_config(base_tree, overrides, source=f"sweep {name}")
        if cfg.train.num_threads is None:
            cfg.train.num_threads = max(1, int(settings.resources_per_trial.cpu))
        if keep:
            cfg.train.keep_checkpoints = max(cfg.train.keep_checkpoints, keep)
        _run_objective(objective, cfg, sweep_dir / trial_id, settings, ray_dir)

    multi = base_tree["train"]["strategy"] != "single"
    wrapped = tune.with_resources(trainable, _resources(settings, multi))
    if param_space is None:
        param_space = {key: to_tune_domain(p) for key, p in space.space.items()}
    tuner = tune.Tuner(
        wrapped,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=settings.metric,
            mode=settings.mode,
            search_alg=_searcher(settings, ray_dir, param_space),
            scheduler=_scheduler(settings, base_tree["train"]["epochs"], space.space, multi),
            num_samples=settings.num_samples,
            max_concurrent_trials=settings.max_concurrent,
            reuse_actors=not multi,  # a driver blocked in trainer.fit() cannot be reset for the next trial
        ),
        run_config=_run_config(experiment, ray_dir, settings.max_failures),
    )
    return tuner.fit()


def _complete_search(
    space: SearchSpace, base_tree: dict[str, Any], name: str, sweep_dir: Path, ray_dir: Path, objective: Objective
) -> None:
    """On ``--resume``: continue unfinished run directories (to their last epoch: the scheduler's rung records
    are not restored), then run the trials still missing: the grid points no run directory holds (each once per
    sample), or ``num_samples`` minus the finished trials drawn by a searcher seeded past the draws already made
    (the Optuna one reloads its study from the journal), so a top-up does not repeat a finished configuration."""
    settings = space.sweep
    leftovers = unfinished_runs(sweep_dir)
    if leftovers:
        log.warning("continuing %d unfinished trial(s) from their checkpoints", len(leftovers))
        _replay_stage(leftovers, settings, sweep_dir, ray_dir, objective, "continue")
    finished = finished_count(sweep_dir)
    top_up = _grid_top_up(space, sweep_dir) if _grid_keys(space) else None
    if top_up is not None:
        points, param_space = top_up
        missing, samples = len(points), 1
    else:
        missing = samples = settings.num_samples - finished
        param_space = None
    if missing <= 0:
        return
    log.warning("running %d trial(s) the interrupted sweep had not recorded", missing)
    if not settings.searcher_spec().resumes_from_journal:
        log.warning("searcher %s starts afresh for them (it keeps no journal to reload)", settings.searcher)
    seed = settings.seed + finished + len(leftovers)  # another draw sequence than the interrupted one's
    update = {"num_samples": samples, "seed": seed}
    resumed = space.model_copy(update={"sweep": settings.model_copy(update=update)})
    experiment = f"search-topup-{time.strftime('%Y%m%d-%H%M%S')}"
    grid = _search_stage(resumed, base_tree, name, sweep_dir, ray_dir, objective, experiment, param_space)
    _record_crashes(grid, sweep_dir)


def _grid_keys(space: SearchSpace) -> list[str]:
    """The space's grid parameters, in order."""
    return [key for key, param in space.space.items() if param.type == "grid"]


def _grid_top_up(space: SearchSpace, sweep_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The grid points (dicts of every grid parameter's value) that ``num_samples`` x the cross product asks for
    and no search run directory holds, and the Tune parameter space running each once (``_point``: a grid over
    them; the other parameters' domains as they are)."""
    from ray import tune

    keys = _grid_keys(space)
    values = [space.space[key].values or [] for key in keys]
    wanted = Counter({_frozen(point): space.sweep.num_samples for point in itertools.product(*values)})
    held = Counter(_frozen(tuple(_dotted(run.config, key) for key in keys)) for run in search_runs(sweep_dir))
    originals = {_frozen(point): point for point in itertools.product(*values)}
    points = [dict(zip(keys, originals[p], strict=True)) for p in sorted((wanted - held).elements(), key=repr)]
    param_space = {k: to_tune_domain(p) for k, p in space.space.items() if p.type != "grid"}
    return points, {**param_space, "_point": tune.grid_search(points)}


def _frozen(value: Any) -> Any:
    """``value`` made hashable (lists → tuples, dicts → sorted item tuples) for counting grid points."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


def _replay_stage(
    runs: list[PlannedRun],
    settings: SweepSettings,
    sweep_dir: Path,
    ray_dir: Path,
    objective: Objective,
    label: str,
) -> Any:
    """Run known configurations into their named run directories (``run_trial`` returns finished ones at once
    and continues interrupted ones from their checkpoints)."""
    from ray import tune

    def trainable(params: dict[str, Any]) -> None:
        run = params["run"]
        cfg = validate(run["config"], f"{label} run {run['name']}")
        if cfg.train.num_threads is None:
            cfg.train.num_threads = max(1, int(settings.resources_per_trial.cpu))
        _run_objective(objective, cfg, sweep_dir / run["name"], settings, ray_dir)

    multi = any(r.config["train"].get("strategy", "single") != "single" for r in runs)
    tuner = tune.Tuner(
        tune.with_resources(trainable, _resources(settings, multi)),
        param_space={"run": tune.grid_search([{"name": r.name, "config": r.config} for r in runs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=settings.max_concurrent, reuse_actors=not multi),
        run_config=_run_config(f"{label}-{time.strftime('%Y%m%d-%H%M%S')}", ray_dir, settings.max_failures),
    )
    grid = tuner.fit()
    _record_crashes(grid, sweep_dir, name_of=lambda r: r.config["run"]["name"])
    return grid


def _run_objective(
    objective: Objective, cfg: ExperimentConfig, run_dir: Path, settings: SweepSettings, ray_dir: Path
) -> None:
    """Call the objective with a report that also hands Tune a tiny checkpoint (the epoch reached), so a
    restored or retried trial keeps its iteration count; the weights live in the run directory. A ``ddp`` or
    ``deepspeed`` config runs in ``train.num_workers`` Ray Train workers instead (:func:`_run_workers`)."""
    from ray import tune

    if cfg.train.strategy != "single":
        _run_workers(objective, cfg, run_dir, settings, ray_dir)
        return

    def report(metrics: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "epoch.json").write_text(json.dumps({"epoch": metrics["epoch"], "run_dir": str(run_dir)}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    extra = {}
    marker = _checkpoint_marker()
    source = _foreign_checkpoint(run_dir, marker)
    if source is not None:  # PBT exploit: continue from another trial's weights under this trial's new config
        extra["init_from"] = source
    elif marker is not None and reopen_stopped(run_dir):
        # Tune resumes this trial from its own checkpoint: PBT had paused it (stopping it finalised the run as
        # "stopped"), so it continues from its latest epoch instead of ending there
        log.info("%s: resumed after a pause", run_dir.name)
    try:
        objective(cfg, run_dir, report=report, **extra)
    except TrialFailed:
        return  # recorded in error.txt; a diverged trial is not retried


def _run_workers(
    objective: Objective, cfg: ExperimentConfig, run_dir: Path, settings: SweepSettings, ray_dir: Path
) -> None:
    """This Tune trial (a driver holding no CPU) trains in a Ray Train ``TorchTrainer`` of ``num_workers`` workers
    with ``resources_per_trial`` each; every worker calls the objective, and rank 0's per-epoch report reaches
    Tune (``TuneReportCallback``), so ASHA can stop the trial. Checkpoints are the run directory's own
    (DeepSpeed's ``save_checkpoint`` under ``checkpoint/``): a restored or retried trial resumes from them."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    res = settings.resources_per_trial
    per_worker = {"CPU": res.cpu, **({"GPU": res.gpu} if res.gpu else {})}
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"config": to_dict(cfg), "run_dir": str(run_dir), "objective": objective},
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.train.num_workers, use_gpu=res.gpu > 0, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            name=f"{run_dir.name}-{stamp}", storage_path=str(ray_dir / "train"), callbacks=[TuneReportCallback()]
        ),
    )
    trainer.fit()  # Tune may end this process inside it (a stopped trial): nothing essential follows


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker of a multi-worker trial (Ray Train made the process group): run the objective;
    every rank reports every epoch (a Ray Train report is a barrier), rank 0's metrics are Tune's."""
    import ray.train

    cfg = validate(loop_config["config"], "sweep trial")
    try:
        loop_config["objective"](cfg, Path(loop_config["run_dir"]), report=ray.train.report)
    except TrialFailed:
        return  # recorded in error.txt on every rank's behalf; a diverged trial is not retried


def workers_per_trial(space: SearchSpace, base: ExperimentConfig) -> int:
    """0 for trials in one process; else the ``train.num_workers`` every trial trains with (``ddp`` or
    ``deepspeed``). The strategy and the worker count are fixed for a sweep; a scheduler that pauses trials
    (``single_process``: PBT, HyperBand) needs single-process ones."""
    if base.train.strategy == "single":
        return 0
    searched = sorted(k for k in space.space if k in ("train.strategy", "train.num_workers"))
    if searched:
        raise UserError(f"the space searches {', '.join(searched)}; set them under 'set' (fixed for a sweep)")
    if space.sweep.scheduler_spec().single_process:
        from zsl_bench.search.schedulers import SCHEDULERS

        able = [n for n in SCHEDULERS.names() if not SCHEDULERS.get(n).single_process]
        raise UserError(
            f"scheduler {space.sweep.scheduler} needs single-process trials (train.strategy={base.train.strategy}); "
            f"use one of {', '.join(able)}"
        )
    from zsl_bench.engine import distributed

    distributed.check(base)  # e.g. DeepSpeed missing: one line before Ray starts
    return base.train.num_workers


def _fit_concurrency(space: SearchSpace, workers: int) -> SearchSpace:
    """Cap ``max_concurrent`` at the multi-worker trials the cluster holds at once (a trial whose workers
    cannot be placed would wait and time out in a loop)."""
    import ray

    res = space.sweep.resources_per_trial
    total = ray.cluster_resources()
    fits = int(total.get("CPU", 0) // (workers * res.cpu))
    if res.gpu:
        fits = min(fits, int(total.get("GPU", 0) // (workers * res.gpu)))
    if fits < 1:
        raise UserError(
            f"a trial needs {workers} workers x {res.cpu:g} CPU{f' x {res.gpu:g} GPU' if res.gpu else ''}, more than "
            f"the cluster has ({total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU); lower resources_per_trial"
        )
    if fits >= space.sweep.max_concurrent:
        return space
    log.warning("max_concurrent %d -> %d: that many %d-worker trials fit", space.sweep.max_concurrent, fits, workers)
    return space.model_copy(update={"sweep": space.sweep.model_copy(update={"max_concurrent": fits})})


def _check_trial_fits(res: Any) -> None:
    """Refuse single-process trials that no node of the cluster can hold (Tune would keep them pending forever,
    e.g. a GPU space started on a CPU machine)."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= res.cpu and r.get("GPU", 0) >= res.gpu for r in nodes):
        return
    big = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    raise UserError(
        f"a trial needs {res.cpu:g} CPU{f' and {res.gpu:g} GPU' if res.gpu else ''} on one node "
        f"(sweep.resources_per_trial), but the largest node of this Ray cluster has {big.get('CPU', 0):g} CPU and "
        f"{big.get('GPU', 0):g} GPU; lower resources_per_trial in the space file, or run it where such a node "
        "exists (--address, or zsl-bench cluster slurm)"
    )


def _checkpoint_marker() -> dict[str, Any] | None:
    """``{"epoch", "run_dir"}`` of the checkpoint Tune (re)starts this trial from (see ``report``), or None."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return json.loads(Path(folder, "epoch.json").read_text())


def _foreign_checkpoint(run_dir: Path, marker: dict[str, Any] | None) -> Path | None:
    """The checkpoint file of another run that Tune restarts this trial from (PBT's exploit), or None."""
    if marker is None:
        return None
    from zsl_bench.engine.checkpoint import LATEST, epoch_file

    source = Path(marker["run_dir"])
    if source == run_dir:
        return None  # its own checkpoint (restore, retry): run_trial resumes from the run directory itself
    exact = epoch_file(source, marker["epoch"])
    return exact if exact.exists() else source / "checkpoint" / LATEST


def _record_crashes(grid: Any, sweep_dir: Path, name_of: Callable[[Any], str] | None = None) -> None:
    """Trials that died without writing ``error.txt`` (killed for memory, lost worker) get one from Tune."""
    for result in grid:
        run_name = name_of(result) if name_of else _trial_id(result)
        run_dir = sweep_dir / run_name
        if not run_dir.is_dir() or (run_dir / ERROR).exists() or (run_dir / DONE).exists():
            continue
        if result.error is not None:
            RunWriter.record_error(run_dir, f"{type(result.error).__name__}: {result.error}")
        else:  # a multi-worker trial the scheduler ended: Tune killed its workers before they could finalise
            from zsl_bench.engine.distributed import mark_stopped

            mark_stopped(run_dir)


_TRIAL_DIR = re.compile(r"^trainable_([0-9a-f]+(?:_\d{5})?)_")


def _trial_id(result: Any) -> str:
    """The trial id of a Tune result: from its metrics, else from its directory ``trainable_<trial id>_<n>_…``
    (ids are ``3f2a9c1d`` from a Searcher, ``87130_00000`` from the basic variant generator)."""
    trial_id = (result.metrics or {}).get("trial_id")
    if trial_id:
        return trial_id
    match = _TRIAL_DIR.match(Path(result.path).name)
    return match.group(1) if match else Path(result.path).name


def _summarise(outcome: SweepOutcome, sweep_dir: Path, settings: SweepSettings, searched: set[str]) -> None:
    """Fill the counts, the best search trial and the final-stage means from the run directories."""
    runs = read_runs(sweep_dir)
    outcome.compute_s = sum(float((run.summary or {}).get("compute_s", 0.0)) for run in runs)
    best: tuple[float, Any] | None = None
    tests = []
    for run in runs:
        failed = run.error is not None or not run.done
        if stage_of(run) == "final":
            outcome.final_runs += 1
            outcome.final_failed += failed
            if not failed and run.path.name.startswith("final-1-"):
                tests.append(run.summary["best_by_val"]["test"])
            continue
        if failed:
            outcome.failed += 1
            continue
        if (run.summary or {}).get("status") == "stopped":
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
        outcome.best_params = {key: _dotted(run.config, key) for key in sorted(searched)}
    if tests:
        outcome.final_test = {k: sum(t[k] for t in tests) / len(tests) for k in ("czsl", "u", "s", "h")}


def _dotted(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _resources(settings: SweepSettings, multi_worker: bool = False) -> dict[str, float]:
    if multi_worker:  # the driver of a TorchTrainer holds nothing; a 1-byte memory bundle keeps the request valid
        return {"cpu": 0, "memory": 1}
    return {"cpu": settings.resources_per_trial.cpu, "gpu": settings.resources_per_trial.gpu}


def _scheduler(settings: SweepSettings, epochs: int, space: dict[str, Param], multi_worker: bool = False) -> Any:
    """The registered scheduler ``settings.scheduler`` built with its validated options."""
    return settings.scheduler_spec().build(settings.scheduler_config(), settings, epochs, space, multi_worker)


def _searcher(settings: SweepSettings, ray_dir: Path, param_space: dict[str, Any]) -> Any:
    """The registered searcher ``settings.searcher`` built with its validated options."""
    return settings.searcher_spec().build(settings.searcher_config(), settings, ray_dir, param_space)


def _run_config(name: str, ray_dir: Path, max_failures: int) -> Any:
    from ray import tune

    return tune.RunConfig(
        name=name,
        storage_path=str(ray_dir),
        verbose=1,
        failure_config=tune.FailureConfig(max_failures=max_failures),
    )


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
