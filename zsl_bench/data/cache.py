"""Preprocessed images in a memory-mapped file, so sweep trials do not decode JPEGs again and again.

A cache holds the deterministic half of a :class:`~zsl_bench.data.transforms.TransformSpec` (decode, resize,
crop) for every image of a dataset: one ``uint8 [N, 3, S, S]`` array in a ``.npy`` file, opened with
``mmap_mode="r"`` so that concurrent trials share the operating system's page cache instead of each holding a
copy. Files, in ``cache_dir``::

    <dataset>-<spec.cache_key>-<digest>.npy    the array (row i = image i in xlsa17 order)
    <dataset>-<spec.cache_key>-<digest>.json   what it holds; written last, so its presence means complete
    <dataset>-<spec.cache_key>-<digest>.lock   serialises builders (fcntl lock): one builds, the others wait

``digest`` hashes the ordered list of image paths (relative to their common root): another list, another file.
Size on disk is N·3·S²: CUB at 448 px ≈ 7.1 GB, at 224 px ≈ 1.8 GB; AWA2 at 448 px ≈ 22.5 GB.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsl_bench import atomic
from zsl_bench.atomic import atomic_path
from zsl_bench.data.transforms import TransformSpec, preprocess
from zsl_bench.data.xlsa17 import one_line
from zsl_bench.errors import UserError

CACHE_FORMAT = "zsl_bench.image_cache/1"
_CHUNK = 256  # images decoded per round of the thread pool (bounds memory)

Progress = Callable[[int, int], None]  # (done, total)


def list_digest(paths: Sequence[Path]) -> str:
    """12 hex digits of sha256 over the ordered paths, relative to their common parent."""
    strs = [os.fspath(p) for p in paths]
    base = os.path.commonpath(strs) if len(strs) > 1 else os.path.dirname(strs[0]) if strs else ""
    h = hashlib.sha256()
    for s in strs:
        h.update(os.path.relpath(s, base).encode("utf-8") + b"\n")
    return h.hexdigest()[:12]


def cache_path(cache_dir: Path, dataset: str, spec: TransformSpec, paths: Sequence[Path]) -> Path:
    """Where the cache of ``dataset`` images ``paths`` under ``spec`` lives (the ``.npy`` file)."""
    return Path(cache_dir) / f"{dataset}-{spec.cache_key}-{list_digest(paths)}.npy"


class ImageCache:
    """A read-only cache file: ``uint8 [N, 3, S, S]``, memory-mapped on first access in each process.

    Picklable (only the path travels), so it can be handed to DataLoader workers or Ray actors.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        meta_path = self.path.with_suffix(".json")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{meta_path} is missing or unreadable; delete {self.path} to rebuild the cache") from exc
        if self.meta.get("format") != CACHE_FORMAT:
            raise UserError(f"{meta_path} is not a {CACHE_FORMAT} file; delete it and {self.path} to rebuild")
        self._array: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, 3, S, S)``."""
        return tuple(self.meta["shape"])  # type: ignore[return-value]

    @property
    def array(self) -> np.ndarray:
        """The memory-mapped ``uint8 [N, 3, S, S]`` array."""
        if self._array is None:
            try:
                arr = np.load(self.path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                msg = f"cache file {self.path} is unreadable ({one_line(exc)}); delete it to rebuild"
                raise UserError(msg) from exc
            if arr.shape != self.shape or arr.dtype != np.uint8:
                raise UserError(f"cache file {self.path} has shape {arr.shape}, not {self.shape}; delete it")
            self._array = arr
        return self._array

    def __len__(self) -> int:
        return self.shape[0]

    def get(self, idx: np.ndarray | Sequence[int]) -> torch.Tensor:
        """Images ``idx`` → ``uint8 [B, 3, S, S]`` (a copy)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        arr = self.array
        out = np.empty((idx.size, *self.shape[1:]), dtype=np.uint8)
        for k, i in enumerate(idx.tolist()):  # row copies: ~4x faster than fancy indexing a memmap
            out[k] = arr[i]
        return torch.from_numpy(out)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "meta": self.meta, "_array": None}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic.write_text(path, json.dumps(data, indent=2) + "\n", mode=0o644)


def build_cache(
    paths: Sequence[Path],
    spec: TransformSpec,
    out: Path,
    *,
    dataset: str = "",
    workers: int | None = None,
    progress: Progress | None = None,
) -> ImageCache:
    """Decode every image into a new cache file ``out`` (temp file + rename; the ``.json`` last).

    Args:
        paths: ``[N]`` image files, in the order of the rows.
        spec: the pipeline; its deterministic half is applied.
        out: the ``.npy`` path (see :func:`cache_path`).
        dataset: name recorded in the metadata.
        workers: decoding threads (PIL releases the GIL); default ``min(8, cpu count)``.
        progress: called as ``progress(done, total)`` after every chunk.

    Raises:
        UserError: an image is missing or cannot be decoded (nothing is left behind).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n, s = len(paths), spec.size
    workers = workers or min(8, os.cpu_count() or 1)
    with atomic_path(out, mode=0o644) as tmp:  # nothing is left behind when an image fails
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, s, s))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, n, _CHUNK):
                chunk = paths[start : start + _CHUNK]
                for i, img in enumerate(pool.map(lambda p: preprocess(p, spec), chunk)):
                    arr[start + i] = img
                if progress is not None:
                    progress(min(start + _CHUNK, n), n)
        arr.flush()
        del arr
    meta = {
        "format": CACHE_FORMAT,
        "dataset": dataset,
        "spec": asdict(spec),
        "cache_key": spec.cache_key,
        "digest": list_digest(paths) if paths else "",
        "shape": [n, 3, s, s],
    }
    _write_json_atomic(out.with_suffix(".json"), meta)
    return ImageCache(out)


def open_cache(
    dataset: str,
    paths: Sequence[Path],
    spec: TransformSpec,
    cache_dir: Path,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> ImageCache:
    """The cache of ``paths`` under ``spec`` in ``cache_dir``: opened if complete, else built (once, even with
    several processes asking at the same time: the others wait on a file lock, then open it)."""
    out = cache_path(cache_dir, dataset, spec, paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if out.is_file() and out.with_suffix(".json").is_file():
                cache = ImageCache(out)
                if cache.shape == (len(paths), 3, spec.size, spec.size):
                    return cache
            return build_cache(paths, spec, out, dataset=dataset, workers=workers, progress=progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
