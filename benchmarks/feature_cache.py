"""Feature cache: a 16-trial head-only sweep of a frozen tiny CNN on the synthetic data, end to end vs cached.

Both sweeps run the same 16 configurations (``resnet_test`` with ``model.freeze_backbone``, its backbone weights
from one state-dict file as a pretrained backbone would be, head options, learning rate, weight decay and seed
drawn per trial) in this process through ``run_trial`` — no Ray, so the ratio is the compute saved, not
scheduling — with the same ``train.num_threads`` on both sides (the extraction runs in the trial's threads).
End to end (``data.feature_cache: false``) runs the frozen backbone on every batch of every epoch; cached
extracts the backbone outputs once (in its first trial: every image, plus the flipped view of the images a trial
can train on) and every trial trains the head on them. A warm-up trial of each kind (1 epoch; the cached one into
its own cache directory) first pays the imports and the in-memory image decode. The two sweeps are interleaved
trial by trial (end to end first on even trials, cached first on odd ones), so both see the same machine load.
Prints one JSON object:

    ratio = wall(end to end) / wall(cached, extraction included)     (goal >= 30)
    ratio_cpu: the same with this process's CPU time; ratio_after_extraction: with the extraction left out
    load_avg_start / load_avg_end: os.getloadavg() (1, 5, 15 min) before and after the sweeps
    identical: every trial's metrics.jsonl records (time_s aside) equal in both sweeps

Usage: python benchmarks/feature_cache.py [--trials 16] [--epochs 8] [--image-size 64] [--width 32] [--threads 1]
       [--no-hflip]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def trial_configs(args: argparse.Namespace, weights: Path, root: Path) -> list[dict[str, Any]]:
    """``args.trials`` head-only configurations drawn with a fixed seed (what a random searcher would propose)."""
    import numpy as np

    rng = np.random.default_rng(0)
    configs = []
    for i in range(args.trials):
        configs.append(
            {
                "model": {
                    "name": "resnet_test",
                    "freeze_backbone": True,
                    "options": {
                        "width": args.width,
                        "pretrained": str(weights),
                        "scoring": str(rng.choice(["dot", "cosine"])),
                        "attr_weight": float(rng.uniform(0.0, 2.0)),
                    },
                },
                "data": {"name": "synth", "root": str(root), "image_size": args.image_size},
                "train": {
                    "epochs": args.epochs,
                    "seed": i,
                    "num_threads": args.threads,
                    "batch_size": 64,
                    "hflip": not args.no_hflip,
                },
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


def with_cache(cfg: dict[str, Any], cache: bool, cache_dir: Path) -> dict[str, Any]:
    """``cfg`` with the feature cache on or off, in ``cache_dir``."""
    return {**cfg, "data": {**cfg["data"], "feature_cache": cache, "feature_cache_dir": str(cache_dir)}}


def timed_trial(cfg: dict[str, Any], run_dir: Path) -> dict[str, float]:
    """Run one trial; its wall and CPU seconds and the torch threads it ran with."""
    import torch

    from zsl_bench.engine import run_trial

    wall, cpu = time.perf_counter(), time.process_time()
    run_trial(cfg, run_dir, resume=False)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "threads": torch.get_num_threads()}


def interleaved(configs: list[dict[str, Any]], out: Path, cache_dir: Path) -> dict[str, list[dict[str, float]]]:
    """Every config end to end into ``out/end-to-end/<i>`` and cached into ``out/cached/<i>``, alternating which
    side goes first; per side, the :func:`timed_trial` figures of each trial."""
    times: dict[str, list[dict[str, float]]] = {"end-to-end": [], "cached": []}
    for i, cfg in enumerate(configs):
        sides = ["end-to-end", "cached"] if i % 2 == 0 else ["cached", "end-to-end"]
        for side in sides:
            times[side].append(timed_trial(with_cache(cfg, side == "cached", cache_dir), out / side / str(i)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=8, help="per trial (8: the config default)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the images the backbone sees")
    parser.add_argument("--width", type=int, default=32, help="resnet_test width (channels of its first stage)")
    parser.add_argument("--threads", type=int, default=1, help="train.num_threads of every trial, both sides")
    parser.add_argument("--no-hflip", action="store_true", help="train without random flips (one cached view)")
    args = parser.parse_args()

    import torch

    from zsl_bench.data.feature_store import FeatureStore
    from zsl_bench.data.synth import generate
    from zsl_bench.models import build_model

    with tempfile.TemporaryDirectory(prefix="zsl-feature-cache-bench-") as tmp:
        tmp = Path(tmp)
        root = tmp / "synth"
        generate(root)
        torch.manual_seed(0)
        backbone = build_model("resnet_test", 13, args.image_size, width=args.width).backbone.net
        weights = tmp / "backbone.pt"
        torch.save(backbone.state_dict(), weights)
        configs = trial_configs(args, weights, root)

        warm = {**configs[0], "train": {**configs[0]["train"], "epochs": 1}}
        start = time.perf_counter()
        for cache in (False, True):
            timed_trial(with_cache(warm, cache, tmp / "warm-up-features"), tmp / f"warm-up-{cache}")
        warm_s = time.perf_counter() - start

        cache_dir = tmp / "features"
        load_start = os.getloadavg()
        times = interleaved(configs, tmp, cache_dir)
        load_end = os.getloadavg()
        [entry] = FeatureStore(cache_dir).entries()
        same = [records(tmp / "end-to-end" / str(i)) == records(tmp / "cached" / str(i)) for i in range(len(configs))]
        result = summary(args, times, entry, same)
        result.update(
            warm_up_s=round(warm_s, 2),
            cpus=os.cpu_count(),
            load_avg_start=[round(x, 2) for x in load_start],
            load_avg_end=[round(x, 2) for x in load_end],
        )
    print(json.dumps(result))


def summary(
    args: argparse.Namespace, times: dict[str, list[dict[str, float]]], entry: dict[str, Any], same: list[bool]
) -> dict[str, Any]:
    """The JSON figures of one benchmark run."""
    e2e, cached = times["end-to-end"], times["cached"]
    wall = {side: sum(t["wall"] for t in ts) for side, ts in times.items()}
    cpu = {side: sum(t["cpu"] for t in ts) for side, ts in times.items()}
    extraction = float(entry.get("seconds", 0.0))
    ratio = wall["end-to-end"] / wall["cached"]
    return {
        "trials": args.trials,
        "epochs": args.epochs,
        "image_size": args.image_size,
        "width": args.width,
        "hflip": not args.no_hflip,
        "threads": sorted({int(t["threads"]) for t in e2e + cached}),
        "end_to_end_s": round(wall["end-to-end"], 2),
        "cached_s": round(wall["cached"], 2),
        "end_to_end_cpu_s": round(cpu["end-to-end"], 2),
        "cached_cpu_s": round(cpu["cached"], 2),
        "first_cached_trial_s": round(cached[0]["wall"], 2),
        "extraction_s": round(extraction, 2),
        "extracted": {name: shape[0] for name, shape in entry.get("shapes", {}).items()},
        "cache_mb": round(entry.get("bytes", 0) / 2**20, 2),
        "ratio": round(ratio, 2),
        "ratio_cpu": round(cpu["end-to-end"] / cpu["cached"], 2),
        "ratio_after_extraction": round(wall["end-to-end"] / (wall["cached"] - extraction), 2),
        "goal_ratio": 30.0,
        "met": ratio >= 30.0,
        "identical": all(same),
        "identical_trials": sum(same),
    }


if __name__ == "__main__":
    main()
