"""Model selection over a trial's per-epoch history: honest (validation) and paper-style (test).

A history entry is ``{"epoch": e, "val": rec, "test": rec}`` (``val`` absent in stage final), where a record
holds ``czsl, u, s, h, gamma`` and the test record also ``calibrated_on_test: {gamma, u, s, h}``.

As in the official ZeroMamba/DUET code, CZSL and GZSL pick their epochs independently: ``czsl_epoch`` is the
epoch whose CZSL is best, ``epoch`` the one whose H is best. ``best_by_val`` judges both on validation and
reports test at those epochs with the validation gamma; ``best_by_test`` judges on test with gamma calibrated
on test (what the papers report; shown only in separately labelled tables).
"""

from __future__ import annotations

from typing import Any

from zsl_bench.record import RunSummary

GZSL = ("u", "s", "h")


def _argbest(history: list[dict[str, Any]], score: Any) -> dict[str, Any]:
    """The entry maximising ``score(entry)``; the earliest epoch wins ties."""
    return max(history, key=lambda r: (score(r), -r["epoch"]))


def _block(rec: dict[str, Any] | None, czsl_rec: dict[str, Any] | None) -> dict[str, float] | None:
    if rec is None or czsl_rec is None:
        return None
    return {"czsl": czsl_rec["czsl"], **{k: rec[k] for k in GZSL}}


def select_by_val(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Epochs chosen on validation (H and CZSL separately); without a val split, the last epoch."""
    if "val" in history[0]:
        by_h = _argbest(history, lambda r: r["val"]["h"])
        by_czsl = _argbest(history, lambda r: r["val"]["czsl"])
    else:
        by_h = by_czsl = history[-1]
    return {
        "epoch": by_h["epoch"],
        "czsl_epoch": by_czsl["epoch"],
        "gamma": by_h["test"]["gamma"],
        "val": _block(by_h.get("val"), by_czsl.get("val")),
        "test": _block(by_h["test"], by_czsl["test"]),
    }


def select_by_test(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Epochs and gamma chosen on the test split itself (optimistic; the papers' protocol)."""
    by_h = _argbest(history, lambda r: r["test"]["calibrated_on_test"]["h"])
    by_czsl = _argbest(history, lambda r: r["test"]["czsl"])
    oracle = by_h["test"]["calibrated_on_test"]
    return {
        "epoch": by_h["epoch"],
        "czsl_epoch": by_czsl["epoch"],
        "gamma": oracle["gamma"],
        "val": _block(by_h.get("val"), by_czsl.get("val")),
        "test": _block(oracle, by_czsl["test"]),
    }


def summarise(history: list[dict[str, Any]], *, status: str, compute_s: float, **info: Any) -> RunSummary:
    """The one builder of a run's summary: its status, the epochs run and both selections over ``history``, plus the
    run's ``info`` (device, stage, accuracy, model_info, strategy fields, or a stopped run's earlier summary)."""
    fields = {**info, "status": status, "epochs_run": len(history), "compute_s": round(float(compute_s), 3)}
    return RunSummary.written(**fields, best_by_val=select_by_val(history), best_by_test=select_by_test(history))
