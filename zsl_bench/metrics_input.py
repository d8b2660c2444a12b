"""Input checks and conversions shared by the accuracy metrics (:mod:`zsl_bench.metrics`).

Every function takes what a caller may pass (numpy arrays, torch tensors, nested lists) and returns numpy arrays,
or raises ``ValueError`` whose message starts with the name of the offending argument.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger("zsl_bench.metrics")

ACCURACY_MODES = ("per_class", "per_sample")
"""How an accuracy averages: over classes (per-class mean, the default) or over samples (overall)."""


# ----------------------------------------------------------------------------------------------- conversion


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16
            x = x.float()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot be converted to a numpy array ({exc})") from exc


def as_labels(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D integer array ``[N]``."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of class ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected integer class ids, got dtype {arr.dtype}")
    return arr.astype(np.intp, copy=False)


def as_class_set(x: Any, name: str, num_classes: int | None = None) -> np.ndarray:
    """``x`` as a sorted, duplicate-free, non-empty 1-D array of class ids in ``[0, num_classes)``."""
    arr = as_labels(x, name)
    if arr.size == 0:
        raise ValueError(f"{name}: the class set is empty")
    if arr.min() < 0:
        raise ValueError(f"{name}: class ids must be non-negative, got {arr.min()}")
    if num_classes is not None and arr.max() >= num_classes:
        raise ValueError(
            f"{name}: class ids must be in [0, {num_classes}) (scores has {num_classes} columns), got {arr.max()}"
        )
    return np.unique(arr)


def as_scores(x: Any, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``scores`` ``[N, C]`` and ``y_true`` ``[N]`` (ids in ``[0, C)``) together."""
    scores = to_numpy(x, "scores")
    if scores.ndim != 2:
        raise ValueError(f"scores: expected a 2-D array [N, C], got shape {scores.shape}")
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"scores: expected real numbers, got dtype {scores.dtype}")
    y = as_labels(y_true, "y_true")
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


def as_float(x: Any, name: str) -> float:
    """``x`` as a Python float; NaN raises."""
    try:
        value = float(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a number, got {x!r}") from exc
    if np.isnan(value):
        raise ValueError(f"{name}: is NaN")
    return value


def classes_with_samples(totals: np.ndarray, name: str) -> np.ndarray:
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


def check_accuracy(accuracy: str) -> bool:
    """True for ``per_sample``, False for ``per_class``; anything else raises ``ValueError``."""
    if accuracy not in ACCURACY_MODES:
        raise ValueError(f"accuracy: expected one of {', '.join(ACCURACY_MODES)}, got {accuracy!r}")
    return accuracy == "per_sample"
