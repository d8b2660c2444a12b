"""A cluster's processes: found by their marker variable, identified by PID and creation time, stopped by PID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from zsl_bench.cluster import procs


@pytest.fixture
def sleeper():
    """A child process carrying a fresh cluster marker; killed at the end if still there."""
    marker = uuid.uuid4().hex
    env = {**os.environ, procs.MARKER_VAR: marker}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    yield child, marker
    if child.poll() is None:
        child.kill()
    child.wait(timeout=10)


def test_a_marked_process_is_found_recorded_and_stopped(sleeper):
    child, marker = sleeper
    for _ in range(100):  # the child's environment is readable once it has started
        found = procs.marked(marker)
        if found:
            break
    assert [p.pid for p in found] == [child.pid]
    record = procs.Proc.from_list(json.loads(json.dumps(found[0].to_list())))  # as cluster.json keeps it
    assert record == found[0] and procs.alive(record)
    assert procs.stop([record], marker, timeout=5) == 1
    assert child.wait(timeout=10) == -15  # SIGTERM first
    assert not procs.alive(record) and procs.marked(marker) == []


def test_a_reused_pid_is_not_the_recorded_process(sleeper):
    child, _ = sleeper
    now = procs.read_proc(child.pid)
    assert now is not None and procs.alive(now)
    other = procs.Proc(now.pid, now.start - 3600, now.name)  # same PID, started an hour earlier: not this one
    assert not procs.alive(other)
    procs._signal([other], 9)
    assert child.poll() is None  # never signalled
    assert procs.read_proc(2**22 + 12345) is None  # no such PID
