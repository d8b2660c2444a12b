"""``zsl-bench cluster slurm``: the sweep as a SLURM batch job that starts its own Ray cluster
(:mod:`zsl_bench.cluster.slurm` renders and submits the script)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from zsl_bench.launchers import LAUNCHERS
from zsl_bench.launchers.base import Launcher
from zsl_bench.launchers.request import SweepRequest

_SWEEP_HELP = {  # the sweep's flags as this command words them
    "space": "search-space YAML file, or a shipped space's name",
    "results": "results root, on a shared filesystem",
    "num_samples": None,
    "smoke": "the sweep's --smoke: 2 trials x 1 epoch, synthetic",
    "resume": "continue a cancelled or pre-empted sweep",
}


@LAUNCHERS.register("slurm")
class SlurmLauncher(Launcher):
    """One SLURM job: Ray head on the first node, workers on the others, the sweep on the head."""

    command = "slurm"
    help = "run a sweep as a SLURM batch job (Ray head + workers + the sweep)"
    description = (
        "Renders the shipped batch template (Ray head on the first node, workers on the others, "
        "token auth, free ports, the sweep on the head) and submits it with sbatch. The results directory must be "
        "on a filesystem all nodes share."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        SweepRequest.add_arguments(parser, only=["space"], helps=_SWEEP_HELP)
        parser.add_argument("--nodes", type=int, default=1, help="nodes of the job (default 1)")
        parser.add_argument("--cpus-per-node", type=int, required=True, help="CPUs per node, given to SLURM and Ray")
        parser.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node, given to SLURM and Ray")
        parser.add_argument("--partition", default=None)
        parser.add_argument("--time", default=None, metavar="HH:MM:SS", help="time limit ([D-]HH:MM:SS)")
        parser.add_argument("--account", default=None)
        parser.add_argument("--job-name", default=None, help="default zsl-<sweep name>")
        rest = ["results", "name", "num_samples", "overrides", "smoke", "resume"]
        SweepRequest.add_arguments(parser, only=rest, helps=_SWEEP_HELP)
        parser.add_argument("--object-store-mb", type=int, default=None, help="Ray object store per node")
        parser.add_argument("--python", default=None, help="interpreter on the nodes (default: this one)")
        parser.add_argument("--prelude", default=None, metavar="FILE", help="shell lines run first (module load …)")
        parser.add_argument(
            "--template", default=None, metavar="FILE", help="your copy of zsl_bench/cluster/templates/ray_sweep.sbatch"
        )
        parser.add_argument(
            "--sbatch-arg",
            action="append",
            metavar="--OPT=VALUE",
            help="extra sbatch option, e.g. --sbatch-arg=--qos=high",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the batch script, submit nothing")

    def request(self, args: argparse.Namespace) -> SweepRequest:
        from zsl_bench.cluster.slurm import SlurmSweep
        from zsl_bench.search.shipped import resolve_space

        sweep = SweepRequest.request_fields(args)
        return SlurmSweep(
            **{**sweep, "space": resolve_space(args.space)},
            nodes=args.nodes,
            cpus_per_node=args.cpus_per_node,
            gpus_per_node=args.gpus_per_node,
            partition=args.partition,
            time=args.time,
            account=args.account,
            object_store_mb=args.object_store_mb,
            job_name=args.job_name,
            python=args.python or sys.executable,
            prelude=Path(args.prelude) if args.prelude else None,
            template=Path(args.template) if args.template else None,
            sbatch_args=args.sbatch_arg or [],
            dry_run=args.dry_run,
        )

    def launch(self, request: SweepRequest) -> int:
        from zsl_bench.cluster.slurm import SlurmSweep, check, render, submit

        assert isinstance(request, SlurmSweep)
        check(request)
        _check_space(request)  # a bad space file fails here, not in the queue hours later
        text = render(request)
        if request.dry_run:
            return _dry_run(request, text)
        done = submit(request, text)
        log = shlex.quote(str(done.log))
        size = f"{request.nodes} node(s) x {request.cpus_per_node} CPUs, {request.gpus_per_node} GPUs"
        print(f"submitted SLURM job {done.job_id}: {size}")
        print(f"  script: {done.script}")
        print(f"  follow: tail -f {log}    queue: squeue -j {done.job_id}    cancel: scancel {done.job_id}")
        print(
            f"  results: {Path(request.results).resolve()}; after a cancel or pre-emption, submit the same command "
            "with --resume"
        )
        return 0


def _check_space(job: Any) -> None:
    """Load the job's space and apply its ``--set`` overrides here; a bad one is a ``UserError``."""
    from zsl_bench.config import build_config, to_dict
    from zsl_bench.search.space import load_space

    _, base = load_space(job.space)
    if job.overrides:
        build_config(to_dict(base), job.override_map(), source="command line")


def _dry_run(job: Any, text: str) -> int:
    """Print the script, and on stderr how to submit it by hand."""
    from zsl_bench.cluster.slurm import sbatch_command, slurm_dir

    print(text, end="")
    command = shlex.join(sbatch_command(job, Path("SCRIPT")))
    mkdir = shlex.join(["mkdir", "-p", str(slurm_dir(job))])
    print(f"dry run: nothing submitted; save the script above as SCRIPT, then: {mkdir} && {command}", file=sys.stderr)
    return 0
