"""``zsl-bench …``: the only argv parser. Bad input → one line on stderr and exit code 2.

One module per command group (:mod:`~zsl_bench.cli.data`, :mod:`~zsl_bench.cli.catalog`,
:mod:`~zsl_bench.cli.cache`, :mod:`~zsl_bench.cli.runs`, :mod:`~zsl_bench.cli.sweep`,
:mod:`~zsl_bench.cli.cluster`), each adding its subcommands to the parser. Heavy modules (torch, ray,
transformers) are imported inside the command that needs them, so ``zsl-bench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys

from zsl_bench.cli.cache import add_cache_parser
from zsl_bench.cli.catalog import add_config_parser, add_models_parser, add_spaces_parser
from zsl_bench.cli.cluster import add_cluster_parser
from zsl_bench.cli.common import EXIT_USAGE, Parser, check_output, subcommands
from zsl_bench.cli.data import add_data_parser
from zsl_bench.cli.runs import add_leaderboard_parser, add_report_parser, add_train_parser
from zsl_bench.cli.sweep import add_sweep_parser
from zsl_bench.cli.watch import add_watch_parsers
from zsl_bench.errors import UserError

__all__ = ["EXIT_USAGE", "build_parser", "check_output", "main"]

COMMANDS = (  # in the order of `zsl-bench --help`
    add_data_parser,
    add_models_parser,
    add_config_parser,
    add_cache_parser,
    add_train_parser,
    add_sweep_parser,
    add_watch_parsers,
    add_spaces_parser,
    add_leaderboard_parser,
    add_report_parser,
    add_cluster_parser,
)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="zsl-bench", description="Train, sweep and rank zero-shot image classifiers.")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    p.add_argument(  # taken out of argv by main() wherever it stands; declared here for --help
        "--plugin",
        action="append",
        metavar="MODULE",
        help="import MODULE first (repeatable, anywhere on the line): a plugin that registers models, datasets, "
        "searchers or schedulers without being installed; also $ZSL_BENCH_PLUGINS=mod1,mod2",
    )
    sub = subcommands(p, "command")
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zsl-bench`` console script."""
    from zsl_bench.plugins import activate, take_plugin_args

    try:
        argv, plugins = take_plugin_args(sys.argv[1:] if argv is None else list(argv))
        activate(plugins)  # before any lookup: this process and every process it starts see the plugins
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
        )
        return args.func(args)
    except UserError as exc:
        print(f"zsl-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
