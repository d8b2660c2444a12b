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

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ACCURACY_MODES",
    "ausuc",
    "calibrate_gamma",
    "czsl_accuracy",
    "gzsl_accuracy",
    "harmonic_mean",
    "per_class_accuracy",
]

logger = logging.getLogger(__name__)

ACCURACY_MODES = ("per_class", "per_sample")
"""How an accuracy averages: over classes (per-class mean, the default) or over samples (overall)."""

DEFAULT_GRID_POINTS = 51
"""Number of γ values tried by :func:`calibrate_gamma` when no grid is given."""

_CHUNK_BYTES = 1 << 20
"""Rows of ``scores`` are reduced in blocks of about this many bytes so each block stays in cache."""


# ----------------------------------------------------------------------------------------------- conversion


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16
            x = x.float()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot be converted to a numpy array ({exc})") from exc


def _as_labels(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D integer array ``[N]``."""
    arr = _to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of class ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected integer class ids, got dtype {arr.dtype}")
    return arr.astype(np.intp, copy=False)


def _as_class_set(x: Any, name: str, num_classes: int | None = None) -> np.ndarray:
    """``x`` as a sorted, duplicate-free, non-empty 1-D array of class ids in ``[0, num_classes)``."""
    arr = _as_labels(x, name)
    if arr.size == 0:
        raise ValueError(f"{name}: the class set is empty")
    if arr.min() < 0:
        raise ValueError(f"{name}: class ids must be non-negative, got {arr.min()}")
    if num_classes is not None and arr.max() >= num_classes:
        raise ValueError(
            f"{name}: class ids must be in [0, {num_classes}) (scores has {num_classes} columns), got {arr.max()}"
        )
    return np.unique(arr)


def _as_scores(x: Any, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``scores`` ``[N, C]`` and ``y_true`` ``[N]`` (ids in ``[0, C)``) together."""
    scores = _to_numpy(x, "scores")
    if scores.ndim != 2:
        raise ValueError(f"scores: expected a 2-D array [N, C], got shape {scores.shape}")
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"scores: expected real numbers, got dtype {scores.dtype}")
    y = _as_labels(y_true, "y_true")
    n, c = scores.shape
    if y.shape[0] != n:
        raise ValueError(f"y_true: expected length N={n} (rows of scores), got {y.shape[0]}")
    if c == 0:
        raise ValueError("scores: has no columns (C = 0)")
    if y.size and (y.min() < 0 or y.max() >= c):
        raise ValueError(
            f"y_true: class ids must be in [0, {c}) (scores has {c} columns), got min {y.min()} and max {y.max()}"
        )
    return scores, y


def _as_float(x: Any, name: str) -> float:
    """``x`` as a Python float; NaN raises."""
    try:
        value = float(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a number, got {x!r}") from exc
    if np.isnan(value):
        raise ValueError(f"{name}: is NaN")
    return value


# ------------------------------------------------------------------------------------------ shared helpers


def _classes_with_samples(totals: np.ndarray, name: str) -> np.ndarray:
    """Mask ``[K]`` of the classes of the set named ``name`` that have samples (``totals`` ``[K]`` > 0).

    Classes without samples are left out of per-class means (logged at debug level). Raises ``ValueError``
    if no class of the set has a sample.
    """
    present = totals > 0
    n_present = int(np.count_nonzero(present))
    if n_present == 0:
        raise ValueError(f"{name}: no sample in y_true has a class from this set")
    if n_present < totals.size:
        logger.debug(
            "%s: %d of %d classes have no samples and are left out of the mean",
            name,
            totals.size - n_present,
            totals.size,
        )
    return present


def _check_accuracy(accuracy: str) -> bool:
    """True for ``per_sample``, False for ``per_class``; anything else raises ``ValueError``."""
    if accuracy not in ACCURACY_MODES:
        raise ValueError(f"accuracy: expected one of {', '.join(ACCURACY_MODES)}, got {accuracy!r}")
    return accuracy == "per_sample"


def _class_mean(correct: np.ndarray, totals: np.ndarray, present: np.ndarray, per_sample: bool = False) -> np.ndarray:
    """Per-class-mean accuracy: mean over the ``present`` classes of ``correct / totals``.

    ``correct`` is ``[..., K]`` correct counts, ``totals`` ``[K]`` sample counts, ``present`` ``[K]`` the mask
    from :func:`_classes_with_samples`. Returns ``[...]``. Dividing before averaging keeps a perfect
    classifier at exactly 1.0. ``per_sample``: the overall accuracy ``Σ correct / Σ totals`` over the same
    classes instead.
    """
    if per_sample:
        return np.sum(correct[..., present], axis=-1) / np.sum(totals[present])
    return np.mean(correct[..., present] / totals[present], axis=-1)


def _harmonic(u: np.ndarray, s: np.ndarray) -> np.ndarray:
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


def _best_per_set(
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
class _GzslEvents:
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
    present_seen: np.ndarray  # [n_seen] bool, see _classes_with_samples
    present_unseen: np.ndarray  # [n_unseen] bool
    score_min: float  # finite score range over seen ∪ unseen columns (NaN unless requested)
    score_max: float


def _gzsl_events(
    scores: Any, y_true: Any, seen_classes: Any, unseen_classes: Any, *, want_range: bool = False
) -> _GzslEvents:
    """Validate GZSL inputs and reduce ``scores`` ``[N, C]`` to per-sample decision thresholds."""
    scores_np, y = _as_scores(scores, y_true)
    c = scores_np.shape[1]
    seen = _as_class_set(seen_classes, "seen_classes", c)
    unseen = _as_class_set(unseen_classes, "unseen_classes", c)
    overlap = np.intersect1d(seen, unseen)
    if overlap.size:
        raise ValueError(
            f"seen_classes, unseen_classes: must be disjoint, both contain {overlap[:10].tolist()}"
            + (" ..." if overlap.size > 10 else "")
        )
    (best_seen, best_unseen), lo, hi = _best_per_set(scores_np, [seen, unseen], want_range=want_range)

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
    present_seen = _classes_with_samples(totals_seen, "seen_classes")
    present_unseen = _classes_with_samples(totals_unseen, "unseen_classes")

    can_win = (is_seen_y & (best_seen.label == y)) | (is_unseen_y & (best_unseen.label == y))
    bs, bu = best_seen.value[can_win], best_unseen.value[can_win]
    unseen_first = best_unseen.label[can_win] < best_seen.label[can_win]
    # Equal infinite scores stay equal after subtracting any finite γ, so the smaller class id always wins.
    same_inf = np.where(unseen_first, np.inf, -np.inf)
    with np.errstate(invalid="ignore"):  # inf - inf happens only where bu == bs, which is replaced
        margin = np.where(bu == bs, np.where(np.isinf(bu), same_inf, 0.0), bu - bs)
    return _GzslEvents(
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


def _sweep(events: _GzslEvents, gammas: np.ndarray, per_sample: bool = False) -> tuple[np.ndarray, np.ndarray]:
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
    u = _class_mean(unseen_correct.T, events.totals_unseen, events.present_unseen, per_sample)
    s = _class_mean(seen_correct.T, events.totals_seen, events.present_seen, per_sample)
    return u, s


# ---------------------------------------------------------------------------------------------- public API


def harmonic_mean(u: float, s: float) -> float:
    """Harmonic mean ``H = 2us / (u + s)`` of two non-negative accuracies; 0 when ``u + s == 0``."""
    for name, value in (("u", u), ("s", s)):
        v = _as_float(value, name)
        if v < 0:
            raise ValueError(f"{name}: must be non-negative, got {v}")
    return float(_harmonic(np.float64(u), np.float64(s)))


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
    y = _as_labels(y_true, "y_true")
    pred = _as_labels(y_pred, "y_pred")
    if pred.shape != y.shape:
        raise ValueError(f"y_pred: expected the shape of y_true {y.shape}, got {pred.shape}")
    if y.size and y.min() < 0:
        raise ValueError(f"y_true: class ids must be non-negative, got {y.min()}")
    cls = _as_class_set(classes, "classes")
    length = int(max(cls[-1], y.max() if y.size else 0)) + 1
    totals = np.bincount(y, minlength=length)[cls]
    correct = np.bincount(y[y == pred], minlength=length)[cls]
    present = _classes_with_samples(totals, "classes")
    return float(_class_mean(correct, totals, present, _check_accuracy(accuracy)))


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
    scores_np, y = _as_scores(scores, y_true)
    unseen = _as_class_set(unseen_classes, "unseen_classes", scores_np.shape[1])
    _check_accuracy(accuracy)
    (best,), _, _ = _best_per_set(scores_np, [unseen])
    return per_class_accuracy(y, best.label, unseen, accuracy)


def gzsl_accuracy(
    scores: npt.ArrayLike,
    y_true: npt.ArrayLike,
    seen_classes: npt.ArrayLike,
    unseen_classes: npt.ArrayLike,
    gamma: float = 0.0,
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
    g = _as_float(gamma, "gamma")
    per_sample = _check_accuracy(accuracy)
    events = _gzsl_events(scores, y_true, seen_classes, unseen_classes)
    u, s = _sweep(events, np.array([g]), per_sample)
    return {"u": float(u[0]), "s": float(s[0]), "h": float(_harmonic(u, s)[0])}


def calibrate_gamma(
    scores_val: npt.ArrayLike,
    y_val: npt.ArrayLike,
    seen: npt.ArrayLike,
    unseen: npt.ArrayLike,
    grid: npt.ArrayLike | int | None = None,
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
    per_sample = _check_accuracy(accuracy)
    if grid is None or isinstance(grid, (int, np.integer)):
        n_points = DEFAULT_GRID_POINTS if grid is None else int(grid)
        if n_points < 1:
            raise ValueError(f"grid: the number of points must be at least 1, got {n_points}")
        events = _gzsl_events(scores_val, y_val, seen, unseen, want_range=True)
        spread = events.score_max - events.score_min if np.isfinite(events.score_min) else 0.0
        gammas = np.linspace(0.0, spread, n_points)
    else:
        gammas = _to_numpy(grid, "grid").astype(np.float64, copy=False)
        if gammas.ndim != 1 or gammas.size == 0:
            raise ValueError(f"grid: expected a non-empty 1-D array of γ values, got shape {gammas.shape}")
        if np.isnan(gammas).any():
            raise ValueError("grid: contains NaN")
        gammas = np.sort(gammas)
        events = _gzsl_events(scores_val, y_val, seen, unseen)
    if extra is not None:
        more = _to_numpy(extra, "extra").astype(np.float64, copy=False).ravel()
        if np.isnan(more).any():
            raise ValueError("extra: contains NaN")
        gammas = np.sort(np.concatenate([gammas, more]))
    u, s = _sweep(events, gammas, per_sample)
    return float(gammas[np.argmax(_harmonic(u, s))])  # argmax takes the first, i.e. smallest, γ among ties


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
    events = _gzsl_events(scores, y_true, seen, unseen)
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
