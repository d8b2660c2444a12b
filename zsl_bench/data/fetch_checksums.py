"""sha256 of ``zsl-bench data fetch``: the ``--sha256`` / ``--manifest`` values and the expected checksum.

Callers: the ``data fetch`` command of :mod:`zsl_bench.cli` (:func:`parse_sha256_args`, :func:`read_manifest`),
:mod:`zsl_bench.data.fetch` (:func:`sha256_file`, :func:`expected_sha256`) and
:mod:`zsl_bench.data.fetch_install` (:func:`sha256_file`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from zsl_bench.data.fetch_targets import Archive, Target
from zsl_bench.errors import UserError

_CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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


def expected_sha256(archive: Archive, given: dict[str, str], recorded: str | None) -> tuple[str | None, str]:
    """(expected hex or None, how it is known): given on the command line, official, recorded, or first use."""
    if archive.filename in given:
        return given[archive.filename], "given"
    if archive.sha256 is not None:
        return archive.sha256, "official"
    if recorded is not None:
        return recorded, "recorded"
    return None, "first use"
