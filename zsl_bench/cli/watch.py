"""The commands that look at a running sweep: ``zsl-bench watch`` (a terminal view refreshed from the run
directories, :mod:`zsl_bench.report.watch`) and ``zsl-bench dashboard`` (optuna-dashboard on the sweep's Optuna
journal, ``<results>/<sweep>/_ray/optuna.journal``, served read-only)."""

from __future__ import annotations

import argparse
import json
import math
import signal
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


class _Server:
    """A threaded WSGI server for the dashboard, quiet about each request (wsgiref, the standard library's)."""

    @staticmethod
    def make(host: str, port: int, app: Any) -> Any:
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Threading(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        return make_server(host, port, app, server_class=Threading, handler_class=Quiet)


def _serve_until_signal(server: Any, line: str) -> None:
    """Serve in a thread until SIGINT or SIGTERM, then stop the server and close its socket."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    print(line, flush=True)  # the socket is bound and listening: whoever reads this can open the URL
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()


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
    folder = sweep_folder(args.results, args.sweep)
    journal = folder / "_ray" / "optuna.journal"
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise UserError(NOT_INSTALLED) from None
    if not journal.is_file():
        raise UserError(
            f"sweep {args.sweep} has no Optuna journal ({journal}): only searcher optuna keeps one; "
            "`zsl-bench watch --sweep NAME` shows any sweep"
        )
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: give a TCP port (0 picks a free one)")
    app = wsgi(read_only_storage(journal))
    try:  # port 0: the system picks a free one at the bind, no race with another process
        server = _Server.make(args.host, args.port, app)
    except OSError as exc:
        raise UserError(
            f"--host {args.host} --port {args.port}: cannot listen there ({exc.strerror or exc}); "
            "--port 0 picks a free port"
        ) from None
    port = server.server_address[1]
    _serve_until_signal(server, f"dashboard: serving {journal} at http://{args.host}:{port}/dashboard/")
    return 0


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
