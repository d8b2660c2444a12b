"""Image-order rules: in which order the xlsa17 indices count a dataset's images, and where the files are.

The xlsa17 ``*_loc`` indices point into the rows of ``res101.mat``. Sources, tried in this order by the reader
(:func:`zsl_bench.data.datasets.read_dataset`) with the dataset's declaration (:mod:`zsl_bench.data.declare`):

1. ``res101.mat`` (``image_files`` [N, 1] absolute paths from the xlsa17 authors' cluster, ``labels`` [N, 1]
   1-based), read by :func:`read_res101`: each path is resolved by its suffix after the last of the declared
   anchor folders (``images/`` for CUB and SUN, ``JPEGImages/`` for AwA1/AwA2, ``JPEGImages/`` or
   ``ayahoo_test_images/`` for aPY; robust to the double slash of the AWA2 paths).
2. ``image_files.txt`` (this project's list, see :mod:`zsl_bench.data.xlsa17`), relative to the dataset folder.
3. The declaration's own rule, made here:

   * :func:`cub_order` (CUB): ``images.txt`` + ``image_class_labels.txt`` (in the dataset folder or in
     ``CUB_200_2011/``); the original class number maps to a class through the ``NNN.`` prefix of
     ``allclasses_names``.
   * :func:`sorted_listing_order` (AWA2): every image of ``<image_dir>/<class>/`` sorted by (class folder, file
     name). When the proposed-split lists ``image_label_PS.txt`` + ``test_seen_PS.txt`` (distributed by some
     ZSL repositories) are in the dataset folder, the same names are read from them instead, so that missing
     images can be named.
   * :func:`class_major_labels` (SUN), labels without files: xlsa17 orders SUN class-major, 20 images per class
     in ``allclasses_names`` order (717 x 20 = 14340; checked on the real split against testclasses.txt /
     trainclasses1.txt / valclasses1.txt). This gives every index its class, not its file: training needs
     ``res101.mat``.

aPY and AwA1 have no rule: their split files alone give counts; training needs ``res101.mat`` or
``image_files.txt``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from zsl_bench.data.split_checks import check_split_consistency, num_images
from zsl_bench.data.xlsa17 import Xlsa17Split, one_line
from zsl_bench.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SUN_IMAGES_PER_CLASS = 20


@dataclass(frozen=True)
class ImageOrder:
    """Per-image facts of a dataset in xlsa17 index order.

    Attributes:
        labels: ``[N]`` int64 0-based class ids into ``allclasses_names``.
        files: ``[N]`` image paths relative to the dataset folder, or None when only the labels are known.
        source: where the order came from (a file name or the rule used).
    """

    labels: np.ndarray
    files: list[str] | None
    source: str


OrderRule = Callable[[Path, Xlsa17Split], "ImageOrder | None"]

# ------------------------------------------------------------------------------------------------ res101


def _cell_strings(raw: np.ndarray, where: str) -> list[str]:
    out = []
    for item in raw.ravel(order="F"):
        while isinstance(item, np.ndarray) and item.size == 1:
            item = item.ravel()[0]
        if isinstance(item, bytes):
            item = item.decode("utf-8", "replace")
        if not isinstance(item, str):
            raise UserError(f"{where} is not a cell array of path strings; replace the file with the xlsa17 one")
        out.append(item.strip())
    return out


def read_res101_fields(path: Path, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``fields`` of an xlsa17 ``res101.mat`` (only those are read from the file).

    Raises:
        UserError: unreadable file or a missing field.
    """
    try:
        mat = scipy.io.loadmat(str(path), variable_names=fields)
    except Exception as exc:  # corrupt / HDF5 / foreign files fail inside scipy in many ways
        raise UserError(
            f"{path} is not a readable MATLAB v5 res101.mat ({type(exc).__name__}: {one_line(exc)}); "
            "replace it with the xlsa17 one"
        ) from None
    for field in fields:
        if field not in mat:
            raise UserError(f"{path} has no field '{field}'; use the res101.mat of the xlsa17 release")
    return {field: np.asarray(mat[field]) for field in fields}


def _resolve(raw: str, anchors: dict[str, str]) -> str | None:
    """``<image dir>/<suffix>`` for the last anchor folder of the xlsa17 path ``raw``, or None if it has none."""
    parts = [p for p in raw.replace("\\", "/").split("/") if p]
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in anchors:
            return "/".join([anchors[parts[i]], *parts[i + 1 :]])
    return None


def read_res101(path: Path, split: Xlsa17Split, anchors: tuple[tuple[str, str], ...], what: str = "") -> ImageOrder:
    """Image order and labels from an xlsa17 ``res101.mat`` (only ``image_files`` and ``labels`` are read).

    Args:
        path: the file.
        split: the dataset's split (labels must be classes of it).
        anchors: (anchor folder, image folder relative to the dataset folder) pairs; a path maps to
            ``<image folder>/<suffix after the anchor>`` of the last anchor folder it contains.
        what: the dataset folder's name, for messages.

    Returns:
        ``files`` relative to the dataset folder, ``labels`` [N] 0-based.

    Raises:
        UserError: unreadable file, missing field, a path without any anchor folder, labels out of range.
    """
    mat = read_res101_fields(path, ("image_files", "labels"))
    raw = _cell_strings(mat["image_files"], f"{path} field 'image_files'")
    labels = mat["labels"].ravel(order="F")
    if labels.size != len(raw):
        raise UserError(f"{path}: {len(raw)} image_files but {labels.size} labels; the file is inconsistent")
    if labels.dtype.kind not in "biuf" or (labels.size and (labels.min() < 1 or labels.max() > split.num_classes)):
        raise UserError(
            f"{path} field 'labels' must hold 1-based class ids in 1..{split.num_classes}; "
            "the res101.mat and att_splits.mat do not belong together"
        )
    lookup = dict(anchors)
    files = []
    for i, p in enumerate(raw):
        rel = _resolve(p, lookup)
        if rel is None:
            folders = " or ".join(f"'{a}/'" for a in lookup)
            raise UserError(
                f"{path} image_files row {i + 1} ({p[:80]!r}) has no {folders} folder; "
                f"expected the xlsa17 {what or 'dataset'} paths"
            )
        files.append(rel)
    return ImageOrder(labels.astype(np.int64) - 1, files, "res101.mat")


# ------------------------------------------------------------------------------------------------- CUB


def _find(root: Path, name: str, subdirs: tuple[str, ...]) -> Path | None:
    for sub in subdirs:
        candidate = root / sub / name
        if candidate.is_file():
            return candidate
    return None


def _id_lines(path: Path, columns: int) -> list[list[str]]:
    """Lines ``<1-based id> <field>…`` with ids 1..n in order; a malformed line raises UserError."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} cannot be read as UTF-8 text ({type(exc).__name__}); replace it") from exc
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        parts = line.split(maxsplit=columns - 1)
        if len(parts) != columns or parts[0] != str(len(rows) + 1):
            raise UserError(
                f"{path} line {i + 1} ({line[:60]!r}) is not '<id {len(rows) + 1}> <value>'; "
                "use the file from the CUB_200_2011 archive"
            )
        rows.append(parts)
    return rows


def cub_order(image_dir: str, subdirs: tuple[str, ...] = ("",)) -> OrderRule:
    """Rule: CUB-style ``images.txt`` + ``image_class_labels.txt`` (first found in ``subdirs``), paths relative to
    ``image_dir``; the rule gives None when ``images.txt`` is absent."""

    def rule(root: Path, split: Xlsa17Split) -> ImageOrder | None:
        images = _find(root, "images.txt", subdirs)
        return None if images is None else _cub_lists(root, split, images, image_dir)

    return rule


def _cub_lists(root: Path, split: Xlsa17Split, images: Path, image_dir: str) -> ImageOrder:
    labels_file = images.parent / "image_class_labels.txt"
    if not labels_file.is_file():
        raise UserError(f"{labels_file} not found beside {images.name}; CUB needs both (re-fetch CUB_200_2011)")
    by_number: dict[int, int] = {}
    for c, name in enumerate(split.class_names):
        head = name.split(".", 1)[0]
        if not head.isdigit():
            raise UserError(
                f"att_splits.mat class name {name!r} has no 'NNN.' prefix, so {labels_file} cannot be mapped; "
                "use the xlsa17 CUB att_splits.mat"
            )
        by_number[int(head)] = c
    paths = _id_lines(images, 2)
    numbers = _id_lines(labels_file, 2)
    if len(paths) != len(numbers):
        raise UserError(f"{images} lists {len(paths)} images but {labels_file} {len(numbers)}; use matching files")
    labels = np.empty(len(paths), dtype=np.int64)
    for i, ((_, rel), (_, number)) in enumerate(zip(paths, numbers, strict=True)):
        c = by_number.get(int(number)) if number.isdigit() else None
        if c is None:
            raise UserError(f"{labels_file} line {i + 1}: class {number!r} is not a class of att_splits.mat")
        if rel.split("/", 1)[0] != split.class_names[c]:
            raise UserError(
                f"{images} line {i + 1}: {rel!r} is not in the folder of its class {split.class_names[c]!r} "
                f"({labels_file.name}); the two lists do not belong together"
            )
        labels[i] = c
    files = [f"{image_dir}/{rel}" for _, rel in paths]
    return ImageOrder(labels, files, images.relative_to(root).as_posix())


# ------------------------------------------------------------------------------------ sorted listing (AWA2)


def _names_on_disk(image_dir: Path) -> list[tuple[str, str]]:
    out = []
    for folder in os.scandir(image_dir):
        if folder.is_dir():
            out.extend(
                (folder.name, f.name)
                for f in os.scandir(folder.path)
                if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES)
            )
    return out


def _names_from_ps_lists(root: Path) -> tuple[list[tuple[str, str]], str] | None:
    lists = [root / "image_label_PS.txt", root / "test_seen_PS.txt"]
    if not all(p.is_file() for p in lists):
        return None
    out = []
    for path in lists:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if not line.strip():
                continue
            rel = line.split()[0]
            if rel.count("/") != 1:
                raise UserError(f"{path} line {i + 1} ({line[:60]!r}) is not '<class>/<file> <label>'")
            out.append(tuple(rel.split("/")))
    return out, " + ".join(p.name for p in lists)


def sorted_listing_order(image_dir: str, refetch: str) -> OrderRule:
    """Rule: images sorted by (class folder, file name) under ``image_dir``, from the PS lists or the disk; the
    rule gives None when neither exists. ``refetch`` (a command) is suggested when the set is incomplete."""

    def rule(root: Path, split: Xlsa17Split) -> ImageOrder | None:
        found = _names_from_ps_lists(root)  # the full list: missing images are then reported by name
        if found is not None:
            names, source = found
        elif (root / image_dir).is_dir():
            names, source = _names_on_disk(root / image_dir), f"{image_dir} listing"
        else:
            return None
        return _sorted_names(root, split, sorted(set(names)), source=source, image_dir=image_dir, refetch=refetch)

    return rule


def _sorted_names(
    root: Path, split: Xlsa17Split, names: list[tuple[str, str]], *, source: str, image_dir: str, refetch: str
) -> ImageOrder:
    """The order of the ``[N]`` (class folder, file name) ``names`` found under ``image_dir`` (sorted, from
    ``source``); UserError when they are not the split's N images of its classes (``refetch`` says how to fix)."""
    expected = num_images(split)
    if len(names) != expected:
        raise UserError(
            f"{root / image_dir}: found {len(names)} images ({source}) but att_splits.mat indexes "
            f"{expected}; the sorted order only holds for the complete image set: re-fetch it "
            f"({refetch}) or add res101.mat"
        )
    index = {name: c for c, name in enumerate(split.class_names)}
    unknown = sorted({folder for folder, _ in names if folder not in index})
    if unknown:
        raise UserError(
            f"{root / image_dir}: class folder {unknown[0]!r} is not a class of att_splits.mat "
            f"({len(unknown)} unknown); the images and the split do not belong together"
        )
    labels = np.array([index[folder] for folder, _ in names], dtype=np.int64)
    files = [f"{image_dir}/{folder}/{name}" for folder, name in names]
    return ImageOrder(labels, files, source)


# ------------------------------------------------------------------------------------------------- SUN


def class_major_labels(split: Xlsa17Split, per_class: int = SUN_IMAGES_PER_CLASS) -> ImageOrder | None:
    """Labels ``i // per_class`` when the split has exactly ``C * per_class`` images and is consistent with
    them (unseen classes have no trainval image, …); otherwise None."""
    n = split.num_classes * per_class
    if num_images(split) != n:
        return None
    labels = np.arange(n, dtype=np.int64) // per_class
    try:
        check_split_consistency(split, labels)
    except UserError:
        return None
    # Each class's images must sit in one split family: all test-unseen, or all trainval + test-seen.
    unseen = np.zeros(n, dtype=bool)
    unseen[split.test_unseen_loc] = True
    per = unseen.reshape(split.num_classes, per_class)
    if not np.all(per.all(axis=1) | ~per.any(axis=1)):
        return None
    return ImageOrder(labels, None, f"class-major rule ({per_class} images per class)")


def class_major_order(per_class: int = SUN_IMAGES_PER_CLASS) -> OrderRule:
    """Rule: :func:`class_major_labels` (labels only, no files)."""
    return lambda _root, split: class_major_labels(split, per_class)
