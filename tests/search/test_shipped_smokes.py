"""Every shipped search space runs as ``zsl-bench sweep --smoke``: one smoke per distinct sweep shape, each attached
to one real Ray head that this module starts (``zsl-bench cluster up``) and stops."""

import json
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


@pytest.mark.parametrize("space_file", smoke_shapes(), ids=lambda p: p.stem)
def test_smoke_runs_every_shipped_space(space_file, tmp_path, cli, smoke_head):
    address, env = smoke_head
    args = ("sweep", "--space", str(space_file), "--smoke", "--results", str(tmp_path), "--address", address)
    code, out, err = cli(*args, env=env, timeout=300)
    assert code == 0, err[-3000:]
    assert "search 2 completed" in out or "early-stopped" in out
    sweep_dir = tmp_path / f"{space_file.stem}-smoke"
    for run in sweep_dir.iterdir():
        if run.name.startswith("_"):
            continue
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["data"]["name"] == "synth" and config["model"]["name"].endswith("_test")
        assert config["train"]["epochs"] <= 1 and (run / "done").exists()
