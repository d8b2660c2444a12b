"""A local Ray head with its dashboard: ``cluster up``, ``status``, ``down``, and attaching a sweep to it.

A cluster lives in a *cluster directory* (default ``$ZSL_BENCH_CLUSTER_DIR`` or
``~/.local/state/zsl-bench/cluster``, mode 0700) holding ``auth_token`` (0600), ``cluster.json`` (address, dashboard
URL, Ray temp dir, the PIDs started) and ``ray-start.log``. Ray's own temp dir is ``ray/`` inside a short private
``/tmp/zslray-*`` folder (:func:`private_temp_dir`; Unix socket paths are limited to 107 bytes), removed by ``down``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zsl_bench import atomic
from zsl_bench.cluster import procs
from zsl_bench.cluster.auth import check_token_file, create_token, read_token, token_env
from zsl_bench.cluster.dashboard import DashboardClient, DashboardError
from zsl_bench.cluster.net import check_port, is_loopback, parse_address
from zsl_bench.errors import UserError
from zsl_bench.ports import free_ports, port_free

STATE = "cluster.json"
TOKEN = "auth_token"
START_LOG = "ray-start.log"
READY_TIMEOUT_S = 60.0


@dataclass
class HeadOptions:
    """What ``cluster up`` was asked for."""

    cluster_dir: Path
    num_cpus: int | None = None  # None: every core of this machine
    num_gpus: int | None = None  # None: Ray detects them
    port: int = 6379  # GCS; the address sweeps attach to
    dashboard_port: int = 8265
    dashboard_host: str = "127.0.0.1"
    expose_dashboard: bool = False  # must be set to bind the dashboard to a non-loopback address
    node_ip: str | None = None  # None: Ray picks this machine's routable address
    object_store_mb: int | None = None


@dataclass
class ClusterState:
    """``cluster.json``: everything ``status``/``down``/``sweep --address`` need to find the cluster again."""

    cluster_id: str
    address: str
    dashboard_url: str
    dashboard_host: str
    dashboard_port: int
    token_file: str
    temp_dir: str
    num_cpus: int | None
    num_gpus: int | None
    started_at: float
    procs: list[list[int | str]] = field(default_factory=list)

    def processes(self) -> list[procs.Proc]:
        return [procs.Proc.from_list(p) for p in self.procs]


def default_cluster_dir() -> Path:
    """``$ZSL_BENCH_CLUSTER_DIR``, else ``$XDG_STATE_HOME/zsl-bench/cluster`` (``~/.local/state/…``)."""
    if os.environ.get("ZSL_BENCH_CLUSTER_DIR"):
        return Path(os.environ["ZSL_BENCH_CLUSTER_DIR"])
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "zsl-bench" / "cluster"


def load_state(cluster_dir: Path) -> ClusterState | None:
    """The recorded cluster of ``cluster_dir``, or None when there is none."""
    path = Path(cluster_dir) / STATE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable cluster state ({exc}); remove it after checking no cluster runs") from None
    try:  # every field, of the right kind: `down` signals the recorded PIDs
        state = ClusterState(**raw)
        state.processes()
    except (TypeError, ValueError, IndexError) as exc:
        problem = str(exc).replace("ClusterState.__init__() ", "")
        raise UserError(
            f"{path}: not a cluster record of zsl-bench ({problem}); stop its processes yourself, then remove it"
        ) from None
    return state


def is_running(state: ClusterState) -> bool:
    """True while any process of the cluster is alive."""
    return any(procs.alive(p) for p in state.processes()) or bool(procs.marked(state.cluster_id))


def check_dashboard_host(host: str, expose: bool) -> str | None:
    """``UserError`` for a non-loopback dashboard without ``expose``; with it, the warning to print."""
    if is_loopback(host):
        return None
    if not expose:
        raise UserError(
            f"--dashboard-host {host}: the dashboard would be reachable from other machines; keep 127.0.0.1 and "
            "use an SSH tunnel, or pass --expose-dashboard if this network is trusted"
        )
    return (
        f"warning: the Ray dashboard listens on {host}: anyone who can reach that address and holds the token "
        "controls the cluster (jobs run arbitrary code); prefer 127.0.0.1 and an SSH tunnel"
    )


def up(opts: HeadOptions) -> ClusterState:
    """Start a Ray head (dashboard on ``opts.dashboard_host``, token auth on) and record it; raise if one runs."""
    cdir = Path(opts.cluster_dir).expanduser().resolve()
    _check_up(opts, cdir)
    cdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = create_token(cdir / TOKEN, replace=True)
    temp_dir = private_temp_dir()  # Ray's own temp dir is temp_dir/ray
    cluster_id = uuid.uuid4().hex
    env = {**token_env(token), procs.MARKER_VAR: cluster_id}
    log_path = cdir / START_LOG
    with open(log_path, "w") as log:
        cmd = ray_start_command(_head_args(opts, temp_dir))
        code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    state = ClusterState(
        cluster_id=cluster_id,
        address="",
        dashboard_url=f"http://{_url_host(opts.dashboard_host)}:{opts.dashboard_port}",
        dashboard_host=opts.dashboard_host,
        dashboard_port=opts.dashboard_port,
        token_file=str(token),
        temp_dir=str(temp_dir),
        num_cpus=_num_cpus(opts),
        num_gpus=opts.num_gpus,
        started_at=time.time(),
    )
    try:
        if code != 0:
            raise UserError(f"ray start failed (exit {code}): {_last_error(log_path)}; full log: {log_path}")
        _await_head(cdir, state, log_path)
    except BaseException:
        procs.stop(state.processes(), cluster_id)
        _forget(cdir, state)
        raise
    return state


def _check_up(opts: HeadOptions, cdir: Path) -> None:
    """``UserError`` for bad ports or counts, a cluster of ``cdir`` still running, or ports in use; a record of a
    cluster that died (reboot, killed) is forgotten."""
    check_port(opts.port, "--port")
    check_port(opts.dashboard_port, "--dashboard-port")
    for value, what in ((opts.num_cpus, "--num-cpus"), (opts.num_gpus, "--num-gpus")):
        if value is not None and value < 0:
            raise UserError(f"{what} {value}: must be 0 or more")
    old = load_state(cdir)
    if old is not None:
        if is_running(old):
            raise UserError(
                f"a cluster from {cdir} already runs at {old.address} (dashboard {old.dashboard_url}); "
                "stop it with `zsl-bench cluster down` or use another --cluster-dir"
            )
        _forget(cdir, old)
    if not port_free(opts.port):
        raise UserError(f"--port {opts.port} is in use on this machine; pick a free one, e.g. --port 6380")
    if not port_free(opts.dashboard_port, opts.dashboard_host):
        raise UserError(f"--dashboard-port {opts.dashboard_port} is in use on {opts.dashboard_host}; pick another")


def _head_args(opts: HeadOptions, temp_dir: Path) -> list[str]:
    """The ``ray start`` arguments of the head ``opts`` describe, its temp dir ``temp_dir/ray``."""
    return [
        "--head",
        f"--port={opts.port}",
        "--include-dashboard=true",
        f"--dashboard-host={opts.dashboard_host}",
        f"--dashboard-port={opts.dashboard_port}",
        f"--ray-client-server-port={free_ports(1)[0]}",  # not the fixed 10001 (Ray insists on starting one)
        "--dashboard-agent-listen-port=0",  # a free port instead of the fixed 52365
        f"--temp-dir={temp_dir / 'ray'}",
        "--disable-usage-stats",
        f"--num-cpus={_num_cpus(opts)}",
        *([f"--num-gpus={opts.num_gpus}"] if opts.num_gpus is not None else []),
        *([f"--node-ip-address={opts.node_ip}"] if opts.node_ip else []),
        *([f"--object-store-memory={opts.object_store_mb * 2**20}"] if opts.object_store_mb else []),
    ]


def _await_head(cdir: Path, state: ClusterState, log_path: Path) -> None:
    """Record the started head in ``cdir`` (before waiting, so that ``down`` can stop a head that never got ready),
    wait for its dashboard, and record every process it has started by then."""
    temp_dir = Path(state.temp_dir)
    check_private(temp_dir)
    state.address = (temp_dir / "ray" / "ray_current_cluster").read_text().strip()
    state.procs = [p.to_list() for p in procs.marked(state.cluster_id)]
    _write_state(cdir, state)
    client = DashboardClient(state.dashboard_url, read_token(Path(state.token_file)))
    try:
        client.wait_nodes(1, READY_TIMEOUT_S)
    except TimeoutError as exc:
        raise UserError(f"the Ray head started but its dashboard is not ready: {exc}; log: {log_path}") from None
    state.procs = [p.to_list() for p in procs.marked(state.cluster_id)]
    _write_state(cdir, state)


def down(cluster_dir: Path) -> tuple[ClusterState | None, int]:
    """Stop every process of the cluster recorded in ``cluster_dir`` (by PID) and forget it.

    Returns the state that was stopped (None: nothing recorded) and how many processes were signalled.
    """
    cdir = Path(cluster_dir).expanduser().resolve()
    state = load_state(cdir)
    if state is None:
        return None, 0
    count = procs.stop(state.processes(), state.cluster_id)
    _forget(cdir, state)
    return state, count


def status(cluster_dir: Path) -> dict[str, Any]:
    """Nodes, resources and jobs of the recorded cluster, read from its dashboard with the token."""
    cdir = Path(cluster_dir).expanduser().resolve()
    state = load_state(cdir)
    if state is None:
        raise UserError(f"no cluster recorded in {cdir}; start one with `zsl-bench cluster up`")
    report: dict[str, Any] = {
        "address": state.address,
        "dashboard_url": state.dashboard_url,
        "token_file": state.token_file,
        "cluster_dir": str(cdir),
        "running": is_running(state),
    }
    if not report["running"]:
        return report
    client = DashboardClient(state.dashboard_url, read_token(Path(state.token_file)))
    try:
        report["ray_version"] = client.version().get("ray_version")
        report["nodes"] = client.nodes()
        report["resources"] = client.resources()
        jobs = client.jobs()
    except DashboardError as exc:
        report["error"] = str(exc)
        return report
    known = {key for node in report["nodes"] for key in node["resources"]}  # not the placement-group entries
    report["resources"] = {k: v for k, v in report["resources"].items() if k in known}
    if not report["resources"]:  # the autoscaler reports usage a few seconds after start: totals only
        totals: dict[str, float] = {}
        for node in report["nodes"]:
            if node["state"] == "ALIVE":
                for key, value in node["resources"].items():
                    totals[key] = totals.get(key, 0.0) + value
        report["resources"] = {k: {"used": None, "total": v} for k, v in totals.items()}
    report["jobs"] = [j for j in jobs if j["status"] in ("RUNNING", "PENDING")]
    report["jobs_finished"] = len(jobs) - len(report["jobs"])
    return report


def attach_env(address: str, cluster_dir: Path | None = None) -> str:
    """Set ``RAY_AUTH_MODE=token`` and the token of the cluster at ``address`` in this process's environment.

    A token already in the environment (``RAY_AUTH_TOKEN_PATH``/``RAY_AUTH_TOKEN``, as inside a SLURM job) is
    used as it is; otherwise the token of the cluster recorded in ``cluster_dir`` (default: the default cluster
    directory). Returns where the token came from. Must run before ``import ray``.
    """
    parse_address(address)
    if os.environ.get("RAY_AUTH_TOKEN_PATH") or os.environ.get("RAY_AUTH_TOKEN"):
        os.environ["RAY_AUTH_MODE"] = "token"
        return "the environment"
    cdir = Path(cluster_dir or default_cluster_dir()).expanduser()
    state = load_state(cdir)
    if state is None:
        raise UserError(
            f"--address {address}: no token for that cluster: export RAY_AUTH_TOKEN_PATH=FILE (the token file "
            f"`zsl-bench cluster up` printed), or set ZSL_BENCH_CLUSTER_DIR to its cluster directory (looked in {cdir})"
        )
    check_token_file(Path(state.token_file))  # a planted or loosened token would let others join
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = state.token_file
    os.environ.pop("RAY_AUTH_TOKEN", None)  # set but empty: would still shadow the file
    return str(cdir)


def private_temp_dir() -> Path:
    """A new folder ``zslray-*`` (mode 0700, see :func:`short_tmp`) for Ray's temp dir, ``<it>/ray``.

    Ray makes its temp dir and everything in it (sessions, logs, sockets, runtime envs) mode 0777 without the sticky
    bit (``ray._common.utils.try_make_directory_shared``), so other users could replace sockets or read logs; one
    private folder above it keeps them out. :func:`check_private` tells whether it stayed so."""
    return Path(tempfile.mkdtemp(prefix="zslray-", dir=short_tmp()))


def check_private(folder: Path) -> None:
    """Raise ``UserError`` unless ``folder`` is still a directory of this user with mode 0700."""
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) != 0o700:
        raise UserError(
            f"Ray's temp folder {folder} is no longer private (mode {stat.S_IMODE(info.st_mode):o}, owner "
            f"{info.st_uid}); remove it and check who else changes files under {folder.parent}"
        )


def ray_start_command(args: list[str]) -> list[str]:
    """``ray start ARGS`` run by this interpreter (no dependence on PATH)."""
    return [sys.executable, "-m", "ray.scripts.scripts", "start", *args]


def short_tmp() -> str:
    """A temp root short enough for Ray's Unix sockets (``$TMPDIR`` if short, else ``/tmp``)."""
    tmp = tempfile.gettempdir()
    return tmp if len(tmp) <= 40 else "/tmp"


def _num_cpus(opts: HeadOptions) -> int:
    return opts.num_cpus if opts.num_cpus is not None else (os.cpu_count() or 1)


def _write_state(cdir: Path, state: ClusterState) -> None:
    atomic.write_text(cdir / STATE, json.dumps(asdict(state), indent=2) + "\n")


def _forget(cdir: Path, state: ClusterState) -> None:
    """Remove the state file, the token and Ray's temp dir (only if it is one of ours)."""
    (cdir / STATE).unlink(missing_ok=True)
    Path(state.token_file).unlink(missing_ok=True)
    temp = Path(state.temp_dir)
    if temp.name.startswith("zslray-"):
        shutil.rmtree(temp, ignore_errors=True)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1" if host != "::" else "[::1]"
    return f"[{host}]" if ":" in host else host


def _last_error(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["(no output)"])[-1][:400]
