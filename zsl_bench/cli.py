"""``zsl-bench …``: the only argv parser. Bad input → one line on stderr and exit code 2.

Heavy modules (torch, ray, transformers) are imported inside the command that needs them, so
``zsl-bench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from zsl_bench.errors import TrialFailed, UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2) instead of usage text + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message} (see --help)")


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    from zsl_bench.config import parse_override

    return dict(parse_override(p) for p in pairs or [])


def _positive_int(text: str) -> int:
    """argparse type of counts such as --num-samples: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def check_output(path: Path, flag: str, folder: bool) -> None:
    """``UserError`` unless ``path`` can be created or replaced as a folder (``folder``) or a file: nothing of the
    other kind is in the way there, and every existing parent is a folder. Checked before anything is written."""
    kind = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        what = "a folder" if path.is_dir() else "a file"
        raise UserError(f"{flag} {path}: is {what}, not a {kind}; give another path or remove it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is a file, not a folder; give another path")
            return


def cmd_data_synth(args: argparse.Namespace) -> int:
    from zsl_bench.data.synth import SynthSpec, generate

    start = time.perf_counter()
    counts = generate(Path(args.out), SynthSpec(seed=args.seed))
    if args.res101:
        from zsl_bench.data.features import write_synth_res101

        write_synth_res101(Path(args.out), seed=args.seed)
    print(json.dumps(counts))
    print(f"synthetic dataset in {args.out} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from zsl_bench.data.datasets import inspect_dataset

    report, notes = inspect_dataset(args.dataset, args.root)  # the registry answers unknown names
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            if isinstance(value, dict):
                print(f"{key}:")
                for sub, text in value.items():
                    print(f"{sub:>16}: {text}")
            else:
                print(f"{key:>16}: {'unknown' if value is None else value}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from zsl_bench.data.declare import DATASETS, dataset_spec

    rows = []
    for name in DATASETS.names():
        spec = dataset_spec(name)
        c = spec.counts
        counts = None if c is None else f"{c.classes}x{c.attributes} {c.trainval}/{c.test_seen}/{c.test_unseen}"
        rows.append(
            {
                "name": name,
                "root": str(spec.default_root()),
                "counts": counts,
                "fetch": "yes" if spec.fetch is not None else "no",
                "provider": DATASETS.provider(name).distribution,
                "description": spec.description,
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    table = [("NAME", "ROOT", "CLASSES x ATTRS TRAINVAL/TEST_SEEN/TEST_UNSEEN", "FETCH", "PROVIDER")]
    table += [(r["name"], r["root"], r["counts"] or "-", r["fetch"], r["provider"]) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t[:4], widths, strict=True)) + "  " + t[4])
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from zsl_bench.data.fetch import fetch, fetch_target, parse_sha256_args, read_manifest, terminal_progress

    target = fetch_target(args.target)  # xlsa17 or a registered dataset; one line for anything else
    sha = read_manifest(Path(args.manifest), target) if args.manifest else {}
    sha.update(parse_sha256_args(args.sha256, target))
    result = fetch(
        args.target,
        Path(args.root) if args.root else None,
        mirror=args.mirror,
        sha256=sha,
        keep_archives=args.keep_archives,
        progress=terminal_progress() if sys.stderr.isatty() else None,
        log=lambda msg: print(f"note: {msg}", file=sys.stderr),
    )
    print(json.dumps(result.to_dict()))
    print(f"{args.target}: {result.status} in {result.root}", file=sys.stderr)
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from zsl_bench.models import MODELS

    for name in MODELS.names(args.pattern):
        print(name)
    return 0


def cmd_config_keys(args: argparse.Namespace) -> int:
    from zsl_bench.config import valid_keys

    print("\n".join(valid_keys()))
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def cmd_cache_ls(args: argparse.Namespace) -> int:
    from zsl_bench.data.features import FeatureStore

    store = FeatureStore(args.dir)
    if store.root.exists() and not store.root.is_dir():
        raise UserError(f"--dir {args.dir}: is a file, not a feature cache folder; give the cache directory")
    entries = store.entries()
    if args.json:
        print(json.dumps({"root": str(store.root), "entries": entries}))
        return 0
    rows = [("KEY", "MODEL", "DATASET", "SIZE", "CREATED")]
    for e in entries:
        if "error" in e:
            rows.append((e["key"], "?", "?", "?", "unreadable: remove it"))
            continue
        size = _size(e.get("bytes", 0))
        rows.append((e["key"], e.get("model", "?"), e.get("dataset", "?"), size, e.get("created", "?")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    total = sum(e.get("bytes", 0) for e in entries)
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {_size(total)} in {store.root}", file=sys.stderr)
    return 0


def cmd_cache_rm(args: argparse.Namespace) -> int:
    from zsl_bench.data.features import FeatureStore

    store = FeatureStore(args.dir)
    if args.all == bool(args.keys):
        raise UserError("zsl-bench cache rm: give KEY... or --all (not both); `zsl-bench cache ls` lists the keys")
    keys = [e["key"] for e in store.entries()] if args.all else [store.resolve(k) for k in args.keys]
    freed = 0
    for key in keys:
        size = store.remove(key)
        freed += size
        print(f"removed {key} ({_size(size)})")
    stale = store.remove_stale() if args.all else 0
    tail = f", {stale} unfinished extraction(s)" if stale else ""
    print(f"freed {_size(freed)} in {store.root}{tail}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from zsl_bench.config import build_config
    from zsl_bench.data.datasets import DATASETS
    from zsl_bench.models import MODELS

    MODELS.get(args.model)  # unknown names fail here, before any data is read
    DATASETS.get(args.dataset)
    overrides = {"model.name": args.model, "data.name": args.dataset, **_overrides(args.set)}
    if args.data_root:
        overrides["data.root"] = args.data_root
    cfg = build_config(args.config, overrides, source="command line")
    MODELS.get(cfg.model.name).check_options(cfg.model.options)  # a typo in --set model.options.X: one line
    out = Path(args.out or f"results/runs/{args.model}_{args.dataset}_{time.strftime('%Y%m%d-%H%M%S')}")
    check_output(out, "--out", folder=True)

    from zsl_bench.engine import run_trial
    from zsl_bench.engine.features import load_trial_dataset
    from zsl_bench.engine.launch import launch, needs_launcher

    load_trial_dataset(cfg.data)  # bad data: one line before the run directory exists
    try:  # ddp / deepspeed: train.num_workers processes on this host (torchrun)
        summary = launch(cfg, out) if needs_launcher(cfg) else run_trial(cfg, out)
    except TrialFailed as exc:  # the run failed (its error.txt says why): one line, exit 1
        print(f"zsl-bench: error: {exc}", file=sys.stderr)
        return 1
    best = summary["best_by_val"]
    test = best["test"]
    print(
        f"run {out}: epoch {best['epoch']} gamma {best['gamma']:.3f} test CZSL {100 * test['czsl']:.1f} "
        f"U {100 * test['u']:.1f} S {100 * test['s']:.1f} H {100 * test['h']:.1f} ({summary['compute_s']:.0f} s)"
    )
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from zsl_bench.config import build_config, to_dict
    from zsl_bench.search.shipped import resolve_space
    from zsl_bench.search.space import load_space

    space_file = resolve_space(args.space)  # a path, else a shipped space by name
    space, base = load_space(space_file)
    if args.set:
        base = build_config(to_dict(base), _overrides(args.set), source="command line")
    name = args.name if args.name is not None else (space.sweep.name or space_file.stem)
    if args.smoke:
        from zsl_bench.data.synth import generate
        from zsl_bench.search.stages import smoke_variant

        data_root = Path(args.results) / "_data" / "synth"
        generate(data_root)
        space, base = smoke_variant(space, base, data_root)
        if base.data.features:  # a feature-dataset space: the synthetic res101.mat beside the images
            from zsl_bench.data.features import write_synth_res101

            write_synth_res101(data_root)
        name = f"{name}-smoke"
    if args.num_samples is not None:
        space = _with_num_samples(space, args.num_samples)
    if not args.address:
        _check_local_resources(space, base)

    if args.address:  # the cluster's token, set before ray is imported
        from zsl_bench.cluster.head import attach_env

        attach_env(args.address)

    from zsl_bench.search.tune_backend import run_sweep

    out = run_sweep(space, base, Path(args.results), name, resume=args.resume, address=args.address)
    print(
        f"sweep {out.name}: search {out.completed} completed, {out.stopped} early-stopped, {out.failed} failed; "
        f"final {out.final_runs - out.final_failed} of {out.final_runs} runs; "
        f"wall {out.wall_s:.0f} s, compute {out.compute_s:.0f} s; run directories in {out.sweep_dir}"
    )
    if out.best_trial:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.best_params.items())
        print(f"best search trial: {out.best_trial} {space.sweep.metric}={out.best_metric:.4f} ({params})")
    if out.final_test:
        t = out.final_test
        print(
            f"final (top config, mean of seeds, test): CZSL {100 * t['czsl']:.1f} U {100 * t['u']:.1f} "
            f"S {100 * t['s']:.1f} H {100 * t['h']:.1f}"
        )
    return 0 if out.completed + out.stopped > 0 else 1


def _with_num_samples(space: Any, count: int) -> Any:
    """``space`` with ``--num-samples count``, validated like the space file's ``num_samples``."""
    from pydantic import ValidationError

    try:
        return space.model_copy(update={"sweep": space.sweep.replace(num_samples=count)})
    except ValidationError as exc:
        raise UserError(f"--num-samples {count}: {exc.errors()[0]['msg']}") from None


def _check_local_resources(space: Any, base: Any) -> None:
    """Refuse, before Ray starts here, a trial this machine cannot hold (Ray would start, then refuse it)."""
    import os

    from zsl_bench.search.tune_backend import workers_per_trial

    res, workers = space.sweep.resources_per_trial, max(1, workers_per_trial(space, base))
    cpus, gpus = os.cpu_count() or 1, _local_gpus() if res.gpu else 0
    if workers * res.cpu <= cpus and workers * res.gpu <= gpus:
        return
    gpu = f" x {res.gpu:g} GPU" if res.gpu else ""
    raise UserError(
        f"a trial needs {workers} worker(s) x {res.cpu:g} CPU{gpu} (sweep.resources_per_trial), more than this "
        f"machine has ({cpus} CPU, {gpus} GPU); lower resources_per_trial, or pass --address of a larger cluster"
    )


def _local_gpus() -> int:
    """The CUDA devices Ray would find on this machine."""
    import torch

    return torch.cuda.device_count()


def cmd_spaces_list(args: argparse.Namespace) -> int:
    from zsl_bench.search.shipped import SPACES_DIR, shipped_spaces, summarize, table

    for line in table([summarize(path) for path in shipped_spaces()]):
        print(line)
    print(f"shipped spaces in {SPACES_DIR}; run one: zsl-bench sweep --space NAME.yaml [--smoke]", file=sys.stderr)
    return 0


def cmd_spaces_show(args: argparse.Namespace) -> int:
    from zsl_bench.search.shipped import resolve_space

    path = resolve_space(args.name)
    print(path.read_text(), end="")
    print(f"({path}; save a copy to edit it, then --space COPY.yaml)", file=sys.stderr)
    return 0


def _add_spaces_parser(sub: Any) -> None:
    spaces = sub.add_parser("spaces", help="the search spaces shipped with zsl-bench")
    ssub = spaces.add_subparsers(dest="spaces_command", required=True, parser_class=_Parser)
    slist = ssub.add_parser("list", help="name, model, dataset, searcher/scheduler and samples of each")
    slist.set_defaults(func=cmd_spaces_list)
    sshow = ssub.add_parser("show", help="print a space file (a shipped name, or a path)")
    sshow.add_argument("name", metavar="NAME", help="e.g. zeromamba_cub or zeromamba_cub.yaml")
    sshow.set_defaults(func=cmd_spaces_show)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from zsl_bench.report.leaderboard import build, render
    from zsl_bench.rundir import write_text_atomic

    results = Path(args.results)
    out = args.out or (str(results / "leaderboard.md") if args.format == "md" else "-")
    if out != "-":
        check_output(Path(out), "--out", folder=False)
    reference = None
    if args.reference and not args.no_reference:
        reference = Path(args.reference)
    elif not args.no_reference:  # default: <results>/reference, else ./results/reference, else none
        reference = next((p for p in (results / "reference", Path("results/reference")) if p.is_dir()), None)
    board = build(results, reference)
    if board.skipped.total:
        print(board.skipped.line(), file=sys.stderr)
    for note in board.notes:
        print(f"leaderboard: note: {note}", file=sys.stderr)
    text = render(board, args.format)
    if out != "-":
        write_text_atomic(Path(out), text + "\n")
        print(f"leaderboard: wrote {out}", file=sys.stderr)
    print(text)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from zsl_bench.report.sweep_report import write_report

    out = Path(args.out) if args.out else None
    if not Path(args.results).is_dir():
        raise UserError(f"results directory not found: {args.results} (pass --results DIR)")
    if out is not None:
        check_output(out, "--out", folder=True)
    report = write_report(Path(args.results), args.sweep, out)
    for note in report.notes:
        print(f"report: note: {note}", file=sys.stderr)
    if report.skipped.total:
        print(report.skipped.line("report"), file=sys.stderr)
    for path in report.files:
        print(path)
    return 0


# ---- cluster (issue 9): a local Ray head with its dashboard, SLURM batch jobs, and the helpers those jobs call ----


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


def cmd_cluster_slurm(args: argparse.Namespace) -> int:
    import shlex

    from zsl_bench.cluster.slurm import SlurmSweep, check, render, sbatch_command, submit
    from zsl_bench.config import build_config, to_dict
    from zsl_bench.search.shipped import resolve_space
    from zsl_bench.search.space import load_space

    job = SlurmSweep(
        space=resolve_space(args.space),
        nodes=args.nodes,
        cpus_per_node=args.cpus_per_node,
        gpus_per_node=args.gpus_per_node,
        partition=args.partition,
        time=args.time,
        account=args.account,
        results=Path(args.results),
        name=args.name,
        smoke=args.smoke,
        resume=args.resume,
        num_samples=args.num_samples,
        overrides=args.set or [],
        object_store_mb=args.object_store_mb,
        job_name=args.job_name,
        python=args.python or sys.executable,
        prelude=Path(args.prelude) if args.prelude else None,
        template=Path(args.template) if args.template else None,
        sbatch_args=args.sbatch_arg or [],
    )
    check(job)
    _, base = load_space(job.space)  # a bad space file fails here, not in the queue hours later
    if args.set:
        build_config(to_dict(base), _overrides(args.set), source="command line")
    text = render(job)
    if args.dry_run:
        print(text, end="")
        from zsl_bench.cluster.slurm import slurm_dir

        command = shlex.join(sbatch_command(job, Path("SCRIPT")))
        mkdir = shlex.join(["mkdir", "-p", str(slurm_dir(job))])
        print(
            f"dry run: nothing submitted; save the script above as SCRIPT, then: {mkdir} && {command}", file=sys.stderr
        )
        return 0
    done = submit(job, text)
    log = shlex.quote(str(done.log))
    size = f"{job.nodes} node(s) x {job.cpus_per_node} CPUs, {job.gpus_per_node} GPUs"
    print(f"submitted SLURM job {done.job_id}: {size}")
    print(f"  script: {done.script}")
    print(f"  follow: tail -f {log}    queue: squeue -j {done.job_id}    cancel: scancel {done.job_id}")
    print(f"  results: {job.results.resolve()}; after a cancel or pre-emption, submit the same command with --resume")
    return 0


def cmd_cluster_job_token(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.auth import create_token

    create_token(Path(args.file), replace=True)
    return 0


def cmd_cluster_job_ip(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.jobstep import node_ip

    print(node_ip(args.node))
    return 0


def cmd_cluster_job_ports(args: argparse.Namespace) -> int:
    from zsl_bench.cluster.net import free_ports

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


def _add_cluster_parser(sub: Any) -> None:
    from zsl_bench.cluster.head import default_cluster_dir

    cluster = sub.add_parser("cluster", help="a Ray head with its dashboard, and sweeps as SLURM jobs")
    csub = cluster.add_subparsers(dest="cluster_command", required=True, parser_class=_Parser)
    cdir = dict(
        default=str(default_cluster_dir()),
        help="where the cluster's state and token live (default $ZSL_BENCH_CLUSTER_DIR or %(default)s)",
    )

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

    cstatus = csub.add_parser("status", help="nodes, resources and running jobs, from the dashboard API")
    cstatus.add_argument("--json", action="store_true", help="one JSON object (includes dashboard_url, token_file)")
    cstatus.add_argument("--cluster-dir", **cdir)
    cstatus.set_defaults(func=cmd_cluster_status)

    cdown = csub.add_parser("down", help="stop exactly the processes `cluster up` started (by PID)")
    cdown.add_argument("--cluster-dir", **cdir)
    cdown.set_defaults(func=cmd_cluster_down)

    cslurm = csub.add_parser(
        "slurm",
        help="run a sweep as a SLURM batch job (Ray head + workers + the sweep)",
        description="Renders the shipped batch template (Ray head on the first node, workers on the others, "
        "token auth, free ports, the sweep on the head) and submits it with sbatch. The results directory must be "
        "on a filesystem all nodes share.",
    )
    cslurm.add_argument("--space", required=True, help="search-space YAML file, or a shipped space's name")
    cslurm.add_argument("--nodes", type=int, default=1, help="nodes of the job (default 1)")
    cslurm.add_argument("--cpus-per-node", type=int, required=True, help="CPUs per node, given to SLURM and Ray")
    cslurm.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node, given to SLURM and Ray")
    cslurm.add_argument("--partition", default=None)
    cslurm.add_argument("--time", default=None, metavar="HH:MM:SS", help="time limit ([D-]HH:MM:SS)")
    cslurm.add_argument("--account", default=None)
    cslurm.add_argument("--job-name", default=None, help="default zsl-<sweep name>")
    cslurm.add_argument("--results", default="results", help="results root, on a shared filesystem")
    cslurm.add_argument("--name", default=None, help="sweep name (default: the space file's name)")
    cslurm.add_argument("--num-samples", type=_positive_int, default=None)
    cslurm.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base config key")
    cslurm.add_argument("--smoke", action="store_true", help="the sweep's --smoke: 2 trials x 1 epoch, synthetic")
    cslurm.add_argument("--resume", action="store_true", help="continue a cancelled or pre-empted sweep")
    cslurm.add_argument("--object-store-mb", type=int, default=None, help="Ray object store per node")
    cslurm.add_argument("--python", default=None, help="interpreter on the nodes (default: this one)")
    cslurm.add_argument("--prelude", default=None, metavar="FILE", help="shell lines run first (module load …)")
    cslurm.add_argument(
        "--template", default=None, metavar="FILE", help="your copy of zsl_bench/cluster/templates/ray_sweep.sbatch"
    )
    cslurm.add_argument(
        "--sbatch-arg", action="append", metavar="--OPT=VALUE", help="extra sbatch option, e.g. --sbatch-arg=--qos=high"
    )
    cslurm.add_argument("--dry-run", action="store_true", help="print the batch script, submit nothing")
    cslurm.set_defaults(func=cmd_cluster_slurm)

    cjob = csub.add_parser("job", help="helpers the SLURM batch script runs on the job's nodes")
    jsub = cjob.add_subparsers(dest="job_command", required=True, parser_class=_Parser)
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


# ---- end cluster ----


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="zsl-bench", description="Train, sweep and rank zero-shot image classifiers.")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    p.add_argument(  # taken out of argv by main() wherever it stands; declared here for --help
        "--plugin",
        action="append",
        metavar="MODULE",
        help="import MODULE first (repeatable, anywhere on the line): a plugin that registers models, datasets, "
        "searchers or schedulers without being installed; also $ZSL_BENCH_PLUGINS=mod1,mod2",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="create and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    synth = dsub.add_parser("synth", help="generate the synthetic dataset (xlsa17 format)")
    synth.add_argument("--out", required=True, help="directory to create")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--res101", action="store_true", help="also write res101.mat (synthetic features) for data.features=res101"
    )
    synth.set_defaults(func=cmd_data_synth)
    inspect = dsub.add_parser(
        "inspect",
        help="print a dataset's split counts",
        description="Check a dataset folder and print classes, attributes, seen, unseen, trainval, test_seen, "
        "test_unseen, train, val (the honest validation split: no test image), images, images_listed, "
        "images_missing, and where each piece came from. Works on the split files alone.",
    )
    inspect.add_argument(
        "--dataset", required=True, help="a registered dataset (`zsl-bench data list` shows them: cub, apy, …)"
    )
    inspect.add_argument(
        "--root", default=None, help="dataset folder holding att_splits.mat (default data/<FOLDER>, e.g. data/CUB)"
    )
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=cmd_data_inspect)
    fetch = dsub.add_parser(
        "fetch",
        help="download, verify and unpack a dataset",
        description="Download the official archive (resuming a partial download), check its sha256 and unpack "
        "it into the layout the readers expect. Idempotent: a second run does nothing.",
    )
    fetch.add_argument(
        "target",
        help="a registered dataset's images (`zsl-bench data list`: FETCH yes), or xlsa17 (the split files and "
        "res101.mat of CUB, AWA1, AWA2, SUN, APY)",
    )
    fetch.add_argument(
        "--root",
        default=None,
        help="a dataset: its folder (default data/<FOLDER>, e.g. data/CUB); xlsa17: the folder holding the dataset "
        "folders (default data)",
    )
    fetch.add_argument("--mirror", default=None, help="base URL serving the same file names (replaces the official)")
    fetch.add_argument(
        "--sha256", action="append", metavar="[FILE=]HEX", help="expected checksum (overrides the built-in table)"
    )
    fetch.add_argument("--manifest", default=None, help="sha256sum-style file of expected checksums")
    fetch.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives after unpacking")
    fetch.set_defaults(func=cmd_data_fetch)
    dlist = dsub.add_parser(
        "list",
        help="the registered datasets",
        description="Every dataset declaration (built-in and from plugins): name, default folder, published xlsa17 "
        "counts, whether `data fetch NAME` downloads it, and the distribution that provides it.",
    )
    dlist.add_argument("--json", action="store_true")
    dlist.set_defaults(func=cmd_data_list)

    models = sub.add_parser("models", help="the model zoo")
    msub = models.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    mlist = msub.add_parser("list", help="list registered models")
    mlist.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'vit*'")
    mlist.set_defaults(func=cmd_models_list)

    config = sub.add_parser("config", help="the experiment config schema")
    csub = config.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    csub.add_parser("keys", help="list every dotted config key").set_defaults(func=cmd_config_keys)

    cache = sub.add_parser(
        "cache",
        help="the frozen-backbone feature cache",
        description="Entries of the feature cache (docs/feature-cache.md): backbone outputs extracted once per "
        "backbone weights, dataset and transform, shared by the trials of a sweep.",
    )
    ksub = cache.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    kdir = dict(
        default=None,
        help="the cache directory (data.feature_cache_dir; default $XDG_CACHE_HOME/zsl-bench/features, "
        "i.e. ~/.cache/zsl-bench/features)",
    )
    kls = ksub.add_parser("ls", help="list entries: key, model, dataset, size, created")
    kls.add_argument("--dir", **kdir)
    kls.add_argument("--json", action="store_true", help="one JSON object with every entry's meta.json")
    kls.set_defaults(func=cmd_cache_ls)
    krm = ksub.add_parser("rm", help="delete entries by key (or a unique prefix of one), or all of them")
    krm.add_argument("keys", nargs="*", metavar="KEY")
    krm.add_argument("--all", action="store_true", help="every entry, and extractions that died half-way")
    krm.add_argument("--dir", **kdir)
    krm.set_defaults(func=cmd_cache_rm)

    train = sub.add_parser("train", help="run one trial into a run directory")
    train.add_argument("--model", required=True)
    train.add_argument("--dataset", required=True)
    train.add_argument("--data-root", default=None)
    train.add_argument("--config", default=None, help="preset name or YAML file to start from")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    train.add_argument("--out", default=None, help="run directory (default results/runs/<model>_<dataset>_<time>)")
    train.set_defaults(func=cmd_train)

    sweep = sub.add_parser("sweep", help="hyperparameter search with Ray Tune + Optuna + ASHA")
    sweep.add_argument(
        "--space",
        required=True,
        help="search-space YAML file, or a shipped space's name (e.g. zeromamba_cub.yaml; see `zsl-bench spaces list`)",
    )
    sweep.add_argument("--name", default=None, help="sweep name (default: the space file's name)")
    sweep.add_argument("--results", default="results", help="results root (default results/)")
    sweep.add_argument("--num-samples", type=_positive_int, default=None, help="trials of the search stage")
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base config key")
    sweep.add_argument("--resume", action="store_true", help="continue this sweep after an interruption")
    sweep.add_argument(
        "--smoke", action="store_true", help="2 trials x 1 epoch on the synthetic data with the family's tiny model"
    )
    sweep.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="attach to a running Ray cluster (`zsl-bench cluster up`, a SLURM job) instead of starting one",
    )
    sweep.set_defaults(func=cmd_sweep)
    _add_spaces_parser(sub)

    board = sub.add_parser(
        "leaderboard",
        help="aggregate run directories into paper-ready tables",
        description="Final-stage runs grouped by dataset and model: mean ± std over seeds, with selection on "
        "validation (protocol val, the default) and on test (protocol test, the papers' protocol) in separate "
        "tables, reported numbers from the papers beside them, and the compute behind each row. A dataset and "
        "model without final-stage runs is shown from its search-stage runs, labelled 'search stage'.",
    )
    board.add_argument("--results", default="results", help="results root to read (default results/)")
    from zsl_bench.report.formats import FORMATS, RegistryChoices

    board.add_argument(
        "--format",
        choices=RegistryChoices(FORMATS),
        default="md",
        help="a registered format: md (markdown, the default), csv, tex (LaTeX), json, or one a plugin adds",
    )
    board.add_argument(
        "--out",
        default=None,
        help="file to write (default: <results>/leaderboard.md for md, none for the others; '-' for none); "
        "the text is printed to stdout as well",
    )
    board.add_argument(
        "--reference",
        default=None,
        help="folder of reported-number YAML files (default <results>/reference or ./results/reference if present)",
    )
    board.add_argument("--no-reference", action="store_true", help="leave out the reported rows")
    board.set_defaults(func=cmd_leaderboard)

    report = sub.add_parser(
        "report",
        help="plots and a short markdown report for one sweep",
        description="Writes report.md, search_progress.png (best validation H against cumulative compute) and, "
        "when the runs saved test scores, seen_unseen_<dataset>_<model>.png (the seen-unseen accuracy curve "
        "with its AUSUC).",
    )
    report.add_argument("--sweep", required=True, help="sweep name: the folder <results>/<sweep>")
    report.add_argument("--results", default="results", help="results root (default results/)")
    report.add_argument("--out", default=None, help="output folder (default <results>/<sweep>/_report)")
    report.set_defaults(func=cmd_report)
    _add_cluster_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zsl-bench`` console script."""
    from zsl_bench.plugins import activate, take_plugin_args

    try:
        argv, plugins = take_plugin_args(sys.argv[1:] if argv is None else list(argv))
        activate(plugins)  # before any lookup: this process and every process it starts see the plugins
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
        )
        return args.func(args)
    except UserError as exc:
        print(f"zsl-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
