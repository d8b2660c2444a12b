"""What every command module of the CLI shares: the one-line argparse, the exit code of bad input, output checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zsl_bench.errors import UserError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2) instead of usage text + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message} (see --help)")


def subcommands(parser: argparse.ArgumentParser, dest: str) -> Any:
    """The required subcommands of ``parser`` (their parsers report errors in one line too)."""
    return parser.add_subparsers(dest=dest, required=True, parser_class=Parser)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as ``{dotted key: value}``."""
    from zsl_bench.config import parse_override

    return dict(parse_override(p) for p in pairs or [])


def check_output(path: Path, flag: str, folder: bool) -> None:
    """``UserError`` unless ``path`` can be created or replaced as a folder (``folder``) or a file: nothing of the
    other kind is in the way there, and every existing parent is a folder. Checked before anything is written."""
    kind = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        what = "a folder" if path.is_dir() else "a file"
        raise UserError(f"{flag} {path}: is {what}, not a {kind}; give another path or remove it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is a file, not a folder; give another path")
            return
