"""Which images train, which validate and which test, for the two stages of an experiment.

- stage ``search`` (honest validation, the default for sweeps): train on the xlsa17 *train* classes minus a
  held-out slice of their images; validate with the *val* classes as unseen and the held-out slice as seen;
  test images are evaluated for the record but never used to choose anything.
- stage ``final``: train on all trainval images and evaluate on test (gamma and epochs come from the search).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zsl_bench.data.splits import honest_train_val
from zsl_bench.data.xlsa17 import Xlsa17Split
from zsl_bench.errors import UserError


@dataclass(frozen=True)
class EvalSet:
    """One GZSL evaluation: image indices and the class sets of its label space."""

    name: str  # "val" or "test"
    seen_idx: np.ndarray  # [n_seen] image indices whose class is seen
    unseen_idx: np.ndarray  # [n_unseen]
    seen_classes: np.ndarray  # sorted class ids
    unseen_classes: np.ndarray

    @property
    def indices(self) -> np.ndarray:
        return np.concatenate([self.seen_idx, self.unseen_idx])


@dataclass(frozen=True)
class Protocol:
    stage: str
    train_idx: np.ndarray  # [n_train] image indices
    train_classes: np.ndarray  # sorted class ids the model is trained on
    evals: tuple[EvalSet, ...]  # ("val", "test") for search, ("test",) for final


def holdout_split(idx: np.ndarray, labels: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` per class into (kept, held out ≈ ``frac`` of each class, at least one image)."""
    rng = np.random.default_rng(seed)
    perm = idx[rng.permutation(idx.size)]
    order = np.argsort(labels[perm], kind="stable")
    perm = perm[order]
    cls = labels[perm]
    starts = np.r_[0, np.flatnonzero(np.diff(cls)) + 1]
    counts = np.diff(np.r_[starts, cls.size])
    n_out = np.maximum(1, np.round(counts * frac).astype(int))
    rank = np.arange(cls.size) - np.repeat(starts, counts)
    out = rank < np.repeat(n_out, counts)
    return np.sort(perm[~out]), np.sort(perm[out])


def make_protocol(
    split: Xlsa17Split, labels: np.ndarray, stage: str, holdout_frac: float = 0.2, seed: int = 0
) -> Protocol:
    """The train and evaluation sets of ``stage`` (``search`` or ``final``); ``labels`` [N] class ids."""
    seen = np.unique(labels[split.trainval_loc])
    test = EvalSet("test", split.test_seen_loc, split.test_unseen_loc, seen, np.unique(labels[split.test_unseen_loc]))
    if stage == "final":
        return Protocol(stage, np.sort(split.trainval_loc), seen, (test,))
    if stage != "search":
        raise ValueError(f"stage must be 'search' or 'final', not {stage!r}")
    honest = honest_train_val(split)
    if honest is None:
        raise UserError(
            "this dataset's att_splits.mat has no train_loc/val_loc (and no sent_splits.mat or "
            "trainclasses1.txt/valclasses1.txt beside it), which stage 'search' validates on; "
            "use --set meta.stage=final or add one of those files"
        )
    train_all, val_unseen = honest  # xlsa17's train_loc/val_loc also hold test_seen images: dropped here
    train_classes = np.unique(labels[train_all])
    val_classes = np.unique(labels[val_unseen])
    if np.intersect1d(train_classes, val_classes).size:
        raise UserError("train_loc and val_loc share classes; the validation split must use disjoint classes")
    train_idx, val_seen = holdout_split(train_all, labels, holdout_frac, seed)
    val = EvalSet("val", val_seen, val_unseen, train_classes, val_classes)
    proto = Protocol(stage, train_idx, train_classes, (val, test))
    assert_honest(proto, split)
    return proto


def assert_honest(proto: Protocol, split: Xlsa17Split) -> None:
    """Raise ``ValueError`` if a test image (test_seen or test_unseen) is trained on or validated on, or if a
    validation image is trained on. ``make_protocol`` calls it on every search protocol."""
    test = np.union1d(split.test_seen_loc, split.test_unseen_loc)
    used = {"train": proto.train_idx}
    used.update({f"{e.name} images": e.indices for e in proto.evals if e.name != "test"})
    for what, idx in used.items():
        leaked = np.intersect1d(idx, test)
        if leaked.size:
            raise ValueError(f"{leaked.size} test images in {what} (first index {int(leaked[0])})")
    for e in proto.evals:
        if e.name != "test" and np.intersect1d(proto.train_idx, e.indices).size:
            raise ValueError(f"{e.name} images are also training images")
