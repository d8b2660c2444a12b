"""Shared fixtures: one synthetic dataset per test session, and the path to the real xlsa17 files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default synthetic dataset (32 classes, 8 unseen), generated once per session."""
    from zsl_bench.data.synth import SynthSpec, generate

    root = tmp_path_factory.mktemp("data") / "synth"
    generate(root, SynthSpec(seed=0))
    return root


SPLIT_FILES = ("att_splits.mat", "image_files.txt", "attributes.txt", "synth_spec.json", "allclasses.txt")
SPLIT_FILES += ("trainvalclasses.txt", "testclasses.txt", "trainclasses1.txt", "valclasses1.txt")


@pytest.fixture(scope="session")
def synth_res101(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset's split files (symlinks, no images) plus its synthetic res101.mat: the data of the
    families whose inputs are features."""
    from zsl_bench.data.features import write_synth_res101

    root = tmp_path_factory.mktemp("res101") / "synth"
    root.mkdir()
    for name in SPLIT_FILES:
        (root / name).symlink_to(synth_root / name)
    write_synth_res101(root)
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real xlsa17 split files beside the repo (../shared/data).

    Tests needing them skip without it on a developer machine; in CI (``CI=true``) a missing folder fails.
    """
    import os

    if not SHARED_DATA.is_dir():
        message = f"real xlsa17 files not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}; CI must provide them (CI=true)")
        pytest.skip(message)
    return SHARED_DATA


def _cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600):
    import os
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "zsl_bench.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def cli():
    """``cli(*args, cwd=None, env=None)`` runs ``zsl-bench ARGS`` in a fresh interpreter → (code, stdout, stderr)."""
    return _cli


SHARED_REF = REPO.parent / "shared" / "ref"  # golden vectors from the official VMamba/Vim code


@pytest.fixture(scope="session")
def ref_file():
    """``ref_file("vmamba/x.pt")`` → that file of ../shared/ref; skips when absent, except on CI (CI=true/1/yes)
    where absence fails."""
    import os

    def find(name: str) -> Path:
        path = SHARED_REF / name
        if not path.is_file():
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"reference file {path} is missing on CI")
            pytest.skip(f"reference file {path} not found")
        return path

    return find
