"""Atomic file writes: the one place zsl-bench renames a file into place.

Every file a reader may open while it is being written (run directories, checkpoints, caches, downloaded data,
the cluster record) is written to a temp file ``.NAME.*.tmp`` in the target's own folder and renamed over the
target (``os.replace``, atomic within one filesystem). A reader, or a process killed mid-write, sees the old file
or the new one, never a part; the temp file of a killed write is what :func:`zsl_bench.rundir.clean_temp_files`
removes when a run reopens.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _temp_beside(path: Path) -> Path:
    """A new empty temp file ``.NAME.*.tmp`` in ``path``'s folder (created with the parents it needs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path, fsync: bool = False, mode: int | None = None) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that wants a file name (``savefig``, ``savemat``, a memmap).

    When the block ends normally the temp file is (optionally fsynced, chmodded to ``mode`` and) renamed over
    ``path``; when it raises, the temp file is deleted and ``path`` is untouched. Without ``mode`` the file keeps
    ``mkstemp``'s 0600.
    """
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())  # the data is on disk before the rename makes it the file
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, text: bool = False, fsync: bool = False, mode: int | None = None) -> Iterator[IO]:
    """An open file (binary, or text with ``text``) whose content replaces ``path`` when the block ends normally
    (see :func:`atomic_path`)."""
    with atomic_path(path, fsync=fsync, mode=mode) as tmp, open(tmp, "w" if text else "wb") as fh:
        yield fh
        fh.flush()


def write_bytes(path: str | Path, data: bytes, fsync: bool = False, mode: int | None = None) -> None:
    """Replace ``path`` by ``data`` atomically."""
    with atomic_open(path, fsync=fsync, mode=mode) as fh:
        fh.write(data)


def write_text(path: str | Path, text: str, fsync: bool = False, mode: int | None = None) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"), fsync=fsync, mode=mode)


def move_into_place(src: str | Path, dest: str | Path) -> None:
    """Rename ``src`` (a finished file or folder on the same filesystem) to ``dest`` in one step, replacing a
    file (or an empty folder) there."""
    os.replace(src, dest)
