"""The processes of one cluster, found and stopped by PID (Linux ``/proc``), never by name.

Every process a cluster starts inherits a marker variable (``ZSL_BENCH_CLUSTER=<id>``) from the ``ray start`` that
launched it, so the cluster's processes are exactly those whose environment holds the marker, plus the PIDs recorded
at start-up. A PID is only signalled while its start time still matches (no reused PIDs get killed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MARKER_VAR = "ZSL_BENCH_CLUSTER"
_PROC = Path("/proc")
# Stop order: raylets first (their workers and agents exit with them), GCS last (the others talk to it).
_FIRST = ("raylet",)
_LAST = ("gcs_server",)


@dataclass(frozen=True)
class Proc:
    """One process, identified by PID and its start time (clock ticks after boot)."""

    pid: int
    start: int
    name: str

    def to_list(self) -> list[int | str]:
        return [self.pid, self.start, self.name]

    @classmethod
    def from_list(cls, item: list[int | str]) -> Proc:
        return cls(int(item[0]), int(item[1]), str(item[2]))


def read_proc(pid: int) -> Proc | None:
    """The live (non-zombie) process ``pid``, or None."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is the state (field 3 of stat)
    if fields[0] in ("Z", "X"):
        return None
    return Proc(pid, int(fields[19]), name)  # field 22: starttime


def alive(proc: Proc) -> bool:
    """True while the very process ``proc`` (same PID and start time) runs."""
    now = read_proc(proc.pid)
    return now is not None and now.start == proc.start


def marked(cluster_id: str) -> list[Proc]:
    """Every live process whose environment carries ``ZSL_BENCH_CLUSTER=cluster_id``."""
    needle = f"{MARKER_VAR}={cluster_id}".encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's process
            continue
        if needle in env.split(b"\0"):
            proc = read_proc(int(entry.name))
            if proc is not None:
                found.append(proc)
    return found


def _signal(procs: Iterable[Proc], sig: int) -> None:
    for proc in procs:
        if alive(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)


def _wait_gone(procs: list[Proc], timeout: float) -> list[Proc]:
    deadline = time.monotonic() + timeout
    left = [p for p in procs if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


def stop(procs: Iterable[Proc], cluster_id: str, timeout: float = 10.0) -> int:
    """SIGTERM in order (raylets, then the rest, then the GCS), SIGKILL what outlives ``timeout`` per stage.

    ``procs`` (recorded at start-up) and every process still carrying the marker are stopped. Returns how many
    distinct processes were signalled.
    """
    everyone = {p.pid: p for p in [*procs, *marked(cluster_id)] if alive(p)}
    first = [p for p in everyone.values() if p.name in _FIRST]
    last = [p for p in everyone.values() if p.name in _LAST]
    middle = [p for p in everyone.values() if p not in first and p not in last]
    for stage in (first, middle, last):
        _signal(stage, signal.SIGTERM)
        _wait_gone(stage, timeout)
    # Workers forked late, or anything that ignored SIGTERM.
    stragglers = {p.pid: p for p in [*everyone.values(), *marked(cluster_id)] if alive(p)}
    _signal(stragglers.values(), signal.SIGKILL)
    _wait_gone(list(stragglers.values()), 5.0)
    return len(everyone) + len(set(stragglers) - set(everyone))
