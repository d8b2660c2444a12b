"""``zsl_bench.atomic``: a write replaces the file whole or not at all, and leaves no temp file either way."""

from __future__ import annotations

import stat

import pytest

from zsl_bench import atomic


def test_a_write_replaces_the_file_with_the_requested_mode(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic.write_text(path, "one")
    assert path.read_text() == "one" and stat.S_IMODE(path.stat().st_mode) == 0o600  # mkstemp's mode by default
    atomic.write_bytes(path, b"two", fsync=True, mode=0o644)
    assert path.read_bytes() == b"two" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic.write_bytes(path, b"old")
    with pytest.raises(RuntimeError), atomic.atomic_open(path) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError), atomic.atomic_path(path) as tmp:
        tmp.write_bytes(b"new")
        raise RuntimeError("killed")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_temp_files_are_named_for_the_cleaner(tmp_path):
    path = tmp_path / "summary.json"
    with atomic.atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".summary.json.") and tmp.name.endswith(".tmp")
        tmp.write_text("{}")
    assert path.read_text() == "{}"
