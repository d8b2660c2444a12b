"""Per-sample feature tensors instead of images: precomputed xlsa17 features and the frozen-backbone cache.

Two producers, one consumer:

* **Feature datasets** (``data.features: res101``): the xlsa17 ``res101.mat`` beside ``att_splits.mat`` holds
  ``features`` [2048, N] (ResNet-101 pooled features), ``labels`` [N, 1] (1-based) and ``image_files`` [N, 1].
  :func:`load_feature_dataset` reads it into a :class:`FeatureDataset` (the split and labels as for images, no
  image paths) whose ``source`` serves [B, 2048] vectors. :func:`write_synth_res101` writes such a file for the
  synthetic dataset (:func:`synth_features`: a fixed random non-linear map of noisy class attributes, plus noise).
* **Feature cache** (:class:`FeatureStore`): backbone outputs extracted once by the engine
  (:mod:`zsl_bench.engine.features`) into a directory of ``.npy`` files, opened memory-mapped by every trial.

Both are served by :class:`FeatureSource`, whose ``get(idx)`` returns a :class:`FeatureBatch` (the ``ImageSource``
protocol of :mod:`zsl_bench.data.stream`, so :func:`~zsl_bench.data.stream.batches` streams it unchanged).

Store layout (``root`` = ``data.feature_cache_dir``, default ``~/.cache/zsl-bench/features``)::

    <key>/meta.json            what the entry holds (written last; the directory appears by one rename)
    <key>/<name>.npy           float32 [N, ...] per backbone output (``features`` when it returns one tensor)
    <key>/<name>.hflip.npy     the same of the horizontally flipped images (when training flips)
    <key>.lock                 fcntl lock: one process extracts, the others wait and then open the result
    .<key>.tmp-XXXX/           an extraction in progress (renamed to <key>/ when complete)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
from zsl_bench.data.xlsa17 import check_split_consistency, one_line
from zsl_bench.errors import UserError

STORE_FORMAT = "zsl_bench.feature_cache/1"
SINGLE = "features"  # the file name of a backbone that returns one tensor
FLIP_SUFFIX = ".hflip"
FEATURE_FILES = {"res101": "res101.mat"}  # data.features → the file beside att_splits.mat
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


# ----------------------------------------------------------------------------------------------- batches


@dataclass
class FeatureBatch:
    """The cached inputs of B samples.

    ``plain`` maps each backbone output name to its tensor [B, ...] for the unflipped images; ``flipped`` holds
    the same for the horizontally flipped images, or is None. ``single``: the backbone returns one tensor
    (named :data:`SINGLE`), so :meth:`select` returns a tensor rather than a dict.
    """

    plain: dict[str, torch.Tensor]
    flipped: dict[str, torch.Tensor] | None = None
    single: bool = False

    def __len__(self) -> int:
        return next(iter(self.plain.values())).shape[0]

    def select(self, flip: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """The model input: row b from the flipped view where ``flip`` [B] (bool) is set, else the plain view."""
        if flip is not None and self.flipped is None:
            raise ValueError("this feature batch holds no flipped view")
        out = {}
        for name, plain in self.plain.items():
            if flip is not None and bool(flip.any()):
                plain = plain.clone()
                plain[flip] = self.flipped[name][flip]  # type: ignore[index]
            out[name] = plain
        return out[SINGLE] if self.single else out


class FeatureSource:
    """Random access to per-sample features: ``len(source)``, ``source.get(idx) -> FeatureBatch``.

    ``arrays`` name → [N, ...] (memory-mapped or in memory); ``flipped`` the flipped view's arrays or None;
    ``dtypes`` name → torch dtype to return (default: as stored). Picklable: an instance opened from a store
    directory travels as its path.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        flipped: dict[str, np.ndarray] | None = None,
        single: bool = False,
        dtypes: dict[str, torch.dtype] | None = None,
        path: Path | None = None,
    ) -> None:
        sizes = {a.shape[0] for a in arrays.values()} | {a.shape[0] for a in (flipped or {}).values()}
        if len(sizes) != 1:
            raise ValueError(f"feature arrays disagree on the number of samples: {sorted(sizes)}")
        self.arrays = arrays
        self.flipped = flipped
        self.single = single
        self.dtypes = dtypes or {}
        self.path = path

    @classmethod
    def open(cls, path: Path) -> FeatureSource:
        """The store entry at ``path`` (a ``<key>/`` directory), memory-mapped."""
        meta = read_meta(path)
        names = meta["names"]
        arrays = {n: _load(path / f"{n}.npy") for n in names}
        flipped = {n: _load(path / f"{n}{FLIP_SUFFIX}.npy") for n in names} if meta["hflip"] else None
        dtypes = {n: getattr(torch, meta["dtypes"][n]) for n in names}
        return cls(arrays, flipped, meta["single"], dtypes, path)

    @property
    def has_flipped(self) -> bool:
        return self.flipped is not None

    def __len__(self) -> int:
        return next(iter(self.arrays.values())).shape[0]

    def get(self, idx: np.ndarray | Sequence[int]) -> FeatureBatch:
        """Samples ``idx`` [B] → a :class:`FeatureBatch` (copies)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        plain = {n: self._rows(a, idx, n) for n, a in self.arrays.items()}
        flipped = {n: self._rows(a, idx, n) for n, a in self.flipped.items()} if self.flipped else None
        return FeatureBatch(plain, flipped, self.single)

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


# ------------------------------------------------------------------------------------------------- store


def default_store_root() -> Path:
    """``$XDG_CACHE_HOME/zsl-bench/features`` (default ``~/.cache/zsl-bench/features``), absolute."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return (Path(base).expanduser() / "zsl-bench" / "features").resolve()


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


@dataclass
class Writer:
    """Fills one store entry under construction: :meth:`add` rows of each output, in order."""

    dir: Path
    n: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, rows: torch.Tensor) -> None:
        """Append ``rows`` [b, ...] to the array ``name`` (created, float32 [N, ...], on first use)."""
        base = name.removesuffix(FLIP_SUFFIX)
        if not _NAME.match(base):
            raise ValueError(f"feature name {base!r} is not a file-name-safe identifier ([A-Za-z0-9_]+)")
        if name not in self.arrays:
            self.arrays[name] = np.lib.format.open_memmap(
                self.dir / f"{name}.npy", mode="w+", dtype=np.float32, shape=(self.n, *rows.shape[1:])
            )
            self.dtypes[base] = str(rows.dtype).removeprefix("torch.")
            self.filled[name] = 0
        start = self.filled[name]
        self.arrays[name][start : start + rows.shape[0]] = rows.detach().float().cpu().numpy()
        self.filled[name] = start + rows.shape[0]

    def close(self) -> dict[str, Any]:
        """Flush every array; returns the shape information for ``meta.json``."""
        short = {n: k for n, k in self.filled.items() if k != self.n}
        if short:
            raise RuntimeError(f"feature extraction wrote {short} rows of {self.n}")
        shapes = {}
        for name, array in self.arrays.items():
            array.flush()
            shapes[name] = list(array.shape)
        self.arrays.clear()
        return {"shapes": shapes, "dtypes": self.dtypes}


class FeatureStore:
    """The feature cache directory ``root``: entries by key, built once under a file lock."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser().resolve() if root is not None else default_store_root()

    def entry(self, key: str) -> Path:
        return self.root / key

    def open(
        self, key: str, describe: dict[str, Any], build: Callable[[Writer], dict[str, Any]], n: int
    ) -> tuple[FeatureSource, bool]:
        """The entry ``key``: opened if complete, else built by ``build(writer)`` — once, even with several
        processes asking at the same time (the others wait on ``<key>.lock``, then open it).

        ``describe`` (JSON) goes into ``meta.json`` with what ``build`` returns (``names``, ``single``,
        ``hflip``). Returns the source and whether this call built it.
        """
        entry = self.entry(key)
        if (entry / "meta.json").is_file():
            return FeatureSource.open(entry), False
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(key):
            if (entry / "meta.json").is_file():  # built by another process while we waited
                return FeatureSource.open(entry), False
            if entry.exists():  # a directory without meta.json is not ours: never produced by a rename
                shutil.rmtree(entry)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=self.root))
            try:
                start = time.perf_counter()
                writer = Writer(tmp, n)
                info = build(writer)
                info.update(writer.close())
                size = sum(p.stat().st_size for p in tmp.iterdir())
                meta = {
                    "format": STORE_FORMAT,
                    "key": key,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "seconds": round(time.perf_counter() - start, 3),
                    "bytes": size,
                    "n": n,
                    **describe,
                    **info,
                }
                (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
                os.chmod(tmp, 0o755)
                os.rename(tmp, entry)  # atomic: readers see nothing or the complete entry
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if (entry / "meta.json").is_file():  # another builder won (a lock the filesystem ignored)
                    return FeatureSource.open(entry), False
                raise
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return FeatureSource.open(entry), True

    @contextmanager
    def _locked(self, key: str, blocking: bool = True) -> Iterator[bool]:
        with open(self.root / f"{key}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self) -> list[dict[str, Any]]:
        """``meta.json`` of every complete entry (``unreadable`` ones as ``{"key", "error"}``), oldest first."""
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                out.append(read_meta(entry))
            except UserError as exc:
                out.append({"key": entry.name, "error": str(exc)})
        return sorted(out, key=lambda m: (m.get("created", ""), m["key"]))

    def resolve(self, key: str) -> str:
        """The complete key of an entry given its key or a unique prefix (≥ 4 characters); else ``UserError``."""
        keys = [m["key"] for m in self.entries()]
        if key in keys:
            return key
        matches = [k for k in keys if len(key) >= 4 and k.startswith(key)]
        if len(matches) == 1:
            return matches[0]
        what = "matches several entries" if matches else "is not in the cache"
        raise UserError(f"feature cache key {key!r} {what} ({self.root}); list the keys with `zsl-bench cache ls`")

    def remove(self, key: str) -> int:
        """Delete the entry ``key`` (waiting for an extraction of it to finish); returns the bytes freed."""
        entry = self.entry(key)
        with self._locked(key):
            size = sum(p.stat().st_size for p in entry.iterdir()) if entry.is_dir() else 0
            shutil.rmtree(entry, ignore_errors=True)
            (self.root / f"{key}.lock").unlink(missing_ok=True)
        return size

    def remove_stale(self) -> int:
        """Delete the temporary directories of extractions that died (their lock is free); returns how many."""
        count = 0
        for tmp in self.root.glob(".*.tmp-*") if self.root.is_dir() else []:
            key = tmp.name[1:].split(".tmp-")[0]
            with self._locked(key, blocking=False) as free:
                if free:
                    shutil.rmtree(tmp, ignore_errors=True)
                    if not self.entry(key).exists():
                        (self.root / f"{key}.lock").unlink(missing_ok=True)
                    count += 1
        return count


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
    features = synth_features(view.split.att, view.order.labels, dim, seed=seed)
    write_res101(path, features, view.order.labels, [str(view.root / f) for f in view.order.files])
    return path
