"""``zsl-bench watch``: the snapshot of a hand-made sweep at a fake clock (counts, epochs, best trial, ETA numbers),
its JSON and text through the CLI, broken run directories, one-line errors; ``zsl-bench dashboard`` on a journal
Optuna wrote. A real sweep watched while it runs: tests/search/test_shipped_smokes.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from zsl_bench.report.watch import read_snapshot, render, snapshot_json
from zsl_bench.rundir import RunWriter

T0 = 1_700_000_000.0  # the hand-made sweep's clock: files written at T0 + s
SETTINGS = {"searcher": "optuna", "num_samples": 4, "top_k": 1, "seeds_final": 2, "max_concurrent": 2}


def make_run(sweep: Path, name: str, *, epochs: int, times: tuple[float, float], **kw: Any) -> Path:
    """A run directory written as the engine does: ``epochs`` of 4 recorded (10 s each, ``time_s`` 10, 20, …),
    validation H rising to ``kw['val_h']`` at the last one; ``kw['end']``: completed / stopped / failed / None
    (running). Its files are dated ``times`` = (config written, last write) seconds after T0."""
    stage = kw.get("stage", "search")
    w = RunWriter(sweep / name)
    meta = {"sweep": sweep.name, "trial_id": name, "stage": stage, "sweep_settings": SETTINGS}
    w.config({"model": {"name": "resnet_test"}, "data": {"name": "synth"}, "train": {"epochs": 4}, "meta": meta})
    val_h = kw.get("val_h", 0.5)
    for epoch in range(1, epochs + 1):
        h = val_h * epoch / epochs
        w.metrics({"epoch": epoch, "split": "val", "czsl": h, "u": h, "s": h, "h": h, "time_s": 10.0 * epoch})
        w.metrics({"epoch": epoch, "split": "test", "czsl": h, "u": h, "s": h, "h": h, "time_s": 10.0 * epoch})
    end = kw.get("end")
    if epochs:
        block = {"czsl": val_h, "u": val_h, "s": val_h, "h": val_h}
        status = end if end in ("completed", "stopped") else "running"
        best = {"epoch": epochs, "gamma": 0.0, "val": block, "test": block}
        w.summary({"status": status, "epochs_run": epochs, "best_by_val": best, "best_by_test": best})
    if end == "failed":
        w.error("RuntimeError: out of memory\nmore detail")
    elif end:
        w.done()
    for file in (sweep / name).iterdir():
        os.utime(file, (T0 + times[1], T0 + times[1]))
    os.utime(sweep / name / "config.yaml", (T0 + times[0], T0 + times[0]))
    return sweep / name


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demo``: t1 completed (4/4), t2 early-stopped (2/4), t3 running (2/4, the best validation H so far), t4
    failed before an epoch, ``broken`` (unparseable config), ``empty`` (no config.yaml yet), ``_ray`` ignored."""
    sweep = tmp_path_factory.mktemp("results") / "demo"
    make_run(sweep, "t1", epochs=4, times=(0, 40), end="completed", val_h=0.5)
    make_run(sweep, "t2", epochs=2, times=(0, 20), end="stopped", val_h=0.3)
    make_run(sweep, "t3", epochs=2, times=(20, 40), end=None, val_h=0.6)
    make_run(sweep, "t4", epochs=0, times=(40, 41), end="failed")
    (sweep / "broken").mkdir()
    (sweep / "broken" / "config.yaml").write_text("model: {name: [unclosed\n")
    (sweep / "empty").mkdir()
    (sweep / "_ray" / "x").mkdir(parents=True)
    (sweep / "_ray" / "x" / "config.yaml").write_text("{}\n")
    return sweep


def plan(settings: dict[str, Any]) -> int | None:
    return settings.get("num_samples")


def test_snapshot_counts_progress_and_best(sweep):
    snap = read_snapshot(sweep, now=T0 + 45, plan=plan)
    assert snap.counts == {"completed": 1, "running": 1, "stopped": 1, "failed": 1, "unreadable": 2}
    rows = {t.name: t for t in snap.trials}
    assert set(rows) == {"t1", "t2", "t3", "t4", "broken", "empty"}
    assert [(rows[n].epochs, rows[n].epochs_total) for n in ("t1", "t2", "t3", "t4")] == [
        (4, 4),
        (2, 4),
        (2, 4),
        (0, 4),
    ]
    assert rows["t3"].updated_s == pytest.approx(5.0) and rows["t1"].updated_s == pytest.approx(5.0)
    assert rows["t4"].note == "RuntimeError: out of memory"
    assert rows["empty"].note == "no config.yaml yet" and "config.yaml" in rows["broken"].note
    assert (snap.best_trial, snap.best_val_h) == ("t3", pytest.approx(0.6))
    assert (snap.planned_search, snap.planned_final) == (4, 2)


def test_eta_from_mean_epoch_time_and_concurrency(sweep):
    # mean epoch: (40 + 20 + 20) s / 8 epochs = 10 s; left: t3's 2 epochs + 2 final runs x 2 epochs (t3 chose
    # epoch 2) = 6; t3's current epoch has run 5 s; at most 2 trials ran at once (t1+t2, then t1+t3)
    snap = read_snapshot(sweep, now=T0 + 45, plan=plan)
    assert snap.eta.mean_epoch_s == pytest.approx(10.0)
    assert (snap.eta.epochs_left, snap.eta.concurrency) == (6, 2)
    assert snap.eta.seconds == pytest.approx((6 * 10 - 5) / 2)
    assert not snap.finished
    later = read_snapshot(sweep, now=T0 + 100, plan=plan)  # the running epoch is credited at most one mean epoch
    assert later.eta.seconds == pytest.approx((6 * 10 - 10) / 2)
    assert snapshot_json(later)["eta"]["at"] == pytest.approx(T0 + 100 + 25)


def test_eta_unknown_without_a_plan_or_an_epoch(sweep, tmp_path):
    unknown = read_snapshot(sweep, now=T0 + 45)  # e.g. a searcher that may sample grid parameters
    assert unknown.eta.seconds is None and "grid parameters" in unknown.eta.basis
    assert unknown.planned_search is None
    (tmp_path / "none" / "_ray").mkdir(parents=True)
    nothing = read_snapshot(tmp_path / "none", now=T0, plan=plan)
    assert nothing.trials == () and nothing.eta.seconds is None and "no run records" in nothing.eta.basis
    assert "(no run directories yet)" in render(nothing)
    fresh = tmp_path / "fresh"
    make_run(fresh, "a", epochs=0, times=(0, 0))
    snap = read_snapshot(fresh, now=T0 + 5, plan=plan)
    assert snap.counts["running"] == 1 and snap.eta.seconds is None and "no epoch" in snap.eta.basis


def test_finished_sweep(tmp_path):
    done = tmp_path / "done"
    for i, name in enumerate(("a", "b", "c", "d")):
        make_run(done, name, epochs=4, times=(i * 40, i * 40 + 40), end="completed", val_h=0.1 * (i + 1))
    for seed in range(2):
        make_run(done, f"final-1-seed{seed}", epochs=4, times=(200, 240), end="completed", stage="final")
    snap = read_snapshot(done, now=T0 + 300, plan=plan)
    assert snap.finished and snap.eta.seconds == 0.0 and snap.best_trial == "d"
    assert snap.counts["completed"] == 6 and (snap.planned_search, snap.planned_final) == (4, 2)
    assert "ETA: finished" in render(snap)


def test_watch_redraws_until_the_sweep_has_finished(tmp_path, capsys):
    from zsl_bench.cli import main

    sweep = tmp_path / "s"
    (sweep / "_ray").mkdir(parents=True)
    settings = {**SETTINGS, "num_samples": 1, "top_k": 0}
    make_run(sweep, "a", epochs=4, times=(0, 40), end="completed")
    (sweep / "a" / "config.yaml").write_text(
        yaml.safe_dump({"train": {"epochs": 4}, "meta": {"stage": "search", "sweep_settings": settings}})
    )
    assert main(["watch", "--sweep", "s", "--results", str(tmp_path), "--interval", "0.01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\x1b[H\x1b[2J") and out.count("\x1b[2J") == 1 and "ETA: finished" in out


def test_broken_metrics_and_summary_are_rows_not_crashes(tmp_path):
    sweep = tmp_path / "s"
    make_run(sweep, "ok", epochs=1, times=(0, 10), end=None)
    make_run(sweep, "badjson", epochs=1, times=(0, 10), end=None)
    (sweep / "badjson" / "metrics.jsonl").write_text('{"epoch": 1, "split": "va')
    make_run(sweep, "badsummary", epochs=1, times=(0, 10), end="completed")
    (sweep / "badsummary" / "summary.json").write_text('{"status": "completed", "compute_s": "lots"}')
    rows = {t.name: t for t in read_snapshot(sweep, now=T0 + 20, plan=plan).trials}
    assert rows["ok"].status == "running"
    assert rows["badjson"].status == rows["badsummary"].status == "unreadable"
    assert "compute_s" in rows["badsummary"].note


def test_cli_once_json_and_text(sweep, cli):
    code, out, err = cli("watch", "--sweep", "demo", "--results", str(sweep.parent), "--once", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["counts"] == {"completed": 1, "running": 1, "stopped": 1, "failed": 1, "unreadable": 2}
    assert (data["best_trial"], data["planned_search"], data["planned_final"]) == ("t3", 4, 2)
    assert {t["name"]: t["epochs"] for t in data["trials"]}["t3"] == 2
    assert data["eta"]["seconds"] == pytest.approx((6 * 10 - 10) / 2)  # the real clock is long past T0 + 50
    code, out, err = cli("watch", "--sweep", "demo", "--results", str(sweep.parent), "--once")
    assert code == 0, err
    assert "\x1b[" not in out  # --once prints one plain snapshot
    assert (
        "trials: 1 completed, 1 running, 1 early-stopped, 1 failed, 2 unreadable (search 4 of 4, final 0 of 2)" in out
    )
    assert "best val H: 60.0 (t3)" in out and "ETA: 0:00:25 (at " in out
    t3 = next(line for line in out.splitlines() if line.startswith("t3 "))
    assert t3.split()[1:4] == ["search", "running", "[#####.....]"] and "2/4" in t3 and "60.0" in t3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sweep", "nosuch"], "sweep folder"),
        (["--sweep", "../demo"], "not one folder name"),
        (["--sweep", "demo", "--interval", "0"], "--interval"),
    ],
)
def test_cli_bad_input_is_one_line(sweep, capsys, args, needle):
    from zsl_bench.cli import main

    code = main(["watch", "--results", str(sweep.parent), "--once", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert needle in err and "Traceback" not in err


def test_planned_search_trials_by_searcher():
    from zsl_bench.cli.watch import planned_search_trials

    assert planned_search_trials({"searcher": "optuna", "num_samples": 7}) == 7
    assert planned_search_trials({"searcher": "grid", "num_samples": 7}) is None  # grid values multiply it
    assert planned_search_trials({"searcher": "random", "num_samples": 7}) is None
    assert planned_search_trials({"searcher": "nosuch", "num_samples": 7}) is None


# ------------------------------------------------------------------------------------- a real running sweep


# ---------------------------------------------------------------------------------------------- dashboard


@pytest.fixture(scope="module")
def journal_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<results>/study/_ray/optuna.journal``: a study named ``study`` with three finished trials, written by
    Optuna as the sweep's searcher writes it."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    ray_dir = tmp_path_factory.mktemp("dash") / "study" / "_ray"
    ray_dir.mkdir(parents=True)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(ray_dir / "optuna.journal")))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="study", storage=storage, direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("optim.lr", 1e-4, 1e-2, log=True), n_trials=3)
    return ray_dir.parent


def first_line(proc: subprocess.Popen, timeout: float) -> str:
    """The first line ``proc`` prints, or fail after ``timeout`` seconds."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            pytest.fail(f"no line from the dashboard in {timeout} s")
    return proc.stdout.readline().decode()


def http(url: str, method: str = "GET") -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.integration
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_dashboard_serves_the_journal_read_only(journal_sweep, tmp_path, stop):
    journal = journal_sweep / "_ray" / "optuna.journal"
    size = journal.stat().st_size
    argv = [sys.executable, "-m", "zsl_bench.cli", "dashboard", "--sweep", "study", "--port", "0"]
    with (tmp_path / "stderr").open("w") as err_file:
        proc = subprocess.Popen(
            [*argv, "--results", str(journal_sweep.parent)], stdout=subprocess.PIPE, stderr=err_file
        )
    try:
        line = first_line(proc, timeout=60)
        prefix = f"dashboard: serving {journal} at http://127.0.0.1:"
        assert line.startswith(prefix) and line.endswith("/dashboard/\n"), line
        base = line.strip().removesuffix("/dashboard/").split(" at ")[1]
        status, body = http(f"{base}/api/studies")
        assert status == 200, body
        studies = json.loads(body)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["study"]
        status, body = http(f"{base}/api/studies/{studies[0]['study_id']}")
        assert status == 200 and len(json.loads(body)["trials"]) == 3
        status, body = http(f"{base}/dashboard/")
        assert status == 200 and b"<html" in body.lower()
        status, _ = http(f"{base}/api/studies/{studies[0]['study_id']}", method="DELETE")
        assert status >= 500 and journal.stat().st_size == size  # refused: the sweep's study is never written
        proc.send_signal(stop)
        assert proc.wait(timeout=20) == 0, (tmp_path / "stderr").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dashboard_refusals_are_one_line(journal_sweep, tmp_path, capsys, monkeypatch):
    from zsl_bench.cli import main

    (tmp_path / "nojournal" / "t1").mkdir(parents=True)
    results = ["--results", str(tmp_path)]
    assert main(["dashboard", "--sweep", "nojournal", *results]) == 2
    assert "has no Optuna journal" in capsys.readouterr().err
    assert main(["dashboard", "--sweep", "nosuch", *results]) == 2
    assert "sweep folder" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # what an install without the extra imports
    assert main(["dashboard", "--sweep", "study", "--results", str(journal_sweep.parent)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "zsl-bench: error: optuna-dashboard is not installed: pip install 'zsl-bench[dashboard]'"
    ]
