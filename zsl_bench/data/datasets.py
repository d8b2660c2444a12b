"""Dataset registry: name → reader(root) → :class:`DatasetView`; :func:`load_dataset` → :class:`ZslDataset`.

Registered datasets: ``cub``, ``awa2``, ``sun`` (the xlsa17 benchmarks, folder layouts in
:mod:`zsl_bench.data.layouts`) and ``synth`` (:mod:`zsl_bench.data.synth`). ``--root`` / ``data.root`` is the
dataset's folder, the one holding ``att_splits.mat``; by default ``data/CUB``, ``data/AWA2``, ``data/SUN``,
``data/synth``.

Reading a folder (:func:`read_dataset`) needs only ``att_splits.mat``; everything else adds to what is known:

* the image order (res101.mat, image_files.txt, the dataset's own lists, or for SUN the class-major rule) gives
  every index its class, so the split is checked against the labels (unseen classes have no trainval image,
  test-seen classes are seen, indices < N) and against every xlsa17 class list present (trainvalclasses.txt,
  testclasses.txt, trainclasses1.txt, valclasses1.txt);
* the validation class split comes from att_splits.mat, sent_splits.mat or the class lists
  (:mod:`zsl_bench.data.splits`);
* attribute names and groups from :mod:`zsl_bench.data.attributes`.

:func:`load_dataset` (what training calls) additionally requires a file for every index and every file on disk.
:func:`inspect_dataset` (``zsl-bench data inspect``) reports counts and works on split files alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl_bench.data.attributes import AttributeInfo, attribute_info
from zsl_bench.data.layouts import LAYOUTS, ImageOrder, recover_order
from zsl_bench.data.splits import check_class_lists, class_lists, fill_val_split, honest_train_val
from zsl_bench.data.xlsa17 import (
    Xlsa17Split,
    check_split_consistency,
    check_split_indices,
    num_images,
    read_att_splits,
    read_image_list,
)
from zsl_bench.errors import UserError
from zsl_bench.registry import Registry


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
    """

    name: str
    root: Path
    split: Xlsa17Split
    order: ImageOrder | None
    attributes: AttributeInfo | None
    sources: dict[str, str]
    image_dir: Path

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


DATASETS: Registry[Callable[[Path], DatasetView]] = Registry("dataset")

_FOLDERS = {"synth": "synth", **{name: layout.folder for name, layout in LAYOUTS.items()}}


def default_root(name: str) -> Path:
    """Where a dataset lives when the config gives no ``data.root``: ``data/CUB``, ``data/synth``, …"""
    return Path("data") / _FOLDERS.get(name, name)


def _fetch_hint(name: str, root: Path) -> str:
    if name == "sun":
        return (
            f"`zsl-bench data fetch xlsa17 --root {root.parent}` (res101.mat) and "
            f"`zsl-bench data fetch sun --root {root}`"
        )
    return f"`zsl-bench data fetch {name} --root {root}`"


# ------------------------------------------------------------------------------------------------ readers


def _real_reader(name: str) -> Callable[[Path], DatasetView]:
    def read(root: Path) -> DatasetView:
        root = Path(root).resolve()
        if not root.is_dir():
            raise UserError(
                f"dataset folder {root} not found; pass --root (the folder holding att_splits.mat) or get the "
                f"split files with `zsl-bench data fetch xlsa17 --root {root.parent}`"
            )
        att = root / "att_splits.mat"
        split = read_att_splits(att)
        check_split_indices(split, source=att)
        order = recover_order(name, root, split)
        return _finish(name, root, split, order, root / LAYOUTS[name].image_dir)

    read.__name__ = f"read_{name}"
    read.__doc__ = f"Read the {name.upper()} folder ``root`` (xlsa17 split + whatever image lists it holds)."
    return read


for _name in LAYOUTS:
    DATASETS.register(_name)(_real_reader(_name))


@DATASETS.register("synth")
def read_synth(root: Path) -> DatasetView:
    """The synthetic dataset written by ``zsl-bench data synth`` (xlsa17 layout + ``image_files.txt``)."""
    root = Path(root).resolve()
    if not (root / "att_splits.mat").is_file():
        raise UserError(
            f"no synthetic dataset at {root}; generate it with `zsl-bench data synth --out {root}` "
            "or point --data-root / data.root at it"
        )
    split = read_att_splits(root / "att_splits.mat")
    files, labels = read_image_list(root / "image_files.txt")
    if labels.size and labels.max() >= split.num_classes:
        raise UserError(f"{root / 'image_files.txt'}: label {labels.max() + 1} exceeds {split.num_classes} classes")
    return _finish("synth", root, split, ImageOrder(labels, files, "image_files.txt"), root)


def _finish(name: str, root: Path, split: Xlsa17Split, order: ImageOrder | None, image_dir: Path) -> DatasetView:
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
    attributes = attribute_info(name, root, split.num_attributes)
    sources["attributes"] = attributes.source if attributes is not None else "none"
    return DatasetView(name, root, split, order, attributes, sources, image_dir)


def read_dataset(name: str, root: str | Path | None = None) -> DatasetView:
    """Read the registered dataset ``name`` from ``root`` (default :func:`default_root`); images not needed."""
    reader = DATASETS.get(name)
    return reader(Path(root) if root is not None else default_root(name))


def _missing_message(view: DatasetView, missing: list[Path], total: int) -> str:
    shown = ", ".join(os.path.relpath(p, view.root) for p in missing[:3])
    return (
        f"{len(missing)} of {total} images are missing under {view.root} (first three: {shown}); "
        f"complete the folder, e.g. with {_fetch_hint(view.name, view.root)}"
    )


def load_dataset(name: str, root: str | Path | None = None) -> ZslDataset:
    """Load the registered dataset ``name`` from ``root`` for training: every image listed and on disk.

    Raises:
        UserError: anything :func:`read_dataset` rejects; no per-image list; images missing (how many, the
            first three).
    """
    view = read_dataset(name, root)
    paths = view.image_paths()
    if paths is None or view.order is None:
        got = "labels only (class-major rule)" if view.order is not None else "nothing"
        raise UserError(
            f"{view.root}: no per-image list for {name} (found {got}); training needs res101.mat or the "
            f"dataset's own image list: {_fetch_hint(name, view.root)}"
        )
    missing = view.missing_images()
    if missing:
        raise UserError(_missing_message(view, missing, len(paths)))
    return ZslDataset(name, view.root, paths, view.order.labels, view.split, view.attributes, dict(view.sources))


def check_dataset(name: str, root: str | Path | None = None, features: str | None = None) -> None:
    """Raise the :class:`UserError` a trial on ``name`` would raise about its data, before any trial starts: the
    folder, its split files and, for images (``features`` None), the image list and every file on disk. Reads no
    image; with ``features`` the feature file itself is left to the trial."""
    if features is None:
        load_dataset(name, root)
    else:
        read_dataset(name, root)


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


def inspect_dataset(name: str, root: str | Path | None = None) -> tuple[dict[str, Any], list[str]]:
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
    view = read_dataset(name, root)
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
        notes.append(f"no per-image file list (image order from: {view.sources['order']}); training needs one")
    elif not view.image_dir.is_dir():
        notes.append(f"no image folder at {view.image_dir}: checked the split files only")
    report["sources"] = dict(view.sources)
    return report, notes
