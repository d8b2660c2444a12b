"""A real sweep: the CLI starts a local Ray (token auth), runs Optuna + ASHA trials, and records failures."""

import json
import os
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sweep_records_every_trial_and_survives_a_failing_one(synth_root, tmp_path, cli):
    space = {
        "base": "quickstart",
        "set": {"data.root": str(synth_root), "train.epochs": 2},
        "sweep": {"num_samples": 4, "max_concurrent": 2, "resources_per_trial": {"cpu": 1}, "seed": 3},
        "space": {
            "optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
            # width 0 builds a model whose first forward raises: a failing trial the sweep must survive
            "model.options.width": {"type": "choice", "values": [0, 8]},
        },
    }
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(yaml.safe_dump(space))
    home = tmp_path / "home"
    home.mkdir()
    # a fresh HOME: the sweep must neither need nor write ~/.ray/auth_token
    code, out, err = cli(
        "sweep", "--space", str(space_file), "--results", str(tmp_path / "results"), env={"HOME": str(home)}
    )
    assert code == 0, err[-3000:]
    sweep_dir = tmp_path / "results" / "tiny"
    runs = sorted(p for p in sweep_dir.iterdir() if not p.name.startswith(("_", "final-")))
    assert len(runs) == 4
    widths = {}
    for run in runs:
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["meta"]["sweep"] == "tiny" and config["meta"]["trial_id"] == run.name
        assert config["meta"]["stage"] == "search"
        widths[run.name] = config["model"]["options"]["width"]
        if widths[run.name] == 0:
            assert (run / "error.txt").exists() and not (run / "done").exists()
        else:
            assert (run / "done").exists()
            assert json.loads((run / "summary.json").read_text())["status"] in {"completed", "stopped"}
    failed = sum(1 for w in widths.values() if w == 0)
    assert 0 < failed < 4, widths  # the seeded searcher draws both widths
    assert f"{failed} failed" in out
    assert not (home / ".ray").exists()
    token = sweep_dir / "_ray" / "auth_token"
    assert token.exists() and oct(token.stat().st_mode & 0o777) == "0o600"
    tune_trials = list((sweep_dir / "_ray" / "search").glob("trainable_*"))  # Tune's own: its JSON log only
    assert len(tune_trials) == 4 and all((t / "result.json").exists() for t in tune_trials)
    assert not [p.name for t in tune_trials for p in t.iterdir() if p.name.startswith(("progress", "events.out"))]
    assert "Could not fetch metrics" not in err

    code, board, board_err = cli("leaderboard", "--results", str(tmp_path / "results"), "--format", "json")
    assert code == 0
    rows = json.loads(board)
    assert {(r["dataset"], r["model"]) for r in rows} == {("synth", "resnet_test")}  # table details: tests/report
    # stage final retrained the best search trial on trainval, for its chosen epoch count and gamma
    final = yaml.safe_load((sweep_dir / "final-1-seed0" / "config.yaml").read_text())
    parent = sweep_dir / final["meta"]["parent"]
    parent_best = json.loads((parent / "summary.json").read_text())["best_by_val"]
    assert final["meta"]["stage"] == "final" and final["model"]["options"]["width"] == 8
    assert final["train"]["epochs"] == parent_best["epoch"] and final["eval"]["gamma"] == parent_best["gamma"]
    assert (sweep_dir / "final-1-seed0" / "done").exists()
    assert "final 1 of 1 runs" in out
    assert f"{failed} failed" in board_err


def refused_sweep(tmp_path, cli, name: str, settings: dict, resources: dict) -> list[str]:
    """Run a 2-trial quickstart sweep that must be refused: exit 2 and no traceback; its stderr lines."""
    space = {
        "base": "quickstart",
        "set": settings,
        "sweep": {"num_samples": 2, "resources_per_trial": resources},
        "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    }
    space_file = tmp_path / f"{name}.yaml"
    space_file.write_text(yaml.safe_dump(space))
    code, _, err = cli("sweep", "--space", str(space_file), "--results", str(tmp_path / "results"), timeout=120)
    assert code == 2 and "Traceback" not in err, err[-3000:]
    return [line for line in err.splitlines() if line.strip()]


def test_a_trial_no_node_can_hold_fails_at_once_in_one_line(synth_root, tmp_path, cli):
    """A GPU space started on this CPU machine used to leave every trial PENDING forever."""
    settings = {"data.root": str(synth_root), "train.epochs": 1}
    lines = refused_sweep(tmp_path, cli, "gpu", settings, {"cpu": 1, "gpu": 1})
    assert len(lines) == 1 and "a trial needs 1 worker(s) x 1 CPU x 1 GPU" in lines[0], lines[-3:]
    assert "more than this machine has" in lines[0] and "--address" in lines[0]  # checked before Ray starts
    assert not (tmp_path / "results").exists()


def test_missing_data_fails_before_any_trial_in_one_line(tmp_path, cli):
    """Every trial would fail on it: the driver checks the data once, before Ray starts, and writes nothing."""
    root = tmp_path / "nowhere" / "synth"
    lines = refused_sweep(tmp_path, cli, "nodata", {"data.root": str(root)}, {"cpu": 1})
    assert len(lines) == 1 and str(root) in lines[0] and "--set data.root=DIR" in lines[0], lines
    assert not (tmp_path / "results").exists()


def test_local_token_is_private_and_stable(tmp_path):
    from zsl_bench.search.ray_adapter import ensure_local_token

    saved = {k: os.environ.pop(k, None) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    try:
        ensure_local_token(tmp_path / "_ray")
        token = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
        assert os.environ["RAY_AUTH_MODE"] == "token" and len(token.read_text().strip()) == 64
        first = token.read_text()
        ensure_local_token(tmp_path / "_ray")  # idempotent: an existing token is kept
        assert token.read_text() == first
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
