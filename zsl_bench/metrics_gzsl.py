"""The GZSL reduction behind :mod:`zsl_bench.metrics`: one pass over ``scores`` ``[N, C]`` gives, per sample, the
best seen and best unseen class; every calibrated-stacking γ is then evaluated from that reduction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zsl_bench.metrics_input import as_class_set, as_scores, classes_with_samples, logger

_CHUNK_BYTES = 1 << 20
"""Rows of ``scores`` are reduced in blocks of about this many bytes so each block stays in cache."""


def class_mean(correct: np.ndarray, totals: np.ndarray, present: np.ndarray, per_sample: bool = False) -> np.ndarray:
    """Per-class-mean accuracy: mean over the ``present`` classes of ``correct / totals``.

    ``correct`` is ``[..., K]`` correct counts, ``totals`` ``[K]`` sample counts, ``present`` ``[K]`` the mask
    from :func:`classes_with_samples`. Returns ``[...]``. Dividing before averaging keeps a perfect
    classifier at exactly 1.0. ``per_sample``: the overall accuracy ``Σ correct / Σ totals`` over the same
    classes instead.
    """
    if per_sample:
        return np.sum(correct[..., present], axis=-1) / np.sum(totals[present])
    return np.mean(correct[..., present] / totals[present], axis=-1)


def harmonic(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Element-wise ``2us / (u + s)``, 0 where ``u + s == 0``."""
    u = np.asarray(u, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    denom = u + s
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2.0 * u * s / np.where(denom > 0, denom, 1.0), 0.0)


def _column_selector(classes: np.ndarray) -> slice | np.ndarray:
    """A basic slice when the sorted ``classes`` are contiguous (a view, no copy), else the index array."""
    if classes[-1] - classes[0] + 1 == classes.size:
        return slice(int(classes[0]), int(classes[-1]) + 1)
    return classes


def _columns(block: np.ndarray, selector: slice | np.ndarray) -> np.ndarray:
    if isinstance(selector, slice):
        return block[:, selector]
    return np.take(block, selector, axis=1)


@dataclass(frozen=True)
class _Best:
    """Per-sample best score within one class set."""

    value: np.ndarray  # [N] float64, the highest score among the set's columns
    label: np.ndarray  # [N] intp, the class id holding it (smallest id among ties)


def best_per_set(
    scores: np.ndarray, class_sets: list[np.ndarray], *, want_range: bool = False
) -> tuple[list[_Best], float, float]:
    """One pass over ``scores`` ``[N, C]``: for each sorted class set, the per-row max and its class id.

    Also raises ``ValueError`` on NaN anywhere in ``scores``. With ``want_range`` it returns the smallest and
    largest *finite* score over the union of the sets (NaN, NaN when there is none); otherwise NaN, NaN.
    """
    n, c = scores.shape
    check_nan = scores.dtype.kind == "f"
    selectors = [_column_selector(cs) for cs in class_sets]
    used = np.zeros(c, dtype=bool)
    for cs in class_sets:
        used[cs] = True
    rest = np.flatnonzero(~used)
    values = [np.empty(n, dtype=np.float64) for _ in class_sets]
    labels = [np.empty(n, dtype=np.intp) for _ in class_sets]
    lo, hi = np.inf, -np.inf
    rows = max(1, _CHUNK_BYTES // max(1, c * scores.dtype.itemsize))
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = scores[start:stop]
        for k, selector in enumerate(selectors):
            sub = _columns(block, selector)
            arg = np.argmax(sub, axis=1)  # a NaN, if any, is returned as the maximum
            labels[k][start:stop] = arg
            best = np.take_along_axis(sub, arg[:, None], axis=1)[:, 0]
            values[k][start:stop] = best
            if want_range:
                b_lo, b_hi = sub.min(), best.max()
                if not (np.isfinite(b_lo) and np.isfinite(b_hi)):
                    finite = np.isfinite(sub)
                    b_lo = sub.min(where=finite, initial=np.inf)
                    b_hi = sub.max(where=finite, initial=-np.inf)
                lo, hi = min(lo, float(b_lo)), max(hi, float(b_hi))
        if check_nan and rest.size and np.isnan(np.take(block, rest, axis=1)).any():
            raise ValueError("scores: contains NaN")
    if check_nan and any(np.isnan(v).any() for v in values):
        raise ValueError("scores: contains NaN")
    best_sets = [_Best(value=v, label=cs[lab]) for v, lab, cs in zip(values, labels, class_sets, strict=True)]
    if not (want_range and np.isfinite(lo)):
        lo, hi = np.nan, np.nan
    return best_sets, lo, hi


@dataclass(frozen=True)
class GzslEvents:
    """Everything the GZSL metrics need, reduced from ``scores`` once.

    Only samples that *can* be classified correctly appear (true class seen and the best seen class is it,
    or true class unseen and the best unseen class is it); every other sample is wrong for every γ. For those
    M samples the unseen candidate wins at γ iff ``γ > threshold`` or (``γ == threshold`` and
    ``unseen_first``), with ``threshold = -(best_unseen - best_seen)``.
    """

    threshold: np.ndarray  # [M] float64
    unseen_first: np.ndarray  # [M] bool: the unseen candidate has the smaller class id (wins ties)
    is_unseen: np.ndarray  # [M] bool: the sample's true class is unseen
    position: np.ndarray  # [M] intp: index of the true class within its (sorted) class set
    totals_seen: np.ndarray  # [n_seen] samples per seen class
    totals_unseen: np.ndarray  # [n_unseen] samples per unseen class
    present_seen: np.ndarray  # [n_seen] bool, see classes_with_samples
    present_unseen: np.ndarray  # [n_unseen] bool
    score_min: float  # finite score range over seen ∪ unseen columns (NaN unless requested)
    score_max: float


def gzsl_events(
    scores: Any, y_true: Any, seen_classes: Any, unseen_classes: Any, *, want_range: bool = False
) -> GzslEvents:
    """Validate GZSL inputs and reduce ``scores`` ``[N, C]`` to per-sample decision thresholds."""
    scores_np, y = as_scores(scores, y_true)
    c = scores_np.shape[1]
    seen = as_class_set(seen_classes, "seen_classes", c)
    unseen = as_class_set(unseen_classes, "unseen_classes", c)
    overlap = np.intersect1d(seen, unseen)
    if overlap.size:
        raise ValueError(
            f"seen_classes, unseen_classes: must be disjoint, both contain {overlap[:10].tolist()}"
            + (" ..." if overlap.size > 10 else "")
        )
    (best_seen, best_unseen), lo, hi = best_per_set(scores_np, [seen, unseen], want_range=want_range)

    side = np.zeros(c, dtype=np.int8)  # 0: outside the label space, 1: seen, 2: unseen
    side[seen] = 1
    side[unseen] = 2
    position = np.zeros(c, dtype=np.intp)
    position[seen] = np.arange(seen.size)
    position[unseen] = np.arange(unseen.size)
    y_side = side[y]
    n_outside = int(np.count_nonzero(y_side == 0))
    if n_outside:
        logger.warning("y_true: %d samples have a class outside seen ∪ unseen and are ignored", n_outside)
    is_seen_y, is_unseen_y = y_side == 1, y_side == 2
    totals_seen = np.bincount(position[y[is_seen_y]], minlength=seen.size)
    totals_unseen = np.bincount(position[y[is_unseen_y]], minlength=unseen.size)
    present_seen = classes_with_samples(totals_seen, "seen_classes")
    present_unseen = classes_with_samples(totals_unseen, "unseen_classes")

    can_win = (is_seen_y & (best_seen.label == y)) | (is_unseen_y & (best_unseen.label == y))
    bs, bu = best_seen.value[can_win], best_unseen.value[can_win]
    unseen_first = best_unseen.label[can_win] < best_seen.label[can_win]
    # Equal infinite scores stay equal after subtracting any finite γ, so the smaller class id always wins.
    same_inf = np.where(unseen_first, np.inf, -np.inf)
    with np.errstate(invalid="ignore"):  # inf - inf happens only where bu == bs, which is replaced
        margin = np.where(bu == bs, np.where(np.isinf(bu), same_inf, 0.0), bu - bs)
    return GzslEvents(
        threshold=-margin,
        unseen_first=unseen_first,
        is_unseen=is_unseen_y[can_win],
        position=position[y[can_win]],
        totals_seen=totals_seen,
        totals_unseen=totals_unseen,
        present_seen=present_seen,
        present_unseen=present_unseen,
        score_min=lo,
        score_max=hi,
    )


def sweep(events: GzslEvents, gammas: np.ndarray, per_sample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Unseen and seen accuracy ``(U [G], S [G])`` for every γ of the ascending ``gammas`` (per-class means, or
    overall accuracies with ``per_sample``).

    Cost O(M log G + K·G): each sample's first winning grid index comes from one ``searchsorted``, then one
    ``bincount`` over (class, index) pairs and a cumulative sum give the correct counts per class and γ.
    """
    g = gammas.size
    first_unseen_win = np.searchsorted(gammas, events.threshold, side="right")
    tie = events.unseen_first
    first_unseen_win[tie] = np.searchsorted(gammas, events.threshold[tie], side="left")

    def wins_up_to(mask: np.ndarray, n_classes: int) -> np.ndarray:
        """[K, G]: per class, number of samples whose unseen candidate wins at grid index <= j."""
        flat = events.position[mask] * (g + 1) + first_unseen_win[mask]
        hist = np.bincount(flat, minlength=n_classes * (g + 1)).reshape(n_classes, g + 1)
        return np.cumsum(hist, axis=1)[:, :g]

    n_seen, n_unseen = events.totals_seen.size, events.totals_unseen.size
    unseen_correct = wins_up_to(events.is_unseen, n_unseen)
    seen_mask = ~events.is_unseen
    seen_can_win = np.bincount(events.position[seen_mask], minlength=n_seen)
    seen_correct = seen_can_win[:, None] - wins_up_to(seen_mask, n_seen)
    u = class_mean(unseen_correct.T, events.totals_unseen, events.present_unseen, per_sample)
    s = class_mean(seen_correct.T, events.totals_seen, events.present_seen, per_sample)
    return u, s
