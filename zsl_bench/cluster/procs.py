"""The processes of one cluster, found and stopped by PID (through psutil), never by name.

Every process a cluster starts inherits a marker variable (``ZSL_BENCH_CLUSTER=<id>``) from the ``ray start`` that
launched it, so the cluster's processes are exactly those whose environment holds the marker, plus the PIDs recorded
at start-up. A PID is only signalled while its creation time still matches (no reused PIDs get killed).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

MARKER_VAR = "ZSL_BENCH_CLUSTER"
# Stop order: raylets first (their workers and agents exit with them), GCS last (the others talk to it).
_FIRST = ("raylet",)
_LAST = ("gcs_server",)
# Creation times are wall-clock seconds (psutil adds the boot time): a clock step smaller than this keeps a
# recorded process recognisable; a reused PID would have to be created within it of the original.
_SAME_START_S = 1.0
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


@dataclass(frozen=True)
class Proc:
    """One process, identified by PID and its creation time (seconds since the epoch, ``psutil.create_time``)."""

    pid: int
    start: float
    name: str

    def to_list(self) -> list[int | float | str]:
        return [self.pid, self.start, self.name]

    @classmethod
    def from_list(cls, item: list[int | float | str]) -> Proc:
        return cls(int(item[0]), float(item[1]), str(item[2]))


def read_proc(pid: int) -> Proc | None:
    """The live (non-zombie) process ``pid``, or None."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() in _GONE:
                return None
            return Proc(pid, process.create_time(), process.name())
    except psutil.Error:
        return None


def _process(proc: Proc) -> psutil.Process | None:
    """The very process ``proc`` (same PID, same creation time), while it runs; else None."""
    try:
        process = psutil.Process(proc.pid)
        with process.oneshot():
            if process.status() in _GONE or abs(process.create_time() - proc.start) > _SAME_START_S:
                return None
    except psutil.Error:
        return None
    return process


def alive(proc: Proc) -> bool:
    """True while the very process ``proc`` (same PID and creation time) runs."""
    return _process(proc) is not None


def marked(cluster_id: str) -> list[Proc]:
    """Every live process whose environment carries ``ZSL_BENCH_CLUSTER=cluster_id``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER_VAR) != cluster_id:
                continue
        except psutil.Error:  # gone, or another user's process
            continue
        proc = read_proc(process.pid)
        if proc is not None:
            found.append(proc)
    return found


def _signal(procs: Iterable[Proc], sig: int) -> None:
    for proc in procs:
        process = _process(proc)
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)


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
