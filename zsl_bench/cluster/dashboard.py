"""The cluster view from the Ray dashboard, sending the cluster's token as ``Authorization: Bearer``.

Nodes and jobs come from Ray's state API (``ray.util.state``, imported on first use); Ray's version and the
cluster-wide resource usage, which that API does not serve, from the dashboard's ``/api/version`` and
``/api/cluster_status``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

_HIDDEN = ("node:",)  # per-node bookkeeping resources, not capacity
_LIST_LIMIT = 1000


class DashboardError(RuntimeError):
    """The dashboard did not answer, or answered with an HTTP error (``status`` is 0 when unreachable)."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"{url}: {status or 'no answer'} {message}".strip())
        self.status = status


class DashboardClient:
    """``GET`` JSON from the dashboard at ``url`` (``http://HOST:PORT``) with ``token`` (None: no header)."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"dashboard URL must be http(s)://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str) -> Any:
        """The decoded JSON body of ``GET path``; ``DashboardError`` on any failure."""
        url = self.url + path
        request = urllib.request.Request(url)
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode() or "null")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace").strip().splitlines()
            raise DashboardError(url, exc.code, body[0] if body else exc.reason) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DashboardError(url, 0, str(reason)) from None

    def version(self) -> dict[str, Any]:
        """``/api/version``: Ray's version and the session name."""
        return self.get("/api/version")

    def nodes(self) -> list[dict[str, Any]]:
        """Every node the GCS knows: ip, head or not, state (ALIVE/DEAD), total resources."""
        return [
            {
                "node_id": n.node_id,
                "ip": n.node_ip,
                "head": bool(n.is_head_node),
                "state": _text(n.state),
                "resources": _visible(n.resources_total or {}),
            }
            for n in self._list("nodes")
        ]

    def resources(self) -> dict[str, dict[str, float]]:
        """Cluster-wide ``{resource: {"used": x, "total": y}}`` (CPU, GPU, memory, object_store_memory…)."""
        status = self.get("/api/cluster_status")["data"]["clusterStatus"]
        usage = status["loadMetricsReport"]["usage"]
        return {_snake(k): {"used": v[0], "total": v[1]} for k, v in _visible(usage).items()}

    def jobs(self) -> list[dict[str, Any]]:
        """Ray jobs (drivers such as a connected sweep, and submitted jobs) with their status."""
        return [
            {
                "job_id": j.job_id,
                "submission_id": j.submission_id,
                "type": _text(j.type),
                "status": _text(j.status),
                "entrypoint": j.entrypoint or "",
                "start_time": j.start_time,
                "end_time": j.end_time,
            }
            for j in self._list("jobs")
        ]

    def _list(self, resource: str) -> list[Any]:
        """``ray.util.state``'s list of ``resource`` (``nodes``, ``jobs``); ``DashboardError`` on any failure."""
        from ray.exceptions import RayError
        from ray.util.state import StateApiClient
        from ray.util.state.common import ListApiOptions, StateResource
        from ray.util.state.exception import RayStateApiException
        from requests import RequestException

        headers = {} if self.token is None else {"Authorization": f"Bearer {self.token}"}
        options = ListApiOptions(limit=_LIST_LIMIT, timeout=max(1, round(self.timeout)))
        try:
            client = StateApiClient(address=self.url, headers=headers)
            return client.list(StateResource(resource), options=options, raise_on_missing_output=False)
        except (RayStateApiException, RayError, RequestException, RuntimeError) as exc:
            lines = str(exc).strip().splitlines()
            raise DashboardError(
                f"{self.url}/api/v0/{resource}", 0, lines[0] if lines else type(exc).__name__
            ) from None

    def wait_nodes(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Poll until ``count`` nodes are ALIVE; returns them, or raises ``TimeoutError`` with the last error."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            try:
                alive = [n for n in self.nodes() if n["state"] == "ALIVE"]
                if len(alive) >= count:
                    return alive
                last = f"{len(alive)} of {count} nodes alive"
            except DashboardError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray dashboard {self.url}: {last} after {timeout:.0f} s")
            time.sleep(0.5)


def _visible(resources: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if not k.startswith(_HIDDEN)}


def _text(value: Any) -> str:
    """An enum member of Ray's state API (node state, job type and status) as its plain value."""
    return str(getattr(value, "value", value))


def _snake(name: str) -> str:
    return {"objectStoreMemory": "object_store_memory"}.get(name, name)
