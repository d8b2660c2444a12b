"""Streaming images batch by batch, for datasets too large to hold decoded in memory.

Small datasets (the synthetic one, tiny models) are decoded once into memory; CUB/AWA2/SUN at 448 px (7-22 GB)
are not. The engine reads every dataset the same way:

.. code-block:: python

    from zsl_bench.data.datasets import load_dataset
    from zsl_bench.data.stream import batches, open_images
    from zsl_bench.data.transforms import augment
    from zsl_bench.models import MODELS

    data = load_dataset("cub", root)                              # paths, labels, split (checked)
    spec = MODELS.get(cfg.model.name).transform_at(cfg.data.image_size)  # the model family's pipeline
    source = open_images(data, spec, cache_dir=Path("data/cache"))  # memory-mapped cache, built once
    for idx, images in batches(source, proto.train_idx, 32, shuffle=True, generator=gen):
        x = augment(images, spec, train=True, generator=gen)       # float32 [B, 3, S, S]
        y = labels[idx]
        ...
    for idx, images in batches(source, proto.evals[0].indices, 128):   # eval: fixed order, no flip
        x = augment(images, spec, train=False)

* :func:`open_images` → an :class:`ImageSource` (``len(source)``, ``source.get(idx) -> uint8 [B, 3, S, S]``):
  the memory-mapped :class:`~zsl_bench.data.cache.ImageCache` when ``cache_dir`` is given (built on first use,
  shared by all trials of a sweep; safe with concurrent trials), else :class:`DecodedImages`, which decodes on
  demand with a thread pool.
* :func:`batches` reads the next batches ahead in a background thread, so decoding or page faults overlap
  the training step. With ``shuffle`` the order is drawn from ``generator`` (reproducible per seed).
* Both sources are picklable (paths only), so they can also feed a ``torch.utils.data.DataLoader`` through a
  small ``Dataset`` wrapper, or be sent to Ray workers.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from zsl_bench.data.cache import Progress, open_cache
from zsl_bench.data.datasets import ZslDataset
from zsl_bench.data.transforms import TransformSpec, preprocess


class ImageSource(Protocol):
    """Random access to the preprocessed images of a dataset.

    :class:`~zsl_bench.data.features.FeatureSource` (feature datasets, the frozen-backbone cache) has the same
    two methods; its ``get`` returns a :class:`~zsl_bench.data.features.FeatureBatch`, which :func:`batches`
    passes through unchanged."""

    def __len__(self) -> int: ...

    def get(self, idx: np.ndarray | Sequence[int]) -> torch.Tensor:
        """Images ``idx`` → ``uint8 [B, 3, S, S]``."""
        ...


class DecodedImages:
    """An :class:`ImageSource` that decodes the requested images on every call (no cache)."""

    def __init__(self, paths: Sequence[Path], spec: TransformSpec, workers: int | None = None) -> None:
        self.paths = list(paths)
        self.spec = spec
        self.workers = workers or min(8, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, idx: np.ndarray | Sequence[int]) -> torch.Tensor:
        """Decode images ``idx`` → ``uint8 [B, 3, S, S]``."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers)
        arrays = list(self._pool.map(lambda i: preprocess(self.paths[int(i)], self.spec), np.asarray(idx)))
        s = self.spec.size
        return torch.from_numpy(np.stack(arrays)) if arrays else torch.empty((0, 3, s, s), dtype=torch.uint8)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}


class InMemoryImages:
    """An :class:`ImageSource` holding every preprocessed image decoded in memory (small datasets only)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images  # uint8 [N, 3, S, S]

    def __len__(self) -> int:
        return self.images.shape[0]

    def get(self, idx: np.ndarray | Sequence[int]) -> torch.Tensor:
        return self.images[torch.as_tensor(np.asarray(idx), dtype=torch.long)]


_IN_MEMORY: dict[tuple[tuple[Path, ...], TransformSpec], InMemoryImages] = {}
IN_MEMORY_LIMIT = 2 * 1024**3  # bytes of uint8 pixels decoded into memory when no cache_dir is given


def open_images(
    data: ZslDataset,
    spec: TransformSpec,
    cache_dir: Path | None = None,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> ImageSource:
    """An image source for ``data`` under ``spec``: cached (memory-mapped, built if needed) when ``cache_dir``
    is given; else decoded once into memory if that takes at most ``IN_MEMORY_LIMIT`` bytes (kept per process,
    so a reused Ray actor decodes once); else decoded on demand. The cache is keyed by dataset name, the spec's
    deterministic half and the image list."""
    if cache_dir is not None:
        return open_cache(data.name, data.image_paths, spec, Path(cache_dir), workers=workers, progress=progress)
    if len(data.image_paths) * 3 * spec.size**2 > IN_MEMORY_LIMIT:
        return DecodedImages(data.image_paths, spec, workers)
    key = (tuple(data.image_paths), spec)
    if key not in _IN_MEMORY:
        _IN_MEMORY.clear()  # one dataset at a time per process
        decoded = DecodedImages(data.image_paths, spec, workers)
        _IN_MEMORY[key] = InMemoryImages(decoded.get(np.arange(len(decoded))))
    return _IN_MEMORY[key]


def batches(
    source: ImageSource,
    indices: np.ndarray | Sequence[int],
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    prefetch: int = 2,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(idx [B], images uint8 [B, 3, S, S])`` over ``indices``, reading ``prefetch`` batches ahead.

    Args:
        source: where images come from.
        indices: the dataset indices to visit.
        batch_size: B (the last batch may be smaller unless ``drop_last``).
        shuffle: visit in a random order drawn from ``generator``; else in the given order.
        generator: torch generator for the shuffle.
        drop_last: skip a final incomplete batch.
        prefetch: batches read ahead in a background thread (0 = read in the caller's thread).
    """
    idx = np.asarray(indices, dtype=np.int64)
    if shuffle:
        idx = idx[torch.randperm(idx.size, generator=generator).numpy()]
    stop = idx.size - idx.size % batch_size if drop_last else idx.size
    chunks = [idx[i : i + batch_size] for i in range(0, stop, batch_size)]
    if prefetch <= 0:
        for chunk in chunks:
            yield chunk, source.get(chunk)
        return
    yield from _prefetched(source, chunks, prefetch)


def _prefetched(source: ImageSource, chunks: list[np.ndarray], depth: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def reader() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                q.put((chunk, source.get(chunk)))
            q.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    thread = threading.Thread(target=reader, name="zsl-bench-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
