"""A wheel install, as `pip install zsl-bench` gives it: the main command works from an empty directory.

The wheel is built from a copy of the sources (nothing is written into the repository) and installed, not
editable and without dependencies, into a fresh venv. The heavy dependencies (torch, ray, …) come from the project
venv through a ``.pth`` line naming its site-packages; the ``.pth`` files *inside* that directory are not
processed, so the project's editable install of zsl_bench does not reach the fresh venv (checked below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "zsl_bench")  # what the build reads (pyproject names the readme)
DATA = ("zsl_bench/spaces/*.yaml", "zsl_bench/presets/*.yaml", "zsl_bench/cluster/templates/*.sbatch")


def run(argv: list[str | Path], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with the ambient environment minus anything that would point Python at the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(RAY_USAGE_STATS_ENABLED="0", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def build_wheel(work: Path) -> Path:
    """The wheel of a copy of the build inputs (pip builds in-tree: the copy keeps build/ out of the repo)."""
    src = work / "src"
    src.mkdir()
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info")
    for name in BUILD_INPUTS:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=junk)
        else:
            shutil.copy2(origin, src / name)
    dist = work / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, src], cwd=work)
    wheels = sorted(dist.glob("zsl_bench-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def fresh_venv(work: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed (not editable), then given the project venv's site-packages."""
    venv = work / "fresh"
    run([sys.executable, "-m", "venv", venv], cwd=work)
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], cwd=work)
    # after the install: pip must never see (or try to replace) the project's editable zsl-bench
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work).stdout.strip()
    project = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "zsl_project_deps.pth").write_text("".join(f"{p}\n" for p in sorted(project)))
    return venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fresh venv, with the wheel built from this checkout installed in it."""
    work = tmp_path_factory.mktemp("packaging")
    wheel = build_wheel(work)
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [p.relative_to(REPO).as_posix() for pattern in DATA for p in sorted(REPO.glob(pattern))]
    assert len(data) > 20 and "zsl_bench/spaces/zeromamba_cub.yaml" in data, data
    missing = [n for n in data if n not in names]
    assert not missing, f"package data missing from {wheel.name}: {missing}"
    return fresh_venv(work, wheel)


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    """An empty working directory: nothing in it for --space to find."""
    cwd = tmp_path / "empty"
    cwd.mkdir()
    return cwd


def test_zsl_bench_comes_from_the_wheel(installed: Path, empty_dir: Path):
    code = "import zsl_bench, torch, ray; print(zsl_bench.__file__)"
    where = Path(run([installed / "bin" / "python", "-c", code], cwd=empty_dir).stdout.strip())
    assert where.is_relative_to(installed), where
    assert not where.is_relative_to(REPO), where


def test_shipped_spaces_and_template_are_found(installed: Path, empty_dir: Path):
    zsl = installed / "bin" / "zsl-bench"
    listing = run([zsl, "spaces", "list"], cwd=empty_dir).stdout.splitlines()
    assert any(line.split()[:3] == ["zeromamba_cub", "zeromamba_vmamba_s", "cub"] for line in listing), listing
    assert any(line.split()[:1] == ["quickstart"] for line in listing), listing
    dry = [zsl, "cluster", "slurm", "--space", "zeromamba_cub.yaml", "--cpus-per-node", "2", "--dry-run"]
    script = run([*dry, "--results", empty_dir / "r"], cwd=empty_dir).stdout
    assert script.startswith("#!/bin/bash") and "#SBATCH --cpus-per-task=2" in script
    space_line = next(line for line in script.splitlines() if line.startswith("ZSL_SWEEP_ARGS=("))
    assert str(installed) in space_line and "zsl_bench/spaces/zeromamba_cub.yaml" in space_line, space_line
    assert list(empty_dir.iterdir()) == []  # a dry run writes nothing


def test_main_command_smoke_from_an_empty_directory(installed: Path, empty_dir: Path):
    results = empty_dir.parent / "results"
    argv = [installed / "bin" / "zsl-bench", "sweep", "--space", "zeromamba_cub.yaml", "--smoke", "--results", results]
    out = run(argv, cwd=empty_dir, timeout=600).stdout
    assert "search 2 completed" in out or "early-stopped" in out, out
    runs = [p for p in (results / "zeromamba_cub-smoke").iterdir() if not p.name.startswith("_")]
    assert runs and all((run_dir / "config.yaml").is_file() for run_dir in runs), runs
    assert any((run_dir / "done").exists() for run_dir in runs), runs
    assert list(empty_dir.iterdir()) == []  # everything went under --results
