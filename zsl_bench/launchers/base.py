"""The launcher interface: turn parsed flags into a request, and run that request somewhere."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import ClassVar

from zsl_bench.launchers.request import SweepRequest


class Launcher(ABC):
    """Runs a :class:`SweepRequest`.

    ``command`` is the ``zsl-bench cluster`` subcommand that runs this launcher (with ``help`` and
    ``description`` for its ``--help``); None for the launchers ``zsl-bench sweep`` chooses between (``local``, and
    ``attach`` when ``--address`` is given).
    """

    command: ClassVar[str | None] = None
    help: ClassVar[str] = ""
    description: ClassVar[str | None] = None

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare this launcher's flags on ``parser``; a ``command`` launcher declares the sweep's flags too
        (:meth:`SweepRequest.add_arguments`)."""

    @abstractmethod
    def request(self, args: argparse.Namespace) -> SweepRequest:
        """The request (a :class:`SweepRequest`, or a subclass with this launcher's fields) ``args`` describe."""

    @abstractmethod
    def launch(self, request: SweepRequest) -> int:
        """Run ``request``; the exit code of the command (``UserError`` for bad input)."""
