"""``zsl-bench cluster job …``: the helpers the SLURM batch script runs on the job's nodes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zsl_bench.cli.common import subcommands


def cmd_cluster_job_token(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.auth import create_token

    create_token(Path(args.file), replace=True)
    return 0


def cmd_cluster_job_ip(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.jobstep import node_ip

    print(node_ip(args.node))
    return 0


def cmd_cluster_job_ports(args: argparse.Namespace) -> int:
    from zsl_bench.ports import free_ports

    print(" ".join(str(p) for p in free_ports(args.count)))
    return 0


def cmd_cluster_job_ray(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.jobstep import run_ray_node

    ray_args = args.ray_args[1:] if args.ray_args[:1] == ["--"] else args.ray_args
    return run_ray_node(ray_args)


def cmd_cluster_job_wait(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.jobstep import wait_for_nodes

    try:
        nodes = wait_for_nodes(args.dashboard, args.nodes, args.timeout)
    except TimeoutError as exc:
        print(f"zsl-bench: {exc}", file=sys.stderr)
        return 1
    print(f"{len(nodes)} Ray node(s) alive: {', '.join(sorted(n['ip'] for n in nodes))}")
    return 0


def add_job_parser(csub: Any) -> None:
    cjob = csub.add_parser("job", help="helpers the SLURM batch script runs on the job's nodes")
    jsub = subcommands(cjob, "job_command")
    jtoken = jsub.add_parser("token", help="write a fresh token file (mode 0600)")
    jtoken.add_argument("file")
    jtoken.set_defaults(func=cmd_cluster_job_token)
    jip = jsub.add_parser("ip", help="the IPv4 address of a SLURM node")
    jip.add_argument("node")
    jip.set_defaults(func=cmd_cluster_job_ip)
    jports = jsub.add_parser("ports", help="free TCP ports on this node")
    jports.add_argument("count", type=int)
    jports.set_defaults(func=cmd_cluster_job_ports)
    jray = jsub.add_parser("ray", help="ray start ARGS --block with a private temp dir (after --)")
    jray.add_argument("ray_args", nargs=argparse.REMAINDER)
    jray.set_defaults(func=cmd_cluster_job_ray)
    jwait = jsub.add_parser("wait", help="wait until N Ray nodes are alive (dashboard API)")
    jwait.add_argument("--dashboard", required=True, help="http://127.0.0.1:PORT")
    jwait.add_argument("--nodes", type=int, required=True)
    jwait.add_argument("--timeout", type=float, default=120.0)
    jwait.set_defaults(func=cmd_cluster_job_wait)
