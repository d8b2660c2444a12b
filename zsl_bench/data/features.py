"""Per-sample feature tensors instead of images: precomputed xlsa17 features and the frozen-backbone cache.

Two producers, one consumer:

* **Feature datasets** (``data.features: res101``): the xlsa17 ``res101.mat`` beside ``att_splits.mat`` holds
  ``features`` [2048, N] (ResNet-101 pooled features), ``labels`` [N, 1] (1-based) and ``image_files`` [N, 1].
  :func:`load_feature_dataset` reads it into a :class:`FeatureDataset` (the split and labels as for images, no
  image paths) whose ``source`` serves [B, 2048] vectors. :func:`write_synth_res101` writes such a file for the
  synthetic dataset (:func:`synth_features`: a fixed random non-linear map of noisy class attributes, plus noise).
* **Feature cache** (:class:`~zsl_bench.data.feature_store.FeatureStore`): backbone outputs extracted once by the
  engine (:mod:`zsl_bench.engine.features`) into a directory of ``.npy`` files, opened memory-mapped by every trial;
  :func:`read_meta` reads an entry's ``meta.json``.

Both are served by :class:`FeatureSource`, whose ``get(idx)`` returns a :class:`FeatureBatch` (the ``ImageSource``
protocol of :mod:`zsl_bench.data.stream`, so :func:`~zsl_bench.data.stream.batches` streams it unchanged).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import torch

from zsl_bench.atomic import atomic_path
from zsl_bench.data.datasets import ZslDataset, read_dataset
from zsl_bench.data.declare import DatasetSpec, dataset_spec
from zsl_bench.data.layouts import read_res101_fields
from zsl_bench.data.split_checks import check_split_consistency
from zsl_bench.data.xlsa17 import one_line
from zsl_bench.errors import UserError

STORE_FORMAT = "zsl_bench.feature_cache/1"
SINGLE = "features"  # the file name of a backbone that returns one tensor
FLIP_SUFFIX = ".hflip"
FLIP_ROWS_FILE = "hflip_rows.npy"  # int64 [M]: the images whose flipped view an entry stores
FEATURE_FILES = {"res101": "res101.mat"}  # data.features → the file beside att_splits.mat


# ----------------------------------------------------------------------------------------------- batches


@dataclass
class FeatureBatch:
    """The cached inputs of B samples.

    ``plain`` maps each backbone output name to its tensor [B, ...] for the unflipped images; ``flipped`` holds
    the same for the horizontally flipped images, or is None. ``flippable`` [B] (bool) marks the rows that have a
    flipped view when only some do (None: all of them, if there is a flipped view); the other rows of ``flipped``
    are placeholders. ``load_flipped`` (from :meth:`FeatureSource.get`) reads ``(flipped, flippable)`` when a
    flip is first asked for, so evaluation batches never copy the flipped view. ``single``: the backbone returns
    one tensor (named :data:`SINGLE`), so :meth:`select` returns a tensor rather than a dict.
    """

    plain: dict[str, torch.Tensor]
    flipped: dict[str, torch.Tensor] | None = None
    single: bool = False
    flippable: torch.Tensor | None = None
    load_flipped: Callable[[], tuple[dict[str, torch.Tensor], torch.Tensor | None]] | None = field(
        default=None, repr=False
    )

    def __len__(self) -> int:
        return next(iter(self.plain.values())).shape[0]

    def select(self, flip: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """The model input: row b from the flipped view where ``flip`` [B] (bool) is set, else the plain view."""
        if flip is not None and self.flipped is None and self.load_flipped is None:
            raise ValueError("this feature batch holds no flipped view")
        if flip is None or not bool(flip.any()):
            return self.plain[SINGLE] if self.single else dict(self.plain)
        if self.flipped is None:
            assert self.load_flipped is not None
            self.flipped, self.flippable = self.load_flipped()
            self.load_flipped = None
        if self.flippable is not None and bool((flip & ~self.flippable).any()):
            raise ValueError(
                "a sample to flip has no flipped view: the feature cache stores the flips of the images a trial "
                "can train on (all but the test images)"
            )
        out = {}
        for name, plain in self.plain.items():
            plain = plain.clone()
            plain[flip] = self.flipped[name][flip]
            out[name] = plain
        return out[SINGLE] if self.single else out


class FeatureSource:
    """Random access to per-sample features: ``len(source)``, ``source.get(idx) -> FeatureBatch``.

    ``arrays`` name → [N, ...] (memory-mapped or in memory); ``flipped`` the flipped view's arrays or None, each
    [M, ...] for the images ``flip_rows`` (int64 [M], ascending; None: all N images, M = N); ``dtypes`` name →
    torch dtype to return (default: as stored). Picklable: an instance opened from a store directory travels as
    its path.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        flipped: dict[str, np.ndarray] | None = None,
        single: bool = False,
        dtypes: dict[str, torch.dtype] | None = None,
        path: Path | None = None,
        *,
        flip_rows: np.ndarray | None = None,
    ) -> None:
        sizes = {a.shape[0] for a in arrays.values()}
        flip_sizes = {a.shape[0] for a in (flipped or {}).values()}
        if flip_rows is None:
            sizes |= flip_sizes
        elif flip_sizes - {len(flip_rows)}:
            raise ValueError(f"flipped arrays have {sorted(flip_sizes)} rows but flip_rows lists {len(flip_rows)}")
        if len(sizes) != 1:
            raise ValueError(f"feature arrays disagree on the number of samples: {sorted(sizes)}")
        self.arrays = arrays
        self.flipped = flipped
        self.single = single
        self.dtypes = dtypes or {}
        self.path = path
        self.flip_pos: np.ndarray | None = None  # [N] row of each image in the flipped arrays, -1 if none
        if flipped is not None and flip_rows is not None:
            self.flip_pos = np.full(len(self), -1, dtype=np.int64)
            self.flip_pos[np.asarray(flip_rows, dtype=np.int64)] = np.arange(len(flip_rows))

    @classmethod
    def open(cls, path: Path) -> FeatureSource:
        """The store entry at ``path`` (a ``<key>/`` directory), memory-mapped."""
        meta = read_meta(path)
        names = meta["names"]
        arrays = {n: _load(path / f"{n}.npy") for n in names}
        flipped = {n: _load(path / f"{n}{FLIP_SUFFIX}.npy") for n in names} if meta["hflip"] else None
        some = meta["hflip"] and meta.get("hflip_rows") is not None  # flips of some images only
        rows = np.asarray(_load(path / FLIP_ROWS_FILE)) if some else None
        dtypes = {n: getattr(torch, meta["dtypes"][n]) for n in names}
        return cls(arrays, flipped, meta["single"], dtypes, path, flip_rows=rows)

    @property
    def has_flipped(self) -> bool:
        return self.flipped is not None

    def __len__(self) -> int:
        return next(iter(self.arrays.values())).shape[0]

    def get(self, idx: np.ndarray | Sequence[int]) -> FeatureBatch:
        """Samples ``idx`` [B] → a :class:`FeatureBatch` (copies; the flipped view is read when first used)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        plain = {n: self._rows(a, idx, n) for n, a in self.arrays.items()}
        if self.flipped is None:
            return FeatureBatch(plain, None, self.single)
        return FeatureBatch(plain, None, self.single, load_flipped=lambda: self._flipped_rows(idx, plain))

    def _flipped_rows(
        self, idx: np.ndarray, plain: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The flipped view of samples ``idx`` [B] and which of them have one ([B] bool; None: all); ``plain``
        (their plain view) fills the rows without one."""
        assert self.flipped is not None
        if self.flip_pos is None:
            return {n: self._rows(a, idx, n) for n, a in self.flipped.items()}, None
        pos = self.flip_pos[idx]
        have = pos >= 0
        if have.all():
            return {n: self._rows(a, pos, n) for n, a in self.flipped.items()}, None
        flipped = {n: t.clone() for n, t in plain.items()}
        mask = torch.from_numpy(have)
        for n, a in self.flipped.items():
            flipped[n][mask] = self._rows(a, pos[have], n)
        return flipped, mask

    def _rows(self, array: np.ndarray, idx: np.ndarray, name: str) -> torch.Tensor:
        rows = torch.from_numpy(np.ascontiguousarray(array[idx]))
        dtype = self.dtypes.get(name)
        return rows if dtype is None or rows.dtype == dtype else rows.to(dtype)

    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            return self.__dict__
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if set(state) == {"path"}:
            state = FeatureSource.open(state["path"]).__dict__
        self.__dict__.update(state)


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise UserError(
            f"feature cache file {path} is unreadable ({one_line(exc)}); "
            f"remove the entry with `zsl-bench cache rm {path.parent.name}` and run again"
        ) from None


def read_meta(entry: Path) -> dict[str, Any]:
    """``meta.json`` of a store entry; unreadable or foreign → ``UserError``."""
    path = Path(entry) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is missing or unreadable ({one_line(exc)}); remove {entry} and run again") from None
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        raise UserError(f"{path} is not a {STORE_FORMAT} file; remove {entry} and run again")
    return meta


# ------------------------------------------------------------------------------------------ res101 files


@dataclass(frozen=True)
class FeatureDataset(ZslDataset):
    """A :class:`~zsl_bench.data.datasets.ZslDataset` whose samples are feature vectors (``image_paths`` empty).

    ``source`` serves them: ``source.get(idx).select()`` → float32 [B, D].
    """

    source: FeatureSource | None = None
    feature_file: Path | None = None


_LOADED: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}


def read_res101(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``features`` as float32 [N, D] and ``labels`` as 0-based int64 [N] of an xlsa17 ``res101.mat``.

    Kept per process (one file at a time), so a reused worker reads it once.

    Raises:
        UserError: unreadable file, missing field, or shapes that do not fit together.
    """
    path = Path(path).resolve()
    stat = path.stat()
    memo = (str(path), stat.st_mtime_ns, stat.st_size)
    if memo in _LOADED:
        return _LOADED[memo]
    mat = read_res101_fields(path, ("features", "labels"))
    raw, labels = mat["features"], mat["labels"].ravel(order="F")
    if raw.ndim != 2 or raw.dtype.kind not in "biuf":
        raise UserError(f"{path} field 'features' must be a numeric [dim, images] matrix, got {raw.dtype} {raw.shape}")
    if raw.shape[1] != labels.size:
        hint = " (it looks transposed)" if raw.shape[0] == labels.size else ""
        raise UserError(
            f"{path}: 'features' has {raw.shape[1]} columns but there are {labels.size} labels{hint}; "
            "features must be [dim, images]"
        )
    if labels.dtype.kind not in "biuf" or (labels.size and labels.min() < 1):
        raise UserError(f"{path} field 'labels' must hold 1-based class ids")
    features = np.ascontiguousarray(raw.T, dtype=np.float32)
    if not np.isfinite(features).all():
        raise UserError(f"{path}: 'features' holds NaN or infinite values; replace the file")
    _LOADED.clear()
    _LOADED[memo] = (features, labels.astype(np.int64) - 1)
    return _LOADED[memo]


def load_feature_dataset(name: str | DatasetSpec, root: str | Path | None, kind: str = "res101") -> FeatureDataset:
    """The dataset ``name`` (a registered name or a declaration) at ``root`` with the features of ``kind``
    (``res101``: ``<root>/res101.mat``).

    The split, labels and attributes are read as for images (:func:`~zsl_bench.data.datasets.read_dataset`); the
    feature file's labels must agree with them. No image needs to be on disk.
    """
    if kind not in FEATURE_FILES:
        raise UserError(f"unknown data.features {kind!r}; known: {', '.join(FEATURE_FILES)}")
    view = read_dataset(name, root)
    path = view.root / FEATURE_FILES[kind]
    if not path.is_file():
        how = dataset_spec(name).hint("features", view.root)
        raise UserError(f"data.features={kind} needs {path}, which does not exist; get it with {how}")
    features, labels = read_res101(path)
    if view.order is not None and not np.array_equal(view.order.labels, labels):
        n, m = view.order.labels.size, labels.size
        detail = (
            f"{m} images vs {n}"
            if n != m
            else f"first difference at image {np.flatnonzero(view.order.labels != labels)[0]}"
        )
        raise UserError(
            f"{path} labels disagree with {view.sources.get('order')} ({detail}); the feature file belongs to "
            "another dataset or image order"
        )
    if view.order is None:
        check_split_consistency(view.split, labels, source=f"{view.root / 'att_splits.mat'} with {path.name}")
    sources = {**view.sources, "features": f"{path.name} [{features.shape[1]}-d]"}
    source = FeatureSource({SINGLE: features}, single=True)
    return FeatureDataset(view.name, view.root, [], labels, view.split, view.attributes, sources, source, path)


def write_res101(path: Path, features: np.ndarray, labels: np.ndarray, image_files: Sequence[str]) -> None:
    """Write ``features`` [N, D], 0-based ``labels`` [N] and ``image_files`` [N] as an xlsa17 ``res101.mat``
    (MATLAB v5: ``features`` [D, N], ``labels`` [N, 1] 1-based, ``image_files`` [N, 1] cell), atomically."""
    cells = np.empty((len(image_files), 1), dtype=object)
    for i, f in enumerate(image_files):
        cells[i, 0] = np.array([f])
    mat = {
        "features": np.ascontiguousarray(np.asarray(features).T),
        "labels": (np.asarray(labels, dtype=np.float64) + 1).reshape(-1, 1),
        "image_files": cells,
    }
    with atomic_path(path, mode=0o644) as tmp:
        scipy.io.savemat(tmp, mat, format="5", do_compression=False)


def synth_features(
    att: np.ndarray,
    labels: np.ndarray,
    *,
    dim: int = 2048,
    attr_noise: float = 0.2,
    noise: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Synthetic "CNN features" float32 [N, dim] = relu(P (a_y + attr_noise·η) + noise·ε).

    P [dim, A] is a fixed random map (seeded), a_y the row of ``att`` [C, A] of each label ``labels`` [N], η [A]
    and ε [dim] standard normal per image. Non-negative like pooled ResNet features and a non-linear function of
    the attributes; the per-image attribute noise keeps classes confusable (ESZSL: CZSL ≈ 0.6-0.9 on the synthetic
    dataset, depending on its regulariser), so hyper-parameters matter.
    """
    rng = np.random.default_rng([seed, 7])
    proj = rng.standard_normal((dim, att.shape[1])) * 2.0
    shown = att[labels] + attr_noise * rng.standard_normal((labels.size, att.shape[1]))  # [N, A]
    clean = shown @ proj.T  # [N, dim]
    return np.maximum(clean + noise * rng.standard_normal(clean.shape), 0.0).astype(np.float32)


def write_synth_res101(root: Path, dim: int = 2048, seed: int = 0) -> Path:
    """``<root>/res101.mat`` for the synthetic dataset at ``root`` (written once; an existing file is kept)."""
    root = Path(root)
    path = root / FEATURE_FILES["res101"]
    if path.is_file():
        return path
    view = read_dataset("synth", root)
    assert view.order is not None and view.order.files is not None  # generate() always writes image_files.txt
    features = synth_features(view.split.att, view.order.labels, dim=dim, seed=seed)
    write_res101(path, features, view.order.labels, [str(view.root / f) for f in view.order.files])
    return path
