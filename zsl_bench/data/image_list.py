"""The per-image list of this project, ``image_files.txt``: read and write.

It mirrors xlsa17's ``res101.mat`` ``image_files`` and ``labels``: one line per image in xlsa17 index order,
``<relative/path><TAB><1-based class index>``, paths relative to the list's folder.

Callers: :mod:`zsl_bench.data.datasets` (the image order of a dataset folder) and :mod:`zsl_bench.data.synth`
(writes the synthetic dataset's list).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from zsl_bench import atomic
from zsl_bench.data.xlsa17 import one_line
from zsl_bench.errors import UserError


def read_image_list(path: Path) -> tuple[list[str], np.ndarray]:
    """Read ``image_files.txt``.

    Returns:
        ``(files, labels)``: ``files`` the ``[N]`` relative image paths in xlsa17 index order, ``labels`` the
        ``[N]`` int64 0-based class indices into ``allclasses_names``.

    Raises:
        UserError: the file is missing, a line is not ``<relative path><TAB><label >= 1>``, or a listed path
            leaves the list's folder (absolute, with ``..``, or through a symbolic link that resolves outside it).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{path} not found; expected the image list image_files.txt (<relative path><TAB><1-based label> "
            "per line) there: check the dataset directory"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} cannot be read as UTF-8 text ({one_line(exc)}); fix or replace it") from exc
    files: list[str] = []
    labels = np.empty(len(lines), dtype=np.int64)
    root = os.path.realpath(path.parent)
    folders: dict[str, str] = {}  # resolved folders of the listed paths, each resolved once
    for i, line in enumerate(lines):
        rel, labels[i] = _parse_image_line(line, path, i + 1)
        if not _resolves_inside(root, rel, folders):
            raise UserError(
                f"{path} line {i + 1} lists {rel!r}, which a symbolic link takes outside {path.parent}; every image "
                "must lie inside the dataset folder (link the whole dataset folder instead of a part of it)"
            )
        files.append(rel)
    return files, labels - 1


def _resolves_inside(root: str, rel: str, folders: dict[str, str]) -> bool:
    """Whether ``root/rel`` (``root`` already resolved) resolves inside ``root``, links followed; a path that
    does not exist yet resolves through its existing part."""
    parent, name = os.path.split(rel)
    real_parent = folders.get(parent)
    if real_parent is None:
        real_parent = folders[parent] = os.path.realpath(os.path.join(root, parent))
    full = os.path.join(real_parent, name)
    if os.path.islink(full):
        full = os.path.realpath(full)
    return os.path.commonpath([root, full]) == root


def _parse_image_line(line: str, path: Path, lineno: int) -> tuple[str, int]:
    """Validate one ``image_files.txt`` line; return its relative path and 1-based label."""
    fmt = "expected '<relative/path><TAB><1-based class index>'"
    parts = line.split("\t")
    if len(parts) != 2 or not parts[0]:
        raise UserError(f"{path} line {lineno} is malformed ({line[:80]!r}); {fmt}")
    rel, label = parts
    try:
        value = int(label)
    except ValueError:
        raise UserError(f"{path} line {lineno} has label {label[:20]!r}, not an integer; {fmt}") from None
    if value < 1:
        raise UserError(f"{path} line {lineno} has label {value} < 1; labels are 1-based class indices")
    if rel.startswith("/") or os.path.isabs(rel):
        raise UserError(f"{path} line {lineno} has absolute path {rel!r}; paths must be relative to its dir")
    if ".." in rel.replace("\\", "/").split("/"):
        raise UserError(
            f"{path} line {lineno} has path {rel[:80]!r} with '..'; paths must stay inside its dir (no '..' parts)"
        )
    return rel, value


def write_image_list(path: Path, files: list[str], labels: np.ndarray) -> None:
    """Write ``image_files.txt`` atomically.

    Args:
        path: destination file.
        files: ``[N]`` relative image paths (no tabs or newlines), in xlsa17 index order.
        labels: ``[N]`` 0-based class indices (written 1-based).
    """
    labels = np.asarray(labels).reshape(-1)
    if len(files) != labels.size:
        raise ValueError(f"{len(files)} files but {labels.size} labels")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be 0-based class indices >= 0")
    bad = [f for f in files if not f or "\t" in f or "\n" in f or "\r" in f]
    if bad:
        raise ValueError(f"image path {bad[0]!r} is empty or contains a tab or newline")
    text = "".join(f"{f}\t{int(lab) + 1}\n" for f, lab in zip(files, labels, strict=True))
    atomic.write_bytes(Path(path), text.encode("utf-8"), fsync=True, mode=0o644)
