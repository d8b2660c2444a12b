"""The sweep's progress table: short column names for the searched keys, the columns each experiment's trial
configs hold, and Tune's own table built from them (a replayed run shows its name, never its config dict). A real
sweep's table: tests/report/test_watch.py::test_watching_a_real_sweep."""

from __future__ import annotations

import pytest

from zsl_bench.search.progress import METRIC_COLUMNS, candidate_columns, fit_columns, short_names

SEARCHED = ["optim.lr", "optim.weight_decay", "model.name"]
REPLAYED = {
    "run": {
        "name": "final-1-seed0",
        "config": {
            "optim": {"lr": 0.002, "weight_decay": 0.001},
            "model": {"name": "resnet_test", "options": {}},
            "meta": {"parent": "a764d1ac", "sweep_settings": {"seeds_final": 1}},
        },
    }
}


@pytest.mark.parametrize(
    ("keys", "names"),
    [
        (SEARCHED, ["lr", "weight_decay", "model"]),
        (["optim.lr", "optim.group_lr.sef", "model.options.lr"], ["optim.lr", "sef", "options.lr"]),
        (["a.lr", "b.lr", "x.a.lr"], ["a.lr", "b.lr", "x.a.lr"]),  # a.lr is x.a.lr's tail: both in full
        (["model.options.width", "train.epochs"], ["width", "epochs"]),
        ([], []),
    ],
)
def test_short_names(keys, names):
    assert list(short_names(keys).values()) == names


def test_each_experiment_keeps_the_columns_its_configs_hold():
    columns = candidate_columns(SEARCHED)
    search = {"optim.lr": 0.01, "optim.weight_decay": 0.1, "model.name": "vit_test"}
    assert fit_columns(columns, search) == {
        "optim.lr": "lr",
        "optim.weight_decay": "weight_decay",
        "model.name": "model",
    }
    top_up = {"optim.lr": 0.01, "optim.weight_decay": 0.1, "_point": {"model.name": "vit_test"}}
    assert fit_columns(columns, top_up)["_point/model.name"] == "model"
    assert fit_columns(columns, REPLAYED) == {
        "run/name": "run",
        "run/config/optim/lr": "lr",
        "run/config/optim/weight_decay": "weight_decay",
        "run/config/model/name": "model",
    }


@pytest.fixture
def ray_env(monkeypatch):
    """Token auth before ray's import (a later in-process sweep of this test session needs it), and no output
    switch set, so the reporter's own choice shows (restored afterwards)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")
    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT")


def table(reporter, trials):
    """Tune's progress table (header, rows) as the reporter would print it for ``trials``."""
    from ray.tune.progress_reporter import _get_progress_table_data

    reporter.fit(trials)
    rows, header, _ = _get_progress_table_data(trials, dict(METRIC_COLUMNS), reporter.columns)
    return header, rows


def finished_trial(config, trial_id, result):
    from ray.tune.experiment import Trial

    trial = Trial("trainable", config=config, trial_id=trial_id, stub=True)
    trial.update_last_result({**result, "config": config})
    trial.set_status(Trial.TERMINATED)
    return trial


def test_replayed_runs_show_their_name_and_searched_values(ray_env):
    import os

    from zsl_bench.search.progress import sweep_reporter

    reporter = sweep_reporter(SEARCHED)
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0"  # Tune's reporter output, the one that takes columns
    trial = finished_trial(REPLAYED, "c4351_00000", {"epoch": 1, "test/h": 0.0912, "time_total_s": 4.2})
    header, rows = table(reporter, [trial])
    assert header[3:] == ["run", "lr", "weight_decay", "model", "epoch", "test H", "time (s)"]
    assert rows[0][0] == "trainable_c4351_00000" and rows[0][3:] == [
        "final-1-seed0",
        0.002,
        0.001,
        "resnet_test",
        1,
        0.0912,
        4.2,
    ]


def test_search_trials_show_searched_values_and_validation(ray_env):
    from zsl_bench.search.progress import sweep_reporter

    reporter = sweep_reporter(SEARCHED)
    config = {"optim.lr": 0.003, "optim.weight_decay": 0.01, "model.name": "vit_test"}
    trial = finished_trial(config, "3b7de1b6", {"epoch": 3, "val/h": 0.2, "val/czsl": 0.3, "test/h": 0.1})
    header, rows = table(reporter, [trial])
    assert header[3:] == ["lr", "weight_decay", "model", "epoch", "val H", "val CZSL", "test H"]
    assert rows[0][0] == "trainable_3b7de1b6" and rows[0][3:] == [0.003, 0.01, "vit_test", 3, 0.2, 0.3, 0.1]
