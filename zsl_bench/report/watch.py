"""A live view of one sweep, read from its run directories only: what ``zsl-bench watch`` shows.

:func:`read_snapshot` reads ``<results>/<sweep>/`` (``_``-prefixed folders ignored) through the run-directory
readers (:func:`zsl_bench.rundir.read_record`) into a :class:`Snapshot`: each trial's status, epochs recorded in
``metrics.jsonl`` against its configured ``train.epochs``, best validation H so far, and an :class:`Eta`. A broken
or half-written run directory is a row with status ``unreadable`` and the reason, never an exception.
:func:`render` turns a snapshot into the terminal text, :func:`snapshot_json` into plain data.

The ETA, when it can be known:

- *mean epoch time*: over every run, the trial time at its last own epoch (``time_s`` of ``metrics.jsonl``, set-up
  included) summed, divided by the epochs those runs recorded (records a run inherited, PBT, left out);
- *epochs left*: for each running trial its configured epochs minus those recorded; plus, for each search trial not
  started yet, the search trials' configured epochs; plus, for each final run not started yet, the epoch the best
  search trial so far chose on validation (the final stage retrains for that many). The number of trials comes from
  the sweep's settings in the runs' ``meta.sweep_settings``: ``num_samples`` search trials (unknown for a searcher
  that can sample grid parameters: those multiply it and are not recorded) and ``top_k`` x ``seeds_final`` final
  runs. An early-stopping scheduler makes this an upper bound;
- *concurrency*: the most trials seen running at the same time (from the times their files were written), at
  most the trials left;
- ETA = (epochs left x mean epoch time - the time already spent in the epochs now running) / concurrency.

Every time in it is measured against ``now``, which the caller passes (a test passes a fake clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zsl_bench.record import METRIC, H, RunRecord
from zsl_bench.rundir import CONFIG, DONE, ERROR, METRICS, SUMMARY, UnreadableRun, find_run_dirs, read_record

__all__ = ["STATUSES", "Eta", "Snapshot", "TrialRow", "read_snapshot", "render", "snapshot_json"]

STATUSES = ("completed", "running", "stopped", "failed", "unreadable")
"""A trial's status in the view, in the order of the counts line."""

PlanOf = Callable[[dict[str, Any]], int | None]
"""The sweep's ``meta.sweep_settings`` → how many search trials it runs, or None when that is not knowable."""

_FILES = (CONFIG, METRICS, SUMMARY, ERROR, DONE)


@dataclass(frozen=True)
class TrialRow:
    """One run directory of the sweep as the view shows it."""

    name: str  # the run directory's name: the Tune trial id, or final-<rank>-seed<s>
    stage: str  # search | final ("" when unreadable)
    status: str  # one of STATUSES
    epochs: int  # epochs recorded in metrics.jsonl
    epochs_total: int | None  # train.epochs of its config
    val_h: float | None  # validation H at its best validation epoch so far (a fraction)
    updated_s: float | None  # seconds since any of its files was last written
    note: str = ""  # why unreadable, or the first line of error.txt


@dataclass(frozen=True)
class Eta:
    """How long the sweep still needs, or why that is unknown (``seconds`` None)."""

    seconds: float | None
    basis: str  # how it was computed, or why it is unknown
    mean_epoch_s: float | None = None
    epochs_left: int | None = None
    concurrency: int = 1


@dataclass(frozen=True)
class Snapshot:
    """The sweep at one moment (``now``, seconds since the epoch)."""

    sweep: str
    path: str
    now: float
    trials: tuple[TrialRow, ...]
    counts: dict[str, int]  # status → trials
    best_trial: str | None  # the search trial with the best validation H so far
    best_val_h: float | None
    planned_search: int | None  # search trials the sweep runs (None: not knowable)
    planned_final: int | None  # final runs it runs (None: not knowable)
    eta: Eta
    finished: bool  # every planned trial has ended


@dataclass
class _Run:
    """What the snapshot needs of one run directory beyond its row."""

    row: TrialRow
    record: RunRecord | None
    started: float  # mtime of config.yaml
    last_write: float  # newest mtime of its files
    own_epochs: int = 0  # epochs it trained itself (not inherited)
    own_time_s: float = 0.0  # its trial time at the last of them


def read_snapshot(sweep_dir: Path, *, now: float | None = None, plan: PlanOf | None = None) -> Snapshot:
    """The sweep in ``sweep_dir`` at ``now`` (default: the wall clock). ``plan`` says how many search trials its
    settings run (default: unknown). Raises ``FileNotFoundError`` when ``sweep_dir`` is not a folder."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(sweep_dir)
    now = time.time() if now is None else now
    runs = sorted((_read_run(path, now) for path in _run_paths(sweep_dir)), key=lambda r: (r.started, r.row.name))
    counts = {status: sum(r.row.status == status for r in runs) for status in STATUSES}
    best = _best(runs)
    planned_search, planned_final = _planned(runs, plan or (lambda settings: None))
    eta, finished = _eta(runs, best, now=now, planned=(planned_search, planned_final))
    return Snapshot(
        sweep=sweep_dir.name,
        path=str(sweep_dir),
        now=now,
        trials=tuple(r.row for r in runs),
        counts=counts,
        best_trial=best.row.name if best else None,
        best_val_h=best.row.val_h if best else None,
        planned_search=planned_search,
        planned_final=planned_final,
        eta=eta,
        finished=finished,
    )


def _run_paths(sweep_dir: Path) -> list[Path]:
    """Every run directory of the sweep, and every top-level folder that is not one yet (no config.yaml)."""
    found = set(find_run_dirs(sweep_dir))
    for child in sweep_dir.iterdir():
        if child.is_dir() and not child.name.startswith((".", "_")) and not (child / CONFIG).exists():
            found.add(child)
    return sorted(found)


def _mtimes(path: Path) -> dict[str, float]:
    out = {}
    for name in _FILES:
        try:
            out[name] = (path / name).stat().st_mtime
        except OSError:
            continue
    return out


def _read_run(path: Path, now: float) -> _Run:
    """One run directory as a :class:`_Run`; an unreadable one as a row saying why."""
    times = _mtimes(path)
    last = max(times.values(), default=None)
    updated = None if last is None else max(0.0, now - last)
    started = times.get(CONFIG, last if last is not None else now)
    try:
        record = read_record(path)
    except (UnreadableRun, OSError) as exc:
        note = str(exc).replace(f"{path}: ", "") if (path / CONFIG).exists() else f"no {CONFIG} yet"
        row = TrialRow(path.name, "", "unreadable", 0, None, None, updated, note)
        return _Run(row, None, started, last if last is not None else started)
    epochs, own_epochs, own_time = _epochs(record)
    total = record.section("train").get("epochs")
    val = record.summary.scores("val", "val") if record.summary else None
    row = TrialRow(
        name=path.name,
        stage=record.stage,
        status=_status(record),
        epochs=epochs,
        epochs_total=total if isinstance(total, int) and not isinstance(total, bool) else None,
        val_h=(val or {}).get(H),
        updated_s=updated,
        note=(record.error or "").splitlines()[0] if record.error else "",
    )
    return _Run(row, record, started, last if last is not None else started, own_epochs, own_time)


def _status(record: RunRecord) -> str:
    """failed (error.txt), completed / stopped (done, by its summary), else running."""
    if record.error is not None:
        return "failed"
    if record.done:
        return record.status if record.status in ("completed", "stopped") else "completed"
    return "running"


def _epochs(record: RunRecord) -> tuple[int, int, float]:
    """(epochs recorded, epochs it trained itself, its trial time at the last of those) from ``metrics.jsonl``."""
    epochs: set[int] = set()
    own: set[int] = set()
    own_time = 0.0
    for line in record.metrics:
        epoch = line.get("epoch") if isinstance(line, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            continue
        epochs.add(epoch)
        spent = line.get("time_s")
        if line.get("inherited_from") or not isinstance(spent, (int, float)):
            continue
        own.add(epoch)
        own_time = max(own_time, float(spent))
    return len(epochs), len(own), own_time


def _best(runs: list[_Run]) -> _Run | None:
    """The search run with the highest validation H so far (ties: the earlier name)."""
    scored = [r for r in runs if r.row.stage == "search" and r.row.val_h is not None]
    return min(scored, key=lambda r: (-(r.row.val_h or 0.0), r.row.name), default=None)


def _settings(runs: list[_Run]) -> dict[str, Any] | None:
    for run in runs:
        settings = run.record.section("meta").get("sweep_settings") if run.record else None
        if isinstance(settings, dict) and settings:
            return settings
    return None


def _count(settings: dict[str, Any], key: str) -> int | None:
    value = settings.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _planned(runs: list[_Run], plan: PlanOf) -> tuple[int | None, int | None]:
    """(search trials, final runs) the sweep runs in all, each None when not knowable."""
    settings = _settings(runs)
    finals = [r for r in runs if r.row.stage == "final"]
    search = [r for r in runs if r.row.stage == "search"]
    planned_search = plan(settings) if settings else None
    if finals:  # the final stage starts once the search has ended: its trials are all there
        planned_search = len(search)
    if settings is None:
        return planned_search, None
    top_k, seeds = _count(settings, "top_k"), _count(settings, "seeds_final")
    if top_k is None or seeds is None:
        return planned_search, None
    ended = planned_search is not None and sum(r.row.status != "running" for r in search) >= planned_search
    if ended:  # only finished search trials with a validation score are retrained
        top_k = min(top_k, sum(r.row.status in ("completed", "stopped") and r.row.val_h is not None for r in search))
    return planned_search, max(top_k * seeds, len(finals))


def _concurrency(runs: list[_Run], now: float) -> int:
    """The most readable runs whose lifetimes (config.yaml written → last write, or now while running)
    overlapped."""
    events = []
    for run in (r for r in runs if r.row.status != "unreadable"):
        end = now if run.row.status == "running" else run.last_write
        events += [(run.started, 1), (max(end, run.started), -1)]
    live = most = 0
    for _, step in sorted(events):  # at equal times ends come first: a trial that starts as one ends is not two
        live += step
        most = max(most, live)
    return max(1, most)


def _eta(
    runs: list[_Run], best: _Run | None, *, now: float, planned: tuple[int | None, int | None]
) -> tuple[Eta, bool]:
    """The ETA (see the module's docstring) and whether the sweep has finished."""
    running = [r for r in runs if r.row.status == "running"]
    planned_search, planned_final = planned
    if planned_search is None or planned_final is None:
        reason = "its searcher may sample grid parameters" if _settings(runs) else "no run records the sweep's settings"
        return Eta(None, f"unknown: the number of trials is not known ({reason})"), False
    search = [r for r in runs if r.row.stage == "search"]
    pending_search = max(0, planned_search - len(search))
    pending_final = max(0, planned_final - sum(r.row.stage == "final" for r in runs))
    left = len(running) + pending_search + pending_final
    if left == 0:
        return Eta(0.0, "finished", epochs_left=0), True
    epochs_done = sum(r.own_epochs for r in runs)
    if epochs_done == 0:
        return Eta(None, "unknown: no epoch has finished yet"), False
    mean = sum(r.own_time_s for r in runs if r.own_epochs) / epochs_done
    search_epochs = max((r.row.epochs_total or 0 for r in search), default=0)
    final_epochs = (best.record.summary.best_by_val.epoch if _selected(best) else None) or search_epochs
    epochs_left = sum(max(0, (r.row.epochs_total or r.row.epochs) - r.row.epochs) for r in running)
    epochs_left += pending_search * search_epochs + pending_final * final_epochs
    in_progress = sum(min(now - r.last_write, mean) for r in running if (r.row.epochs_total or 0) > r.row.epochs)
    concurrency = max(1, min(_concurrency(runs, now), left))
    seconds = max(0.0, epochs_left * mean - max(0.0, in_progress)) / concurrency
    basis = f"{epochs_left} epoch(s) left x {mean:.1f} s mean epoch / {concurrency} concurrent"
    return Eta(seconds, basis, mean, epochs_left, concurrency), False


def _selected(run: _Run | None) -> bool:
    summary = run.record.summary if run and run.record else None
    return bool(summary and summary.best_by_val and summary.best_by_val.epoch)


# ------------------------------------------------------------------------------------------------- output


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as plain data (``--json``): its fields, trials as a list, ``eta.at`` the finish time."""
    data = asdict(snapshot)
    data["trials"] = [asdict(row) for row in snapshot.trials]
    seconds = snapshot.eta.seconds
    data["eta"]["at"] = None if seconds is None else snapshot.now + seconds
    return data


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}" if METRIC[H].percent else f"{value:.4f}"


def _bar(done: int, total: int | None, width: int = 10) -> str:
    if not total:
        return f"{done}/?"
    filled = min(width, round(width * done / total))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{_clock(seconds)} ago"


def _header(s: Snapshot) -> list[str]:
    counts = ", ".join(f"{s.counts[k]} {'early-stopped' if k == 'stopped' else k}" for k in STATUSES)
    search = sum(t.stage == "search" for t in s.trials)
    final = sum(t.stage == "final" for t in s.trials)
    plan = f"search {search} of {s.planned_search if s.planned_search is not None else '?'}"
    plan += f", final {final} of {s.planned_final if s.planned_final is not None else '?'}"
    best = f"{_percent(s.best_val_h)} ({s.best_trial})" if s.best_trial else "- (no validation score yet)"
    if s.eta.seconds is None:
        eta = s.eta.basis
    elif s.finished:
        eta = "finished"
    else:
        at = time.strftime("%H:%M:%S", time.localtime(s.now + s.eta.seconds))
        eta = f"{_clock(s.eta.seconds)} (at {at}): {s.eta.basis}"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.now))
    return [
        f"sweep {s.sweep}  {s.path}  {stamp}",
        f"trials: {counts} ({plan})",
        f"best val H: {best}",
        f"ETA: {eta}",
    ]


def render(snapshot: Snapshot) -> str:
    """The terminal view of ``snapshot``: four header lines, then one line per trial."""
    rows = [("TRIAL", "STAGE", "STATUS", "EPOCHS", "VAL H", "UPDATED", "")]
    for t in snapshot.trials:
        epochs = _bar(t.epochs, t.epochs_total)
        rows.append((t.name, t.stage or "-", t.status, epochs, _percent(t.val_h), _ago(t.updated_s), t.note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [*_header(snapshot), ""]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1][:120]]).rstrip())
    if not snapshot.trials:
        lines.append("(no run directories yet)")
    return "\n".join(lines) + "\n"
