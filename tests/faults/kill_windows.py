"""Kill a training run for real (SIGKILL) in every write window, rerun it, and check that nothing was lost.

Every file of a run directory is written through ``os.replace`` (a complete temp file renamed over the target),
so the write windows are exactly the moments just before and just after each rename. A clean run counts its
renames (N); then for each k in 1..N and each side (before, after) a fresh process runs the same training and
SIGKILLs itself at its k-th rename, and a second fresh process continues the run directory to the end. Each
continued run must finish with ``done``, no temp file left, one ``metrics.jsonl`` record per epoch and split, and
the very scores of the clean run (training is deterministic on CPU and resumes from its RNG state).

The processes are forked from this one after it has imported torch and zsl-bench but before it ran any tensor
code (so no thread pool is forked): a window costs one short training, not an interpreter start. Prints one JSON
object: ``windows``, ``kills``, ``kills_survived``, ``failures`` (what went wrong, per window), ``wall_s``.

Usage: python tests/faults/kill_windows.py DATA_ROOT WORK_DIR [--epochs 2] [--model resnet_test]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _child(body: Any) -> int:
    """Run ``body()`` in a forked process; its exit status as ``waitpid`` reports it (a signal: negative)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's stack
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _train(cfg: Any, run: Path, kill_at: int | None = None, side: str = "before", count_to: Path | None = None):
    """A body for :func:`_child`: train ``cfg`` into ``run``, SIGKILLing this process at its ``kill_at``-th
    rename (just ``before`` or just ``after`` it); with ``count_to``, write the number of renames there."""

    import torch  # imported here, before the fork: the children share it

    from zsl_bench.engine import run_trial

    def body() -> None:
        torch.set_num_threads(1)
        real, calls = os.replace, [0]

        def replace(src: Any, dst: Any, **kwargs: Any) -> None:
            calls[0] += 1
            if calls[0] == kill_at and side == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst, **kwargs)
            if calls[0] == kill_at and side == "after":
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace
        run_trial(cfg, run)
        if count_to is not None:
            count_to.write_text(str(calls[0]))

    return body


def _warm_imports(model: str) -> None:
    """Import in this process what a run imports on first use (torch's optimiser pulls in ``torch._dynamo``, the
    registries their entries' modules), so each forked child starts warm. Imports only: no tensor code runs."""
    import torch._dynamo
    import torch.distributed  # noqa: F401

    from zsl_bench.data.declare import DATASETS
    from zsl_bench.models import MODELS

    MODELS.get(model)
    DATASETS.get("synth")


def _records(run: Path) -> list[tuple[int, str | None]]:
    """(epoch, split) of every ``metrics.jsonl`` record of ``run``, in order."""
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
    return [(r["epoch"], r.get("split")) for r in map(json.loads, filter(str.strip, lines))]


def _problems(run: Path, clean_run: Path) -> list[str]:
    """What is wrong with the continued run ``run`` compared with ``clean_run``."""
    found = []
    if not (run / "done").exists():
        found.append("no done marker")
    temps = [str(p.relative_to(run)) for p in run.rglob("*.tmp")]
    if temps:
        found.append(f"temp files left: {temps}")
    if _records(run) != _records(clean_run):
        found.append(f"metric records {_records(run)}, the clean run has {_records(clean_run)}")
    clean = json.loads((clean_run / "summary.json").read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    for key in ("status", "epochs_run", "best_by_val"):
        if summary.get(key) != clean.get(key):
            found.append(f"summary {key}: {summary.get(key)!r} != clean {clean.get(key)!r}")
    return found


def measure(data_root: Path, work: Path, epochs: int = 2, model: str = "resnet_test") -> dict[str, Any]:
    """The figures of the module docstring, for a ``model`` trained ``epochs`` epochs on ``data_root``."""
    from zsl_bench.config import build_config
    from zsl_bench.models import MODELS

    start = time.perf_counter()
    overrides = {"model.name": model, "data.name": "synth", "data.root": str(data_root), "train.epochs": epochs}
    if MODELS.get(model).inputs == "features":  # a head on precomputed features: the synthetic res101.mat
        overrides["data.features"] = "res101"
    cfg = build_config(None, {**overrides, "train.batch_size": 32, "train.num_threads": 1})
    work.mkdir(parents=True, exist_ok=True)
    _warm_imports(model)
    count = work / "renames"
    if _child(_train(cfg, work / "clean", count_to=count)) != 0:
        raise RuntimeError("the clean run failed")
    windows = int(count.read_text())
    failures: dict[str, list[str]] = {}
    for k in range(1, windows + 1):
        for side in ("before", "after"):
            run, label = work / f"w{k:03d}-{side}", f"rename {k} {side}"
            killed = _child(_train(cfg, run, kill_at=k, side=side))
            if killed != -signal.SIGKILL:
                failures[label] = [f"the killed run ended with {killed}, not SIGKILL"]
                continue
            code = _child(_train(cfg, run))
            failures[label] = [f"the continued run exited {code}"] if code else _problems(run, work / "clean")
    failures = {k: v for k, v in failures.items() if v}
    return {
        "windows": windows * 2,
        "kills": windows * 2,
        "kills_survived": windows * 2 - len(failures),
        "failures": failures,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", type=Path, help="a synthetic dataset (zsl-bench data synth)")
    parser.add_argument("work", type=Path, help="an empty folder for the runs")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", default="resnet_test")
    args = parser.parse_args()
    print(json.dumps(measure(args.data_root, args.work, args.epochs, args.model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
