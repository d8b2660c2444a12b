"""PNG plots (matplotlib, Agg backend; imported only here and only when a plot is drawn)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_bench.atomic import atomic_path
from zsl_bench.errors import UserError
from zsl_bench.record import METRIC
from zsl_bench.report.scores import Curve


@dataclass(frozen=True)
class Trial:
    """One search trial, in the order trials finished."""

    compute_s: float
    val_h: float | None  # None: no validation result (failed or unfinished)


@dataclass(frozen=True)
class Series:
    """One run's metrics on one evaluation split, per epoch (from its ``metrics.jsonl``; fractions)."""

    label: str  # the run, e.g. "seed 0"
    split: str  # "val" or "test"
    epochs: tuple[int, ...]
    values: dict[str, tuple[float, ...]]  # metric name → one value per epoch


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UserError("matplotlib is not installed (needed for the report plots): pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` atomically, without time stamps in the PNG metadata."""
    try:
        with atomic_path(path, mode=0o644) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    finally:
        fig.clf()
        _pyplot().close(fig)


def _unit(total_s: float) -> tuple[str, float]:
    if total_s >= 2 * 3600:
        return "h", 3600.0
    if total_s >= 120:
        return "min", 60.0
    return "s", 1.0


def plot_search_progress(trials: list[Trial], path: Path, title: str, final_s: float = 0.0, n_final: int = 0) -> None:
    """Best validation H so far against the cumulative compute of the search trials (in finishing order)."""
    plt = _pyplot()
    total = sum(t.compute_s for t in trials)
    unit, scale = _unit(total + final_s)
    x, done_x, done_y, fail_x = 0.0, [], [], []
    step_x, step_y, best = [0.0], [0.0], None
    for t in trials:
        x += t.compute_s / scale
        if t.val_h is None:
            fail_x.append(x)
            continue
        done_x.append(x)
        done_y.append(100.0 * t.val_h)
        if best is None or 100.0 * t.val_h > best:
            best = 100.0 * t.val_h
        step_x.append(x)
        step_y.append(best)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if best is not None:
        ax.step([*step_x[1:], x], [*step_y[1:], best], where="post", color="C0", label="best so far")
    ax.scatter(done_x, done_y, s=18, color="0.5", zorder=3, label=f"trial (validation {METRIC['h'].label})")
    if fail_x:
        ax.scatter(fail_x, [0.0] * len(fail_x), marker="x", color="C3", zorder=3, label="failed / unfinished")
    ax.set_xlabel(f"cumulative compute of the search trials ({unit})")
    ax.set_ylabel(f"validation {METRIC['h'].label} (%)")
    ax.set_xlim(left=0.0)
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    note = f"{len(trials)} search trials, {total / scale:.1f} {unit}"
    if n_final:
        note += f"; final stage: {n_final} runs, +{final_s / scale:.1f} {unit}"
    ax.set_title(f"{title}\n{note}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def plot_seen_unseen(curves: list[Curve], path: Path, title: str) -> None:
    """Seen–unseen accuracy curves (S on x, U on y, percent), AUSUC in the legend, reported points marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    for i, c in enumerate(curves):
        color = f"C{i % 10}"
        ax.plot(100.0 * c.s, 100.0 * c.u, color=color, label=f"{c.label}: AUSUC {100.0 * c.area:.1f}")
        if c.point is not None:
            ax.plot(100.0 * c.point[0], 100.0 * c.point[1], "o", color=color, markersize=5)
    if any(c.point is not None for c in curves):
        ax.plot([], [], "o", color="0.4", markersize=5, label="reported (γ chosen on validation)")
    ax.set_xlim(0.0, 100.0)
    ax.set_ylim(0.0, 100.0)
    ax.set_aspect("equal")
    ax.set_xlabel(f"seen accuracy {METRIC['s'].label} (%)")
    ax.set_ylabel(f"unseen accuracy {METRIC['u'].label} (%)")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


LEARNING_METRICS = ("h", "czsl")
"""The metrics of the learning-curve plot, one panel each."""


def plot_learning_curves(
    series: list[Series], path: Path, title: str, metrics: tuple[str, ...] = LEARNING_METRICS
) -> None:
    """One panel per metric (percent against epoch): a line per run and split, test solid, validation dashed."""
    plt = _pyplot()
    from matplotlib.ticker import FixedLocator, MaxNLocator

    epochs = sorted({e for s in series for e in s.epochs})

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    colors: dict[str, str] = {}
    for ax, metric in zip(axes[0], metrics, strict=True):
        for s in series:
            color = colors.setdefault(s.label, f"C{len(colors) % 10}")
            ys = [100.0 * v for v in s.values.get(metric, ())]
            if len(ys) != len(s.epochs):
                continue
            style, marker = ("-", "o") if s.split == "test" else ("--", "^")
            ax.plot(s.epochs, ys, style, color=color, marker=marker, markersize=4, label=f"{s.label} ({s.split})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(FixedLocator(epochs) if len(epochs) <= 12 else MaxNLocator(integer=True))
        ax.set_ylabel(f"{METRIC[metric].label} (%)")
        ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
        ax.set_title(METRIC[metric].label, fontsize=10)
    axes[0][-1].legend(loc="lower right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
