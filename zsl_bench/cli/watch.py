"""The commands that look at a running sweep: ``zsl-bench watch`` (a terminal view refreshed from the run
directories, :mod:`zsl_bench.report.watch`) and ``zsl-bench dashboard`` (optuna-dashboard on the sweep's Optuna
journal, ``<results>/<sweep>/_ray/optuna.journal``, served read-only)."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from zsl_bench.errors import UserError

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: plain ANSI, every terminal has it
NOT_INSTALLED = "optuna-dashboard is not installed: pip install 'zsl-bench[dashboard]'"


def sweep_folder(results: str, sweep: str) -> Path:
    """``<results>/<sweep>``; ``UserError`` for a name that is not one folder or a folder that does not exist."""
    from zsl_bench.search.space import sweep_name_problem

    problem = sweep_name_problem(sweep)
    if problem:
        raise UserError(f"--sweep: {problem}")
    folder = Path(results) / sweep
    if not folder.is_dir():
        raise UserError(f"sweep folder {folder} not found: --sweep names a folder under --results ({results})")
    return folder


def planned_search_trials(settings: dict[str, Any]) -> int | None:
    """The search trials a sweep with these ``meta.sweep_settings`` runs: ``num_samples``, unless its searcher can
    sample grid parameters (each multiplies the count, and the run directories do not record them): None."""
    from zsl_bench.search.searchers import SEARCHERS

    try:
        spec = SEARCHERS.get(str(settings.get("searcher")))
    except UserError:
        return None
    samples = settings.get("num_samples")
    if "grid" in spec.supports or not isinstance(samples, int) or isinstance(samples, bool):
        return None
    return samples


def cmd_watch(args: argparse.Namespace) -> int:
    from zsl_bench.report.watch import read_snapshot, render, snapshot_json

    folder = sweep_folder(args.results, args.sweep)
    if not (math.isfinite(args.interval) and args.interval > 0):
        raise UserError(f"--interval {args.interval}: give a number of seconds above 0")
    try:
        while True:
            snapshot = read_snapshot(folder, now=time.time(), plan=planned_search_trials)
            if args.json:
                text = json.dumps(snapshot_json(snapshot), sort_keys=True) + "\n"
            else:
                text = render(snapshot) if args.once else CLEAR + render(snapshot)
            sys.stdout.write(text)
            sys.stdout.flush()
            if args.once or snapshot.finished:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    except FileNotFoundError:
        raise UserError(f"sweep folder {folder} was removed") from None


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM end the server (its loop stops on ``KeyboardInterrupt``), also where SIGINT came in
    ignored (a command started in the background by a script). The server swallows one that lands while it
    finishes a request, so the signal is sent again each second until the server has stopped."""
    insisting: list[threading.Thread] = []

    def stop(signum: int, frame: Any) -> None:
        if not insisting:
            insisting.append(threading.Thread(target=_repeat, args=(signum,), daemon=True))
            insisting[0].start()
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)


def _repeat(signum: int) -> None:
    while True:
        time.sleep(1.0)
        os.kill(os.getpid(), signum)


def _ignore_signals() -> None:
    """Once the server has stopped: a repeated signal changes nothing any more."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def read_only_storage(journal: Path) -> Any:
    """The Optuna storage of ``journal``, read-only: reading follows a sweep that appends to it at the same time,
    and any write (a note, a rename, a deletion from the page) is refused instead of reaching the sweep's study."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    class ReadOnlyJournal(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            raise PermissionError(f"zsl-bench dashboard serves {journal} read-only")

    return optuna.storages.JournalStorage(ReadOnlyJournal(str(journal)))


def cmd_dashboard(args: argparse.Namespace) -> int:
    from zsl_bench.ports import free_ports, port_free

    folder = sweep_folder(args.results, args.sweep)
    journal = folder / "_ray" / "optuna.journal"
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise UserError(NOT_INSTALLED) from None
    if not journal.is_file():
        raise UserError(
            f"sweep {args.sweep} has no Optuna journal ({journal}): only searcher optuna keeps one; "
            "`zsl-bench watch --sweep NAME` shows any sweep"
        )
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: give a TCP port (0 picks a free one)")
    cannot = f"--host {args.host} --port {args.port}: cannot listen there (in use, or not an address of this machine)"
    try:
        port = args.port or free_ports(1, args.host)[0]
    except OSError:
        raise UserError(cannot) from None
    if not port_free(port, args.host):
        raise UserError(f"{cannot}; --port 0 picks a free port")
    storage = read_only_storage(journal)
    _stop_on_signals()
    line = f"dashboard: serving {journal} at http://{args.host}:{port}/dashboard/"
    threading.Thread(target=_announce, args=(line, args.host, port), daemon=True).start()
    try:
        run_server(storage, host=args.host, port=port)  # returns on Ctrl-C or SIGTERM
    except KeyboardInterrupt:  # one that came before the server's loop
        pass
    except OSError as exc:  # taken between the check and the bind
        raise UserError(f"{cannot}: {exc}") from None
    finally:
        _ignore_signals()
    return 0


def _announce(line: str, host: str, port: int, timeout: float = 60.0) -> None:
    """Print ``line`` (flushed) as soon as the server accepts connections: whoever reads it can open the URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                break
        except OSError:
            time.sleep(0.05)
    print(line, flush=True)


def add_watch_parsers(sub: Any) -> None:
    """``zsl-bench watch`` and ``zsl-bench dashboard``."""
    watch = sub.add_parser("watch", help="a live terminal view of a sweep, from its run directories")
    watch.add_argument("--sweep", required=True, metavar="NAME", help="the sweep's folder under --results")
    watch.add_argument("--results", default="results", metavar="DIR", help="results root (default results/)")
    watch.add_argument("--once", action="store_true", help="print one snapshot and exit")
    watch.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between refreshes (2)")
    watch.add_argument("--json", action="store_true", help="the snapshot as JSON (one object per refresh)")
    watch.set_defaults(func=cmd_watch)
    dash = sub.add_parser("dashboard", help="serve a sweep's Optuna study with optuna-dashboard (extra: dashboard)")
    dash.add_argument("--sweep", required=True, metavar="NAME", help="the sweep's folder under --results")
    dash.add_argument("--results", default="results", metavar="DIR", help="results root (default results/)")
    dash.add_argument("--port", type=int, default=8080, metavar="N", help="port (default 8080; 0: a free one)")
    dash.add_argument("--host", default="127.0.0.1", help="IPv4 address to bind (default 127.0.0.1: this machine only)")
    dash.set_defaults(func=cmd_dashboard)
