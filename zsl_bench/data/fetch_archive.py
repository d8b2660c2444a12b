"""Archive safety of ``zsl-bench data fetch``: unpack a zip or tar(.gz) archive, refusing what a dataset never holds.

Caller: :mod:`zsl_bench.data.fetch_install` (:func:`unpack`, :class:`BadArchive`).

Every member is checked before anything is written. Refused in every archive: member paths that are absolute,
hold ``..`` or start with a drive (``C:``) — zipfile rewrites such names and tarfile's filter strips a leading
``/``, but a dataset archive holds none — and every symbolic link (one inside the tree, ``top/UP -> ..``, leaves
``--root`` once ``top``'s entries move up). Devices and hard links leaving the tree are refused by tarfile's
``data`` extraction filter, which also extracts the members (Python >= 3.12 and the security releases 3.10.12 /
3.11.4); on a Python without it, by our own checks.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from zsl_bench.data.xlsa17 import one_line
from zsl_bench.errors import UserError

DATA_FILTER = getattr(tarfile, "data_filter", None)  # None: a Python without extraction filters


class BadArchive(UserError):
    """The archive's content is refused (unsafe member, link, unreadable, not the expected tree): it is kept aside."""


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
            _unpack_tar(tf, archive, into)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        what = f"{type(exc).__name__}: {one_line(exc)}"
        raise BadArchive(f"{archive} is not a readable zip/tar archive ({what})") from None
    except OSError as exc:
        raise UserError(f"cannot unpack {archive} into {into} ({one_line(exc)}); check the free disk space") from None


def _unpack_tar(tf: tarfile.TarFile, archive: Path, into: Path) -> None:
    """Check every member of ``tf`` (:func:`_check_tar_member`), then extract them into ``into``."""
    for member in tf.getmembers():
        _check_tar_member(member, archive, into)
    if DATA_FILTER is None:
        tf.extractall(into)
    else:
        tf.extractall(into, filter="data")


def _safe_member(name: str, archive: Path) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    drive = bool(path.parts) and path.parts[0].endswith(":")
    if path.is_absolute() or ".." in path.parts or drive:
        raise BadArchive(f"{archive} holds an unsafe member path {name!r}; it was not unpacked")


def _check_tar_member(member: tarfile.TarInfo, archive: Path, into: Path) -> None:
    """Refuse an unsafe path, any symbolic link, a device and a hard link leaving the tree (the last two by
    tarfile's ``data`` filter where there is one)."""
    _safe_member(member.name, archive)
    if member.issym():
        raise BadArchive(
            f"{archive} member {member.name!r} is a symbolic link (to {member.linkname!r}); dataset archives hold "
            "plain files and folders only, so it was not unpacked"
        )
    if DATA_FILTER is None:
        refused = member.isdev() or (member.islnk() and _link_escapes(member.linkname))
    else:
        try:
            DATA_FILTER(member, str(into))
            refused = False
        except tarfile.FilterError:
            refused = True
    if refused:
        raise BadArchive(f"{archive} member {member.name!r} is a device or a link leaving the tree")


def _link_escapes(linkname: str) -> bool:
    """Whether a hard link to ``linkname`` (relative to the archive's root) points outside the tree."""
    target = PurePosixPath(linkname)
    if target.is_absolute():
        return True
    depth = 0
    for part in target.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False
