"""Feature cache: a 16-trial head-only sweep of a frozen tiny CNN on the synthetic data, end to end vs cached.

Both sweeps run the same 16 configurations (``resnet_test`` with ``model.freeze_backbone``, its backbone weights
from one state-dict file as a pretrained backbone would be, head options, learning rate, weight decay and seed
drawn per trial) sequentially in this process through ``run_trial`` — no Ray, so the ratio is the compute saved,
not scheduling. End to end (``data.feature_cache: false``) runs the frozen backbone on every batch of every epoch;
cached extracts the backbone outputs once (first trial, plain and flipped views) and every trial trains the head
on them. A warm-up trial first pays the imports and the in-memory image decode for both. Prints one JSON object:

    ratio = wall(end to end) / wall(cached, extraction included)     (goal ≥ 20)
    identical: every trial's metrics.jsonl records (time_s aside) equal in both sweeps

Usage: python benchmarks/feature_cache.py [--trials 16] [--epochs 8] [--image-size 64] [--width 32] [--no-hflip]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def trial_configs(
    n: int, epochs: int, image_size: int, width: int, hflip: bool, weights: Path, root: Path
) -> list[dict[str, Any]]:
    """``n`` head-only configurations drawn with a fixed seed (what a random searcher would propose)."""
    import numpy as np

    rng = np.random.default_rng(0)
    configs = []
    for i in range(n):
        configs.append(
            {
                "model": {
                    "name": "resnet_test",
                    "freeze_backbone": True,
                    "options": {
                        "width": width,
                        "pretrained": str(weights),
                        "scoring": str(rng.choice(["dot", "cosine"])),
                        "attr_weight": float(rng.uniform(0.0, 2.0)),
                    },
                },
                "data": {"name": "synth", "root": str(root), "image_size": image_size},
                "train": {"epochs": epochs, "seed": i, "num_threads": 1, "batch_size": 64, "hflip": hflip},
                "optim": {"lr": float(10 ** rng.uniform(-3.5, -1.5)), "weight_decay": float(10 ** rng.uniform(-5, -2))},
            }
        )
    return configs


def records(run_dir: Path) -> list[dict[str, Any]]:
    """The run's metric records without their wall-clock field."""
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("time_s", None)
        out.append(rec)
    return out


def sweep(configs: list[dict[str, Any]], out: Path, cache: bool, cache_dir: Path) -> float:
    """Run every config into ``out/<i>``; returns the wall time."""
    from zsl_bench.engine import run_trial

    start = time.perf_counter()
    for i, cfg in enumerate(configs):
        cfg = {**cfg, "data": {**cfg["data"], "feature_cache": cache, "feature_cache_dir": str(cache_dir)}}
        run_trial(cfg, out / str(i), resume=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=8, help="per trial (8: the config default)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the images the backbone sees")
    parser.add_argument("--width", type=int, default=32, help="resnet_test width (channels of its first stage)")
    parser.add_argument("--no-hflip", action="store_true", help="train without random flips (one cached view)")
    args = parser.parse_args()

    import torch

    from zsl_bench.data.feature_store import FeatureStore
    from zsl_bench.data.synth import generate
    from zsl_bench.engine import run_trial
    from zsl_bench.models import build_model

    with tempfile.TemporaryDirectory(prefix="zsl-feature-cache-bench-") as tmp:
        tmp = Path(tmp)
        root = tmp / "synth"
        generate(root)
        torch.manual_seed(0)
        backbone = build_model("resnet_test", 13, args.image_size, width=args.width).backbone.net
        weights = tmp / "backbone.pt"
        torch.save(backbone.state_dict(), weights)
        configs = trial_configs(args.trials, args.epochs, args.image_size, args.width, not args.no_hflip, weights, root)

        warm = {**configs[0], "train": {**configs[0]["train"], "epochs": 1}}
        warm["data"] = {**warm["data"], "feature_cache": False}
        start = time.perf_counter()
        run_trial(warm, tmp / "warm-up", resume=False)
        warm_s = time.perf_counter() - start

        cache_dir = tmp / "features"
        end_to_end = sweep(configs, tmp / "end-to-end", cache=False, cache_dir=cache_dir)
        cached = sweep(configs, tmp / "cached", cache=True, cache_dir=cache_dir)
        entries = FeatureStore(cache_dir).entries()
        same = [records(tmp / "end-to-end" / str(i)) == records(tmp / "cached" / str(i)) for i in range(len(configs))]
        result = {
            "trials": args.trials,
            "epochs": args.epochs,
            "image_size": args.image_size,
            "width": args.width,
            "hflip": not args.no_hflip,
            "threads": 1,
            "warm_up_s": round(warm_s, 2),
            "end_to_end_s": round(end_to_end, 2),
            "cached_s": round(cached, 2),
            "extractions": len(entries),
            "extraction_s": round(sum(e.get("seconds", 0.0) for e in entries), 2),
            "cache_mb": round(sum(e.get("bytes", 0) for e in entries) / 2**20, 2),
            "ratio": round(end_to_end / cached, 2),
            "goal_ratio": 20.0,
            "met": end_to_end / cached >= 20.0,
            "identical_metrics": all(same),
            "identical_trials": sum(same),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
