"""A sweep's own Ray instance on this machine: private to this user, bound to loopback, and lean.

Caller: ``ray_adapter.ray_session`` (:func:`start_local_ray`, :meth:`LocalRay.stop`). ray is imported inside the
functions: Ray reads ``RAY_AUTH_MODE`` on import, which ``ray_adapter.prepare_environment`` sets first.

``ray.init()`` starts a node with every process a long-lived cluster wants. A sweep's own node is started here
instead, as ``ray start --head`` does, with only what its trials use; ``ray.init(address=...)`` then connects this
driver to it. Left out, each a Python process that imports much of Ray while the sweep waits to start:

- the autoscaler monitor: one node has nothing to scale (and it ignores SIGTERM, so a shut-down waited for it);
- the log monitor: it forwards worker output to drivers, and sweeps connect with ``log_to_driver=False``;
- the API server, unless ``dashboard``: without the dashboard it would only load the usage-stats module, which is
  off for a ``ray.init()`` cluster too. Multi-worker trials need the dashboard (Ray Train frees the workers of a
  stopped trial through the State API), so they get the full API server.

Fixed waits go too: the node returns once its raylet has registered (Ray's own check takes a second more), the
raylet retries its object store's socket after 50 ms instead of a second (:data:`_FAST_START`), and without the
dashboard no task events are kept, whose flush held every driver's shut-down ~0.25 s. The driver's own work
(``while_starting``: the sweep imports Ray Tune, ~0.45 s) runs while the raylet waits for its agents, on the
other core. Together: start-up to the first trial 5.5 s → 2.8–3.0 s, shut-down 0.58 s → 0.3–0.5 s
(``benchmarks/sweep_overhead.py``, 2 cores). Uses ``ray._private`` (``Node``, ``RayParams``): Ray is pinned in
``constraints.txt``, and ``tests/search/test_local_ray.py`` checks the processes, the settings and the shut-down.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A raylet connecting to its object store, and a worker to its raylet, retry a socket not yet listening after
# raylet_client_connect_timeout_milliseconds (Ray's default: 1000): the store's thread loses that race to the raylet
# in about two starts in five on a 2-core machine, a whole second each. 50 ms steps, and as many attempts again as
# keep a worker's ten-second budget. (Ray still prestarts one worker per CPU for the first driver, whose connect
# waits ~0.33 s for them; turned off, start-up gained ~0.15 s. Kept: Ray's default, and too small a gain to leave it.)
_FAST_START = {"raylet_client_connect_timeout_milliseconds": 50, "raylet_client_num_connect_attempts": 200}
# Task events (what `ray list tasks` and the dashboard's timeline show) are not reported without the dashboard:
# each driver's shut-down otherwise waits ~0.25 s to flush them.
_NO_TASK_EVENTS = {"task_events_report_interval_ms": 0}
_REGISTER_POLL_S = 0.02  # between two looks for the raylet in the GCS's node table
_REGISTER_TIMEOUT_S = 30.0  # then Ray's own wait takes over (and reports a raylet that never came up)


@dataclass
class LocalRay:
    """A started node and the private folder its files live in; :meth:`stop` removes both."""

    temp: Path  # the 0700 folder holding Ray's temp dir (sessions, logs, sockets)
    node: Any  # ray._private.node.Node

    def stop(self) -> None:
        """Disconnect this driver, end every process of the node (SIGTERM, then SIGKILL) and remove its files."""
        import ray

        try:
            ray.shutdown()
        finally:
            self.node.kill_all_processes(check_alive=False, allow_graceful=True)
            shutil.rmtree(self.temp, ignore_errors=True)


def start_local_ray(
    num_cpus: int | None,
    dashboard: bool,
    runtime_env: dict[str, Any] | None,
    while_starting: Callable[[], object] | None = None,
) -> LocalRay:
    """Start this sweep's own Ray node and connect this driver to it; ``while_starting`` (e.g. the driver's own
    imports) runs once the raylet is launched, while its agents start, instead of a wait for it to register.

    Ray's temp dir (sessions, logs, sockets: made 0777 by Ray) lies inside a 0700 folder
    (``cluster.head.private_temp_dir``). The node's IP is the loopback one, so every Prometheus metrics server
    (the dashboard agent's ``metrics_export_port``, the dashboard's) binds 127.0.0.1: Ray 2.60 binds them to
    loopback exactly when the node IP is loopback, and turns a loopback node IP into the routable one unless
    clusters are off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which only forbids other nodes joining: none join
    this one). Ray's gRPC servers (GCS, raylet, workers) still listen on every interface, behind the token.
    Usage stats are off, as ``ray.init()`` turns them off for the cluster it starts."""
    import ray
    from ray._private import ray_constants
    from ray._private.parameter import RayParams

    from zsl_bench.cluster.head import check_private, private_temp_dir

    temp = private_temp_dir()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    saved = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the processes Ray starts read it too
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: this process may have imported ray already
    node = None
    params = RayParams(
        node_ip_address="127.0.0.1",
        num_cpus=num_cpus or os.cpu_count(),
        include_dashboard=dashboard,
        no_monitor=True,
        include_log_monitor=False,
        temp_dir=str(temp / "ray"),
        _system_config=_FAST_START if dashboard else {**_FAST_START, **_NO_TASK_EVENTS},
    )
    try:
        lean = _lean_node_class(while_starting)
        node = lean(params, head=True, shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)
        ray.init(address=node.address, log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
        check_private(temp)
    except BaseException:
        ray.shutdown()
        if node is not None:
            node.kill_all_processes(check_alive=False, allow_graceful=False)
        shutil.rmtree(temp, ignore_errors=True)
        raise
    finally:  # the node knows its IP now; a later attach from this process must not see loopback
        ray_constants.ENABLE_RAY_CLUSTER = saved[0]
        if saved[1] is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = saved[1]
    return LocalRay(temp=temp, node=node)


def _lean_node_class(while_starting: Callable[[], object] | None) -> type:
    """Ray's head ``Node`` without the API server when the dashboard is off, running ``while_starting`` after the
    raylet's launch and then polling for its registration every few milliseconds (both are Node methods, so a
    subclass; made at each start, after ``import ray`` is allowed)."""
    from ray._private.node import Node

    class LeanNode(Node):
        """A head node that starts the API server only with the dashboard and polls for its raylet's
        registration every few milliseconds."""

        def start_api_server(self, *, include_dashboard: bool | None, raise_on_failure: bool) -> None:
            if include_dashboard:
                super().start_api_server(include_dashboard=include_dashboard, raise_on_failure=raise_on_failure)

        def start_ray_processes(self) -> None:
            super().start_ray_processes()
            if while_starting is not None:
                while_starting()
            _wait_registered(self)

    return LeanNode


def _wait_registered(node: Any) -> None:
    """Return once ``node``'s raylet is in the GCS's node table (or after :data:`_REGISTER_TIMEOUT_S`, leaving the
    failure to Ray's own wait, which follows and names it)."""
    client = node.get_gcs_client()
    deadline = time.monotonic() + _REGISTER_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(key.hex() == node.node_id for key in client.get_all_node_info(timeout=5)):
            return
        time.sleep(_REGISTER_POLL_S)
