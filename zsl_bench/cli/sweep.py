"""The commands that hand a sweep to a launcher (:mod:`zsl_bench.launchers`): ``zsl-bench sweep`` (``local``, or
``attach`` with ``--address``) and one ``zsl-bench cluster COMMAND`` per launcher with a command (``slurm``)."""

from __future__ import annotations

import argparse
from typing import Any

from zsl_bench.launchers import LAUNCHERS
from zsl_bench.launchers.request import SweepRequest

SWEEP_LAUNCHERS = ("local", "attach")  # chosen by `zsl-bench sweep`: attach when --address is given


def cmd_sweep(args: argparse.Namespace) -> int:
    return _launch("attach" if args.address else "local", args)


def cmd_launcher(args: argparse.Namespace) -> int:
    return _launch(args.launcher, args)


def _launch(name: str, args: argparse.Namespace) -> int:
    launcher = LAUNCHERS.get(name)()
    return launcher.launch(launcher.request(args))


def add_sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="hyperparameter search with Ray Tune + Optuna + ASHA")
    SweepRequest.add_arguments(sweep)
    for name in SWEEP_LAUNCHERS:
        LAUNCHERS.get(name)().add_arguments(sweep)
    sweep.set_defaults(func=cmd_sweep)


def add_launcher_parsers(csub: Any) -> None:
    """``zsl-bench cluster COMMAND`` for every registered launcher that has a ``command``."""
    for name in LAUNCHERS.names():
        launcher = LAUNCHERS.get(name)()
        if launcher.command is None:
            continue
        parser = csub.add_parser(launcher.command, help=launcher.help, description=launcher.description)
        launcher.add_arguments(parser)
        parser.set_defaults(func=cmd_launcher, launcher=name)
