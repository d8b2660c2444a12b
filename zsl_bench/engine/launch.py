"""Start the worker processes of one ``ddp``/``deepspeed`` run on this host and wait for them.

``zsl-bench train`` calls :func:`launch` when ``train.strategy`` is not ``single``: it writes the resolved config
to a temporary file and runs (an argv list, no shell)::

    python -m torch.distributed.run --nnodes 1 --nproc-per-node N --master-addr 127.0.0.1 --master-port PORT \\
        -m zsl_bench.engine.worker CONFIG RUN_DIR

torchrun gives every worker ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_*`` and ends the others when one
fails. On CPU the workers get ``DS_ACCELERATOR=cpu`` (DeepSpeed reads it on import) and, unless set,
``OMP_NUM_THREADS`` = the cores divided among them. Rank 0 writes the run directory; a failed worker leaves
``error.txt`` there (written here when the workers died before they could) and :func:`launch` raises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from zsl_bench.config import ExperimentConfig, to_dict
from zsl_bench.engine import ds_checkpoint, strategies
from zsl_bench.errors import TrialFailed
from zsl_bench.ports import free_ports
from zsl_bench.rundir import DONE, ERROR, SUMMARY, RunWriter


def needs_launcher(cfg: ExperimentConfig) -> bool:
    """Whether ``cfg`` trains in worker processes (``train.strategy`` ddp or deepspeed)."""
    return cfg.train.strategy != "single"


def worker_env(cfg: ExperimentConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the worker processes: ``base`` (default this process's) plus what DeepSpeed on CPU
    and the thread count need."""
    env = dict(os.environ if base is None else base)
    if strategies.device_type_of(cfg.train.device) == "cpu" and cfg.train.strategy == "deepspeed":
        env["DS_ACCELERATOR"] = "cpu"
    if "OMP_NUM_THREADS" not in env:
        share = cfg.train.num_threads or max(1, (os.cpu_count() or 1) // cfg.train.num_workers)
        env["OMP_NUM_THREADS"] = str(share)
    return env


def worker_argv(config_file: Path, run_dir: Path, workers: int, port: int, resume: bool = True) -> list[str]:
    """The torchrun command line of :func:`launch`."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(workers)]
    argv += ["--master-addr", "127.0.0.1", "--master-port", str(port)]
    argv += ["-m", "zsl_bench.engine.worker", str(config_file), str(run_dir)]
    return argv if resume else [*argv, "--fresh"]


def launch(cfg: ExperimentConfig, run_dir: str | Path, resume: bool = True) -> dict[str, Any]:
    """Train ``cfg`` in ``train.num_workers`` local processes into ``run_dir``; its summary, as ``run_trial``.

    Raises ``UserError`` for a setting that cannot run (before starting anything) and ``TrialFailed`` when a
    worker fails (``error.txt`` in ``run_dir``; the workers' own output went to this process's stderr)."""
    strategies.check(cfg)
    run_dir = Path(run_dir).resolve()
    if resume:  # a planted checkpoint file is one line here, before any worker starts (they read tensors only)
        ds_checkpoint.check_run(run_dir)
    with tempfile.TemporaryDirectory(prefix="zsl-bench-launch-") as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        argv = worker_argv(config_file, run_dir, cfg.train.num_workers, free_ports(1, "127.0.0.1")[0], resume)
        code = subprocess.run(argv, env=worker_env(cfg), check=False).returncode
    summary_file = run_dir / SUMMARY
    if code == 0 and (run_dir / DONE).exists():
        return json.loads(summary_file.read_text())
    if not (run_dir / ERROR).exists():
        RunWriter.record_error(run_dir, f"the worker processes failed (torchrun exit code {code}); see their output")
    raise TrialFailed(f"run {run_dir} failed: a worker process exited with code {code} (details above)")
