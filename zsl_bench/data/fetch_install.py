"""Placing an unpacked archive under ``--root`` for ``zsl-bench data fetch``, and the record of what was placed.

Caller: :mod:`zsl_bench.data.fetch` (:func:`install`, :func:`read_state`, :func:`write_state`, :data:`STATE_DIR`).

The archive is unpacked into a staging folder beside the destination (:func:`zsl_bench.data.fetch_archive.unpack`),
then its entries move into place with one rename each. Existing entries that are not identical and not from an
interrupted earlier run are never overwritten; every conflict is decided before anything moves.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zsl_bench import atomic
from zsl_bench.atomic import move_into_place
from zsl_bench.data.fetch_archive import BadArchive, unpack
from zsl_bench.data.fetch_targets import Archive, Target
from zsl_bench.errors import UserError

STATE_DIR = ".zsl-fetch"


def state_path(root: Path, target: Target) -> Path:
    """``ROOT/.zsl-fetch/<target>.json``: the record of a fetch into ``root``."""
    return root / STATE_DIR / f"{target.name}.json"


def read_state(path: Path) -> dict[str, Any]:
    """The record at ``path``; empty when there is none or it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write the record atomically."""
    atomic.write_text(path, json.dumps(state, indent=2, sort_keys=True) + "\n", mode=0o644)


def install(target: Target, archive: Archive, path: Path, *, root: Path, state: dict[str, Any]) -> list[str]:
    """Unpack ``path`` (the downloaded ``archive``) and move its entries under ``root``; returns the placed paths
    (relative to root). ``state`` (the target's record) notes the paths being placed before anything moves.

    Raises:
        BadArchive: the archive is refused or is not the expected tree.
        UserError: a destination entry is in the way (nothing is changed), or the unpacking failed.
    """
    staging_parent = root / STATE_DIR
    staging_parent.mkdir(parents=True, exist_ok=True)
    prefix = f"unpack-{archive.filename}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=staging_parent, ignore_cleanup_errors=True) as staging:
        unpack(path, Path(staging))
        base = _find_base(Path(staging), archive.anchor, path)
        moves = _placements(target, base)
        ours = set(state.get("placing", []))
        _refuse_conflicts(moves, root=root, ours=ours, archive=archive)
        state["placing"] = sorted(ours | {rel for _, rel in moves})
        state["complete"] = False
        write_state(state_path(root, target), state)
        for src, rel in moves:
            _move(src, root / rel)
    return [rel for _, rel in moves]


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


def _refuse_conflicts(moves: list[tuple[Path, str]], *, root: Path, ours: set[str], archive: Archive) -> None:
    """UserError when a destination exists, is not ours from an interrupted run and is not the same file."""
    for src, rel in moves:
        dest = root / rel
        if dest.exists() and rel not in ours and not filecmp.cmp(src, dest, shallow=False):
            raise UserError(
                f"{dest} already exists and is not what {archive.filename} unpacks there; move it away and "
                "rerun (nothing was changed)"
            )


def _move(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest``, replacing what an interrupted run left there (conflicts were refused before)."""
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif dest.exists() or dest.is_symlink():
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    move_into_place(src, dest)
