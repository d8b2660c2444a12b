"""Accuracy metrics for zero-shot (ZSL) and generalised zero-shot (GZSL) classification.

Every function is pure and works on numpy arrays; torch tensors and nested lists are accepted too and
converted on entry (torch is never imported here).

Conventions shared by all functions:

* ``scores`` is ``[N, C]``: one row per sample, one column per class of the dataset, column ``c`` is class id
  ``c``. Higher means more likely. Any real dtype; NaN anywhere raises ``ValueError``.
* ``y_true`` is ``[N]`` integer class ids in ``[0, C)``.
* Class sets (``seen_classes``, ``unseen_classes``, ``classes``) are 1-D integer ids (array, list or tensor).
  They are sets: order and duplicates do not matter.
* Accuracies are *per-class means* by default (``accuracy="per_class"``, the xlsa17 standard): the accuracy of
  each class (correct / number of samples whose true class it is), averaged over the classes of the set that have
  at least one sample. Classes without samples are skipped (and counted in a debug log message).
  ``accuracy="per_sample"`` is the overall accuracy instead (correct / samples of the set's classes), what the
  official DUET code returns with ``--all`` (its AwA2 and SUN scripts) for CZSL, U and S. :func:`ausuc` is
  per-class only.
* In GZSL the label space is ``seen ∪ unseen``; columns outside it never win. Calibrated stacking subtracts
  ``gamma`` from the seen columns. Per sample only two candidates can win: the best seen class and the best
  unseen class (the smallest class id among equal scores, like ``np.argmax``). The unseen candidate wins iff
  ``best_unseen - best_seen > -gamma``; at equality the candidate with the smaller class id wins, so
  ``gamma = 0`` reproduces ``np.argmax`` over the label-space columns exactly (when both candidates score the
  same ±inf, the smaller class id wins for every finite ``gamma``, as it would after subtracting ``gamma``).
  ``gzsl_accuracy``, ``calibrate_gamma`` and ``ausuc`` all use this one rule; the first two also share the
  arithmetic, so the H that ``calibrate_gamma`` maximises is exactly the one ``gzsl_accuracy`` reports.

Bad input raises ``ValueError`` whose message starts with the name of the offending argument.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from zsl_bench.metrics_gzsl import best_per_set, class_mean, gzsl_events, harmonic, sweep
from zsl_bench.metrics_input import (
    ACCURACY_MODES,
    as_class_set,
    as_float,
    as_labels,
    as_scores,
    check_accuracy,
    classes_with_samples,
    to_numpy,
)

__all__ = [
    "ACCURACY_MODES",
    "ausuc",
    "calibrate_gamma",
    "czsl_accuracy",
    "gzsl_accuracy",
    "harmonic_mean",
    "per_class_accuracy",
]

DEFAULT_GRID_POINTS = 51
"""Number of γ values tried by :func:`calibrate_gamma` when no grid is given."""


# ---------------------------------------------------------------------------------------------- public API


def harmonic_mean(u: float, s: float) -> float:
    """Harmonic mean ``H = 2us / (u + s)`` of two non-negative accuracies; 0 when ``u + s == 0``."""
    for name, value in (("u", u), ("s", s)):
        v = as_float(value, name)
        if v < 0:
            raise ValueError(f"{name}: must be non-negative, got {v}")
    return float(harmonic(np.float64(u), np.float64(s)))


def per_class_accuracy(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, classes: npt.ArrayLike, accuracy: str = "per_class"
) -> float:
    """Mean over ``classes`` of each class's accuracy (``accuracy="per_sample"``: the overall accuracy over the
    samples of ``classes``, Σ correct_k / Σ count_k).

    Args:
        y_true: ``[N]`` non-negative integer true class ids.
        y_pred: ``[N]`` integer predicted class ids.
        classes: ``[K]`` class ids to average over (a set: order and duplicates ignored).

    Returns:
        ``mean_k correct_k / count_k`` over the classes with ``count_k > 0`` (others are skipped), where
        ``count_k`` counts samples whose true class is ``classes[k]`` and ``correct_k`` those also predicted so.

    Raises:
        ValueError: bad shapes/dtypes, negative ids, or no sample belongs to any class in ``classes``.
    """
    y = as_labels(y_true, "y_true")
    pred = as_labels(y_pred, "y_pred")
    if pred.shape != y.shape:
        raise ValueError(f"y_pred: expected the shape of y_true {y.shape}, got {pred.shape}")
    if y.size and y.min() < 0:
        raise ValueError(f"y_true: class ids must be non-negative, got {y.min()}")
    cls = as_class_set(classes, "classes")
    length = int(max(cls[-1], y.max() if y.size else 0)) + 1
    totals = np.bincount(y, minlength=length)[cls]
    correct = np.bincount(y[y == pred], minlength=length)[cls]
    present = classes_with_samples(totals, "classes")
    return float(class_mean(correct, totals, present, check_accuracy(accuracy)))


def czsl_accuracy(
    scores: npt.ArrayLike, y_true: npt.ArrayLike, unseen_classes: npt.ArrayLike, accuracy: str = "per_class"
) -> float:
    """Conventional ZSL accuracy: argmax over the unseen columns only, then per-class mean over them
    (``accuracy="per_sample"``: the overall accuracy over their samples).

    Args:
        scores: ``[N, C]`` class scores over all classes of the dataset.
        y_true: ``[N]`` true class ids in ``[0, C)``. Samples of classes outside ``unseen_classes`` are
            ignored.
        unseen_classes: ``[K]`` the candidate classes.

    Returns:
        Per-class-mean accuracy in ``[0, 1]`` of ``unseen_classes[argmax(scores[:, unseen_classes])]``.
    """
    scores_np, y = as_scores(scores, y_true)
    unseen = as_class_set(unseen_classes, "unseen_classes", scores_np.shape[1])
    check_accuracy(accuracy)
    (best,), _, _ = best_per_set(scores_np, [unseen])
    return per_class_accuracy(y, best.label, unseen, accuracy)


def gzsl_accuracy(
    scores: npt.ArrayLike,
    y_true: npt.ArrayLike,
    seen_classes: npt.ArrayLike,
    unseen_classes: npt.ArrayLike,
    gamma: float = 0.0,
    *,
    accuracy: str = "per_class",
) -> dict[str, float]:
    """GZSL accuracy with calibrated stacking.

    ``gamma`` is subtracted from the seen columns, the prediction is the argmax over the columns of
    ``seen ∪ unseen`` (see the module docstring for the exact tie rule), and

    * ``u``: per-class-mean accuracy over samples whose true class is unseen (mean over unseen classes),
    * ``s``: the same over seen samples and classes,
    * ``h``: their harmonic mean ``2us / (u + s)`` (0 when both are 0).

    Samples whose true class is neither seen nor unseen are ignored (with a warning).

    Args:
        scores: ``[N, C]`` scores over all classes.
        y_true: ``[N]`` true class ids in ``[0, C)``.
        seen_classes: ``[Ks]`` seen class ids.
        unseen_classes: ``[Ku]`` unseen class ids, disjoint from the seen ones.
        gamma: calibration offset; ``+inf`` predicts unseen whenever possible, ``-inf`` seen.
        accuracy: ``per_class`` (default) or ``per_sample`` (U and S as overall accuracies, the official DUET
            ``--all``).

    Returns:
        ``{"u": U, "s": S, "h": H}``.

    Raises:
        ValueError: invalid input, or no sample of a seen (or of an unseen) class.
    """
    g = as_float(gamma, "gamma")
    per_sample = check_accuracy(accuracy)
    events = gzsl_events(scores, y_true, seen_classes, unseen_classes)
    u, s = sweep(events, np.array([g]), per_sample)
    return {"u": float(u[0]), "s": float(s[0]), "h": float(harmonic(u, s)[0])}


def calibrate_gamma(
    scores_val: npt.ArrayLike,
    y_val: npt.ArrayLike,
    seen: npt.ArrayLike,
    unseen: npt.ArrayLike,
    grid: npt.ArrayLike | int | None = None,
    *,
    extra: npt.ArrayLike | None = None,
    accuracy: str = "per_class",
) -> float:
    """The calibrated-stacking γ maximising H on validation scores.

    Args:
        scores_val: ``[N, C]`` validation scores over all classes.
        y_val: ``[N]`` true class ids.
        seen: ``[Ks]`` seen class ids.
        unseen: ``[Ku]`` unseen class ids.
        grid: the γ values to try (1-D, no NaN, any order). ``None`` means
            ``DEFAULT_GRID_POINTS`` (51) evenly spaced values from 0 to the spread ``max - min`` of the finite
            scores in the ``seen ∪ unseen`` columns, which suits raw scores and probabilities alike; an int
            ``G`` means ``G`` such values.
        extra: γ values tried in addition to the grid (e.g. a γ chosen on another split, so that the result
            is never worse than it on these scores).
        accuracy: how U and S average (``per_class`` or ``per_sample``), as in :func:`gzsl_accuracy`.

    Returns:
        The γ of the grid with the highest H; among ties the smallest. Exactly the H
        ``gzsl_accuracy(..., gamma=γ)`` reports.

    The scores are reduced once (best seen / best unseen per sample) and every γ is evaluated from that
    reduction in O(N log G + C·G), so the cost is one pass over ``scores`` whatever the grid size.
    """
    per_sample = check_accuracy(accuracy)
    if grid is None or isinstance(grid, (int, np.integer)):
        n_points = DEFAULT_GRID_POINTS if grid is None else int(grid)
        if n_points < 1:
            raise ValueError(f"grid: the number of points must be at least 1, got {n_points}")
        events = gzsl_events(scores_val, y_val, seen, unseen, want_range=True)
        spread = events.score_max - events.score_min if np.isfinite(events.score_min) else 0.0
        gammas = np.linspace(0.0, spread, n_points)
    else:
        gammas = to_numpy(grid, "grid").astype(np.float64, copy=False)
        if gammas.ndim != 1 or gammas.size == 0:
            raise ValueError(f"grid: expected a non-empty 1-D array of γ values, got shape {gammas.shape}")
        if np.isnan(gammas).any():
            raise ValueError("grid: contains NaN")
        gammas = np.sort(gammas)
        events = gzsl_events(scores_val, y_val, seen, unseen)
    if extra is not None:
        more = to_numpy(extra, "extra").astype(np.float64, copy=False).ravel()
        if np.isnan(more).any():
            raise ValueError("extra: contains NaN")
        gammas = np.sort(np.concatenate([gammas, more]))
    u, s = sweep(events, gammas, per_sample)
    return float(gammas[np.argmax(harmonic(u, s))])  # argmax takes the first, i.e. smallest, γ among ties


def ausuc(
    scores: npt.ArrayLike, y_true: npt.ArrayLike, seen: npt.ArrayLike, unseen: npt.ArrayLike
) -> tuple[float, np.ndarray, np.ndarray]:
    """Area Under the Seen-Unseen accuracy Curve (Chao et al., 2016), computed exactly.

    γ sweeps over *every* breakpoint (each sample's ``best_seen - best_unseen``, with the tie rule of the
    module docstring), so the curve holds every distinct operating point ``(S(γ), U(γ))`` of calibrated
    stacking, with per-class-mean accuracies; no quantile approximation. Cost O(N log N).

    Args:
        scores: ``[N, C]`` scores over all classes.
        y_true: ``[N]`` true class ids.
        seen: ``[Ks]`` seen class ids.
        unseen: ``[Ku]`` unseen class ids.

    Returns:
        ``(area, s_curve, u_curve)``. The curves ``[P]`` are ordered by increasing γ: the first point is the
        γ → -inf limit (every prediction seen: ``S`` maximal, ``U = 0``), the last the γ → +inf limit
        (``S = 0``, ``U`` maximal); ``S`` never increases and ``U`` never decreases along them. ``area`` is
        the trapezoid integral of U over S, in ``[0, 1]``; perfect scores give 1.
    """
    events = gzsl_events(scores, y_true, seen, unseen)
    order = np.lexsort((~events.unseen_first, events.threshold))  # by threshold, tie-winners first
    threshold = events.threshold[order]
    unseen_first = events.unseen_first[order]
    is_unseen = events.is_unseen[order]
    position = events.position[order]
    # An event moves one sample of class k to correct (unseen) or wrong (seen): the per-class mean changes by
    # 1 / (samples of k) / (classes with samples). Sum the 1 / (samples of k) first, divide once.
    gain_u = np.zeros(threshold.size)
    gain_u[is_unseen] = 1.0 / events.totals_unseen[position[is_unseen]]
    loss_s = np.zeros(threshold.size)
    loss_s[~is_unseen] = 1.0 / events.totals_seen[position[~is_unseen]]
    n_unseen = np.count_nonzero(events.present_unseen)
    n_seen = np.count_nonzero(events.present_seen)
    # State after the first j events (j = 0..M): U from the first j gains, S from the remaining losses.
    u_after = np.concatenate(([0.0], np.cumsum(gain_u))) / n_unseen
    s_after = np.concatenate((np.cumsum(loss_s[::-1])[::-1], [0.0])) / n_seen
    # Samples with the same (threshold, tie flag) switch at the same γ: keep the state after each group.
    new_group = (threshold[1:] != threshold[:-1]) | (unseen_first[1:] != unseen_first[:-1])
    ends = [threshold.size] if threshold.size else []
    points = np.concatenate(([0], np.flatnonzero(new_group) + 1, ends)).astype(np.intp)
    s_curve, u_curve = s_after[points], u_after[points]
    area = float(np.sum((s_curve[:-1] - s_curve[1:]) * (u_curve[:-1] + u_curve[1:])) / 2.0)
    return min(max(area, 0.0), 1.0), s_curve, u_curve
