"""The feature cache directory: backbone outputs extracted once, then memory-mapped by every trial.

Callers: :mod:`zsl_bench.engine.features` (builds and opens entries), the ``cache`` commands of
:mod:`zsl_bench.cli` (list, remove) and ``benchmarks/feature_cache.py``. An entry is read back as a
:class:`~zsl_bench.data.features.FeatureSource`.

Store layout (``root`` = ``data.feature_cache_dir``, default ``~/.cache/zsl-bench/features``)::

    <key>/meta.json            what the entry holds (written last; the directory appears by one rename)
    <key>/<name>.npy           float32 [N, ...] per backbone output (``features`` when it returns one tensor)
    <key>/<name>.hflip.npy     the same of the horizontally flipped images (when training flips): float32 [M, ...]
    <key>/hflip_rows.npy       int64 [M]: the images of those rows (the ones a trial can train on: all but the test
                               images); absent in entries that flip every image (M = N)
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsl_bench.data.features import FLIP_ROWS_FILE, FLIP_SUFFIX, STORE_FORMAT, FeatureSource, read_meta
from zsl_bench.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def default_store_root() -> Path:
    """``$XDG_CACHE_HOME/zsl-bench/features`` (default ``~/.cache/zsl-bench/features``), absolute."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return (Path(base).expanduser() / "zsl-bench" / "features").resolve()


@dataclass
class Writer:
    """Fills one store entry under construction: :meth:`add` rows of each output, in order.

    ``flip_rows`` (set by :meth:`flip_only`, before the first flipped rows): the images, int64 [M] ascending, whose
    flipped view the entry stores; the ``<name>.hflip`` arrays then hold M rows, in that order (else N).
    """

    dir: Path
    n: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)
    flip_rows: np.ndarray | None = None

    def flip_only(self, rows: np.ndarray) -> None:
        """Store the flipped view of the images ``rows`` [M] only (ascending, distinct, in 0..N-1)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows[0] < 0 or rows[-1] >= self.n or (np.diff(rows) <= 0).any()):
            raise ValueError(f"flip rows must be ascending, distinct and in 0..{self.n - 1}")
        if any(name.endswith(FLIP_SUFFIX) for name in self.arrays):
            raise RuntimeError("flip_only must be called before the first flipped rows are added")
        self.flip_rows = rows

    def add(self, name: str, rows: torch.Tensor) -> None:
        """Append ``rows`` [b, ...] to the array ``name`` (created, float32 [N or M, ...], on first use)."""
        base = name.removesuffix(FLIP_SUFFIX)
        if not _NAME.match(base):
            raise ValueError(f"feature name {base!r} is not a file-name-safe identifier ([A-Za-z0-9_]+)")
        if name not in self.arrays:
            self.arrays[name] = np.lib.format.open_memmap(
                self.dir / f"{name}.npy", mode="w+", dtype=np.float32, shape=(self._size(name), *rows.shape[1:])
            )
            self.dtypes[base] = str(rows.dtype).removeprefix("torch.")
            self.filled[name] = 0
        start = self.filled[name]
        self.arrays[name][start : start + rows.shape[0]] = rows.detach().float().cpu().numpy()
        self.filled[name] = start + rows.shape[0]

    def _size(self, name: str) -> int:
        """Rows of the array ``name``: M for a flipped view limited by :meth:`flip_only`, else N."""
        return self.n if self.flip_rows is None or not name.endswith(FLIP_SUFFIX) else len(self.flip_rows)

    def close(self) -> dict[str, Any]:
        """Flush every array (and write the flip rows, if any); returns the shape information for ``meta.json``."""
        short = {n: k for n, k in self.filled.items() if k != self._size(n)}
        if short:
            raise RuntimeError(f"feature extraction wrote {short} rows where {self.n} (flipped: the flip rows) belong")
        shapes = {}
        for name, array in self.arrays.items():
            array.flush()
            shapes[name] = list(array.shape)
        self.arrays.clear()
        flips = self.flip_rows is not None and any(name.endswith(FLIP_SUFFIX) for name in shapes)
        if flips:
            np.save(self.dir / FLIP_ROWS_FILE, self.flip_rows)
        return {"shapes": shapes, "dtypes": self.dtypes, "hflip_rows": len(self.flip_rows) if flips else None}


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
