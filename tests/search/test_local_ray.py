"""A sweep's own Ray node (``search.local_ray``): only the processes its trials use, Ray's slow waits tuned away,
and nothing left behind. A real Ray node, started in a fresh process (Ray's state is per process)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBE = """
import json, os
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0123456789abcdef0123456789abcdef")
import psutil
import ray
from zsl_bench.search.local_ray import start_local_ray


def facts(dashboard):
    seen = []  # what the driver's own work during the start sees: the raylet launched, the driver not connected

    def while_starting():
        names = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]
        seen.append([ray.is_initialized(), any("raylet" in n for n in names)])

    local = start_local_ray(1, dashboard, None, while_starting=while_starting)

    @ray.remote
    class Echo:
        def pid(self):
            return os.getpid()

    worker = ray.get(Echo.remote().pid.remote())  # a worker runs an actor
    config = ray._private.state.state.get_system_config()
    procs = psutil.Process().children(recursive=True)  # the node's processes, their agents and workers
    commands = [" ".join(p.cmdline()) for p in procs]
    kinds = sorted(local.node.all_processes)
    local.stop()
    _, alive = psutil.wait_procs(procs, timeout=20)
    alive = [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    return {"kinds": kinds, "commands": commands, "config": config, "worker": worker,
            "alive": alive, "temp_left": local.temp.exists(), "initialized": ray.is_initialized(),
            "while_starting": seen}


print(json.dumps({"lean": facts(False), "dashboard": facts(True)}))
"""


@pytest.fixture(scope="module")
def facts():
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _started(commands, script):
    return [c for c in commands if script in c]


def test_without_the_dashboard_only_the_gcs_and_the_raylet_start(facts):
    lean = facts["lean"]
    assert lean["kinds"] == ["gcs_server", "raylet"]
    for script in ("autoscaler/_private/monitor.py", "_private/log_monitor.py", "dashboard/dashboard.py"):
        assert not _started(lean["commands"], script), script
    assert lean["worker"] > 0


def test_with_the_dashboard_the_api_server_starts_and_the_monitors_do_not(facts):
    full = facts["dashboard"]
    assert full["kinds"] == ["dashboard", "gcs_server", "raylet"]
    assert _started(full["commands"], "dashboard/dashboard.py")
    for script in ("autoscaler/_private/monitor.py", "_private/log_monitor.py"):
        assert not _started(full["commands"], script), script


def test_the_socket_retry_is_short_and_task_events_are_kept_only_for_the_dashboard(facts):
    for side in ("lean", "dashboard"):
        config = facts[side]["config"]
        assert config["raylet_client_connect_timeout_milliseconds"] == 50, side
        assert config["raylet_client_num_connect_attempts"] == 200, side
    assert facts["lean"]["config"]["task_events_report_interval_ms"] == 0
    assert "task_events_report_interval_ms" not in facts["dashboard"]["config"]  # Ray's default: reported


def test_stop_ends_every_process_and_removes_the_private_folder(facts):
    for side in ("lean", "dashboard"):
        got = facts[side]
        assert got["alive"] == [], side
        assert not got["temp_left"] and not got["initialized"], side


def test_the_drivers_own_work_runs_once_while_the_raylet_starts(facts):
    for side in ("lean", "dashboard"):
        assert facts[side]["while_starting"] == [[False, True]], side
