"""``zsl-bench data fetch``: download the official archives, check sha256, unpack into the readers' layout.

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
import hashlib
import http.client
import json
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from zsl_bench import atomic
from zsl_bench.atomic import move_into_place
from zsl_bench.data.xlsa17 import one_line
from zsl_bench.errors import UserError

STATE_DIR = ".zsl-fetch"
_CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

Progress = Callable[[str, int, "int | None"], None]  # (file name, bytes done, total bytes or None)
Log = Callable[[str], None]


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


# ------------------------------------------------------------------------------------------ checksums


def parse_sha256_args(values: list[str] | None, target: Target) -> dict[str, str]:
    """``--sha256`` values ``HEX`` (the target's only archive) or ``FILE=HEX`` → {file: hex}."""
    out: dict[str, str] = {}
    names = [a.filename for a in target.archives]
    for value in values or []:
        name, _, digest = value.rpartition("=")
        if not name:
            if len(names) != 1:
                raise UserError(f"--sha256 {value}: {target.name} has several archives; write FILE=HEX")
            name = names[0]
        if name not in names:
            raise UserError(f"--sha256 {value}: {name!r} is not an archive of {target.name} ({', '.join(names)})")
        out[name] = _check_hex(digest.lower(), f"--sha256 {value}")
    return out


def read_manifest(path: Path, target: Target) -> dict[str, str]:
    """A ``sha256sum``-style file (``<hex>  <file name>`` per line) → {file: hex} for this target's archives."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"manifest {path} cannot be read ({type(exc).__name__}); pass a sha256sum file") from exc
    wanted = {a.filename for a in target.archives}
    out = {}
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise UserError(f"manifest {path} line {i + 1} is not '<sha256>  <file name>'")
        digest, name = parts[0].lower(), parts[1].lstrip("*")
        if name in wanted:
            out[name] = _check_hex(digest, f"manifest {path} line {i + 1}")
    return out


def _check_hex(digest: str, where: str) -> str:
    if not _HEX64.match(digest):
        raise UserError(f"{where}: {digest[:70]!r} is not a sha256 (64 hex digits)")
    return digest


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------- download


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse | None:
    """GET ``url`` from byte ``offset``; None when the server says the range is past the end (HTTP 416)."""
    headers = {"User-Agent": "zsl-bench-fetch/1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return None
        raise UserError(
            f"download of {url} failed: HTTP {exc.code} {one_line(exc.reason)}; check the URL or use --mirror"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"cannot reach {url} ({one_line(reason)}); check the network or use --mirror (a partial download resumes)"
        ) from None


def download(
    url: str, dest: Path, *, size: int | None = None, progress: Progress | None = None, timeout: float = 60.0
) -> None:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming an existing ``.part`` with HTTP Range.

    Raises:
        UserError: network or HTTP failure, or an interrupted transfer (the ``.part`` is kept for resuming).
    """
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:  # not a prefix of the file: start again
        part.unlink()
        have = 0
    if size is not None and have == size:
        move_into_place(part, dest)
        return
    resp = _open(url, have, timeout)
    if resp is None:  # 416: nothing more to send, the .part is complete
        move_into_place(part, dest)
        return
    with resp:
        total = _response_total(resp, have)
        mode = "ab"
        if have and resp.status != 206:  # the server ignored Range: start again
            have, mode = 0, "wb"
            total = _response_total(resp, 0)
        done = have
        try:
            with open(part, mode) as fh:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(dest.name, done, total)
        except (http.client.IncompleteRead, OSError) as exc:
            raise UserError(
                f"download of {url} was interrupted after {done} bytes ({type(exc).__name__}); "
                "run the same command again to resume"
            ) from None
    if total is not None and done != total:
        raise UserError(f"download of {url} stopped at {done} of {total} bytes; run the same command again to resume")
    move_into_place(part, dest)


def _response_total(resp: http.client.HTTPResponse, offset: int) -> int | None:
    if resp.status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+)", resp.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != offset:
            raise UserError(f"{resp.url}: the server answered the range request with a different range; retry")
        return int(match.group(2))
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def terminal_progress(stream: TextIO = sys.stderr) -> Progress:
    """A progress bar on ``stream`` (call it only when the stream is a terminal)."""
    state = {"last": 0.0, "start": time.monotonic(), "name": ""}

    def show(name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if name != state["name"]:
            state.update(name=name, start=now, last=0.0)
        finished = total is not None and done >= total
        if now - float(state["last"]) < 0.2 and not finished:
            return
        state["last"] = now
        rate = done / max(now - float(state["start"]), 1e-6) / 2**20
        if total:
            filled = int(30 * done / total)
            bar = "#" * filled + "-" * (30 - filled)
            text = f"\r{name} [{bar}] {100 * done / total:5.1f}% {done / 2**20:,.1f}/{total / 2**20:,.1f} MiB"
        else:
            text = f"\r{name} {done / 2**20:,.1f} MiB"
        stream.write(f"{text} {rate:,.1f} MiB/s ")
        if finished:
            stream.write("\n")
        stream.flush()

    return show


# ------------------------------------------------------------------------------------------------ unpack


class BadArchive(UserError):
    """The archive's content is refused (unsafe member, link, unreadable, not the expected tree): it is kept aside."""


def _safe_member(name: str, archive: Path) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    drive = bool(path.parts) and path.parts[0].endswith(":")
    if path.is_absolute() or ".." in path.parts or drive:
        raise BadArchive(f"{archive} holds an unsafe member path {name!r}; it was not unpacked")


def unpack(archive: Path, into: Path) -> None:
    """Extract a zip or tar(.gz) archive into the folder ``into`` (refusing unsafe members).

    Raises:
        BadArchive: not an archive, corrupt, a symbolic link or device member, or a member that would land
            outside ``into``.
        UserError: the unpacking itself failed (disk full).
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _safe_member(name, archive)
                zf.extractall(into)
            return
        with tarfile.open(archive, "r:*") as tf:
            for member in tf.getmembers():
                _check_tar_member(member, archive)
            tf.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        what = f"{type(exc).__name__}: {one_line(exc)}"
        raise BadArchive(f"{archive} is not a readable zip/tar archive ({what})") from None
    except OSError as exc:
        raise UserError(f"cannot unpack {archive} into {into} ({one_line(exc)}); check the free disk space") from None


def _check_tar_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse unsafe paths, devices, every symbolic link (one inside the tree, ``top/UP -> ..``, leaves the root
    once ``top``'s entries move up; the datasets' archives hold none) and hard links leaving the tree."""
    _safe_member(member.name, archive)
    if member.issym():
        raise BadArchive(
            f"{archive} member {member.name!r} is a symbolic link (to {member.linkname!r}); dataset archives hold "
            "plain files and folders only, so it was not unpacked"
        )
    if member.isdev() or (member.islnk() and _link_escapes(member)):
        raise BadArchive(f"{archive} member {member.name!r} is a device or a link leaving the tree")


def _link_escapes(member: tarfile.TarInfo) -> bool:
    target = PurePosixPath(member.linkname)
    if target.is_absolute():
        return True
    base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
    depth = 0
    for part in (base / target).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def _find_base(staging: Path, anchor: str, archive: Path) -> Path:
    """The folder of the unpacked tree under which ``anchor`` exists (the tree root or up to 2 levels down)."""
    candidates = [staging]
    for _ in range(2):
        if any((c / anchor).exists() for c in candidates):
            break
        candidates = [d for c in candidates for d in sorted(c.iterdir()) if d.is_dir()]
    found = [c for c in candidates if (c / anchor).exists()]
    if not found:
        raise BadArchive(f"{archive} does not contain {anchor}; is it the right archive? (not installed)")
    return found[0]


def _placements(target: Target, base: Path) -> list[tuple[Path, str]]:
    """(source in the unpacked tree, destination relative to --root) for everything the target installs."""
    if target.dataset_folder:
        return [(child, child.name) for child in sorted(base.iterdir()) if child.name != "__MACOSX"]
    out = []
    for ds in sorted(p for p in (base / "data").iterdir() if p.is_dir()):
        out.extend((f, f"{ds.name}/{f.name}") for f in sorted(ds.iterdir()))
    return out


def _same_file(a: Path, b: Path) -> bool:
    return a.is_file() and b.is_file() and a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)


# ------------------------------------------------------------------------------------------------ fetch


def _state_path(root: Path, target: Target) -> Path:
    return root / STATE_DIR / f"{target.name}.json"


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    atomic.write_text(path, json.dumps(state, indent=2, sort_keys=True) + "\n", mode=0o644)


def default_fetch_root(target: Target) -> Path:
    """``data`` for a target that fills several dataset folders (xlsa17), else the dataset's default folder."""
    if not target.dataset_folder:
        return Path("data")
    from zsl_bench.data.declare import dataset_spec

    return dataset_spec(target.name).default_root()


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
        progress: download progress callback (:func:`terminal_progress`).
        log: receives one-line remarks (first-use checksums, what was skipped).
        timeout: seconds per network operation.

    Raises:
        UserError: unknown target, network/HTTP failure, checksum mismatch (archive kept aside), bad archive,
            or a destination entry that is in the way.
    """
    target = fetch_target(name)
    root = Path(root if root is not None else default_fetch_root(target)).resolve()
    _check_arguments(root, mirror)
    log = log or (lambda _msg: None)
    sha256 = dict(sha256 or {})
    state_path = _state_path(root, target)
    state = _read_state(state_path)
    result = FetchResult(target.name, root, "installed")
    if state.get("complete") and all((root / p).exists() for p in state.get("placed", [])):
        result.status, result.archives, result.placed = "already installed", state["archives"], state["placed"]
        return result
    if not state and all((root / m).exists() for m in target.markers):
        result.status = "already present"
        log(f"{root} already has {', '.join(target.markers)}; nothing to fetch")
        return result
    downloads = root / STATE_DIR / "downloads"
    for archive in target.archives:
        url = f"{mirror.rstrip('/')}/{archive.filename}" if mirror else archive.url
        path = downloads / archive.filename
        if not path.is_file():
            download(url, path, size=archive.size, progress=progress, timeout=timeout)
        recorded = state.get("archives", {}).get(archive.filename, {}).get("sha256")
        expected, checked = _expected(archive, sha256, recorded)
        got = sha256_file(path)
        if expected is not None and got != expected:
            aside = path.with_name(path.name + ".sha256-mismatch")
            move_into_place(path, aside)
            raise UserError(
                f"{archive.filename} from {url} has sha256 {got[:16]}… but {expected[:16]}… was expected; kept "
                f"aside as {aside} and not unpacked: delete it to retry, or pass --sha256 {archive.filename}=<hex> "
                "if the upstream archive changed"
            )
        result.archives[archive.filename] = {"sha256": got, "checked": checked}
        state.setdefault("archives", {})[archive.filename] = result.archives[archive.filename]
        try:
            result.placed.extend(_install(target, archive, path, root, state, state_path))
        except BadArchive as exc:
            aside = path.with_name(path.name + ".refused")
            move_into_place(path, aside)
            raise UserError(f"{exc}; kept aside as {aside}: delete it to retry") from None
        if not keep_archives:
            path.unlink(missing_ok=True)
            _remove_if_empty(downloads)
        if expected is None:  # said after success, so that a failure stays one line
            log(
                f"no official sha256 is known for {archive.filename}; got {got}: compare it with a trusted source "
                f"or pin it with --sha256 {archive.filename}={got}"
            )
    state.update(target=target.name, complete=True, placed=result.placed)
    _write_state(state_path, state)
    return result


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when nothing is left in it."""
    with contextlib.suppress(OSError):  # not empty (kept archives, an aside file) or already gone
        folder.rmdir()


def _expected(archive: Archive, given: dict[str, str], recorded: str | None) -> tuple[str | None, str]:
    if archive.filename in given:
        return given[archive.filename], "given"
    if archive.sha256 is not None:
        return archive.sha256, "official"
    if recorded is not None:
        return recorded, "recorded"
    return None, "first use"


def _install(
    target: Target, archive: Archive, path: Path, root: Path, state: dict[str, Any], state_path: Path
) -> list[str]:
    """Unpack ``path`` and move its entries under ``root``; returns the placed paths (relative to root)."""
    staging_parent = root / STATE_DIR
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"unpack-{archive.filename}-", dir=staging_parent))
    try:
        unpack(path, staging)
        base = _find_base(staging, archive.anchor, path)
        moves = _placements(target, base)
        ours = set(state.get("placing", []))
        for src, rel in moves:  # decide every conflict before moving anything
            dest = root / rel
            if dest.exists() and rel not in ours and not _same_file(src, dest):
                raise UserError(
                    f"{dest} already exists and is not what {archive.filename} unpacks there; move it away and "
                    "rerun (nothing was changed)"
                )
        state["placing"] = sorted(ours | {rel for _, rel in moves})
        state["complete"] = False
        _write_state(state_path, state)
        for src, rel in moves:
            dest = root / rel
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)  # ours from an interrupted run (conflicts were refused above)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            dest.parent.mkdir(parents=True, exist_ok=True)
            move_into_place(src, dest)
        return [rel for _, rel in moves]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
