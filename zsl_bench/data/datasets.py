"""Dataset registry: name → loader(root) → ``ZslDataset`` (images + labels + the xlsa17 split)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zsl_bench.data.xlsa17 import Xlsa17Split, check_split_consistency, read_att_splits, read_image_list
from zsl_bench.errors import UserError
from zsl_bench.registry import Registry


@dataclass(frozen=True)
class ZslDataset:
    """A zero-shot dataset in xlsa17 index order.

    ``image_paths`` [N] absolute paths, ``labels`` [N] 0-based class ids into ``split.class_names``,
    ``split.att`` [C, A] the class semantic vectors.
    """

    name: str
    root: Path
    image_paths: list[Path]
    labels: np.ndarray
    split: Xlsa17Split


DATASETS: Registry[Callable[[Path], ZslDataset]] = Registry("dataset")


def default_root(name: str) -> Path:
    """Where a dataset lives when the config gives no ``data.root``: ``data/<name>``."""
    return Path("data") / name


def load_dataset(name: str, root: str | Path | None = None) -> ZslDataset:
    """Load the registered dataset ``name`` from ``root`` (default ``data/<name>``)."""
    loader = DATASETS.get(name)
    return loader(Path(root) if root is not None else default_root(name))


@DATASETS.register("synth")
def load_synth(root: Path) -> ZslDataset:
    """The synthetic dataset written by ``zsl-bench data synth`` (xlsa17 layout + ``image_files.txt``)."""
    root = Path(root).resolve()
    if not (root / "att_splits.mat").is_file():
        raise UserError(
            f"no synthetic dataset at {root}; generate it with `zsl-bench data synth --out {root}` "
            "or point --data-root / data.root at it"
        )
    return _load_xlsa17_with_list(name="synth", root=root)


def _load_xlsa17_with_list(name: str, root: Path) -> ZslDataset:
    split = read_att_splits(root / "att_splits.mat")
    files, labels = read_image_list(root / "image_files.txt")
    if labels.size and labels.max() >= split.num_classes:
        raise UserError(f"{root / 'image_files.txt'}: label {labels.max() + 1} exceeds {split.num_classes} classes")
    check_split_consistency(split, labels)
    return ZslDataset(name, root, [root / f for f in files], labels, split)
