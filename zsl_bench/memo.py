"""What the trials of one process share instead of each reading it again: the last value computed, by key.

A sweep's trials in one worker process (Ray reuses actors) read the same dataset folder and the same backbone
weights file. :class:`KeepLast` keeps the last value with the key it was computed for; the key of something read
from disk includes :func:`path_stamp`, so a changed file is read again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class KeepLast(Generic[T]):
    """One value at a time: ``get(key, compute)`` returns the value last computed when ``key`` equals (``==``) the
    key it was computed for, else ``compute()``, which then replaces it. Thread-safe; two threads asking for a new
    key at once may both compute it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[object, T] | None = None

    def get(self, key: Hashable | list[object], compute: Callable[[], T]) -> T:
        with self._lock:
            last = self._last
        if last is not None and last[0] == key:
            return last[1]
        value = compute()
        self.put(key, value)
        return value

    def peek(self, key: Hashable | list[object]) -> T | None:
        """The value kept for ``key``, or None."""
        with self._lock:
            last = self._last
        return last[1] if last is not None and last[0] == key else None

    def put(self, key: Hashable | list[object], value: T) -> None:
        """Keep ``value`` for ``key`` (instead of what was kept)."""
        with self._lock:
            self._last = (key, value)


def path_stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, modification time in ns) of the file ``path``, or of every entry of the folder ``path``
    (sorted; a subfolder's own entry changes when a file directly in it is added, removed or renamed); entries
    that cannot be read are left out."""
    path = Path(path)
    folder, entries = (path, sorted(os.listdir(path))) if path.is_dir() else (path.parent, [path.name])
    stamp = []
    for name in entries:
        try:
            st = os.stat(folder / name)
        except OSError:
            continue
        stamp.append((name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)
