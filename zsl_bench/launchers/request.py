"""A sweep to run, whatever runs it: the flags of ``zsl-bench sweep``, declared once.

:data:`SWEEP_FLAGS` declares each flag with the :class:`SweepRequest` field it fills. From that one table come the
options of ``zsl-bench sweep`` and of every launcher command (``zsl-bench cluster slurm``), the request built from
parsed arguments (:meth:`SweepRequest.from_args`) and the ``zsl-bench sweep`` argv that runs a request elsewhere
(:meth:`SweepRequest.argv`, e.g. inside a SLURM job).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    """argparse type of counts such as --num-samples: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


@dataclass(kw_only=True)
class SweepRequest:
    """The sweep: its space file, name, results root, sample count, base-config overrides and modes."""

    space: str | Path  # a space file, or a shipped space's name
    name: str | None = None  # None: the space's sweep.name, else the space file's name
    results: Path = Path("results")
    num_samples: int | None = None  # None: the space file's sweep.num_samples
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE of the base config
    resume: bool = False
    smoke: bool = False

    @classmethod
    def add_arguments(
        cls,
        parser: argparse.ArgumentParser,
        *,
        only: Iterable[str] | None = None,
        helps: Mapping[str, str | None] | None = None,
    ) -> None:
        """Declare the sweep's flags on ``parser``: those filling the fields ``only``, in that order (default: all,
        in the table's order), with the help texts of ``helps`` (by field; None: no help) in place of the table's."""
        by_dest = {flag.dest: flag for flag in SWEEP_FLAGS}
        for dest in by_dest if only is None else only:
            by_dest[dest].add_to(parser, (helps or {}).get(dest, by_dest[dest].help))

    @classmethod
    def request_fields(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The fields of a request parsed by a parser that has every sweep flag."""
        return {flag.dest: flag.parse(getattr(args, flag.dest)) for flag in SWEEP_FLAGS}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SweepRequest:
        """The request of a parsed ``zsl-bench sweep`` (or any parser with every sweep flag)."""
        return cls(**cls.request_fields(args))

    def override_map(self) -> dict[str, Any]:
        """``--set`` as ``{dotted key: value}``; a malformed pair is a ``UserError``."""
        from zsl_bench.config import parse_override

        return dict(parse_override(pair) for pair in self.overrides)

    def argv(self) -> list[str]:
        """The ``zsl-bench sweep`` arguments of this request, in the table's order; unset values are left out."""
        return [arg for flag in SWEEP_FLAGS for arg in flag.argv(getattr(self, flag.dest))]


@dataclass(frozen=True)
class SweepFlag:
    """One flag of the sweep: the option, the request field it fills (``dest``), argparse options, default help."""

    option: str
    dest: str
    help: str | None
    options: Mapping[str, Any] = field(default_factory=dict)
    parse: Callable[[Any], Any] = lambda value: value  # parsed argument -> field value

    def add_to(self, parser: argparse.ArgumentParser, help: str | None) -> None:
        extra = {} if help is None else {"help": help}
        parser.add_argument(self.option, dest=self.dest, **self.options, **extra)

    def argv(self, value: Any) -> list[str]:
        """This flag as command-line arguments for ``value`` (none for None, False, empty)."""
        action = self.options.get("action")
        if not value:
            return []
        if action == "store_true":
            return [self.option]
        if action == "append":
            return [arg for item in value for arg in (self.option, str(item))]
        return [self.option, str(value)]


SWEEP_FLAGS: tuple[SweepFlag, ...] = (
    SweepFlag(
        "--space",
        "space",
        "search-space YAML file, or a shipped space's name (e.g. zeromamba_cub.yaml; see `zsl-bench spaces list`)",
        {"required": True},
    ),
    SweepFlag("--name", "name", "sweep name (default: the space file's name)", {"default": None}),
    SweepFlag("--results", "results", "results root (default results/)", {"default": "results"}, Path),
    SweepFlag("--num-samples", "num_samples", "trials of the search stage", {"type": positive_int, "default": None}),
    SweepFlag(
        "--set",
        "overrides",
        "override a base config key",
        {"action": "append", "metavar": "KEY=VALUE"},
        lambda pairs: list(pairs or []),
    ),
    SweepFlag("--resume", "resume", "continue this sweep after an interruption", {"action": "store_true"}),
    SweepFlag(
        "--smoke",
        "smoke",
        "2 trials x 1 epoch on the synthetic data with the family's tiny model",
        {"action": "store_true"},
    ),
)
