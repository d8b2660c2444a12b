"""``zsl-bench cache ls|rm``: the entries of the frozen-backbone feature cache."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zsl_bench.cli.common import subcommands
from zsl_bench.errors import UserError


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def cmd_cache_ls(args: argparse.Namespace) -> int:
    from zsl_bench.data.feature_store import FeatureStore

    store = FeatureStore(args.dir)
    if store.root.exists() and not store.root.is_dir():
        raise UserError(f"--dir {args.dir}: is a file, not a feature cache folder; give the cache directory")
    entries = store.entries()
    if args.json:
        print(json.dumps({"root": str(store.root), "entries": entries}))
        return 0
    rows = [("KEY", "MODEL", "DATASET", "SIZE", "CREATED")]
    for e in entries:
        if "error" in e:
            rows.append((e["key"], "?", "?", "?", "unreadable: remove it"))
            continue
        size = _size(e.get("bytes", 0))
        rows.append((e["key"], e.get("model", "?"), e.get("dataset", "?"), size, e.get("created", "?")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    total = sum(e.get("bytes", 0) for e in entries)
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {_size(total)} in {store.root}", file=sys.stderr)
    return 0


def cmd_cache_rm(args: argparse.Namespace) -> int:
    from zsl_bench.data.feature_store import FeatureStore

    store = FeatureStore(args.dir)
    if args.all == bool(args.keys):
        raise UserError("zsl-bench cache rm: give KEY... or --all (not both); `zsl-bench cache ls` lists the keys")
    keys = [e["key"] for e in store.entries()] if args.all else [store.resolve(k) for k in args.keys]
    freed = 0
    for key in keys:
        size = store.remove(key)
        freed += size
        print(f"removed {key} ({_size(size)})")
    stale = store.remove_stale() if args.all else 0
    tail = f", {stale} unfinished extraction(s)" if stale else ""
    print(f"freed {_size(freed)} in {store.root}{tail}", file=sys.stderr)
    return 0


def add_cache_parser(sub: Any) -> None:
    cache = sub.add_parser(
        "cache",
        help="the frozen-backbone feature cache",
        description="Entries of the feature cache (docs/feature-cache.md): backbone outputs extracted once per "
        "backbone weights, dataset and transform, shared by the trials of a sweep.",
    )
    ksub = subcommands(cache, "cache_command")
    kdir = dict(
        default=None,
        help="the cache directory (data.feature_cache_dir; default $XDG_CACHE_HOME/zsl-bench/features, "
        "i.e. ~/.cache/zsl-bench/features)",
    )
    kls = ksub.add_parser("ls", help="list entries: key, model, dataset, size, created")
    kls.add_argument("--dir", **kdir)
    kls.add_argument("--json", action="store_true", help="one JSON object with every entry's meta.json")
    kls.set_defaults(func=cmd_cache_ls)
    krm = ksub.add_parser("rm", help="delete entries by key (or a unique prefix of one), or all of them")
    krm.add_argument("keys", nargs="*", metavar="KEY")
    krm.add_argument("--all", action="store_true", help="every entry, and extractions that died half-way")
    krm.add_argument("--dir", **kdir)
    krm.set_defaults(func=cmd_cache_rm)
