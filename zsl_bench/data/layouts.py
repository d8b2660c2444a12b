"""Where the images of CUB, AWA2 and SUN live, and in which order the xlsa17 indices count them.

The xlsa17 ``*_loc`` indices point into the rows of ``res101.mat``. Without that file the order is recovered
from what the dataset itself ships. Sources, tried in this order by :func:`recover_order`:

1. ``res101.mat`` (``image_files`` [N, 1] absolute paths from the xlsa17 authors' cluster, ``labels`` [N, 1]
   1-based): each path is resolved by its suffix after the layout's anchor folder (``images/`` for CUB and
   SUN, ``JPEGImages/`` for AWA2; robust to the double slash of the AWA2 paths).
2. ``image_files.txt`` (this project's list, see :mod:`zsl_bench.data.xlsa17`), relative to the dataset folder.
3. The dataset's own list:

   * CUB: ``images.txt`` + ``image_class_labels.txt`` (in the dataset folder or in ``CUB_200_2011/``); the
     original class number maps to a class through the ``NNN.`` prefix of ``allclasses_names``.
   * AWA2: every image of ``Animals_with_Attributes2/JPEGImages/<class>/`` sorted by (class folder, file
     name). When the proposed-split lists ``image_label_PS.txt`` + ``test_seen_PS.txt`` (distributed by some
     ZSL repositories) are in the dataset folder, the same names are read from them instead, so that missing
     images can be named.
4. SUN only, labels without files: xlsa17 orders SUN class-major, 20 images per class in ``allclasses_names``
   order (717 x 20 = 14340; checked on the real split against testclasses.txt / trainclasses1.txt /
   valclasses1.txt). This gives every index its class, not its file: training needs ``res101.mat``.

Layout of a dataset folder (``--root``)::

    CUB/   att_splits.mat [res101.mat] [sent_splits.mat] CUB_200_2011/images/<class>/<file>.jpg
           CUB_200_2011/images.txt CUB_200_2011/image_class_labels.txt attributes.txt
    AWA2/  att_splits.mat [res101.mat] Animals_with_Attributes2/JPEGImages/<class>/<file>.jpg
    SUN/   att_splits.mat [res101.mat] images/<letter>/<class>/.../<file>.jpg
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from zsl_bench.data.xlsa17 import Xlsa17Split, check_split_consistency, num_images, one_line, read_image_list
from zsl_bench.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SUN_IMAGES_PER_CLASS = 20


@dataclass(frozen=True)
class Layout:
    """Where one real dataset keeps its images.

    Attributes:
        name: registry name (``cub``).
        folder: the dataset folder's name in xlsa17 and under ``data/`` (``CUB``).
        image_dir: the image folder relative to the dataset folder.
        anchor: the path component after which a ``res101.mat`` path is relative to ``image_dir``.
    """

    name: str
    folder: str
    image_dir: str
    anchor: str


LAYOUTS: dict[str, Layout] = {
    "cub": Layout("cub", "CUB", "CUB_200_2011/images", "images"),
    "awa2": Layout("awa2", "AWA2", "Animals_with_Attributes2/JPEGImages", "JPEGImages"),
    "sun": Layout("sun", "SUN", "images", "images"),
}


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


# ------------------------------------------------------------------------------------------------ res101


def _res101_suffix(raw: str, anchor: str) -> str | None:
    """The part of an xlsa17 absolute path after the last ``anchor`` folder, or None if it has none."""
    parts = [p for p in raw.replace("\\", "/").split("/") if p]
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == anchor:
            return "/".join(parts[i + 1 :])
    return None


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


def read_res101(path: Path, split: Xlsa17Split, layout: Layout) -> ImageOrder:
    """Image order and labels from an xlsa17 ``res101.mat`` (only ``image_files`` and ``labels`` are read).

    Returns:
        ``files`` relative to the dataset folder (``layout.image_dir/<suffix after anchor>``), ``labels`` [N].

    Raises:
        UserError: unreadable file, missing field, a path without the anchor folder, labels out of range.
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
    files = []
    for i, p in enumerate(raw):
        suffix = _res101_suffix(p, layout.anchor)
        if suffix is None:
            raise UserError(
                f"{path} image_files row {i + 1} ({p[:80]!r}) has no '{layout.anchor}/' folder; "
                f"expected the xlsa17 {layout.folder} paths"
            )
        files.append(f"{layout.image_dir}/{suffix}")
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


def cub_order(root: Path, split: Xlsa17Split) -> ImageOrder | None:
    """CUB order from ``images.txt`` + ``image_class_labels.txt``; None when ``images.txt`` is absent."""
    images = _find(root, "images.txt", ("", "CUB_200_2011"))
    if images is None:
        return None
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
    files = [f"{LAYOUTS['cub'].image_dir}/{rel}" for _, rel in paths]
    return ImageOrder(labels, files, images.relative_to(root).as_posix())


# ------------------------------------------------------------------------------------------------ AWA2


def _awa2_names_on_disk(image_dir: Path) -> list[tuple[str, str]]:
    out = []
    for folder in os.scandir(image_dir):
        if folder.is_dir():
            out.extend(
                (folder.name, f.name)
                for f in os.scandir(folder.path)
                if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES)
            )
    return out


def _awa2_names_from_lists(root: Path) -> tuple[list[tuple[str, str]], str] | None:
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


def awa2_order(root: Path, split: Xlsa17Split) -> ImageOrder | None:
    """AWA2 order: images sorted by (class folder, file name), from the PS lists or disk; None if neither."""
    layout = LAYOUTS["awa2"]
    image_dir = root / layout.image_dir
    found = _awa2_names_from_lists(root)  # the full list: missing images are then reported by name
    if found is not None:
        names, source = found
    elif image_dir.is_dir():
        names, source = _awa2_names_on_disk(image_dir), f"{layout.image_dir} listing"
    else:
        return None
    names = sorted(set(names))
    expected = num_images(split)
    if len(names) != expected:
        raise UserError(
            f"{root / layout.image_dir}: found {len(names)} images ({source}) but att_splits.mat indexes "
            f"{expected}; the sorted order only holds for the complete AwA2 image set: re-fetch it "
            "(`zsl-bench data fetch awa2`) or add res101.mat"
        )
    index = {name: c for c, name in enumerate(split.class_names)}
    unknown = sorted({folder for folder, _ in names if folder not in index})
    if unknown:
        raise UserError(
            f"{root / layout.image_dir}: class folder {unknown[0]!r} is not a class of att_splits.mat "
            f"({len(unknown)} unknown); the images and the split do not belong together"
        )
    labels = np.array([index[folder] for folder, _ in names], dtype=np.int64)
    files = [f"{layout.image_dir}/{folder}/{name}" for folder, name in names]
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


# ---------------------------------------------------------------------------------------------- dispatch


def recover_order(name: str, root: Path, split: Xlsa17Split) -> ImageOrder | None:
    """The image order of dataset ``name`` in ``root`` from the best available source (see module doc)."""
    layout = LAYOUTS.get(name)
    if layout is not None and (root / "res101.mat").is_file():
        return read_res101(root / "res101.mat", split, layout)
    if (root / "image_files.txt").is_file():
        files, labels = read_image_list(root / "image_files.txt")
        return ImageOrder(labels, files, "image_files.txt")
    if name == "cub":
        return cub_order(root, split)
    if name == "awa2":
        return awa2_order(root, split)
    if name == "sun":
        return class_major_labels(split)
    return None
