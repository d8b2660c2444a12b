"""The cluster view's client when the dashboard does not answer (a live one: test_head.py)."""

from __future__ import annotations

import pytest

from zsl_bench.cluster.dashboard import DashboardClient, DashboardError
from zsl_bench.ports import free_ports


def test_no_dashboard_is_a_dashboard_error_and_waiting_times_out(monkeypatch):
    # the queries import ray, which reads the auth mode once, on import; later tests of this process start a
    # token-auth Ray in-process (test_searcher_conformance.py), as zsl-bench does
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    url = f"http://127.0.0.1:{free_ports(1)[0]}"
    client = DashboardClient(url, "0" * 64, timeout=2)
    for query in (client.version, client.nodes, client.jobs):
        with pytest.raises(DashboardError) as info:
            query()
        assert info.value.status == 0 and url in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(TimeoutError, match=r"Ray dashboard .* after 1 s"):
        client.wait_nodes(1, timeout=1)


def test_the_dashboard_url_must_be_http():
    with pytest.raises(ValueError, match="http"):
        DashboardClient("127.0.0.1:8265", None)
