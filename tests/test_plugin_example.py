"""An outside package extends zsl-bench with no file of zsl-bench touched: examples/plugin (zsl-proto) declares a
model family, a dataset and a searcher through entry points. Installed into the project's venv (non-editable), it
is found by the sweep driver and by every Ray worker of a real local Ray instance, and its runs reach the
leaderboard with their provenance recorded. A module that is not installed reaches the workers through --plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "plugin"
SPACE = PLUGIN / "zsl_proto" / "spaces" / "proto_toyshapes.yaml"
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _zsl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zsl_bench.cli", *args],
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    """zsl-proto installed (not editable) into this venv for the module's tests, uninstalled afterwards."""
    build = tmp_path_factory.mktemp("build")  # pip builds from a copy: nothing is written into examples/
    subprocess.run(["cp", "-r", str(PLUGIN), str(build / "plugin")], check=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(build / "plugin")], check=True
    )
    yield
    subprocess.run([*pip, "uninstall", "-y", "zsl-proto"], check=True)


def _configs(sweep_dir: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(sweep_dir.glob("*/config.yaml"))]


def test_installed_plugin_runs_through_sweeps_and_the_leaderboard(installed: None, tmp_path: Path) -> None:
    listed = _zsl("models", "list", "proto*", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.split() == ["proto_small", "proto_test"], listed.stderr

    assert _zsl("data", "synth", "--out", "data/TOYSHAPES", cwd=tmp_path).returncode == 0
    inspected = _zsl("data", "inspect", "--dataset", "toyshapes", "--json", cwd=tmp_path)
    assert inspected.returncode == 0, inspected.stderr
    assert '"classes": 32' in inspected.stdout

    # the plugin's model on the plugin's dataset, sampled by the plugin's searcher, in Ray workers
    sweep = _zsl("sweep", "--space", str(SPACE), "--results", "results", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    configs = _configs(tmp_path / "results" / "proto_toyshapes")
    assert len(configs) == 3  # 2 search trials + 1 final run
    for cfg in configs:
        providers = cfg["meta"]["providers"]
        assert providers["model"] == {"name": "proto_test", "distribution": "zsl-proto", "version": "0.1.0"}
        assert providers["dataset"] == {"name": "toyshapes", "distribution": "zsl-proto", "version": "0.1.0"}
        assert cfg["meta"]["sweep_settings"]["searcher"] == "halton"
    lrs = sorted(c["optim"]["lr"] for c in configs if c["meta"]["stage"] == "search")
    assert lrs[0] != lrs[1] and all(1e-3 <= lr <= 1e-2 for lr in lrs)  # two different Halton points in range

    smoke = _zsl("sweep", "--space", str(SPACE), "--smoke", "--results", "results", cwd=tmp_path)
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert len(_configs(tmp_path / "results" / "proto_toyshapes-smoke")) >= 2

    board = _zsl("leaderboard", "--results", "results", "--no-reference", cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    assert "proto_test" in board.stdout and "toyshapes" in board.stdout


def test_uninstalled_plugin_module_reaches_ray_workers(tmp_path: Path) -> None:
    """--plugin MODULE for a file in the working directory: the driver and every trial process import it."""
    (tmp_path / "my_zsl_plugin.py").write_text(
        "from zsl_bench.models import MODELS\n"
        "from zsl_bench.models.baselines import RESNET\n"
        "RESNET.variant('mine_test')(MODELS.get('resnet_test').factory)\n"
    )
    (tmp_path / "mine.yaml").write_text(
        "base: quickstart\n"
        "set: {model.name: mine_test, data.root: data/synth, train.epochs: 1}\n"
        "sweep: {searcher: random, scheduler: fifo, num_samples: 2, max_concurrent: 2, top_k: 0}\n"
        "space:\n  optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
    )
    assert _zsl("data", "synth", "--out", "data/synth", cwd=tmp_path).returncode == 0
    unknown = _zsl("sweep", "--space", "mine.yaml", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown model 'mine_test'" in unknown.stderr  # before Ray starts
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    done = _zsl("sweep", "--space", "mine.yaml", "--plugin", "my_zsl_plugin", "--results", "r", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    configs = _configs(tmp_path / "r" / "mine")
    assert len(configs) == 2
    assert all(c["meta"]["providers"]["model"]["distribution"] == "module:my_zsl_plugin" for c in configs)
    assert all((p.parent / "done").exists() for p in (tmp_path / "r" / "mine").glob("*/config.yaml"))
