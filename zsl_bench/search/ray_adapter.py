"""Everything a sweep asks of Ray itself: auth tokens, starting or attaching Ray, resource checks, Tune domains and
the body of every trial (one process, or a Ray Train ``TorchTrainer`` of several workers).

Callers: ``tune_backend.run_sweep`` (:func:`prepare_environment`, :func:`ray_session`, :func:`workers_per_trial`,
:func:`fit_concurrency`, :func:`check_trial_fits`), ``tune_stages`` (:func:`run_objective`,
:func:`trial_resources`, :func:`run_config`, :func:`to_tune_domain`), ``schedulers`` (:func:`to_tune_domain`) and
the CLI (:func:`workers_per_trial`, before a sweep starts). ray is imported inside the functions that use it: Ray
reads ``RAY_AUTH_MODE`` on import, which :func:`prepare_environment` sets first.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zsl_bench.config import ExperimentConfig, to_dict, validate
from zsl_bench.errors import TrialFailed, UserError
from zsl_bench.plugins import ray_runtime_env
from zsl_bench.rundir import reopen_stopped
from zsl_bench.search.space import Param, SearchSpace, SweepSettings

log = logging.getLogger(__name__)

Objective = Callable[..., Any]  # run_trial(config, run_dir, report=...) or a stand-in (benchmarks)


def prepare_environment(ray_dir: Path, address: str | None) -> None:
    """Set the variables Ray reads on import: token auth with the attached cluster's own token, or a private
    per-sweep one (:func:`ensure_local_token`). Refuses a ray imported without token auth: it would never send a
    token. Tune's own experiment state is left at its default period: nothing reads it back (``resume``), and its
    default loggers are off: :func:`run_config` names the one it needs."""
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # its TensorBoard logger imports torch: ~2 s a sweep
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


@contextmanager
def ray_session(*, address: str | None, num_cpus: int | None, dashboard: bool) -> Iterator[None]:
    """Ray for the duration of a sweep: attached to the cluster at ``address`` (``HOST:PORT``, only disconnected
    at the end), or this sweep's own node (``local_ray.start_local_ray``), stopped and removed at the end. Every
    worker gets this process's plugin modules (``--plugin`` / ``$ZSL_BENCH_PLUGINS``)."""
    import ray

    runtime_env = ray_runtime_env() or None
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
        try:
            yield
        finally:
            ray.shutdown()
        return
    from zsl_bench.search.local_ray import start_local_ray

    # the sweep imports Ray Tune next: on one core while the node's agents start on the other
    tune = functools.partial(importlib.import_module, "ray.tune")
    local = start_local_ray(num_cpus, dashboard, runtime_env, while_starting=tune)
    try:
        yield
    finally:
        local.stop()


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
    from zsl_bench.engine import strategies

    strategies.check(base)  # e.g. DeepSpeed missing: one line before Ray starts
    return base.train.num_workers


def fit_concurrency(space: SearchSpace, workers: int) -> SearchSpace:
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


def check_trial_fits(res: Any) -> None:
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


def trial_resources(settings: SweepSettings, multi_worker: bool = False) -> dict[str, float]:
    """What one Tune trial holds: ``resources_per_trial``, or nothing for the driver of a multi-worker trial."""
    if multi_worker:  # the driver of a TorchTrainer holds nothing; a 1-byte memory bundle keeps the request valid
        return {"cpu": 0, "memory": 1}
    return {"cpu": settings.resources_per_trial.cpu, "gpu": settings.resources_per_trial.gpu}


def run_config(name: str, ray_dir: Path, max_failures: int, searched: Iterable[str] = ()) -> Any:
    """The Tune ``RunConfig`` of experiment ``name``, its state under ``ray_dir``; its progress table shows the
    ``searched`` keys (:func:`zsl_bench.search.progress.sweep_reporter`). Of Tune's default loggers only the JSON
    one, which its results read back (:func:`prepare_environment` turns the defaults off)."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from zsl_bench.search.progress import sweep_reporter

    return tune.RunConfig(
        name=name,
        storage_path=str(ray_dir),
        verbose=1,
        failure_config=tune.FailureConfig(max_failures=max_failures),
        progress_reporter=sweep_reporter(searched),
        callbacks=[JsonLoggerCallback()],
    )


def run_objective(
    objective: Objective, cfg: ExperimentConfig, run_dir: Path, *, settings: SweepSettings, ray_dir: Path
) -> None:
    """The body of a Tune trial: call the objective with a report that also hands Tune a tiny checkpoint (the epoch
    reached), so a restored or retried trial keeps its iteration count; the weights live in the run directory. A
    ``ddp`` or ``deepspeed`` config runs in ``train.num_workers`` Ray Train workers instead (:func:`run_workers`)."""
    from ray import tune

    if cfg.train.strategy != "single":
        run_workers(objective, cfg, run_dir, settings=settings, ray_dir=ray_dir)
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


def run_workers(
    objective: Objective, cfg: ExperimentConfig, run_dir: Path, *, settings: SweepSettings, ray_dir: Path
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
