"""Where the time of one tiny-model epoch goes: imports, setup, data, forward, backward, evaluation, bookkeeping.

One ``run_trial`` (default ``zeromamba_test``, 1 epoch, synthetic data at 64 px, 2 threads) runs in this process
with small timer wrappers around the functions the engine calls — nothing of the training loop is repeated here.
A wrapped call's time counts once, for the innermost part: the batches ``evaluate`` reads count as data, not as
evaluation. The imports are timed in fresh subprocesses (the median of ``--import-runs``): ``import torch``, the
engine (``zsl_bench.engine``) and the model's modules (its registry entry), which this process then imports
before the timed trial; the fused scan's extension load, on the first scan call, counts as an import too.

Parts:
    imports      torch + engine + model modules (subprocess), + the compiled scan's load
    setup        config checks, model build, optimiser, strategy, the trial's remaining set-up
    data         dataset open (images decoded, protocol) + batch production (reads and transforms, train and eval)
    forward      the training forward and loss
    backward     backward + optimiser step and zeroing (the epoch's learning-rate schedule too)
    evaluation   no-grad scoring (``forward``) + metrics and calibration (``metrics``)
    bookkeeping  provenance, config / metrics / summary / test-score writes, checkpoint
    other        total − the parts above: the training loop's own glue (loss sums, contexts)

Prints one JSON object: the parts in seconds and as fractions of ``total_s`` (imports + the trial's wall time),
their pieces (``detail_s``: ``setup.model``, ``data.open``, ``evaluation.forward``, …), ``other_frac`` and
``parts_sum_ok`` (the parts cover the total to within ``--tolerance``), the 1-minute load average before and after,
and the evaluation batch size used.

Usage: python benchmarks/epoch_profile.py [--model zeromamba_test] [--epochs 1] [--image-size 64] [--threads 2]
       [--import-runs 3] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

IMPORTS = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import zsl_bench.engine
t2 = time.perf_counter()
from zsl_bench.models import MODELS
MODELS.get(sys.argv[1])
t3 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "engine": t2 - t1, "model": t3 - t2}))
"""


class Clock:
    """Exclusive seconds per part: a wrapped call's time less that of the wrapped calls nested inside it."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # per open call, the time of the wrapped calls inside it so far

    @contextlib.contextmanager
    def timing(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.parts[part] += elapsed - self._inner.pop()
            if self._inner:
                self._inner[-1] += elapsed

    def wrap(self, fn: Callable[..., Any], part: str) -> Callable[..., Any]:
        """``fn`` timed as ``part``."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.timing(part):
                return fn(*args, **kwargs)

        return timed

    def wrap_iter(self, fn: Callable[..., Any], part: str) -> Callable[..., Iterator[Any]]:
        """A generator function ``fn`` whose every step (``next``) is timed as ``part``."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with self.timing(part):
                it = iter(fn(*args, **kwargs))
            while True:
                with self.timing(part):
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                yield item

        return timed


def _targets() -> list[tuple[Any, str, str, str]]:
    """(owner, attribute, part, kind) of every engine function the profile wraps; kind ``call``, ``iter`` or
    ``static`` (a staticmethod on a class)."""
    from zsl_bench.engine import loops, strategies, trial
    from zsl_bench.engine.strategy import Single
    from zsl_bench.layers import fused_scan
    from zsl_bench.rundir import RunWriter

    data = [(trial, name, "data.open") for name in ("load_trial_dataset", "open_inputs", "make_protocol")]
    setup = [(trial, "build_model", "setup.model"), (trial, "build_optimizer", "setup.optimizer")]
    setup += [(trial, "validate", "setup.rest"), (strategies, "from_config", "setup.rest")]
    setup += [(trial._Trial, "_prepare", "setup.rest"), (Single, "setup", "setup.rest")]
    steps = [(Single, name, "forward") for name in ("forward", "check_finite")]
    steps += [(Single, name, "backward.optimizer") for name in ("start_epoch", "step")]
    steps += [(trial, "start_epoch", "backward.optimizer"), (Single, "backward", "backward.autograd")]
    books = [
        (RunWriter, name, "bookkeeping.writes") for name in ("config", "metrics", "summary", "test_scores", "done")
    ]
    books += [(trial, "_with_provenance", "bookkeeping.provenance"), (Single, "writer", "bookkeeping.writes")]
    books += [(trial._Trial, "checkpoint", "bookkeeping.checkpoint"), (trial._Trial, "summary", "bookkeeping.summary")]
    calls = [(*t, "call") for t in data + setup + steps + books]
    calls += [(loops, "model_input", "data.batches", "call"), (loops, "batches", "data.batches", "iter")]
    calls += [(trial, "evaluate", "evaluation.metrics", "call"), (fused_scan, "extension", "imports.scan", "call")]
    return [*calls, (Single, "class_scores", "evaluation.forward", "static")]


@contextlib.contextmanager
def instrumented(clock: Clock) -> Iterator[None]:
    """The engine with every target of :func:`_targets` wrapped, restored afterwards."""
    saved = []
    for owner, name, part, kind in _targets():
        original = inspect.getattr_static(owner, name)  # a method may come from a base class
        saved.append((owner, name, owner.__dict__.get(name)))
        fn = original.__func__ if isinstance(original, staticmethod) else original
        timed = clock.wrap_iter(fn, part) if kind == "iter" else clock.wrap(fn, part)
        if hasattr(fn, "cache_info"):  # functools.cache: callers may ask it what it holds
            timed.cache_info = fn.cache_info  # type: ignore[attr-defined]
        setattr(owner, name, staticmethod(timed) if kind == "static" else timed)
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def import_times(model: str, runs: int) -> dict[str, float]:
    """Median seconds of each import group over ``runs`` fresh interpreters."""
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORTS, model], capture_output=True, text=True, check=True)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def trial_config(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The profiled trial's configuration: the model on the synthetic data, ``--set`` overrides on top."""
    from zsl_bench.config import build_config, parse_override, to_dict

    base = {
        "model": {"name": args.model},
        "data": {"name": "synth", "root": str(root), "image_size": args.image_size},
        "train": {"epochs": args.epochs, "num_threads": args.threads, "seed": 0},
    }
    return to_dict(build_config(base, dict(parse_override(s) for s in args.set)))


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """Run the instrumented trial and split its time; see the module docstring."""
    imports = import_times(args.model, args.import_runs)
    import torch

    import zsl_bench.engine
    from zsl_bench.config import validate
    from zsl_bench.data.synth import generate
    from zsl_bench.models import MODELS

    MODELS.get(args.model)
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="zsl-epoch-profile-") as tmp:
        generate(Path(tmp) / "synth")
        cfg = trial_config(args, Path(tmp) / "synth")
        load_before = os.getloadavg()[0]
        with instrumented(clock):
            start = time.perf_counter()
            zsl_bench.engine.run_trial(cfg, Path(tmp) / "run", resume=False)
            wall = time.perf_counter() - start
        load_after = os.getloadavg()[0]
    device = cfg["train"]["device"]
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    return _split(clock.parts, imports, wall, args) | {
        "device": device,
        "eval_batch_size": validate(cfg).eval.batch_for(device),
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
    }


def _split(parts: dict[str, float], imports: dict[str, float], wall: float, args: argparse.Namespace) -> dict[str, Any]:
    """The JSON result from the clock's exclusive times, the subprocess import times and the trial's wall time."""
    imports = {**imports, "scan_extension": parts.pop("imports.scan", 0.0)}
    grouped: dict[str, float] = defaultdict(float)
    for part, seconds in parts.items():
        grouped[part.split(".")[0]] += seconds
    grouped["imports"] = sum(imports.values())
    total = sum(imports.values()) - imports["scan_extension"] + wall
    other = total - sum(grouped.values())
    order = ("imports", "setup", "data", "forward", "backward", "evaluation", "bookkeeping")
    return {
        "model": args.model,
        "epochs": args.epochs,
        "image_size": args.image_size,
        "threads": args.threads,
        "total_s": round(total, 3),
        "parts_s": {name: round(grouped[name], 3) for name in order} | {"other": round(other, 3)},
        "parts_frac": {name: round(grouped[name] / total, 3) for name in order} | {"other": round(other / total, 3)},
        "imports_s": {k: round(v, 3) for k, v in imports.items()},
        "detail_s": {k: round(v, 3) for k, v in sorted(parts.items()) if "." in k},
        "other_frac": round(other / total, 4),
        "parts_sum_ok": abs(other) <= args.tolerance * total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zeromamba_test")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="train.num_threads")
    parser.add_argument("--import-runs", type=int, default=3, help="fresh interpreters timing the imports")
    parser.add_argument("--tolerance", type=float, default=0.05, help="largest |other| / total for parts_sum_ok")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    print(json.dumps(profile(parser.parse_args())))


if __name__ == "__main__":
    main()
