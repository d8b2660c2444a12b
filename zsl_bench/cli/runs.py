"""``zsl-bench train``, ``leaderboard`` and ``report``: one trial, and the tables and plots of finished runs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from zsl_bench.cli.common import check_output, parse_overrides
from zsl_bench.errors import TrialFailed, UserError


def cmd_train(args: argparse.Namespace) -> int:
    from zsl_bench.config import build_config
    from zsl_bench.data.datasets import DATASETS
    from zsl_bench.models import MODELS

    MODELS.get(args.model)  # unknown names fail here, before any data is read
    DATASETS.get(args.dataset)
    overrides = {"model.name": args.model, "data.name": args.dataset, **parse_overrides(args.set)}
    if args.data_root:
        overrides["data.root"] = args.data_root
    cfg = build_config(args.config, overrides, source="command line")
    MODELS.get(cfg.model.name).check_options(cfg.model.options)  # a typo in --set model.options.X: one line
    out = Path(args.out or f"results/runs/{args.model}_{args.dataset}_{time.strftime('%Y%m%d-%H%M%S')}")
    check_output(out, "--out", folder=True)

    from zsl_bench.engine import run_trial
    from zsl_bench.engine.features import load_trial_dataset
    from zsl_bench.engine.launch import launch, needs_launcher

    load_trial_dataset(cfg.data)  # bad data: one line before the run directory exists
    try:  # ddp / deepspeed: train.num_workers processes on this host (torchrun)
        summary = launch(cfg, out) if needs_launcher(cfg) else run_trial(cfg, out)
    except TrialFailed as exc:  # the run failed (its error.txt says why): one line, exit 1
        print(f"zsl-bench: error: {exc}", file=sys.stderr)
        return 1
    best = summary["best_by_val"]
    test = best["test"]
    print(
        f"run {out}: epoch {best['epoch']} gamma {best['gamma']:.3f} test CZSL {100 * test['czsl']:.1f} "
        f"U {100 * test['u']:.1f} S {100 * test['s']:.1f} H {100 * test['h']:.1f} ({summary['compute_s']:.0f} s)"
    )
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from zsl_bench.report.formats import FORMATS
    from zsl_bench.report.leaderboard import build, render
    from zsl_bench.rundir import write_text_atomic

    results = Path(args.results)
    fmt = FORMATS.get(args.format)
    folder = fmt.write is not None
    default = results / "leaderboard.md" if args.format == "md" else results / "site" if folder else "-"
    out = str(args.out or default)
    if out != "-":
        check_output(Path(out), "--out", folder=folder)
    board = build(results, _reference(args, results))
    files = fmt.write(board, Path(out), results) if folder and out != "-" else []  # refusals come before warnings
    if board.skipped.total:
        print(board.skipped.line(), file=sys.stderr)
    for note in board.notes:
        print(f"leaderboard: note: {note}", file=sys.stderr)
    if files:
        print(f"leaderboard: wrote {len(files)} files into {out}", file=sys.stderr)
        print(files[0])
        return 0
    text = render(board, args.format)
    if out != "-":
        write_text_atomic(Path(out), text + "\n")
        print(f"leaderboard: wrote {out}", file=sys.stderr)
    print(text)
    return 0


def _reference(args: argparse.Namespace, results: Path) -> Path | None:
    """The reported-numbers folder: ``--reference``, else ``<results>/reference``, else ./results/reference."""
    if args.no_reference:
        return None
    if args.reference:
        return Path(args.reference)
    return next((p for p in (results / "reference", Path("results/reference")) if p.is_dir()), None)


def cmd_report(args: argparse.Namespace) -> int:
    from zsl_bench.report.sweep_report import write_report

    out = Path(args.out) if args.out else None
    if not Path(args.results).is_dir():
        raise UserError(f"results directory not found: {args.results} (pass --results DIR)")
    if out is not None:
        check_output(out, "--out", folder=True)
    report = write_report(Path(args.results), args.sweep, out)
    for note in report.notes:
        print(f"report: note: {note}", file=sys.stderr)
    if report.skipped.total:
        print(report.skipped.line("report"), file=sys.stderr)
    for path in report.files:
        print(path)
    return 0


def add_train_parser(sub: Any) -> None:
    train = sub.add_parser("train", help="run one trial into a run directory")
    train.add_argument("--model", required=True)
    train.add_argument("--dataset", required=True)
    train.add_argument("--data-root", default=None)
    train.add_argument("--config", default=None, help="preset name or YAML file to start from")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    train.add_argument("--out", default=None, help="run directory (default results/runs/<model>_<dataset>_<time>)")
    train.set_defaults(func=cmd_train)


def add_leaderboard_parser(sub: Any) -> None:
    board = sub.add_parser(
        "leaderboard",
        help="aggregate run directories into paper-ready tables",
        description="Final-stage runs grouped by dataset and model: mean ± std over seeds, with selection on "
        "validation (protocol val, the default) and on test (protocol test, the papers' protocol) in separate "
        "tables, reported numbers from the papers beside them, and the compute behind each row. A dataset and "
        "model without final-stage runs is shown from its search-stage runs, labelled 'search stage'.",
    )
    board.add_argument("--results", default="results", help="results root to read (default results/)")
    from zsl_bench.report.formats import FORMATS, RegistryChoices

    board.add_argument(
        "--format",
        choices=RegistryChoices(FORMATS),
        default="md",
        help="a registered format: md (markdown, the default), csv, tex (LaTeX), json, html (a static site: a "
        "folder), or one a plugin adds",
    )
    board.add_argument(
        "--out",
        default=None,
        help="file to write (default: <results>/leaderboard.md for md, none for the others; '-' for none); "
        "the text is printed to stdout as well. html: the folder of the site (default <results>/site; its "
        "index.html is printed; '-' prints the index page alone)",
    )
    board.add_argument(
        "--reference",
        default=None,
        help="folder of reported-number YAML files (default <results>/reference or ./results/reference if present)",
    )
    board.add_argument("--no-reference", action="store_true", help="leave out the reported rows")
    board.set_defaults(func=cmd_leaderboard)


def add_report_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report",
        help="plots and a short markdown report for one sweep",
        description="Writes report.md, search_progress.png (best validation H against cumulative compute) and, "
        "when the runs saved test scores, seen_unseen_<dataset>_<model>.png (the seen-unseen accuracy curve "
        "with its AUSUC).",
    )
    report.add_argument("--sweep", required=True, help="sweep name: the folder <results>/<sweep>")
    report.add_argument("--results", default="results", help="results root (default results/)")
    report.add_argument("--out", default=None, help="output folder (default <results>/<sweep>/_report)")
    report.set_defaults(func=cmd_report)
