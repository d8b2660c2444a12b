"""What ``zsl-bench data fetch`` can fetch: :class:`Archive`, :class:`Target` and the target lookup.

Callers: :mod:`zsl_bench.data.declare` and :mod:`zsl_bench.data.builtin` (a dataset declares its archives),
:mod:`zsl_bench.data.fetch` (``fetch``), the ``data fetch`` command of :mod:`zsl_bench.cli`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zsl_bench.errors import UserError


@dataclass(frozen=True)
class Archive:
    """One downloadable archive.

    Attributes:
        filename: the file name (also the key for ``--sha256 FILE=HEX``).
        url: the official download URL.
        sha256: the official checksum, or None when none is known (then: trust on first use, recorded).
        size: bytes, when known.
        anchor: a path that must exist inside the unpacked tree; the folder holding it is what gets placed.
    """

    filename: str
    url: str
    sha256: str | None
    size: int | None
    anchor: str


@dataclass(frozen=True)
class Target:
    """A ``data fetch`` target: its archives and what marks it as installed under ``--root``."""

    name: str
    archives: tuple[Archive, ...]
    markers: tuple[str, ...]
    dataset_folder: bool = True  # False: --root holds the dataset folders (xlsa17)


XLSA17 = Target(
    "xlsa17",
    (
        Archive(
            "xlsa17.zip",
            "https://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip",
            None,  # no published checksum known
            None,
            "data/CUB/att_splits.mat",
        ),
    ),
    tuple(f"{ds}/{f}" for ds in ("CUB", "AWA2", "SUN") for f in ("att_splits.mat", "res101.mat")),
    dataset_folder=False,
)

# Targets that are no dataset's own (every registered dataset is a target too, see fetch_target).
EXTRA_TARGETS: dict[str, Target] = {XLSA17.name: XLSA17}


def target_names() -> list[str]:
    """Every ``data fetch`` target: the extra ones (xlsa17) and the registered datasets."""
    from zsl_bench.data.declare import DATASETS

    return [*EXTRA_TARGETS, *DATASETS.names()]


def fetch_target(name: str) -> Target:
    """The target ``name``: an extra target, else the declared fetch target of the dataset ``name``.

    Raises:
        UserError: unknown name (with close matches), or a dataset that declares nothing to fetch (its reason).
    """
    from zsl_bench.data.declare import DATASETS, dataset_spec
    from zsl_bench.registry import unknown_name_message

    if name in EXTRA_TARGETS:
        return EXTRA_TARGETS[name]
    if name not in DATASETS:
        raise UserError(unknown_name_message("fetch target", name, target_names()))
    spec = dataset_spec(name)
    if spec.fetch is None:
        why = spec.no_fetch or f"dataset {name!r} declares no archives to download; get its files as its provider says"
        raise UserError(f"zsl-bench data fetch {name}: {why}")
    return spec.fetch


def default_fetch_root(target: Target) -> Path:
    """``data`` for a target that fills several dataset folders (xlsa17), else the dataset's default folder."""
    if not target.dataset_folder:
        return Path("data")
    from zsl_bench.data.declare import dataset_spec

    return dataset_spec(target.name).default_root()
