"""``zsl-bench cluster …``: a local Ray head with its dashboard (``up``, ``status``, ``down``), the launcher commands
(``slurm``) and the helpers a SLURM job runs on its nodes (``job …``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from zsl_bench.cli.cluster_job import add_job_parser
from zsl_bench.cli.common import subcommands
from zsl_bench.cli.sweep import add_launcher_parsers


def cmd_cluster_up(args: argparse.Namespace) -> int:
    import getpass
    import shlex
    import socket

    from zsl_bench.cluster.head import HeadOptions, check_dashboard_host, default_cluster_dir, up

    warning = check_dashboard_host(args.dashboard_host, args.expose_dashboard)
    if warning:
        print(warning, file=sys.stderr)
    cdir = Path(args.cluster_dir)
    state = up(
        HeadOptions(
            cluster_dir=cdir,
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            port=args.port,
            dashboard_port=args.dashboard_port,
            dashboard_host=args.dashboard_host,
            expose_dashboard=args.expose_dashboard,
            node_ip=args.node_ip_address,
            object_store_mb=args.object_store_mb,
        )
    )
    token = shlex.quote(state.token_file)
    default = cdir.expanduser().resolve() == default_cluster_dir().expanduser().resolve()
    where = "" if default else f" --cluster-dir {shlex.quote(str(cdir))}"
    env = "" if default else f"ZSL_BENCH_CLUSTER_DIR={shlex.quote(str(cdir))} "
    gpus = "auto-detected" if state.num_gpus is None else state.num_gpus
    port = state.dashboard_port
    print(f"Ray cluster up at {state.address} ({state.num_cpus} CPUs, GPUs: {gpus}), token auth on")
    print(f"  dashboard:  {state.dashboard_url}  (it asks for the token: cat {token})")
    print(
        f"  SSH tunnel: ssh -N -L {port}:127.0.0.1:{port} {getpass.getuser()}@{socket.gethostname()}  "
        f"then open http://localhost:{port}"
    )
    print(f"  sweeps:     {env}zsl-bench sweep --space FILE --address {state.address}")
    print(f"  other Ray clients: export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={token}")
    print(f"  status:     zsl-bench cluster status{where}    stop: zsl-bench cluster down{where}")
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.head import status

    report = status(Path(args.cluster_dir))
    ok = report["running"] and "error" not in report
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if ok else 1
    print(f"cluster {report['address']}: {'running' if report['running'] else 'NOT running (stale record)'}")
    print(f"  dashboard: {report['dashboard_url']}  token file: {report['token_file']}")
    if "error" in report:
        print(f"  dashboard error: {report['error']}")
    if not ok:
        return 1
    print(f"  Ray {report['ray_version']}, {len(report['nodes'])} node(s):")
    for node in report["nodes"]:
        res = ", ".join(f"{k} {_amount(k, v)}" for k, v in sorted(node["resources"].items()))
        print(f"    {node['ip']:<16} {'head' if node['head'] else 'worker':<6} {node['state']:<6} {res}")
    used = ", ".join(
        f"{k} {_amount(k, v['used'])}/{_amount(k, v['total'])}" for k, v in sorted(report["resources"].items())
    )
    print(f"  resources used/total: {used}")
    print(f"  jobs running: {len(report['jobs'])} (finished: {report['jobs_finished']})")
    for job in report["jobs"]:
        print(f"    {job['submission_id'] or job['job_id']} {job['type']} {job['status']} {job['entrypoint'][:80]}")
    return 0


def _amount(resource: str, value: float | None) -> str:
    if value is None:
        return "?"
    if "memory" in resource:
        return f"{value / 2**30:.1f} GiB"
    return f"{value:g}"


def cmd_cluster_down(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.head import down

    state, count = down(Path(args.cluster_dir))
    if state is None:
        print(f"no cluster recorded in {args.cluster_dir}; nothing to stop", file=sys.stderr)
        return 0
    print(f"cluster {state.address} stopped ({count} processes, by PID)")
    return 0


def add_cluster_parser(sub: Any) -> None:
    from zsl_bench.cluster.head import default_cluster_dir

    cluster = sub.add_parser("cluster", help="a Ray head with its dashboard, and sweeps as SLURM jobs")
    csub = subcommands(cluster, "cluster_command")
    cdir = dict(
        default=str(default_cluster_dir()),
        help="where the cluster's state and token live (default $ZSL_BENCH_CLUSTER_DIR or %(default)s)",
    )
    _add_up(csub, cdir)
    cstatus = csub.add_parser("status", help="nodes, resources and running jobs, from the dashboard API")
    cstatus.add_argument("--json", action="store_true", help="one JSON object (includes dashboard_url, token_file)")
    cstatus.add_argument("--cluster-dir", **cdir)
    cstatus.set_defaults(func=cmd_cluster_status)
    cdown = csub.add_parser("down", help="stop exactly the processes `cluster up` started (by PID)")
    cdown.add_argument("--cluster-dir", **cdir)
    cdown.set_defaults(func=cmd_cluster_down)
    add_launcher_parsers(csub)
    add_job_parser(csub)


def _add_up(csub: Any, cdir: dict[str, Any]) -> None:
    cup = csub.add_parser(
        "up",
        help="start a Ray head with its dashboard on this machine",
        description="Starts a Ray head with token authentication (token file readable only by you) and the "
        "dashboard on 127.0.0.1; prints the dashboard URL, the SSH tunnel and the address for `sweep --address`.",
    )
    cup.add_argument("--num-cpus", type=int, default=None, help="CPUs Ray may use (default: all cores)")
    cup.add_argument("--num-gpus", type=int, default=None, help="GPUs Ray may use (default: detected)")
    cup.add_argument("--port", type=int, default=6379, help="GCS port: the address sweeps attach to (default 6379)")
    cup.add_argument("--dashboard-port", type=int, default=8265)
    cup.add_argument("--dashboard-host", default="127.0.0.1", help="bind address of the dashboard (default loopback)")
    cup.add_argument(
        "--expose-dashboard", action="store_true", help="allow a non-loopback --dashboard-host (prints a warning)"
    )
    cup.add_argument("--node-ip-address", default=None, help="this node's IP for Ray (default: Ray picks one)")
    cup.add_argument("--object-store-mb", type=int, default=None, help="object store size (default: Ray's, 30%% RAM)")
    cup.add_argument("--cluster-dir", **cdir)
    cup.set_defaults(func=cmd_cluster_up)
