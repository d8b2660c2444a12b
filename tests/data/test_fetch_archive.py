"""Archive safety of ``data fetch``: the same refusals with tarfile's ``data`` filter and with our own checks."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from zsl_bench.data import fetch_archive
from zsl_bench.data.fetch_archive import BadArchive, unpack


def tar_with(*members: tarfile.TarInfo) -> bytes:
    """A tar.gz of ``top/a.txt`` (one byte) followed by ``members`` (links, devices: no data)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("top/a.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"1"))
        for member in members:
            tf.addfile(member)
    return buf.getvalue()


def member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.fixture(params=["data filter", "own checks"])
def checks(request, monkeypatch) -> str:
    """Run each test with tarfile's ``data`` filter (where this Python has it) and with our fallback checks."""
    if request.param == "data filter" and fetch_archive.DATA_FILTER is None:
        pytest.skip("this Python has no tarfile extraction filters")
    if request.param == "own checks":
        monkeypatch.setattr(fetch_archive, "DATA_FILTER", None)
    return request.param


@pytest.mark.parametrize(
    "bad, message",
    [
        (member("top/dev", tarfile.CHRTYPE), "'top/dev' is a device or a link leaving the tree"),
        (member("top/pipe", tarfile.FIFOTYPE), "'top/pipe' is a device or a link leaving the tree"),
        (member("top/hard", tarfile.LNKTYPE, "../outside"), "'top/hard' is a device or a link leaving the tree"),
        (member("top/hard", tarfile.LNKTYPE, "/etc/passwd"), "'top/hard' is a device or a link leaving the tree"),
        (member("top/soft", tarfile.SYMTYPE, "a.txt"), "'top/soft' is a symbolic link (to 'a.txt')"),
        (member("/abs.txt", tarfile.REGTYPE), "unsafe member path '/abs.txt'"),
        (member("top/../../up.txt", tarfile.REGTYPE), "unsafe member path 'top/../../up.txt'"),
        (member("C:/drive.txt", tarfile.REGTYPE), "unsafe member path 'C:/drive.txt'"),
    ],
)
def test_refused_members_leave_nothing_behind(checks, bad, message, tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(tar_with(bad))
    out = tmp_path / "out"
    with pytest.raises(BadArchive) as caught:
        unpack(archive, out)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not out.exists() or not any(out.iterdir())  # checked before anything is written


def test_hard_links_inside_the_tree_are_unpacked(checks, tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(tar_with(member("top/b.txt", tarfile.LNKTYPE, "top/a.txt")))
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "b.txt").read_bytes() == b"1"
