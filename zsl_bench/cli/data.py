"""``zsl-bench data …``: make the synthetic dataset, inspect, list and fetch datasets."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from zsl_bench.cli.common import subcommands


def cmd_data_synth(args: argparse.Namespace) -> int:
    from zsl_bench.data.synth import SynthSpec, generate

    start = time.perf_counter()
    counts = generate(Path(args.out), SynthSpec(seed=args.seed))
    if args.res101:
        from zsl_bench.data.features import write_synth_res101

        write_synth_res101(Path(args.out), seed=args.seed)
    print(json.dumps(counts))
    print(f"synthetic dataset in {args.out} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from zsl_bench.data.datasets import inspect_dataset

    report, notes = inspect_dataset(args.dataset, args.root)  # the registry answers unknown names
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            if isinstance(value, dict):
                print(f"{key}:")
                for sub, text in value.items():
                    print(f"{sub:>16}: {text}")
            else:
                print(f"{key:>16}: {'unknown' if value is None else value}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from zsl_bench.data.declare import DATASETS, dataset_spec

    rows = []
    for name in DATASETS.names():
        spec = dataset_spec(name)
        c = spec.counts
        counts = None if c is None else f"{c.classes}x{c.attributes} {c.trainval}/{c.test_seen}/{c.test_unseen}"
        rows.append(
            {
                "name": name,
                "root": str(spec.default_root()),
                "counts": counts,
                "fetch": "yes" if spec.fetch is not None else "no",
                "provider": DATASETS.provider(name).distribution,
                "description": spec.description,
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    table = [("NAME", "ROOT", "CLASSES x ATTRS TRAINVAL/TEST_SEEN/TEST_UNSEEN", "FETCH", "PROVIDER")]
    table += [(r["name"], r["root"], r["counts"] or "-", r["fetch"], r["provider"]) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t[:4], widths, strict=True)) + "  " + t[4])
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from zsl_bench.data.fetch import fetch
    from zsl_bench.data.fetch_checksums import parse_sha256_args, read_manifest
    from zsl_bench.data.fetch_download import terminal_progress
    from zsl_bench.data.fetch_targets import fetch_target

    target = fetch_target(args.target)  # xlsa17 or a registered dataset; one line for anything else
    sha = read_manifest(Path(args.manifest), target) if args.manifest else {}
    sha.update(parse_sha256_args(args.sha256, target))
    result = fetch(
        args.target,
        Path(args.root) if args.root else None,
        mirror=args.mirror,
        sha256=sha,
        keep_archives=args.keep_archives,
        progress=terminal_progress() if sys.stderr.isatty() else None,
        log=lambda msg: print(f"note: {msg}", file=sys.stderr),
    )
    print(json.dumps(result.to_dict()))
    print(f"{args.target}: {result.status} in {result.root}", file=sys.stderr)
    return 0


def add_data_parser(sub: Any) -> None:
    data = sub.add_parser("data", help="create and inspect datasets")
    dsub = subcommands(data, "data_command")
    _add_synth_inspect(dsub)
    _add_fetch_list(dsub)


def _add_synth_inspect(dsub: Any) -> None:
    synth = dsub.add_parser("synth", help="generate the synthetic dataset (xlsa17 format)")
    synth.add_argument("--out", required=True, help="directory to create")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--res101", action="store_true", help="also write res101.mat (synthetic features) for data.features=res101"
    )
    synth.set_defaults(func=cmd_data_synth)
    inspect = dsub.add_parser(
        "inspect",
        help="print a dataset's split counts",
        description="Check a dataset folder and print classes, attributes, seen, unseen, trainval, test_seen, "
        "test_unseen, train, val (the honest validation split: no test image), images, images_listed, "
        "images_missing, and where each piece came from. Works on the split files alone.",
    )
    inspect.add_argument(
        "--dataset", required=True, help="a registered dataset (`zsl-bench data list` shows them: cub, apy, …)"
    )
    inspect.add_argument(
        "--root", default=None, help="dataset folder holding att_splits.mat (default data/<FOLDER>, e.g. data/CUB)"
    )
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=cmd_data_inspect)


def _add_fetch_list(dsub: Any) -> None:
    fetch = dsub.add_parser(
        "fetch",
        help="download, verify and unpack a dataset",
        description="Download the official archive (resuming a partial download), check its sha256 and unpack "
        "it into the layout the readers expect. Idempotent: a second run does nothing.",
    )
    fetch.add_argument(
        "target",
        help="a registered dataset's images (`zsl-bench data list`: FETCH yes), or xlsa17 (the split files and "
        "res101.mat of CUB, AWA1, AWA2, SUN, APY)",
    )
    fetch.add_argument(
        "--root",
        default=None,
        help="a dataset: its folder (default data/<FOLDER>, e.g. data/CUB); xlsa17: the folder holding the dataset "
        "folders (default data)",
    )
    fetch.add_argument("--mirror", default=None, help="base URL serving the same file names (replaces the official)")
    fetch.add_argument(
        "--sha256", action="append", metavar="[FILE=]HEX", help="expected checksum (overrides the built-in table)"
    )
    fetch.add_argument("--manifest", default=None, help="sha256sum-style file of expected checksums")
    fetch.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives after unpacking")
    fetch.set_defaults(func=cmd_data_fetch)
    dlist = dsub.add_parser(
        "list",
        help="the registered datasets",
        description="Every dataset declaration (built-in and from plugins): name, default folder, published xlsa17 "
        "counts, whether `data fetch NAME` downloads it, and the distribution that provides it.",
    )
    dlist.add_argument("--json", action="store_true")
    dlist.set_defaults(func=cmd_data_list)
