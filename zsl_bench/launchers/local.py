"""``zsl-bench sweep``: the sweep driven from this process, on a Ray instance started here (``local``) or on a running
cluster (``attach``, ``--address HOST:PORT``)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_bench.errors import UserError
from zsl_bench.launchers import LAUNCHERS
from zsl_bench.launchers.base import Launcher
from zsl_bench.launchers.request import SweepRequest


@dataclass
class PreparedSweep:
    """A request read into what the search runs: the space, the base config and the sweep's name."""

    space: Any  # zsl_bench.search.space.SearchSpace
    base: Any  # zsl_bench.config.ExperimentConfig
    name: str


def prepare(request: SweepRequest) -> PreparedSweep:
    """Load the space, apply ``--set``, ``--smoke`` (the synthetic data, written under the results root) and
    ``--num-samples``; every bad value is a ``UserError``."""
    from zsl_bench.config import build_config, to_dict
    from zsl_bench.search.shipped import resolve_space
    from zsl_bench.search.space import load_space

    space_file = resolve_space(request.space)  # a path, else a shipped space by name
    space, base = load_space(space_file)
    if request.overrides:
        base = build_config(to_dict(base), request.override_map(), source="command line")
    name = request.name if request.name is not None else (space.sweep.name or space_file.stem)
    if request.smoke:
        space, base = _smoke(space, base, Path(request.results))
        name = f"{name}-smoke"
    if request.num_samples is not None:
        space = _with_num_samples(space, request.num_samples)
    return PreparedSweep(space, base, name)


def _smoke(space: Any, base: Any, results: Path) -> tuple[Any, Any]:
    """The smoke variant of the sweep: the family's tiny model on the synthetic data under ``results/_data``."""
    from zsl_bench.data.synth import generate
    from zsl_bench.search.stages import smoke_variant

    data_root = results / "_data" / "synth"
    generate(data_root)
    space, base = smoke_variant(space, base, data_root)
    if base.data.features:  # a feature-dataset space: the synthetic res101.mat beside the images
        from zsl_bench.data.features import write_synth_res101

        write_synth_res101(data_root)
    return space, base


def _with_num_samples(space: Any, count: int) -> Any:
    """``space`` with ``--num-samples count``, validated like the space file's ``num_samples``."""
    from pydantic import ValidationError

    try:
        return space.model_copy(update={"sweep": space.sweep.replace(num_samples=count)})
    except ValidationError as exc:
        raise UserError(f"--num-samples {count}: {exc.errors()[0]['msg']}") from None


def check_local_resources(space: Any, base: Any) -> None:
    """Refuse, before Ray starts here, a trial this machine cannot hold (Ray would start, then refuse it)."""
    from zsl_bench.search.ray_adapter import workers_per_trial

    res, workers = space.sweep.resources_per_trial, max(1, workers_per_trial(space, base))
    cpus, gpus = os.cpu_count() or 1, local_gpus() if res.gpu else 0
    if workers * res.cpu <= cpus and workers * res.gpu <= gpus:
        return
    gpu = f" x {res.gpu:g} GPU" if res.gpu else ""
    raise UserError(
        f"a trial needs {workers} worker(s) x {res.cpu:g} CPU{gpu} (sweep.resources_per_trial), more than this "
        f"machine has ({cpus} CPU, {gpus} GPU); lower resources_per_trial, or pass --address of a larger cluster"
    )


def local_gpus() -> int:
    """The CUDA devices Ray would find on this machine."""
    import torch

    return torch.cuda.device_count()


def run_and_report(sweep: PreparedSweep, results: Path, *, resume: bool, address: str | None) -> int:
    """Run the sweep's stages and print its summary; exit code 1 when no search trial completed."""
    from zsl_bench.search.tune_backend import run_sweep

    out = run_sweep(sweep.space, sweep.base, results, sweep.name, resume=resume, address=address)
    print(
        f"sweep {out.name}: search {out.completed} completed, {out.stopped} early-stopped, {out.failed} failed; "
        f"final {out.final_runs - out.final_failed} of {out.final_runs} runs; "
        f"wall {out.wall_s:.0f} s, compute {out.compute_s:.0f} s; run directories in {out.sweep_dir}"
    )
    if out.best_trial:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.best_params.items())
        print(f"best search trial: {out.best_trial} {sweep.space.sweep.metric}={out.best_metric:.4f} ({params})")
    if out.final_test:
        t = out.final_test
        print(
            f"final (top config, mean of seeds, test): CZSL {100 * t['czsl']:.1f} U {100 * t['u']:.1f} "
            f"S {100 * t['s']:.1f} H {100 * t['h']:.1f}"
        )
    return 0 if out.completed + out.stopped > 0 else 1


@LAUNCHERS.register("local")
class LocalLauncher(Launcher):
    """Ray started (and shut down) by this process, on this machine's cores and GPUs."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """No flags of its own: the default of ``zsl-bench sweep``."""

    def request(self, args: argparse.Namespace) -> SweepRequest:
        return SweepRequest.from_args(args)

    def launch(self, request: SweepRequest) -> int:
        sweep = prepare(request)
        check_local_resources(sweep.space, sweep.base)
        return run_and_report(sweep, Path(request.results), resume=request.resume, address=None)


@dataclass(kw_only=True)
class AttachRequest(SweepRequest):
    """A sweep for a running Ray cluster."""

    address: str  # HOST:PORT of its GCS


@LAUNCHERS.register("attach")
class AttachLauncher(Launcher):
    """A running Ray cluster (``zsl-bench cluster up``, a SLURM job), reached with its token; left running."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--address",
            default=None,
            metavar="HOST:PORT",
            help="attach to a running Ray cluster (`zsl-bench cluster up`, a SLURM job) instead of starting one",
        )

    def request(self, args: argparse.Namespace) -> AttachRequest:
        return AttachRequest(**SweepRequest.request_fields(args), address=args.address)

    def launch(self, request: SweepRequest) -> int:
        assert isinstance(request, AttachRequest)
        sweep = prepare(request)
        from zsl_bench.cluster.head import attach_env

        attach_env(request.address)  # the cluster's token, set before ray is imported
        return run_and_report(sweep, Path(request.results), resume=request.resume, address=request.address)
