"""The memory-mapped image cache and batch streaming."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from zsl_bench.data import stream
from zsl_bench.data.cache import ImageCache, build_cache, cache_path, open_cache
from zsl_bench.data.datasets import load_dataset
from zsl_bench.data.stream import DecodedImages, InMemoryImages, batches, open_images
from zsl_bench.data.transforms import TransformSpec, preprocess
from zsl_bench.errors import UserError

from .conftest import TINY_CUB, write_jpeg

SPEC = TransformSpec(resize=24, crop=20, hflip=True)


@pytest.fixture
def jpegs(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "img" / f"{i:03d}.jpg" for i in range(11)]
    for i, p in enumerate(paths):
        write_jpeg(p, seed=i, size=(50 + i, 40))
    return paths


def test_build_open_and_read(jpegs: list[Path], tmp_path: Path) -> None:
    seen = []
    cache = open_cache("toy", jpegs, SPEC, tmp_path / "cache", workers=2, progress=lambda d, t: seen.append((d, t)))
    assert cache.shape == (11, 3, 20, 20) and len(cache) == 11 and seen[-1] == (11, 11)
    assert cache.path == cache_path(tmp_path / "cache", "toy", SPEC, jpegs)
    assert cache.path.name.startswith("toy-r24c20-bilinear-")
    expected = np.stack([preprocess(p, SPEC) for p in jpegs])
    np.testing.assert_array_equal(cache.array, expected)
    got = cache.get([7, 2, 7, 0])
    assert got.dtype == torch.uint8 and got.shape == (4, 3, 20, 20)
    np.testing.assert_array_equal(got.numpy(), expected[[7, 2, 7, 0]])
    # a second open reuses the file: no rebuild
    mtime = cache.path.stat().st_mtime_ns
    again = open_cache("toy", jpegs, SPEC, tmp_path / "cache")
    assert again.path.stat().st_mtime_ns == mtime
    # another list or another spec → another file
    assert open_cache("toy", jpegs[:5], SPEC, tmp_path / "cache").path != cache.path
    assert cache_path(tmp_path, "toy", TransformSpec(resize=20), jpegs) != cache_path(tmp_path, "toy", SPEC, jpegs)
    # picklable without the memory map; reopens on use
    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.get([3]).numpy(), expected[[3]])


def test_concurrent_openers_build_once(jpegs: list[Path], tmp_path: Path) -> None:
    builds = []
    results: list[ImageCache] = []

    def worker() -> None:
        results.append(
            open_cache("toy", jpegs, SPEC, tmp_path / "c", workers=1, progress=lambda d, t: builds.append(d))
        )

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len({r.path for r in results}) == 1
    assert builds == [11]  # one chunk, one builder
    leftovers = [p.name for p in (tmp_path / "c").iterdir() if p.suffix not in (".npy", ".json", ".lock")]
    assert leftovers == []


def test_failed_build_leaves_nothing(jpegs: list[Path], tmp_path: Path) -> None:
    jpegs[4].write_bytes(b"broken")
    with pytest.raises(UserError, match="cannot decode image"):
        build_cache(jpegs, SPEC, tmp_path / "c" / "x.npy")
    assert list((tmp_path / "c").iterdir()) == []


def test_incomplete_cache_is_rebuilt(jpegs: list[Path], tmp_path: Path) -> None:
    cache = open_cache("toy", jpegs, SPEC, tmp_path)
    cache.path.with_suffix(".json").unlink()  # as if the builder died before the metadata
    rebuilt = open_cache("toy", jpegs, SPEC, tmp_path)
    assert rebuilt.shape == (11, 3, 20, 20)
    with pytest.raises(UserError, match="missing or unreadable"):
        cache.path.with_suffix(".json").unlink()
        ImageCache(cache.path)


def test_batches_order_shuffle_and_prefetch(jpegs: list[Path], tmp_path: Path) -> None:
    cache = open_cache("toy", jpegs, SPEC, tmp_path)
    idx = np.array([1, 3, 5, 7, 9, 10, 0])
    plain = list(batches(cache, idx, 3))
    assert [b[0].tolist() for b in plain] == [[1, 3, 5], [7, 9, 10], [0]]
    np.testing.assert_array_equal(plain[1][1].numpy(), cache.array[[7, 9, 10]])
    no_thread = list(batches(cache, idx, 3, prefetch=0))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(plain, no_thread, strict=True))
    s1 = [b[0].tolist() for b in batches(cache, idx, 3, shuffle=True, generator=torch.Generator().manual_seed(1))]
    s2 = [b[0].tolist() for b in batches(cache, idx, 3, shuffle=True, generator=torch.Generator().manual_seed(1))]
    assert s1 == s2 and sorted(i for b in s1 for i in b) == sorted(idx.tolist())
    assert [len(b[0]) for b in batches(cache, idx, 3, drop_last=True)] == [3, 3]
    # stopping early does not hang the reader thread
    it = batches(cache, np.arange(11), 1, prefetch=1)
    next(it)
    it.close()


def test_errors_in_the_reader_reach_the_caller(jpegs: list[Path]) -> None:
    jpegs[2].unlink()
    source = DecodedImages(jpegs, SPEC, workers=2)
    with pytest.raises(UserError, match="image file missing"):
        list(batches(source, np.arange(11), 4))


def test_open_images_on_a_dataset(tiny_cub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = tiny_cub
    data = load_dataset(TINY_CUB, root)
    in_memory = open_images(data, SPEC)  # 30 images of 20 px: well under the in-memory limit
    assert isinstance(in_memory, InMemoryImages) and open_images(data, SPEC) is in_memory  # decoded once
    monkeypatch.setattr(stream, "IN_MEMORY_LIMIT", 0)
    decoded = open_images(data, SPEC)
    cached = open_images(data, SPEC, cache_dir=tmp_path / "cache")
    assert isinstance(decoded, DecodedImages) and isinstance(cached, ImageCache) and len(cached) == 30
    torch.testing.assert_close(decoded.get([0, 29]), cached.get([0, 29]))
    torch.testing.assert_close(in_memory.get([0, 29]), cached.get([0, 29]))
    assert pickle.loads(pickle.dumps(decoded)).get([4]).shape == (1, 3, 20, 20)
    assert decoded.get([]).shape == (0, 3, 20, 20)
