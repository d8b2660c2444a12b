"""A real sweep whose trials each train in 2 Ray Train workers with DeepSpeed ZeRO-2 (gloo, CPU)."""

import json

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sweep_of_two_worker_deepspeed_trials(synth_root, tmp_path, cli):
    space = {
        "base": "quickstart",
        "set": {
            "data.root": str(synth_root),
            "model.name": "resnet_test",
            "model.options.width": 8,
            "train.epochs": 2,
            "train.batch_size": 32,
            "train.strategy": "deepspeed",
            "train.num_workers": 2,
            "train.zero_stage": 2,
        },
        # each worker holds 1 CPU: a trial takes both cores, so the trials run one after the other
        "sweep": {
            "searcher": "random",
            "scheduler": "asha",
            "num_samples": 2,
            "max_concurrent": 2,
            "top_k": 0,
            "resources_per_trial": {"cpu": 1},
            "seed": 1,
        },
        "space": {"optim.lr": {"type": "choice", "values": [3e-3, 1e-4]}},
    }
    space_file = tmp_path / "ds.yaml"
    space_file.write_text(yaml.safe_dump(space))
    home = tmp_path / "home"
    home.mkdir()
    results = tmp_path / "results"
    code, out, err = cli("sweep", "--space", str(space_file), "--results", str(results), env={"HOME": str(home)})
    assert code == 0, err[-4000:]
    runs = sorted(p for p in (results / "ds").iterdir() if not p.name.startswith("_"))
    assert len(runs) == 2, out
    statuses = []
    for run in runs:
        assert (run / "done").exists() and not (run / "error.txt").exists(), run
        summary = json.loads((run / "summary.json").read_text())
        assert summary["strategy"] == "deepspeed" and summary["workers"] == 2
        statuses.append(summary["status"])
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["meta"]["trial_id"] == run.name and config["train"]["num_workers"] == 2
        epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [e for e in range(1, summary["epochs_run"] + 1) for _ in ("val", "test")]
        assert any((run / "checkpoint").glob("zero-*/zero_pp_rank_1_mp_rank_00_optim_states.pt"))
    assert set(statuses) <= {"completed", "stopped"} and "completed" in statuses
    assert "0 failed" in out or "failed" not in out
    assert not (home / ".ray").exists()
