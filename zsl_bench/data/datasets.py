"""Reading a declared dataset: :func:`read_dataset` → :class:`DatasetView`; :func:`load_dataset` → :class:`ZslDataset`.

Datasets are declarations (:class:`~zsl_bench.data.declare.DatasetSpec`) in the registry :data:`DATASETS`: the
built-in ``cub``, ``awa1``, ``awa2``, ``sun``, ``apy`` (the xlsa17 benchmarks, :mod:`zsl_bench.data.builtin`) and
``synth`` (:mod:`zsl_bench.data.synth`), plus whatever outside packages declare (docs/datasets.md). Every
function here takes a registered name or a declaration. ``--root`` / ``data.root`` is the dataset's folder, the
one holding ``att_splits.mat``; by default ``data/<folder>`` (``data/CUB``, ``data/synth``, …).

Reading a folder (:func:`read_dataset`) needs only ``att_splits.mat``; everything else adds to what is known:

* the split must have the dataset's published counts (classes x attributes, trainval / test_seen / test_unseen
  images), else the folder holds another dataset and is refused, naming the registered dataset that matches;
* the image order (res101.mat, image_files.txt, or the declaration's own rule, :mod:`zsl_bench.data.layouts`)
  gives every index its class, so the split is checked against the labels (unseen classes have no trainval
  image, test-seen classes are seen, indices < N) and against every xlsa17 class list present
  (trainvalclasses.txt, testclasses.txt, trainclasses1.txt, valclasses1.txt);
* the validation class split comes from att_splits.mat, sent_splits.mat or the class lists
  (:mod:`zsl_bench.data.splits`);
* attribute names and groups from the declaration's rule (:mod:`zsl_bench.data.attributes`).

:func:`load_dataset` (what training calls) additionally requires a file for every index and every file on disk.
:func:`inspect_dataset` (``zsl-bench data inspect``) reports counts and works on split files alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl_bench.data.attributes import AttributeInfo
from zsl_bench.data.declare import DATASETS, DatasetSpec, dataset_spec
from zsl_bench.data.image_list import read_image_list
from zsl_bench.data.layouts import ImageOrder, read_res101
from zsl_bench.data.split_checks import check_split_consistency, check_split_indices, num_images
from zsl_bench.data.splits import check_class_lists, class_lists, fill_val_split, honest_train_val
from zsl_bench.data.xlsa17 import MAIN_LOCS, Xlsa17Split, read_att_splits
from zsl_bench.errors import UserError

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DatasetView",
    "ZslDataset",
    "check_dataset",
    "complete_view",
    "default_root",
    "inspect_dataset",
    "load_dataset",
    "read_dataset",
]


@dataclass(frozen=True)
class ZslDataset:
    """A zero-shot dataset in xlsa17 index order.

    ``image_paths`` [N] absolute paths, ``labels`` [N] 0-based class ids into ``split.class_names``,
    ``split.att`` [C, A] the class semantic vectors; ``split.train_loc`` / ``val_loc`` are filled whenever a
    validation class split exists (see :mod:`zsl_bench.data.splits`). ``attributes`` names the A attributes;
    ``sources`` says where each piece came from.
    """

    name: str
    root: Path
    image_paths: list[Path]
    labels: np.ndarray
    split: Xlsa17Split
    attributes: AttributeInfo | None = None
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetView:
    """What a dataset folder tells, with or without its images.

    Attributes:
        name: registry name.
        root: the dataset folder (absolute).
        split: the checked split, train_loc / val_loc filled when derivable.
        order: per-image labels (and files) in xlsa17 order, or None when nothing gives them.
        attributes: attribute names and groups, or None.
        sources: piece → where it came from (``split``, ``order``, ``val_split``, ``attributes``), and
            ``checked_lists``: the xlsa17 class lists the labels were checked against.
        image_dir: where the image files are expected.
        spec: the declaration it was read with.
    """

    name: str
    root: Path
    split: Xlsa17Split
    order: ImageOrder | None
    attributes: AttributeInfo | None
    sources: dict[str, str]
    image_dir: Path
    spec: DatasetSpec | None = None

    def image_paths(self) -> list[Path] | None:
        """``[N]`` absolute image paths, or None when the order gives no files."""
        if self.order is None or self.order.files is None:
            return None
        return [self.root / f for f in self.order.files]

    def missing_images(self) -> list[Path]:
        """The listed image files that are not on disk (all of them when the image folder is absent)."""
        paths = self.image_paths() or []
        if not self.image_dir.is_dir():
            return paths
        return [p for p in paths if not os.path.isfile(p)]


def default_root(dataset: str | DatasetSpec) -> Path:
    """Where a dataset lives when the config gives no ``data.root``: ``data/CUB``, ``data/synth``, …"""
    return dataset_spec(dataset).default_root()


# ------------------------------------------------------------------------------------------------ readers


def _count_text(counts: tuple[int, ...], images: bool, units: bool) -> str:
    """``200 classes x 312 attributes`` (``200 x 312`` without units), plus the image counts when ``images``."""
    text = f"{counts[0]} classes x {counts[1]} attributes" if units else f"{counts[0]} x {counts[1]}"
    if images:
        text += f" with {counts[2]}/{counts[3]}/{counts[4]}" + (" trainval/test_seen/test_unseen images" * units)
    return text


def _matching(counts: tuple[int, ...]) -> list[str]:
    """The registered datasets whose published split counts are ``counts``."""
    names = []
    for name in DATASETS.names():
        other = dataset_spec(name)
        if other.counts is not None and other.counts.split_counts() == counts:
            names.append(name)
    return names


def check_counts(spec: DatasetSpec, split: Xlsa17Split, source: Path) -> None:
    """Refuse a split whose counts are not the published counts of ``spec`` (when it declares them).

    Raises:
        UserError: one line naming the file, what it holds, what the dataset has and the matching dataset.
    """
    if spec.counts is None:
        return
    found = (split.num_classes, split.num_attributes, *(int(getattr(split, k).size) for k in MAIN_LOCS))
    expected = spec.counts.split_counts()
    if found == expected:
        return
    images = found[:2] == expected[:2]  # same shape: the image counts tell them apart (AwA1 / AwA2)
    guess = ", ".join(f"--dataset {n}" for n in _matching(found)) or "declare it: see docs/datasets.md"
    raise UserError(
        f"{source} has {_count_text(found, images, True)} but dataset {spec.name!r} has "
        f"{_count_text(expected, images, False)}; pass the dataset this folder holds ({guess}?)"
    )


def recover_order(spec: DatasetSpec, root: Path, split: Xlsa17Split) -> ImageOrder | None:
    """The image order of ``root`` from the first source that has it: res101.mat (when the dataset declares
    anchors), image_files.txt, the declaration's own rule; None when nothing gives it."""
    if spec.anchors and (root / "res101.mat").is_file():
        return read_res101(root / "res101.mat", split, spec.anchors, spec.folder)
    if (root / "image_files.txt").is_file():
        files, labels = read_image_list(root / "image_files.txt")
        return ImageOrder(labels, files, "image_files.txt")
    return spec.order(root, split) if spec.order is not None else None


def complete_view(spec: DatasetSpec, root: Path, split: Xlsa17Split, order: ImageOrder | None) -> DatasetView:
    """Check ``split`` against ``order``, fill the validation split, the class-list check and the attributes."""
    sources = {"split": "att_splits.mat", "order": order.source if order else "none"}
    labels = order.labels if order is not None else None
    if labels is not None:
        check_split_consistency(split, labels, source=f"{root / 'att_splits.mat'} with {order.source}")
    split, val_source = fill_val_split(root, split, labels)
    check_split_indices(split, None if labels is None else labels.size, source=root / "att_splits.mat")
    sources["val_split"] = val_source or "none"
    if labels is not None:
        sources["checked_lists"] = " + ".join(check_class_lists(root, split, labels)) or "none"
    attributes = spec.read_attributes(root, split.num_attributes)
    sources["attributes"] = attributes.source if attributes is not None else "none"
    return DatasetView(spec.name, root, split, order, attributes, sources, root / spec.image_dir, spec)


def read_dataset(dataset: str | DatasetSpec, root: str | Path | None = None) -> DatasetView:
    """Read ``dataset`` (a registered name or a declaration) from ``root`` (default its ``data/<folder>``);
    images not needed.

    Raises:
        UserError: no folder or att_splits.mat there, a malformed split, a split of another dataset (other
            counts than declared), an image order or class list that contradicts the split.
    """
    spec = dataset_spec(dataset)
    root = Path(root if root is not None else spec.default_root()).resolve()
    att = root / "att_splits.mat"
    if not root.is_dir() or not att.exists():
        what = f"dataset folder {root}" if not root.is_dir() else str(att)
        raise UserError(
            f"{what} not found; pass --root (the folder holding att_splits.mat) or get the {spec.name} split files "
            f"with {spec.hint('split', root)}"
        )
    split = read_att_splits(att)
    check_counts(spec, split, att)
    check_split_indices(split, source=att)
    return complete_view(spec, root, split, recover_order(spec, root, split))


def _missing_message(view: DatasetView, missing: list[Path], total: int) -> str:
    shown = ", ".join(os.path.relpath(p, view.root) for p in missing[:3])
    return (
        f"{len(missing)} of {total} images are missing under {view.root} (first three: {shown}); "
        f"complete the folder, e.g. with {dataset_spec(view.spec or view.name).hint('images', view.root)}"
    )


def load_dataset(dataset: str | DatasetSpec, root: str | Path | None = None) -> ZslDataset:
    """Load ``dataset`` (a registered name or a declaration) from ``root`` for training: every image listed and on
    disk.

    Raises:
        UserError: anything :func:`read_dataset` rejects; no per-image list; images missing (how many, the
            first three).
    """
    view = read_dataset(dataset, root)
    spec, name = dataset_spec(dataset), view.name
    paths = view.image_paths()
    if paths is None or view.order is None:
        got = f"labels only ({view.order.source})" if view.order is not None else "nothing"
        raise UserError(
            f"{view.root}: no per-image list for {name} (found {got}); training needs res101.mat, image_files.txt "
            f"or the dataset's own image list: {spec.hint('images', view.root)}"
        )
    missing = view.missing_images()
    if missing:
        raise UserError(_missing_message(view, missing, len(paths)))
    return ZslDataset(name, view.root, paths, view.order.labels, view.split, view.attributes, dict(view.sources))


def check_dataset(dataset: str | DatasetSpec, root: str | Path | None = None, features: str | None = None) -> None:
    """Raise the :class:`UserError` a trial on ``name`` would raise about its data, before any trial starts: the
    folder, its split files and, for images (``features`` None), the image list and every file on disk. Reads no
    image; with ``features`` the feature file itself is left to the trial."""
    if features is None:
        load_dataset(dataset, root)
    else:
        read_dataset(dataset, root)


# ---------------------------------------------------------------------------------------------- inspect

INSPECT_KEYS = (
    "classes",
    "attributes",
    "seen",
    "unseen",
    "trainval",
    "test_seen",
    "test_unseen",
    "train",
    "val",
    "images",
    "images_listed",
    "images_missing",
)


def inspect_dataset(dataset: str | DatasetSpec, root: str | Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Counts of a dataset folder, as printed by ``zsl-bench data inspect``.

    Returns:
        ``(report, notes)``. ``report`` has the :data:`INSPECT_KEYS` (ints, or None when unknowable):
        ``classes``, ``attributes``; ``seen`` / ``unseen`` classes (from the labels, else from
        trainvalclasses.txt / testclasses.txt); ``trainval``, ``test_seen``, ``test_unseen`` images;
        ``train`` / ``val`` the honest validation split (images of the train / val classes outside the test
        sets); ``images`` N; ``images_listed`` the images with a known file, ``images_missing`` those not on
        disk — plus ``sources``. ``notes`` are remarks for a human (what was not checked and why).

    Raises:
        UserError: what :func:`read_dataset` rejects, or images missing from an existing image folder.
    """
    view = read_dataset(dataset, root)
    split, order = view.split, view.order
    report: dict[str, Any] = dict.fromkeys(INSPECT_KEYS)
    report.update(classes=split.num_classes, attributes=split.num_attributes)
    notes: list[str] = []
    if order is not None:
        report["seen"] = int(np.unique(order.labels[np.r_[split.trainval_loc, split.test_seen_loc]]).size)
        report["unseen"] = int(np.unique(order.labels[split.test_unseen_loc]).size)
    else:
        lists = class_lists(view.root, split)
        report["seen"] = int(lists["seen"][1].size) if "seen" in lists else None
        report["unseen"] = int(lists["unseen"][1].size) if "unseen" in lists else None
        notes.append("no per-image labels: the split was not checked against image classes")
    report.update(
        trainval=int(split.trainval_loc.size),
        test_seen=int(split.test_seen_loc.size),
        test_unseen=int(split.test_unseen_loc.size),
    )
    honest = honest_train_val(split)
    if honest is not None:
        report["train"], report["val"] = int(honest[0].size), int(honest[1].size)
    report["images"] = int(order.labels.size) if order is not None else num_images(split)
    paths = view.image_paths()
    report["images_listed"] = len(paths) if paths is not None else 0
    missing = view.missing_images()
    if missing and view.image_dir.is_dir():
        raise UserError(_missing_message(view, missing, len(paths or [])))
    report["images_missing"] = len(missing)
    if paths is None:
        notes.append(
            f"no per-image file list (image order from: {view.sources['order']}); training needs res101.mat or "
            "image_files.txt (or the dataset's own image list)"
        )
    elif not view.image_dir.is_dir():
        notes.append(f"no image folder at {view.image_dir}: checked the split files only")
    report["sources"] = dict(view.sources)
    return report, notes
