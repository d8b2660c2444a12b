"""Checks and counts of an xlsa17 split, with and without the per-image labels.

Callers: :mod:`zsl_bench.data.datasets` (every dataset folder read), :mod:`zsl_bench.data.layouts` (an image order
found by a rule), :mod:`zsl_bench.data.features` (``res101.mat`` labels) and :mod:`zsl_bench.data.synth`
(:func:`summarize`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zsl_bench.data.xlsa17 import MAIN_LOCS, OPTIONAL_LOCS, Xlsa17Split
from zsl_bench.errors import UserError


def _present_locs(split: Xlsa17Split) -> dict[str, np.ndarray]:
    names = (*MAIN_LOCS, *OPTIONAL_LOCS)
    return {n: getattr(split, n) for n in names if getattr(split, n) is not None}


def _where(source: Path | str | None) -> str:
    return f"{source}: " if source is not None else ""


def _check_index_range(split: Xlsa17Split, n: int, source: Path | str | None) -> None:
    """Every index of every present ``*_loc`` in ``[0, n)``."""
    for name, loc in _present_locs(split).items():
        if loc.size and (loc.max() >= n or loc.min() < 0):
            bad = int(loc.max()) if loc.max() >= n else int(loc.min())
            raise UserError(
                f"{_where(source)}{name} has 0-based index {bad} but there are only N={n} images; "
                "the split and the image list do not belong together"
            )


def _check_ranges(split: Xlsa17Split, labels: np.ndarray, source: Path | str | None) -> None:
    """Every index in ``[0, N)`` and every label in ``[0, C)``."""
    _check_index_range(split, labels.shape[0], source)
    if labels.size and (labels.min() < 0 or labels.max() >= split.num_classes):
        bad = int(labels.max()) if labels.max() >= split.num_classes else int(labels.min())
        raise UserError(
            f"{_where(source)}image label {bad} (0-based) is outside the {split.num_classes} classes; "
            "the image list and the split do not belong together"
        )


def num_images(split: Xlsa17Split) -> int:
    """N implied by the split alone: one past the largest index of any ``*_loc`` (xlsa17 covers every image)."""
    tops = [int(loc.max()) + 1 for loc in _present_locs(split).values() if loc.size]
    return max(tops, default=0)


def check_split_indices(split: Xlsa17Split, n_images: int | None = None, *, source: Path | str | None = None) -> None:
    """The checks that need no labels.

    Args:
        split: the split (each ``*_loc`` already free of duplicates, see :func:`read_att_splits`).
        n_images: N, the number of images of the image list, or None when there is no list.
        source: optional path or name put in front of error messages.

    Raises:
        UserError: an index is ``>= n_images``; trainval / test_seen / test_unseen overlap; train_loc and
            val_loc overlap; or train_loc / val_loc hold test-unseen images.
    """
    if n_images is not None:
        _check_index_range(split, n_images, source)
    for i, a in enumerate(MAIN_LOCS):
        for b in MAIN_LOCS[i + 1 :]:
            common = np.intersect1d(getattr(split, a), getattr(split, b))
            if common.size:
                raise UserError(
                    f"{_where(source)}{a} and {b} share {common.size} images (first 0-based index "
                    f"{int(common[0])}); the three main splits must be disjoint"
                )
    if split.train_loc is not None and split.val_loc is not None:
        common = np.intersect1d(split.train_loc, split.val_loc)
        if common.size:
            raise UserError(
                f"{_where(source)}train_loc and val_loc share {common.size} images (first 0-based index "
                f"{int(common[0])}); the hyper-parameter split must be disjoint"
            )
    for name in OPTIONAL_LOCS:
        loc = getattr(split, name)
        if loc is not None:
            unseen = np.intersect1d(loc, split.test_unseen_loc)
            if unseen.size:
                raise UserError(
                    f"{_where(source)}{name} holds {unseen.size} test_unseen images (first 0-based index "
                    f"{int(unseen[0])}); validation must never touch unseen test classes"
                )


def check_split_consistency(split: Xlsa17Split, labels: np.ndarray, *, source: Path | str | None = None) -> None:
    """Check a split against the per-image labels.

    Args:
        split: the split.
        labels: ``[N]`` 0-based class index of every image, in xlsa17 index order.
        source: optional path or name put in front of error messages.

    Raises:
        UserError: an index is ``>= N`` (or a label ``>= C``); trainval / test_seen / test_unseen overlap;
            train_loc / val_loc overlap or hold test-unseen images; a test-unseen class also has trainval
            images; or a test-seen class has none.
    """
    labels = np.asarray(labels).reshape(-1)
    _check_ranges(split, labels, source)
    check_split_indices(split, labels.shape[0], source=source)
    trainval = labels[split.trainval_loc]
    leaked = np.intersect1d(labels[split.test_unseen_loc], trainval)
    what = "test-unseen classes also have trainval images"
    _refuse_classes(split, leaked, what=what, rule="unseen classes must not be trained on", source=source)
    stray = np.setdiff1d(labels[split.test_seen_loc], trainval)
    rule = "test_seen_loc must hold images of the seen (trainval) classes only"
    _refuse_classes(split, stray, what="test-seen classes have no trainval images", rule=rule, source=source)


def _refuse_classes(
    split: Xlsa17Split, classes: np.ndarray, *, what: str, rule: str, source: Path | str | None
) -> None:
    """UserError naming up to 3 of ``classes`` [K] (0-based class ids) when K > 0: ``what`` is wrong with them,
    ``rule`` says what must hold."""
    if classes.size:
        names = ", ".join(split.class_names[int(c)] for c in classes[:3])
        raise UserError(f"{_where(source)}{classes.size} {what} (e.g. {names}); {rule}")


def summarize(split: Xlsa17Split, labels: np.ndarray) -> dict[str, int]:
    """Counts of a split, as printed by ``data inspect``.

    Args:
        split: the split.
        labels: ``[N]`` 0-based class index of every image.

    Returns:
        ``classes``, ``attributes``, ``seen`` (classes with trainval or test-seen images), ``unseen`` (classes
        with test-unseen images), ``trainval``, ``test_seen``, ``test_unseen`` (image counts), ``images`` (N),
        plus ``train`` and ``val`` when the split has them.
    """
    labels = np.asarray(labels).reshape(-1)
    _check_ranges(split, labels, None)
    seen_idx = np.concatenate([split.trainval_loc, split.test_seen_loc])
    counts = {
        "classes": split.num_classes,
        "attributes": split.num_attributes,
        "seen": int(np.unique(labels[seen_idx]).size),
        "unseen": int(np.unique(labels[split.test_unseen_loc]).size),
        "trainval": int(split.trainval_loc.size),
        "test_seen": int(split.test_seen_loc.size),
        "test_unseen": int(split.test_unseen_loc.size),
        "images": int(labels.size),
    }
    if split.train_loc is not None:
        counts["train"] = int(split.train_loc.size)
    if split.val_loc is not None:
        counts["val"] = int(split.val_loc.size)
    return counts
