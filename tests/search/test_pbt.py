"""Population-based training through the real sweep: exploit copies a better trial's weights, explore mutates."""

import json

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCHS = 6


def test_pbt_exploits_and_every_trial_completes(synth_root, tmp_path, cli):
    space = {
        "base": "quickstart",
        "set": {"data.root": str(synth_root), "train.epochs": EPOCHS, "model.options.width": 8},
        "sweep": {
            "searcher": "random",
            "scheduler": "pbt",
            "scheduler_options": {"perturbation_interval": 2},
            "num_samples": 4,
            "max_concurrent": 2,
            "top_k": 0,
            "seed": 0,
            "resources_per_trial": {"cpu": 1},
        },
        # a wide lr range: the bottom of the population is clearly worse and exploits the top
        "space": {"optim.lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}},
    }
    space_file = tmp_path / "pbt.yaml"
    space_file.write_text(yaml.safe_dump(space))
    code, out, err = cli("sweep", "--space", str(space_file), "--results", str(tmp_path / "results"))
    assert code == 0, err[-3000:]
    runs = [p for p in (tmp_path / "results" / "pbt").iterdir() if not p.name.startswith("_")]
    assert len(runs) == 4
    exploited = 0
    for run in runs:
        assert (run / "done").exists(), run
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in records] == [e for e in range(1, EPOCHS + 1) for _ in ("val", "test")]
        inherited = {r["inherited_from"] for r in records if "inherited_from" in r}
        if inherited:
            exploited += 1
            assert inherited <= {p.name for p in runs} - {run.name}  # copied from another trial of the sweep
    assert exploited >= 1
    assert "search 4 completed" in out
