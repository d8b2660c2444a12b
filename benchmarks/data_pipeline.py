"""Images per second: decoding JPEGs vs reading the memory-mapped cache; prints one JSON object.

Usage::

    python benchmarks/data_pipeline.py [--n 300] [--width 500] [--height 375] [--preset zeromamba] [--seed 0]

Writes ``n`` synthetic photo-like JPEGs (smooth colour fields + texture + noise, quality 90, about the size of a
CUB image) to a temporary folder, then reads them in shuffled batches of 32 through the two image sources of
:mod:`zsl_bench.data.stream`, both giving the same ``uint8 [B, 3, S, S]`` batches:

* ``DecodedImages`` — decode + resize (+ crop) with PIL, on 1 thread and on all cores;
* ``ImageCache`` — the memory-mapped cache (built once, timed separately), read for ``--epochs`` epochs with a
  warm page cache, which is the steady state of a sweep whose trials share one machine.

``speedup`` = cache images/s ÷ single-thread JPEG images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from zsl_bench.data.cache import build_cache
from zsl_bench.data.stream import DecodedImages, ImageSource
from zsl_bench.data.transforms import TRANSFORMS

BATCH = 32


def photo(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """``[height, width, 3]`` uint8: low-frequency colour fields, mid-frequency texture, sensor noise."""
    coarse = rng.random((4, 5, 3)) * 255
    img = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC), np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    freq = rng.uniform(0.05, 0.3, size=2)
    texture = 25 * np.sin(xx * freq[0] + rng.uniform(0, 6)) * np.cos(yy * freq[1] + rng.uniform(0, 6))
    img = img + texture[..., None] + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def images_per_s(source: ImageSource, order: np.ndarray, epochs: int) -> float:
    start = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, order.size, BATCH):
            batch = source.get(order[i : i + BATCH])
            assert batch.dtype == torch.uint8
    return epochs * order.size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of JPEGs")
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--preset", choices=sorted(TRANSFORMS), default="zeromamba")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the cache (warm page cache)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    spec = TRANSFORMS[args.preset]
    rng = np.random.default_rng(args.seed)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="zsl-bench-pipeline-") as tmp:
        paths = [Path(tmp) / "jpeg" / f"{i:05d}.jpg" for i in range(args.n)]
        paths[0].parent.mkdir()
        for p in paths:
            Image.fromarray(photo(rng, args.width, args.height)).save(p, format="JPEG", quality=90)
        jpeg_bytes = sum(p.stat().st_size for p in paths)
        order = rng.permutation(args.n)

        one = images_per_s(DecodedImages(paths, spec, workers=1), order, 1)
        threaded = images_per_s(DecodedImages(paths, spec, workers=cores), order, 1)

        start = time.perf_counter()
        cache = build_cache(paths, spec, Path(tmp) / "cache" / "bench.npy", workers=cores)
        build_s = time.perf_counter() - start
        cached = images_per_s(cache, order, args.epochs)
        cache_bytes = cache.path.stat().st_size

    result = {
        "images": args.n,
        "jpeg_size": [args.width, args.height],
        "jpeg_mean_kib": round(jpeg_bytes / args.n / 1024, 1),
        "preset": args.preset,
        "output_size": spec.size,
        "batch": BATCH,
        "cores": cores,
        "jpeg_images_per_s": round(one, 1),
        "jpeg_images_per_s_all_cores": round(threaded, 1),
        "cache_images_per_s": round(cached, 1),
        "speedup": round(cached / one, 1),
        "cache_build_s": round(build_s, 2),
        "cache_mib": round(cache_bytes / 2**20, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
