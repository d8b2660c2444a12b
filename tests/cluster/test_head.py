"""``zsl-bench cluster up/status/down`` on a real Ray head, and a sweep attached to it with ``--address``."""

from __future__ import annotations

import json
import socket
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from zsl_bench.cluster import procs
from zsl_bench.ports import free_ports

pytestmark = [pytest.mark.integration]


def http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_cluster_up_dashboard_auth_attached_sweep_and_down(cli, tmp_path, synth_root):
    cdir = tmp_path / "cluster dir"
    gcs_port, dash_port = free_ports(2)
    code, out, err = cli(
        *("cluster", "up", "--num-cpus", "2", "--port", str(gcs_port), "--dashboard-port", str(dash_port)),
        *("--object-store-mb", "200", "--cluster-dir", str(cdir)),
        timeout=180,
    )
    state = json.loads((cdir / "cluster.json").read_text()) if (cdir / "cluster.json").exists() else None
    try:
        assert code == 0, err[-3000:]
        assert state is not None
        url = f"http://127.0.0.1:{dash_port}"
        assert url in out and f"ssh -N -L {dash_port}:127.0.0.1:{dash_port}" in out
        assert f"--address {state['address']}" in out
        token_file = Path(state["token_file"])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(cdir.stat().st_mode) == 0o700
        token = token_file.read_text().strip()

        assert http_status(f"{url}/api/version", token) == 200
        assert http_status(f"{url}/api/version", None) == 401
        assert http_status(f"{url}/api/version", "0" * 64) == 403
        node_ip = state["address"].rsplit(":", 1)[0]
        with socket.socket() as sock:  # the dashboard listens on loopback only
            sock.settimeout(2)
            assert sock.connect_ex((node_ip, dash_port)) != 0

        code, out, err = cli("cluster", "status", "--json", "--cluster-dir", str(cdir))
        assert code == 0, err
        report = json.loads(out)
        assert report["dashboard_url"] == url and report["token_file"] == str(token_file)
        assert [n["state"] for n in report["nodes"]] == ["ALIVE"]
        assert report["resources"]["CPU"]["total"] == 2

        code, _, err = cli("cluster", "up", "--cluster-dir", str(cdir))
        assert code == 2 and "already runs" in err

        # a sweep attaches with the cluster's token (found through ZSL_BENCH_CLUSTER_DIR) and leaves it running
        space = {
            "base": "quickstart",
            "set": {"data.root": str(synth_root), "train.epochs": 1, "model.options.width": 8},
            "sweep": {"num_samples": 1, "scheduler": "fifo", "top_k": 0, "resources_per_trial": {"cpu": 1}},
            "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
        }
        space_file = tmp_path / "attach.yaml"
        space_file.write_text(yaml.safe_dump(space))
        results = tmp_path / "results"
        code, out, err = cli(
            *("sweep", "--space", str(space_file), "--results", str(results), "--address", state["address"]),
            env={"ZSL_BENCH_CLUSTER_DIR": str(cdir), "RAY_AUTH_TOKEN_PATH": "", "RAY_AUTH_TOKEN": ""},
            timeout=300,
        )
        assert code == 0, err[-3000:]
        assert "search 1 completed" in out
        assert not (results / "attach" / "_ray" / "auth_token").exists()  # no private per-sweep token
        deadline = time.monotonic() + 30
        while True:  # the sweep's driver shows up as a Ray job; the GCS marks it finished a moment after it exits
            code, out, err = cli("cluster", "status", "--json", "--cluster-dir", str(cdir))
            assert code == 0, err
            report = json.loads(out)
            assert report["running"]
            if report["jobs_finished"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert report["jobs_finished"] >= 1, report
    finally:
        code, out, err = cli("cluster", "down", "--cluster-dir", str(cdir))
    assert code == 0, err
    assert "stopped" in out
    recorded = [procs.Proc.from_list(p) for p in state["procs"]]
    assert recorded and not [p for p in recorded if procs.alive(p)]
    assert procs.marked(state["cluster_id"]) == []  # no process of this cluster left, whatever its PID
    assert not Path(state["temp_dir"]).exists() and not token_file.exists()
    code, _, err = cli("cluster", "down", "--cluster-dir", str(cdir))
    assert code == 0 and "nothing to stop" in err


def test_dashboard_beyond_loopback_needs_a_flag(cli, tmp_path):
    code, _, err = cli("cluster", "up", "--dashboard-host", "0.0.0.0", "--cluster-dir", str(tmp_path / "c"))
    assert code == 2 and "--expose-dashboard" in err
    assert not (tmp_path / "c").exists()  # refused before anything was started


def test_status_without_a_cluster_is_one_line(cli, tmp_path):
    code, _, err = cli("cluster", "status", "--cluster-dir", str(tmp_path))
    assert code == 2 and "cluster up" in err and "Traceback" not in err


def test_sweep_address_must_be_host_port(cli, tmp_path):
    space = Path(__file__).resolve().parents[2] / "zsl_bench" / "spaces" / "quickstart.yaml"
    code, _, err = cli("sweep", "--space", str(space), "--results", str(tmp_path), "--address", "nonsense")
    assert code == 2 and "HOST:PORT" in err
