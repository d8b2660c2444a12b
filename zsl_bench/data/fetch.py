"""``zsl-bench data fetch``: download the official archives, check sha256, unpack into the readers' layout.

Caller: the ``data fetch`` command of :mod:`zsl_bench.cli` (:func:`fetch`). The steps live in
:mod:`~zsl_bench.data.fetch_download`, :mod:`~zsl_bench.data.fetch_checksums`, :mod:`~zsl_bench.data.fetch_archive`
and :mod:`~zsl_bench.data.fetch_install`; the targets in :mod:`~zsl_bench.data.fetch_targets`.

Targets (:func:`fetch_target`) and what ``--root`` means for each:

* a dataset (``cub``, ``awa2``, ``sun``, ``apy``, any registered declaration with archives, see
  :mod:`zsl_bench.data.declare`): ``--root`` is the dataset folder (the same folder ``data inspect --root``
  takes; default ``data/CUB`` …). The archives' top-level entries land in it: ``CUB_200_2011/`` +
  ``attributes.txt``, ``Animals_with_Attributes2/``, ``images/``, ``VOCdevkit/`` + ``ayahoo_test_images/`` +
  ``attribute_data/``. A dataset without archives (``awa1``: its images are withdrawn; ``synth``: generated)
  answers with its declared reason.
* ``xlsa17``: ``--root`` is the folder that holds the dataset folders (default ``data``). The split files of
  each dataset (``att_splits.mat``, ``res101.mat``, class lists) land in ``ROOT/CUB``, ``ROOT/AWA2``,
  ``ROOT/SUN``, ``ROOT/APY``, ``ROOT/AWA1``.

Steps, each resumable and idempotent:

1. Download to ``ROOT/.zsl-fetch/downloads/<file>.part`` with urllib; an existing ``.part`` is resumed with an
   HTTP ``Range`` request (a server that ignores it is answered by starting over). A progress bar is drawn on
   stderr when it is a terminal.
2. Check sha256. Expected value, first found: ``--sha256 [FILE=]HEX`` / ``--manifest`` (sha256sum format),
   the official value in the target's archive, or the value recorded by an earlier run. When none exists (no
   official checksum is published for AwA2, SUN, aPY and xlsa17 that we could confirm), the archive is accepted on
   first use, its sha256 printed and recorded. A mismatch renames the archive to
   ``<file>.sha256-mismatch`` (kept aside, not unpacked) and fails with exit code 2.
3. Unpack into a staging folder beside the destination (members with absolute paths or ``..``, devices, symbolic
   links — a link inside the tree may leave ``--root`` once the entries move up — and hard links leaving the tree are
   refused; a refused archive is renamed ``<file>.refused``, kept aside like a mismatch), then move the entries into
   place with one rename each (:func:`zsl_bench.atomic.move_into_place`). Existing files or folders that
   are not identical and not from an interrupted earlier run of this command are never overwritten.
4. Record ``ROOT/.zsl-fetch/<target>.json``; a later run finds it (or finds the layout already present) and does
   nothing. The archive is deleted unless ``--keep-archives`` (and ``downloads/`` with it when left empty).
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_bench.atomic import move_into_place
from zsl_bench.data.fetch_archive import BadArchive
from zsl_bench.data.fetch_checksums import expected_sha256, sha256_file
from zsl_bench.data.fetch_download import Progress, download
from zsl_bench.data.fetch_install import STATE_DIR, install, read_state, state_path, write_state
from zsl_bench.data.fetch_targets import Archive, Target, default_fetch_root, fetch_target
from zsl_bench.errors import UserError

Log = Callable[[str], None]


@dataclass
class FetchResult:
    """What :func:`fetch` did: ``status`` is ``installed``, ``already installed`` or ``already present``."""

    target: str
    root: Path
    status: str
    archives: dict[str, dict[str, str]] = field(default_factory=dict)  # file → {"sha256", "checked"}
    placed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "root": str(self.root),
            "status": self.status,
            "archives": self.archives,
            "placed": self.placed,
        }


@dataclass(frozen=True)
class _Run:
    """The settings of one :func:`fetch` call, shared by the steps of each archive."""

    target: Target
    root: Path
    mirror: str | None
    sha256: dict[str, str]
    keep_archives: bool
    progress: Progress | None
    log: Log
    timeout: float

    @property
    def downloads(self) -> Path:
        return self.root / STATE_DIR / "downloads"


def _check_arguments(root: Path, mirror: str | None) -> None:
    """``UserError`` before anything is written: ``mirror`` must be an http(s) URL with a host, and ``root`` a
    folder or a path where one can be made."""
    if mirror is not None:
        url = urllib.parse.urlsplit(mirror)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise UserError(f"--mirror {mirror}: not an http(s) URL; give a base URL such as https://host/path")
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                raise UserError(f"--root {root}: {path} is a file, not a folder; give a folder to unpack into")
            return


def fetch(
    name: str,
    root: Path | None = None,
    *,
    mirror: str | None = None,
    sha256: dict[str, str] | None = None,
    keep_archives: bool = False,
    progress: Progress | None = None,
    log: Log | None = None,
    timeout: float = 60.0,
) -> FetchResult:
    """Download, verify and unpack target ``name`` into ``root`` (see the module doc for every step).

    Args:
        name: ``xlsa17`` or a registered dataset that declares a fetch target (:func:`fetch_target`).
        root: destination (:func:`default_fetch_root` if None).
        mirror: base URL replacing the folder of every official URL (the file name is kept).
        sha256: expected checksums by file name (override the built-in table).
        keep_archives: keep the downloaded archives after unpacking.
        progress: download progress callback (:func:`~zsl_bench.data.fetch_download.terminal_progress`).
        log: receives one-line remarks (first-use checksums, what was skipped).
        timeout: seconds per network operation.

    Raises:
        UserError: unknown target, network/HTTP failure, checksum mismatch (archive kept aside), bad archive,
            or a destination entry that is in the way.
    """
    target = fetch_target(name)
    root = Path(root if root is not None else default_fetch_root(target)).resolve()
    _check_arguments(root, mirror)
    run = _Run(
        target=target,
        root=root,
        mirror=mirror,
        sha256=dict(sha256 or {}),
        keep_archives=keep_archives,
        progress=progress,
        log=log or (lambda _msg: None),
        timeout=timeout,
    )
    state = read_state(state_path(root, target))
    result = FetchResult(target.name, root, "installed")
    if _already_there(run, state, result):
        return result
    for archive in target.archives:
        _fetch_archive(run, archive, state, result)
    state.update(target=target.name, complete=True, placed=result.placed)
    write_state(state_path(root, target), state)
    return result


def _already_there(run: _Run, state: dict[str, Any], result: FetchResult) -> bool:
    """Whether an earlier fetch completed (its placed paths exist) or the layout is present without a record;
    ``result`` says which."""
    root, target = run.root, run.target
    if state.get("complete") and all((root / p).exists() for p in state.get("placed", [])):
        result.status, result.archives, result.placed = "already installed", state["archives"], state["placed"]
        return True
    if not state and all((root / m).exists() for m in target.markers):
        result.status = "already present"
        run.log(f"{root} already has {', '.join(target.markers)}; nothing to fetch")
        return True
    return False


def _fetch_archive(run: _Run, archive: Archive, state: dict[str, Any], result: FetchResult) -> None:
    """Download, verify and install one archive; its checksum and placed paths go into ``state`` and ``result``."""
    url = f"{run.mirror.rstrip('/')}/{archive.filename}" if run.mirror else archive.url
    path = run.downloads / archive.filename
    if not path.is_file():
        download(url, path, size=archive.size, progress=run.progress, timeout=run.timeout)
    recorded = state.get("archives", {}).get(archive.filename, {}).get("sha256")
    expected, checked = expected_sha256(archive, run.sha256, recorded)
    got = _verify(path, url=url, expected=expected)
    result.archives[archive.filename] = {"sha256": got, "checked": checked}
    state.setdefault("archives", {})[archive.filename] = result.archives[archive.filename]
    try:
        result.placed.extend(install(run.target, archive, path, root=run.root, state=state))
    except BadArchive as exc:
        aside = path.with_name(path.name + ".refused")
        move_into_place(path, aside)
        raise UserError(f"{exc}; kept aside as {aside}: delete it to retry") from None
    if not run.keep_archives:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty (kept archives, an aside file) or already gone
            run.downloads.rmdir()
    if expected is None:  # said after success, so that a failure stays one line
        run.log(
            f"no official sha256 is known for {archive.filename}; got {got}: compare it with a trusted source "
            f"or pin it with --sha256 {archive.filename}={got}"
        )


def _verify(path: Path, *, url: str, expected: str | None) -> str:
    """The sha256 of the downloaded ``path``; on a mismatch with ``expected`` it is kept aside and UserError says
    so."""
    got = sha256_file(path)
    if expected is not None and got != expected:
        aside = path.with_name(path.name + ".sha256-mismatch")
        move_into_place(path, aside)
        raise UserError(
            f"{path.name} from {url} has sha256 {got[:16]}… but {expected[:16]}… was expected; kept "
            f"aside as {aside} and not unpacked: delete it to retry, or pass --sha256 {path.name}=<hex> "
            "if the upstream archive changed"
        )
    return got
