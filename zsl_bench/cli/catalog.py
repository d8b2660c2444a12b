"""``zsl-bench models list``, ``config keys``, ``spaces list|show``: what zsl-bench knows by name."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zsl_bench.cli.common import subcommands


def cmd_models_list(args: argparse.Namespace) -> int:
    from zsl_bench.models import MODELS

    for name in MODELS.names(args.pattern):
        print(name)
    return 0


def cmd_config_keys(args: argparse.Namespace) -> int:
    from zsl_bench.config import valid_keys

    print("\n".join(valid_keys()))
    return 0


def cmd_spaces_list(args: argparse.Namespace) -> int:
    from zsl_bench.search.shipped import SPACES_DIR, shipped_spaces, summarize, table

    for line in table([summarize(path) for path in shipped_spaces()]):
        print(line)
    print(f"shipped spaces in {SPACES_DIR}; run one: zsl-bench sweep --space NAME.yaml [--smoke]", file=sys.stderr)
    return 0


def cmd_spaces_show(args: argparse.Namespace) -> int:
    from zsl_bench.search.shipped import resolve_space

    path = resolve_space(args.name)
    print(path.read_text(), end="")
    print(f"({path}; save a copy to edit it, then --space COPY.yaml)", file=sys.stderr)
    return 0


def add_models_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="the model zoo")
    msub = subcommands(models, "models_command")
    mlist = msub.add_parser("list", help="list registered models")
    mlist.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'vit*'")
    mlist.set_defaults(func=cmd_models_list)


def add_config_parser(sub: Any) -> None:
    config = sub.add_parser("config", help="the experiment config schema")
    csub = subcommands(config, "config_command")
    csub.add_parser("keys", help="list every dotted config key").set_defaults(func=cmd_config_keys)


def add_spaces_parser(sub: Any) -> None:
    spaces = sub.add_parser("spaces", help="the search spaces shipped with zsl-bench")
    ssub = subcommands(spaces, "spaces_command")
    slist = ssub.add_parser("list", help="name, model, dataset, searcher/scheduler and samples of each")
    slist.set_defaults(func=cmd_spaces_list)
    sshow = ssub.add_parser("show", help="print a space file (a shipped name, or a path)")
    sshow.add_argument("name", metavar="NAME", help="e.g. zeromamba_cub or zeromamba_cub.yaml")
    sshow.set_defaults(func=cmd_spaces_show)
