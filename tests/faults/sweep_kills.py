"""Sweeps killed for real, as scenarios that return their figures (the tests assert them; ``benchmarks/faults.py
--sweeps`` prints them).

- :func:`driver_kills`: SIGKILL of the sweep driver's whole process group at random points of its progress (while
  the first trial starts, once a checkpoint exists, once a trial finished), each followed by ``--resume``.
- :func:`node_loss`: a real three-node Ray cluster on loopback (``zsl-bench cluster up`` on 127.0.0.1 with no
  CPUs, ``ray start`` worker nodes on 127.0.0.2 and 127.0.0.3 with one CPU each); once a trial trains on the
  second worker and has a checkpoint, every process of that node (raylet, trial worker, agents) gets SIGKILL, as
  when a machine dies. The GCS marks the node dead and Tune retries the trial from its checkpoint elsewhere.

Both count, over the sweep's run directories: ``trials_lost`` (requested trials without ``done``) and
``trials_duplicated`` (extra run directories, epochs recorded twice, finished trials run again).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from zsl_bench.cluster import procs
from zsl_bench.cluster.auth import token_env
from zsl_bench.cluster.head import private_temp_dir, ray_start_command
from zsl_bench.ports import free_ports

Cli = Callable[..., tuple[int, str, str]]
TRIALS, EPOCHS = 4, 3
FAST_HEALTH_CHECKS = {  # the GCS declares a silent node dead after ~3 s instead of ~30 s
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def run_dirs(sweep_dir: Path) -> list[Path]:
    """The trial run directories of a sweep (not ``_ray`` and the like)."""
    if not sweep_dir.exists():
        return []
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))


def write_space(path: Path, synth_root: Path, max_failures: int = 0) -> Path:
    """A small FIFO sweep of ``TRIALS`` trials of ``EPOCHS`` epochs on the synthetic data, written to ``path``."""
    space = {
        "base": "quickstart",
        "set": {"data.root": str(synth_root), "train.epochs": EPOCHS, "model.options.width": 8},
        "sweep": {
            "num_samples": TRIALS,
            "max_concurrent": 2,
            "scheduler": "fifo",  # every trial runs all its epochs: the counts are exact
            "top_k": 0,
            "max_failures": max_failures,
            "resources_per_trial": {"cpu": 1},
        },
        "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    }
    path.write_text(yaml.safe_dump(space))
    return path


def count_trials(sweep_dir: Path, finished_before: dict[str, int] | None = None) -> dict[str, int]:
    """``trials_lost`` and ``trials_duplicated`` of a sweep that should hold ``TRIALS`` finished trials, each with
    one metric record per epoch and split. ``finished_before`` maps trials finished before a kill to their
    ``done`` mtime: a change means the trial ran again."""
    dirs = run_dirs(sweep_dir)
    want = sorted((e, split) for e in range(1, EPOCHS + 1) for split in ("val", "test"))
    complete, duplicated = 0, max(0, len(dirs) - TRIALS)
    for d in dirs:
        lines = (d / "metrics.jsonl").read_text().splitlines() if (d / "metrics.jsonl").exists() else []
        got = [(r["epoch"], r["split"]) for r in map(json.loads, filter(str.strip, lines))]
        duplicated += len(got) - len(set(got))
        complete += int((d / "done").exists() and sorted(set(got)) == want)
    for name, stamp in (finished_before or {}).items():
        path = sweep_dir / name / "done"
        duplicated += int(path.exists() and path.stat().st_mtime_ns != stamp)
    return {"trials_lost": TRIALS - min(complete, TRIALS), "trials_duplicated": duplicated}


def _finished(sweep_dir: Path) -> dict[str, int]:
    return {d.name: (d / "done").stat().st_mtime_ns for d in run_dirs(sweep_dir) if (d / "done").exists()}


def _started(sweep_dir: Path) -> bool:
    return any((d / "config.yaml").exists() for d in run_dirs(sweep_dir))


def _checkpointed(sweep_dir: Path) -> bool:
    return any((d / "checkpoint" / "latest.pt").exists() and not (d / "done").exists() for d in run_dirs(sweep_dir))


def _one_finished(sweep_dir: Path) -> bool:
    return bool(_finished(sweep_dir)) and len(_finished(sweep_dir)) < TRIALS


def driver_kills(synth_root: Path, work: Path, cli: Cli, seed: int = 0) -> dict[str, Any]:
    """Kill the driver at three points (each after a random extra 0–2 s), resume after each, then finish."""
    rng = random.Random(seed)
    space_file, results = write_space(work / "killme.yaml", synth_root), work / "results"
    sweep_dir = results / "killme"
    command = [sys.executable, "-m", "zsl_bench.cli", "sweep", "--space", str(space_file), "--results", str(results)]
    kills, finished_before = 0, {}
    for number, (point, reached) in enumerate(
        [("a trial started", _started), ("a checkpoint", _checkpointed), ("a trial finished", _one_finished)]
    ):
        resume = ["--resume"] if number else []
        with open(work / f"driver-{number}.log", "w") as log:
            driver = subprocess.Popen([*command, *resume], start_new_session=True, stdout=log, stderr=log)
        try:
            _wait(lambda r=reached: r(sweep_dir), driver, f"{point} (kill {number + 1})", work / f"driver-{number}.log")
            time.sleep(rng.uniform(0.0, 2.0))
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        kills += 1
        finished_before.update(_finished(sweep_dir))
    code, out, err = cli("sweep", "--space", str(space_file), "--results", str(results), "--resume", timeout=900)
    if code != 0 or f"search {TRIALS} completed" not in out:
        raise AssertionError(f"the last --resume exited {code}: {err[-3000:]}")
    return _figures(kills, count_trials(sweep_dir, finished_before))


def _figures(kills: int, counts: dict[str, int]) -> dict[str, Any]:
    """The scenario's figures: its kills count as survived when no trial was lost or duplicated."""
    survived = kills if not (counts["trials_lost"] or counts["trials_duplicated"]) else 0
    return {"kills": kills, "kills_survived": survived, **counts}


def _wait(reached: Callable[[], bool], driver: subprocess.Popen, what: str, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not reached():
        if driver.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s: {log.read_text()[-3000:]}")
        time.sleep(0.2)


def start_worker(address: str, ip: str, token_file: Path) -> tuple[str, Path]:
    """Join a worker node at ``ip`` (one CPU) to the cluster at ``address``; its marker and its temp folder."""
    marker, temp = uuid.uuid4().hex, private_temp_dir()
    env = {**token_env(token_file), procs.MARKER_VAR: marker}
    args = [f"--address={address}", f"--node-ip-address={ip}", "--num-cpus=1", f"--object-store-memory={200 * 2**20}"]
    cmd = ray_start_command([*args, f"--temp-dir={temp / 'ray'}", "--disable-usage-stats"])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AssertionError(f"ray start of a worker at {ip}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return marker, temp


def busy_workers(marker: str) -> list[str]:
    """Command lines of the node's Ray worker processes that run a task or actor (not idle)."""
    found = []
    for proc in procs.marked(marker):
        try:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if cmdline.startswith("ray::") and not cmdline.startswith("ray::IDLE"):
            found.append(cmdline)
    return found


def node_loss(synth_root: Path, work: Path, cli: Cli) -> dict[str, Any]:
    """The node-loss scenario of the module docstring; also returns ``node_states`` (worker ip → state)."""
    cdir, results = work / "cluster", work / "results"
    gcs_port, dash_port = free_ports(2)
    code, _, err = cli(
        *("cluster", "up", "--num-cpus", "0", "--port", str(gcs_port), "--dashboard-port", str(dash_port)),
        *("--object-store-mb", "200", "--cluster-dir", str(cdir)),
        env=FAST_HEALTH_CHECKS,
        timeout=180,
    )
    if code != 0:
        raise AssertionError(f"cluster up: {err[-3000:]}")
    state = json.loads((cdir / "cluster.json").read_text())
    token_file = Path(state["token_file"])
    workers: list[tuple[str, Path]] = []
    driver = None
    try:
        workers = [start_worker(state["address"], ip, token_file) for ip in ("127.0.0.2", "127.0.0.3")]
        space_file = write_space(work / "lose_a_node.yaml", synth_root, max_failures=2)
        command = [sys.executable, "-m", "zsl_bench.cli", "sweep", "--space", str(space_file)]
        command += ["--results", str(results), "--address", state["address"]]
        env = {**token_env(token_file), "ZSL_BENCH_CLUSTER_DIR": str(cdir)}
        log = work / "sweep.log"
        with open(log, "w") as out:
            driver = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sweep_dir, lost = results / "lose_a_node", workers[1][0]
        _wait(lambda: bool(busy_workers(lost)) and _checkpointed(sweep_dir), driver, "a trial on the 2nd worker", log)
        procs._signal(procs.marked(lost), signal.SIGKILL)  # the machine is gone: nothing of it shuts down cleanly
        if driver.wait(timeout=600) != 0 or f"search {TRIALS} completed" not in log.read_text():
            raise AssertionError(f"the sweep did not complete: {log.read_text()[-4000:]}")
        code, out_text, err = cli("cluster", "status", "--json", "--cluster-dir", str(cdir))
        nodes = json.loads(out_text)["nodes"] if code == 0 else []
        states = {n["ip"]: n["state"] for n in nodes if not n["head"]}
        return {**_figures(1, count_trials(sweep_dir)), "node_states": states}
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
        for marker, temp in workers:
            procs.stop([], marker)
            shutil.rmtree(temp, ignore_errors=True)
        cli("cluster", "down", "--cluster-dir", str(cdir))
