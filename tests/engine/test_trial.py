import json

import numpy as np
import pytest
import torch
import yaml

from zsl_bench.engine import TrialFailed, run_trial
from zsl_bench.errors import UserError
from zsl_bench.metrics import gzsl_accuracy
from zsl_bench.models import MODELS
from zsl_bench.models.base import ZslModel
from zsl_bench.models.family import TINY_TRANSFORM, ModelFamily

KEYS = {"czsl", "u", "s", "h"}


def small_cfg(root, **sections):
    cfg = {
        "model": {"name": "resnet_test", "options": {"width": 8}},
        "data": {"name": "synth", "root": str(root)},
        "train": {"epochs": 2, "seed": 1},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def test_run_directory_contract(synth_root, tmp_path):
    reports = []
    summary = run_trial(small_cfg(synth_root, meta={"sweep": "s1", "trial_id": "t1"}), tmp_path / "run", reports.append)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint",
        "config.yaml",
        "done",
        "metrics.jsonl",
        "summary.json",
        "test_scores.npz",
    ]
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == ["best.pt", "latest.pt"]

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["name"] == "resnet_test" and config["data"]["name"] == "synth"
    assert config["train"]["seed"] == 1
    meta = config["meta"]
    assert meta["sweep"] == "s1" and meta["trial_id"] == "t1" and meta["stage"] == "search"
    assert "torch" in meta["versions"] and "git_sha" in meta

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["split"]) for r in records] == [(1, "val"), (1, "test"), (2, "val"), (2, "test")]
    for r in records:
        assert r.keys() >= KEYS and all(0.0 <= r[k] <= 1.0 for k in KEYS)
        assert r["gamma_from"] == "val" and r["score_space"] == "softmax" and r["time_s"] > 0
        assert r["accuracy"] == "per_class"  # the default: per-class means (xlsa17)
    # test reuses the gamma chosen on val at the same epoch
    assert records[0]["gamma"] == records[1]["gamma"]

    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == summary
    best = summary["best_by_val"]
    assert summary["status"] == "completed" and summary["compute_s"] > 0 and summary["device"] == "cpu"
    assert set(best) == {"epoch", "czsl_epoch", "gamma", "val", "test"}
    assert KEYS == set(best["val"]) == set(best["test"])
    chosen = max((r for r in records if r["split"] == "val"), key=lambda r: (r["h"], -r["epoch"]))
    assert best["epoch"] == chosen["epoch"] and best["val"]["h"] == chosen["h"]
    # the paper-style selection: gamma calibrated on test, recorded per epoch and never below the honest H
    oracle = summary["best_by_test"]
    test_records = [r for r in records if r["split"] == "test"]
    assert all(r["calibrated_on_test"]["h"] >= r["h"] - 1e-12 for r in test_records)
    assert oracle["test"]["h"] == max(r["calibrated_on_test"]["h"] for r in test_records)
    assert oracle["test"]["czsl"] == max(r["czsl"] for r in test_records)

    # the saved test scores are those behind the reported selection
    saved = np.load(run / "test_scores.npz")
    assert int(saved["epoch"]) == best["epoch"] and float(saved["gamma"]) == best["gamma"]
    again = gzsl_accuracy(saved["scores"], saved["y_true"], saved["seen"], saved["unseen"], gamma=best["gamma"])
    assert (again["u"], again["s"]) == (best["test"]["u"], best["test"]["s"])

    assert [r["epoch"] for r in reports] == [1, 2]
    assert {"val/h", "val/czsl", "test/h", "train/loss"} <= reports[0].keys()


def test_scheduler_stop_finalises_the_run(synth_root, tmp_path):
    def stop_at_first(metrics):
        raise SystemExit(0)  # how Ray Tune stops a function trainable

    with pytest.raises(SystemExit):
        run_trial(small_cfg(synth_root, train={"epochs": 3}), tmp_path / "run", stop_at_first)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["epochs_run"] == 1
    assert (tmp_path / "run" / "done").exists()


def test_a_paused_run_reopened_continues_where_it_stopped(synth_root, tmp_path):
    """PBT pauses a trial by stopping it and resumes it later from its own checkpoint (tune_backend reopens it)."""
    from zsl_bench.rundir import reopen_stopped

    def pause_at_second(metrics):
        if metrics["epoch"] == 2:
            raise SystemExit(0)

    cfg, run = small_cfg(synth_root, train={"epochs": 4}), tmp_path / "run"
    assert not reopen_stopped(run)  # nothing there yet
    with pytest.raises(SystemExit):
        run_trial(cfg, run, pause_at_second)
    assert reopen_stopped(run) and not (run / "done").exists()
    reports = []
    summary = run_trial(cfg, run, reports.append)
    assert summary["status"] == "completed" and summary["epochs_run"] == 4
    assert [r["epoch"] for r in reports] == [3, 4]  # continued, not restarted
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 1, 2, 2, 3, 3, 4, 4]
    assert not reopen_stopped(run)  # a completed run stays finished


def _nan_model(num_attributes: int, image_size: int) -> ZslModel:
    class Nan(ZslModel):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, images):
            return {"attr": torch.full((images.shape[0], num_attributes), float("nan")) * self.w}

    return Nan()


@pytest.fixture
def nan_model(monkeypatch):
    """``nan_test`` registered for one test only: the registry-wide conformance tests never see it."""
    for attr in ("_entries", "_providers"):
        monkeypatch.setattr(MODELS, attr, dict(getattr(MODELS, attr)))
    ModelFamily(name="nan", tiny="nan_test", transform=TINY_TRANSFORM, registry=MODELS).variant("nan_test")(_nan_model)


def test_nan_loss_fails_the_trial_with_a_record(nan_model, synth_root, tmp_path):
    with pytest.raises(TrialFailed, match="epoch 1: loss is nan"):
        run_trial(small_cfg(synth_root, model={"name": "nan_test", "options": {}}), tmp_path / "run")
    run = tmp_path / "run"
    assert "TrialFailed" in (run / "error.txt").read_text()
    assert not (run / "done").exists()


def test_final_stage_uses_fixed_gamma_and_test_only(synth_root, tmp_path):
    summary = run_trial(small_cfg(synth_root, meta={"stage": "final"}, eval={"gamma": 0.1}), tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"test"}
    assert all(r["gamma"] == 0.1 and r["gamma_from"] == "fixed" for r in records)
    assert summary["best_by_val"]["val"] is None and summary["best_by_val"]["epoch"] == 2


def test_per_sample_accuracy_is_the_overall_accuracy_and_is_recorded(synth_root, tmp_path):
    """eval.accuracy=per_sample: CZSL, U and S as the official DUET --all computes them (correct / samples)."""
    cfg = small_cfg(synth_root, meta={"stage": "final"}, eval={"gamma": 0.0, "accuracy": "per_sample"})
    summary = run_trial(cfg, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["accuracy"] == "per_sample" and all(r["accuracy"] == "per_sample" for r in records)
    saved = np.load(tmp_path / "run" / "test_scores.npz")
    rec = next(r for r in records if r["epoch"] == int(saved["epoch"]))
    scores, y, seen, unseen = saved["scores"], saved["y_true"], saved["seen"], saved["unseen"]
    labels = np.sort(np.concatenate([seen, unseen]))
    pred = labels[np.argmax(scores[:, labels], axis=1)]  # gamma 0: plain argmax over the label space
    u_rows, s_rows = np.isin(y, unseen), np.isin(y, seen)
    czsl_pred = unseen[np.argmax(scores[u_rows][:, unseen], axis=1)]
    assert rec["u"] == pytest.approx(np.mean(pred[u_rows] == y[u_rows]))
    assert rec["s"] == pytest.approx(np.mean(pred[s_rows] == y[s_rows]))
    assert rec["czsl"] == pytest.approx(np.mean(czsl_pred == y[u_rows]))


def test_missing_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="zsl-bench data synth --out"):
        run_trial(small_cfg(tmp_path / "nowhere"), tmp_path / "run")
    assert (tmp_path / "run" / "error.txt").exists()


def test_interrupted_run_resumes_to_the_same_result(synth_root, tmp_path):
    # a decaying lr and gradient accumulation must carry over the interruption too
    optim = {"lr": 1e-3, "schedule": "step", "step_size": 1, "lr_decay": 0.5}
    cfg = small_cfg(synth_root, train={"epochs": 4, "grad_accum": 2}, optim=optim)
    reference = run_trial(cfg, tmp_path / "straight")

    def crash_after_second(metrics):
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt  # the process dies here (a kill leaves the same state on disk)

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, tmp_path / "resumed", crash_after_second)
    assert not (tmp_path / "resumed" / "done").exists()
    epochs_seen = []
    resumed = run_trial(cfg, tmp_path / "resumed", lambda m: epochs_seen.append(m["epoch"]))
    assert epochs_seen == [3, 4]  # epochs 1-2 were not trained again
    records = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["split"]) for r in records] == [(e, s) for e in (1, 2, 3, 4) for s in ("val", "test")]
    assert [r["lr"]["head"] for r in records[::2]] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])
    assert records[-1]["train_losses"].keys() >= {"ce"}
    assert resumed["best_by_val"] == reference["best_by_val"]
    assert resumed["best_by_test"] == reference["best_by_test"]


def test_finished_run_is_not_trained_again(synth_root, tmp_path):
    cfg = small_cfg(synth_root)
    first = run_trial(cfg, tmp_path / "run")
    stamp = (tmp_path / "run" / "done").stat().st_mtime_ns
    calls = []
    again = run_trial(cfg, tmp_path / "run", calls.append)
    assert again == first and calls == [] and (tmp_path / "run" / "done").stat().st_mtime_ns == stamp
    changed = run_trial(small_cfg(synth_root, train={"epochs": 1}), tmp_path / "run")  # another config: afresh
    assert changed["epochs_run"] == 1
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_init_from_another_runs_checkpoint(synth_root, tmp_path):
    """PBT's exploit: a run continues from another run's epoch-2 state under its own (mutated) config."""
    source = run_trial(small_cfg(synth_root, train={"epochs": 3, "keep_checkpoints": 2}), tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoint").glob("epoch_*.pt")) == [
        "epoch_0002.pt",
        "epoch_0003.pt",
    ]
    clone = run_trial(
        small_cfg(synth_root, train={"epochs": 4}, optim={"lr": 5e-3}),
        tmp_path / "b",
        init_from=tmp_path / "a" / "checkpoint" / "epoch_0002.pt",
    )
    records = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("inherited_from")) for r in records] == [
        (1, "a"),
        (1, "a"),
        (2, "a"),
        (2, "a"),
        (3, None),
        (3, None),
        (4, None),
        (4, None),
    ]
    assert clone["epochs_run"] == 4 and source["epochs_run"] == 3
    with pytest.raises(TrialFailed, match="cannot read"):
        run_trial(small_cfg(synth_root), tmp_path / "c", init_from=tmp_path / "missing.pt")


def test_state_covering_every_epoch_finishes_at_once(synth_root, tmp_path):
    """A driver killed between the last checkpoint and ``done`` (or a PBT copy of a finished trial) still ends."""
    cfg = small_cfg(synth_root)
    first = run_trial(cfg, tmp_path / "run")
    (tmp_path / "run" / "done").unlink()  # as if killed right after the last checkpoint
    calls = []
    again = run_trial(cfg, tmp_path / "run", calls.append)
    assert calls == [] and (tmp_path / "run" / "done").exists()
    assert again["best_by_val"] == first["best_by_val"] and again["status"] == "completed"
    copied = run_trial(cfg, tmp_path / "copy", init_from=tmp_path / "run" / "checkpoint" / "latest.pt")
    assert copied["epochs_run"] == 2 and (tmp_path / "copy" / "done").exists()
