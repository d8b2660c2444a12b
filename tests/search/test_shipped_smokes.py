"""Every shipped search space runs as ``zsl-bench sweep --smoke``: one smoke per distinct sweep shape, each attached
to one real Ray head that this module starts (``zsl-bench cluster up``) and stops. The quickstart's smoke is also
watched while it runs (``zsl-bench watch --once --json``) and its Tune progress table read."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]


REPO = Path(__file__).resolve().parents[2]


def smoke_shapes() -> list[Path]:
    """One shipped space per distinct smoke run: spaces whose smoke variants share the tiny model's family, the
    searcher, the scheduler and the searched keys run the same sweep on the synthetic data (the AwA2, CUB and SUN
    spaces of one family do); every space's smoke variant is validated in test_shipped.py without Ray."""
    from zsl_bench.models import MODELS
    from zsl_bench.search.shipped import shipped_spaces
    from zsl_bench.search.space import load_space
    from zsl_bench.search.stages import smoke_variant

    chosen: dict[tuple, Path] = {}
    for path in shipped_spaces():
        smoke, base = smoke_variant(*load_space(path), REPO / "data" / "synth")
        sweep = smoke.sweep
        key = (MODELS.get(base.model.name).family, sweep.searcher, sweep.scheduler, tuple(sorted(smoke.space)))
        chosen.setdefault(key, path)
    return sorted(chosen.values())


@pytest.fixture(scope="module")
def smoke_head(tmp_path_factory, cli):
    """One real Ray head (``zsl-bench cluster up``) that the shipped-space smokes attach to, one after another:
    what a shared cluster does. Sweeps that start their own Ray: test_tune_backend.py, test_packaging.py."""
    from zsl_bench.ports import free_ports

    cdir = tmp_path_factory.mktemp("smoke-head")
    gcs_port, dash_port = free_ports(2)
    up = ("cluster", "up", "--num-cpus", "2", "--port", str(gcs_port), "--dashboard-port", str(dash_port))
    code, _, err = cli(*up, "--cluster-dir", str(cdir), timeout=180)
    try:
        assert code == 0, err[-3000:]
        address = json.loads((cdir / "cluster.json").read_text())["address"]
        yield address, {"ZSL_BENCH_CLUSTER_DIR": str(cdir), "RAY_AUTH_TOKEN_PATH": "", "RAY_AUTH_TOKEN": ""}
    finally:
        cli("cluster", "down", "--cluster-dir", str(cdir), timeout=120)


WATCHED = "quickstart"  # its smoke runs in test_watching_the_quickstart_smoke


@pytest.mark.parametrize("space_file", [p for p in smoke_shapes() if p.stem != WATCHED], ids=lambda p: p.stem)
def test_smoke_runs_every_shipped_space(space_file, tmp_path, cli, smoke_head):
    address, env = smoke_head
    args = ("sweep", "--space", str(space_file), "--smoke", "--results", str(tmp_path), "--address", address)
    code, out, err = cli(*args, env=env, timeout=300)
    assert code == 0, err[-3000:]
    check_smoke(out, tmp_path / f"{space_file.stem}-smoke")


def check_smoke(out: str, sweep_dir: Path) -> None:
    """The sweep's summary line, and every run directory a finished 1-epoch run on the synthetic data."""
    assert "search 2 completed" in out or "early-stopped" in out
    for run in sweep_dir.iterdir():
        if run.name.startswith("_"):
            continue
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["data"]["name"] == "synth" and config["model"]["name"].endswith("_test")
        assert config["train"]["epochs"] <= 1 and (run / "done").exists()


def read_dirs(sweep: Path) -> dict[str, tuple[str, int]]:
    """Each run directory's (status, epochs recorded), read straight from its files (a folder whose config.yaml
    is not written yet is not one)."""
    out = {}
    for run in sorted(p for p in sweep.iterdir() if (p / "config.yaml").is_file() and not p.name.startswith("_")):
        lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
        epochs = len({json.loads(line)["epoch"] for line in lines if line.strip()})
        status = "failed" if (run / "error.txt").exists() else "running"
        if (run / "done").exists():
            status = json.loads((run / "summary.json").read_text())["status"]
        out[run.name] = (status, epochs)
    return out


def between(before: dict[str, tuple[str, int]], seen: dict[str, tuple[str, int]], after: dict) -> bool:
    """``seen`` lies between two readings: every run of ``before`` is in it, every run of it is in ``after``,
    and each run's epochs and end lie between its two readings."""
    if not set(before) <= set(seen) <= set(after):
        return False
    for name, (status, epochs) in seen.items():
        low, high = before.get(name, ("running", 0)), after[name]
        if not low[1] <= epochs <= high[1]:
            return False
        if (low[0] != "running" and status != low[0]) or (status != "running" and status != high[0]):
            return False
    return True


def test_watching_the_quickstart_smoke(tmp_path, cli, capsys, smoke_head):
    """The quickstart's smoke sweep runs in a subprocess; ``watch --once --json`` polled meanwhile (the command's
    entry point in this process: a poll costs no interpreter start on a busy machine) matches the run directories
    read just before and just after each poll; the command run as its own process afterwards shows every trial
    done; Tune's progress table names the runs and the searched parameters."""
    from zsl_bench.cli import main

    assert WATCHED in {p.stem for p in smoke_shapes()}  # the shape this test covers
    address, env = smoke_head
    argv = [sys.executable, "-m", "zsl_bench.cli", "sweep", "--space", f"{WATCHED}.yaml", "--smoke"]
    log = tmp_path / "sweep.out"
    with log.open("w") as out_file:
        proc = subprocess.Popen(
            [*argv, "--results", str(tmp_path), "--address", address],
            stdout=out_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    sweep = tmp_path / f"{WATCHED}-smoke"
    seen_running = False
    try:
        while proc.poll() is None:
            if not sweep.is_dir():
                time.sleep(0.5)
                continue
            before = read_dirs(sweep)
            code = main(["watch", "--sweep", sweep.name, "--results", str(tmp_path), "--once", "--json"])
            after = read_dirs(sweep)
            out, err = capsys.readouterr()
            assert code == 0, err
            data = json.loads(out)
            seen = {t["name"]: (t["status"], t["epochs"]) for t in data["trials"] if t["status"] != "unreadable"}
            assert between(before, seen, after), (before, seen, after)
            assert sum(data["counts"].values()) == len(data["trials"])
            seen_running |= data["counts"]["running"] > 0
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    check_smoke(output, sweep)
    code, out, err = cli("watch", "--sweep", sweep.name, "--results", str(tmp_path), "--once", "--json")
    final = json.loads(out)
    assert seen_running, "no poll saw a running trial"
    assert final["finished"] and final["eta"]["seconds"] == 0.0
    assert final["counts"]["running"] == final["counts"]["failed"] == final["counts"]["unreadable"] == 0
    assert (final["planned_search"], final["planned_final"]) == (2, 1)
    assert {t["name"]: (t["status"], t["epochs"]) for t in final["trials"]} == read_dirs(sweep)
    configs = {t["name"]: yaml.safe_load((sweep / t["name"] / "config.yaml").read_text()) for t in final["trials"]}
    assert all(t["epochs"] == t["epochs_total"] == configs[t["name"]]["train"]["epochs"] for t in final["trials"])
    check_progress_table(output)


def check_progress_table(output: str) -> None:
    """Tune's table names each replayed run and the searched parameters by short name, never a config dict."""
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in output.splitlines() if line.startswith("|")
    ]
    headers = [row for row in rows if row[0] == "Trial name"]
    assert any(row[3:6] == ["lr", "weight_decay", "model"] for row in headers), headers
    assert any(row[3:7] == ["run", "lr", "weight_decay", "model"] for row in headers), headers
    assert any("final-1-seed0" in row for row in rows), rows
    assert not any(cell.startswith("...") for row in rows for cell in row), rows
