"""Helpers the SLURM batch script calls on the job's nodes (``zsl-bench cluster job …``).

They do the parts that are awkward or unsafe in shell: a node's IP, free ports, the token file, running
``ray start --block`` with a short private temp dir, and waiting for the Ray nodes through the dashboard.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from zsl_bench.cluster.dashboard import DashboardClient
from zsl_bench.cluster.head import private_temp_dir, ray_start_command
from zsl_bench.errors import UserError

_NODE_ADDR = re.compile(r"(?:^|\s)NodeAddr=(\S+)")


def node_ip(node: str) -> str:
    """The IPv4 address of SLURM node ``node`` (its ``NodeAddr``, resolved)."""
    try:
        proc = subprocess.run(["scontrol", "show", "node", "-o", node], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise UserError("scontrol not found: this helper runs inside a SLURM job") from None
    match = _NODE_ADDR.search(proc.stdout)
    if proc.returncode != 0 or not match:
        raise UserError(f"scontrol show node {node}: {(proc.stderr or proc.stdout).strip() or 'no NodeAddr'}")
    addr = match.group(1)
    try:
        return socket.getaddrinfo(addr, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except socket.gaierror as exc:
        raise UserError(f"node {node}: cannot resolve its NodeAddr {addr!r} ({exc.strerror})") from None


def run_ray_node(ray_args: list[str], stop_grace_s: float = 10.0) -> int:
    """``ray start ARGS --block`` with its own temp dir, removed at the end.

    SIGTERM/SIGINT/SIGHUP are passed on; ``ray start`` still running ``stop_grace_s`` later is killed. Ray's
    drain-on-SIGTERM is off (``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0``): when SLURM ends a step every process of
    it gets SIGTERM at once, the GCS is gone, and the drain request would only wait out its timeout.
    """
    temp = private_temp_dir()  # 0700: Ray makes its own temp dir (temp/ray) and all in it 0777
    env = {**os.environ, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    cmd = ray_start_command([*ray_args, "--block", f"--temp-dir={temp / 'ray'}"])
    child = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    stop_asked: list[float] = []

    def forward(signum: int, _frame: Any) -> None:
        stop_asked.append(time.monotonic())
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        while True:
            try:
                code = child.wait(timeout=0.5)
                return 0 if stop_asked else code  # stopped on request: a clean end of the step
            except subprocess.TimeoutExpired:
                if stop_asked and time.monotonic() - stop_asked[0] > stop_grace_s:
                    child.kill()
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def wait_for_nodes(dashboard_url: str, count: int, timeout: float) -> list[dict[str, Any]]:
    """Block until ``count`` Ray nodes are alive (token from ``RAY_AUTH_TOKEN_PATH``); ``TimeoutError`` else."""
    from zsl_bench.cluster.auth import read_token

    token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token_path:
        raise UserError("RAY_AUTH_TOKEN_PATH is not set: the batch script exports it before waiting")
    return DashboardClient(dashboard_url, read_token(Path(token_path))).wait_nodes(count, timeout)
