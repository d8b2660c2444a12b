"""Leaderboard aggregation on a results tree built here (several datasets, models, seeds, broken runs)."""

import json

from zsl_bench.report.leaderboard import collect, render
from zsl_bench.rundir import RunWriter


def make_run(
    root,
    name,
    *,
    dataset="synth",
    model="resnet_test",
    lr=1e-3,
    seed=0,
    val_h=0.5,
    test=None,
    stage="search",
    done=True,
    error=None,
):
    test = test or {"czsl": 0.6, "u": 0.4, "s": 0.5, "h": 0.444}
    w = RunWriter(root / name)
    w.config(
        {
            "model": {"name": model, "options": {}},
            "data": {"name": dataset},
            "optim": {"lr": lr},
            "train": {"seed": seed, "epochs": 3},
            "meta": {"stage": stage, "trial_id": name},
        }
    )
    val = None if stage == "final" else {"czsl": 0.5, "u": 0.4, "s": 0.6, "h": val_h}
    if error:
        w.error(error)
        return
    w.summary({"status": "completed", "best_by_val": {"epoch": 2, "gamma": 0.1, "val": val, "test": test}})
    if done:
        w.done()


def test_rows_select_by_validation_and_average_seeds(tmp_path):
    # config A (lr 1e-3): better on val, worse on test; two seeds
    make_run(tmp_path, "a0", lr=1e-3, seed=0, val_h=0.7, test={"czsl": 0.50, "u": 0.30, "s": 0.60, "h": 0.40})
    make_run(tmp_path, "a1", lr=1e-3, seed=1, val_h=0.6, test={"czsl": 0.60, "u": 0.40, "s": 0.40, "h": 0.40})
    # config B (lr 1e-2): worse on val, better on test -> must NOT be chosen
    make_run(tmp_path, "b0", lr=1e-2, seed=0, val_h=0.5, test={"czsl": 0.90, "u": 0.90, "s": 0.90, "h": 0.90})
    make_run(tmp_path, "v0", model="vit_test", val_h=0.3)
    make_run(tmp_path, "other/x", dataset="cub", val_h=0.2)
    make_run(tmp_path, "f0", stage="final", test={"czsl": 0.7, "u": 0.5, "s": 0.5, "h": 0.5})
    make_run(tmp_path, "broken", error="RuntimeError: boom")
    make_run(tmp_path, "half", done=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.yaml").write_text("model: [unclosed\n")

    rows, skipped = collect(tmp_path)
    assert (skipped.failed, skipped.incomplete, skipped.unreadable) == (1, 1, 1)
    assert "skipped 3 run(s)" in skipped.line()
    keyed = {(r["dataset"], r["model"], r["protocol"]): r for r in rows}
    assert set(keyed) == {
        ("cub", "resnet_test", "search"),
        ("synth", "resnet_test", "search"),
        ("synth", "vit_test", "search"),
        ("synth", "resnet_test", "final"),
    }
    best = keyed[("synth", "resnet_test", "search")]
    assert best["n_seeds"] == 2 and best["runs"] == 3
    assert (best["czsl"], best["u"], best["s"], best["h"]) == (55.0, 35.0, 50.0, 40.0)
    assert keyed[("synth", "resnet_test", "final")]["h"] == 50.0
    assert [r["dataset"] for r in rows] == ["cub", "synth", "synth", "synth"]


def test_render_md_and_json(tmp_path):
    make_run(tmp_path, "a", test={"czsl": 0.6234, "u": 0.4, "s": 0.5, "h": 0.4444})
    rows, _ = collect(tmp_path)
    md = render(rows, "md")
    lines = md.splitlines()
    assert lines[0].startswith("| Dataset") and "CZSL top-1" in lines[0] and "GZSL H" in lines[0]
    assert "| synth" in lines[2] and "62.3" in lines[2] and "44.4" in lines[2]
    data = json.loads(render(rows, "json"))
    assert data == [
        {
            "dataset": "synth",
            "model": "resnet_test",
            "protocol": "search",
            "n_seeds": 1,
            "czsl": 62.3,
            "u": 40.0,
            "s": 50.0,
            "h": 44.4,
        }
    ]


def test_empty_results(tmp_path):
    rows, skipped = collect(tmp_path)
    assert rows == [] and skipped.total == 0
    assert render(rows, "md") == "(no finished runs)"
    assert render(rows, "json") == "[]"
