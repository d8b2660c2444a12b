"""Folders the bad-input cases start from: damaged datasets, results folders, run directories, cluster records.

Each function takes the case's folder and builds what its argv names (relative paths). Valid pieces are copied
from the shared synthetic dataset (:func:`fault_harness.synth_root`); the damage is the point of the case.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

from fault_harness import synth_root

SPLIT_FILES = ("att_splits.mat", "allclasses.txt", "trainvalclasses.txt", "testclasses.txt", "image_files.txt")
ALIASES = ", ".join(f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10))
BOMB = f"[&a0 [lol], {ALIASES}]"  # 10⁹ leaves once expanded, 300 bytes here


def dataset_copy(folder: Path, name: str = "ds", drop: tuple[str, ...] = (), images: bool = False) -> Path:
    """``folder/name``: the synthetic dataset's split files (and images), without ``drop``."""
    src, dst = synth_root(), folder / name
    if images:
        shutil.copytree(src, dst)
    else:
        dst.mkdir(parents=True)
        for item in src.iterdir():
            if item.is_file():
                shutil.copy2(item, dst / item.name)
    for item in drop:
        target = dst / item
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return dst


def damaged(name: str, content: bytes | None, drop: tuple[str, ...] = ()) -> Callable[[Path], None]:
    """A setup: ``ds/`` with ``name`` replaced by ``content`` (None: removed) and ``drop`` removed."""

    def setup(folder: Path) -> None:
        root = dataset_copy(folder, drop=drop)
        if content is None:
            (root / name).unlink()
        else:
            (root / name).write_bytes(content)

    return setup


def mat_without(key: str) -> Callable[[Path], None]:
    """A setup: ``ds/att_splits.mat`` lacking ``key`` (e.g. ``att``)."""

    def setup(folder: Path) -> None:
        import scipy.io

        root = dataset_copy(folder)
        data = {k: v for k, v in scipy.io.loadmat(root / "att_splits.mat").items() if not k.startswith("__")}
        data.pop(key)
        scipy.io.savemat(root / "att_splits.mat", data)

    return setup


def run_dir(folder: Path, rel: str = "res/sweep/run1", summary: str | None = None, config: str | None = None) -> Path:
    """A run directory at ``folder/rel`` with a valid config (unless ``config`` is given) and ``summary``."""
    from zsl_bench.config import build_config, to_dict
    from zsl_bench.rundir import write_yaml

    path = folder / rel
    path.mkdir(parents=True)
    if config is None:
        write_yaml(path / "config.yaml", to_dict(build_config(None, {"meta.sweep": "sweep"})))
    else:
        (path / "config.yaml").write_text(config)
    if summary is not None:
        (path / "summary.json").write_text(summary)
        (path / "done").write_text("")
    return path


def runs(summary: str | None = None, config: str | None = None) -> Callable[[Path], None]:
    """A setup: ``res/sweep/run1``, a run with this ``summary.json`` / ``config.yaml`` text."""
    return lambda folder: (run_dir(folder, summary=summary, config=config), None)[1]


def cluster_record(record: dict | str) -> Callable[[Path], None]:
    """A setup: ``cl/cluster.json`` holding ``record`` (a dict as JSON, or the text itself)."""

    def setup(folder: Path) -> None:
        path = folder / "cl" / "cluster.json"
        path.parent.mkdir(mode=0o700)
        path.write_text(record if isinstance(record, str) else json.dumps(record))

    return setup


class _Payload:
    """Unpickling it would call ``print`` (a stand-in for ``os.system``)."""

    def __reduce__(self) -> tuple:
        return (print, ("PWNED",))


def planted_checkpoint(folder: Path) -> None:
    """``run/``: an unfinished run of the train case's config whose ``checkpoint/latest.pt`` is a foreign pickle."""
    from zsl_bench.config import build_config, to_dict
    from zsl_bench.rundir import write_yaml

    overrides = {"model.name": "resnet_test", "data.name": "synth", "data.root": str(synth_root())}
    path = folder / "run"
    (path / "checkpoint").mkdir(parents=True)
    write_yaml(path / "config.yaml", to_dict(build_config(None, {**overrides, "train.epochs": 1})))
    with open(path / "checkpoint" / "latest.pt", "wb") as fh:
        pickle.dump({"epoch": 1, "model": _Payload()}, fh, protocol=2)


def a_file(rel: str) -> Callable[[Path], None]:
    """A setup: a small file at ``rel`` (where the command expects a folder)."""
    return lambda folder: (folder / rel).write_text("not a folder\n") and None


def a_folder(rel: str) -> Callable[[Path], None]:
    """A setup: an empty folder at ``rel`` (where the command expects a file)."""
    return lambda folder: (folder / rel).mkdir(parents=True)


def sweep_with_runs(folder: Path) -> None:
    """``res/quick/``: a sweep folder that already has a run (a new sweep of that name must say --resume)."""
    run_dir(folder, "res/quick/t1")


_TRAINED: list[Path] = []


def trained_run(folder: Path) -> None:
    """``res/sweep/run1``: a finished one-epoch run (trained once per process, then copied)."""
    if not _TRAINED:
        import tempfile

        from zsl_bench.config import build_config
        from zsl_bench.engine import run_trial

        overrides = {"data.root": str(synth_root()), "train.epochs": 1, "train.batch_size": 32, "meta.sweep": "sweep"}
        import torch

        run, threads = Path(tempfile.mkdtemp(prefix="zsl-faults-run-")) / "run1", torch.get_num_threads()
        try:
            run_trial(build_config("quickstart", {**overrides, "train.num_threads": 1}), run)
        finally:
            torch.set_num_threads(threads)
        _TRAINED.append(run)
    shutil.copytree(_TRAINED[0], folder / "res" / "sweep" / "run1")
