"""A results tree for the report tests: several datasets, models, seeds, both stages, broken runs.

``results_tree`` (what each run is for):

Every run's ``metrics.jsonl`` has a line per epoch and split (val and test in the search stage, test in the final
one) rising to its selected numbers.

``cubsweep/`` cub × resnet_test, compute on CUDA
    t1, t2, t3          search trials (t3 early-stopped); t1 has the best validation H, t2 the second
    t4                  failed after recording some compute (error.txt, summary ``running``)
    t5                  half-written: still running (no ``done``)
    t6                  ``done`` but a malformed summary: unreadable
    final-1-seed{0,1,2} parent t1: the row shown
    final-2-seed{0,1}   parent t2: better on test, worse on validation: must NOT be shown
``synthsweep/`` synth, search over the model
    a (resnet_test), b and c (vit_test); vit_test has final runs (parent b), resnet_test has none → search fallback
``runs/`` awa2 × vit_test, final stage without a parent (``zsl-bench train``)
    v-seed0, v-seed1 (lr 1e-3) and w-seed0 (lr 1e-2, better on test): no validation evidence → most seeds wins
``junk/`` an unparseable config.yaml; ``_ray/x`` a config.yaml that run discovery must ignore.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from zsl_bench.rundir import RunWriter

REFERENCE_YAML = """\
source: a test table
rows:
  - method: PaperNet
    venue: CVPR'99
    backbone: ResNet-101
    results:
      cub: {czsl: 70.1, u: 60.2, s: 70.3, h: 64.9}
      sun: {czsl: 60.0, u: 40.0, s: 30.0, h: 34.3}
      awa2: {czsl: 50.0, u: 40.0, s: 80.0, h: 53.3, accuracy: per_sample, accuracy_source: its script passes --all}
  - method: Other_Net
    backbone: ViT-B
    source: another table
    results:
      awa2: {h: 99.9}
"""


def gzsl(czsl: float, u: float, s: float) -> dict[str, float]:
    """A test block with a consistent H."""
    return {"czsl": czsl, "u": u, "s": s, "h": 2 * u * s / (u + s)}


def write_epochs(w: RunWriter, epochs: int, val: dict[str, float] | None, test: dict[str, float]) -> None:
    """``metrics.jsonl``: a line per epoch and split, rising to the selected numbers at the last epoch."""
    for epoch in range(1, epochs + 1):
        for split, block in (("val", val), ("test", test)):
            if block is not None:
                scores = {k: v * (0.5 + 0.5 * epoch / epochs) for k, v in block.items()}
                w.metrics({"epoch": epoch, "split": split, "gamma": 0.1, "time_s": 10.0 * epoch, **scores})


def write_run(
    root: Path,
    name: str,
    *,
    dataset: str,
    model: str,
    stage: str = "search",
    seed: int = 0,
    lr: float = 1e-3,
    val_h: float | None = 0.5,
    test: dict[str, float] | None = None,
    oracle: dict[str, float] | None = None,
    compute_s: float = 60.0,
    device: str = "cpu",
    parent: str | None = None,
    status: str = "completed",
    done: bool = True,
    error: str | None = None,
    finished_at: float | None = None,
    epochs: int = 4,
    accuracy: str | None = None,
) -> Path:
    """One run directory as the engine writes it (``oracle``: the test block of ``best_by_test``)."""
    test = test or gzsl(0.6, 0.4, 0.5)
    oracle = oracle or {k: min(1.0, v + 0.02) for k, v in test.items()}
    path = root / name
    w = RunWriter(path)
    w.config(
        {
            "model": {"name": model, "options": {}},
            "data": {"name": dataset, "root": f"/data/{dataset}"},
            "train": {"epochs": epochs, "seed": seed, "device": "auto"},
            "optim": {"name": "adamw", "lr": lr},
            "eval": {"score_space": "softmax", "gamma": None, **({"accuracy": accuracy} if accuracy else {})},
            "meta": {"sweep": root.name, "trial_id": name, "stage": stage, "parent": parent},
        }
    )
    val = None if stage == "final" or val_h is None else {"czsl": 0.5, "u": 0.4, "s": 0.6, "h": val_h}
    write_epochs(w, epochs, val, test)
    summary: dict[str, Any] = {
        "status": "running" if (error or not done) else status,
        "epochs_run": epochs,
        "stage": stage,
        "compute_s": compute_s,
        "device": device,
        "best_by_val": {"epoch": epochs, "czsl_epoch": epochs, "gamma": 0.1, "val": val, "test": test},
        "best_by_test": {"epoch": epochs, "czsl_epoch": epochs, "gamma": 0.2, "val": val, "test": oracle},
    }
    w.summary(summary)
    if error:
        w.error(error)
    elif done:
        w.done()
    if finished_at is not None:
        for f in path.iterdir():
            os.utime(f, (finished_at, finished_at))
    return path


def build_tree(root: Path) -> Path:
    """The results tree described in the module docstring; returns ``root``."""
    cub = root / "cubsweep"
    kw: dict[str, Any] = {"dataset": "cub", "model": "resnet_test", "device": "cuda:0"}
    write_run(cub, "t1", lr=1e-3, val_h=0.60, compute_s=3600, finished_at=1000, **kw)
    write_run(cub, "t2", lr=1e-2, val_h=0.50, compute_s=1800, finished_at=2000, **kw)
    write_run(cub, "t3", lr=3e-3, val_h=0.20, compute_s=600, status="stopped", finished_at=1500, **kw)
    write_run(cub, "t4", lr=2e-3, compute_s=120, error="RuntimeError: boom", finished_at=1800, **kw)
    write_run(cub, "t5", lr=4e-3, compute_s=300, done=False, finished_at=2500, **kw)
    bad = write_run(cub, "t6", lr=5e-3, compute_s=10, **kw)
    (bad / "summary.json").write_text('{"status": "completed", "best_by_val": {"test": {"czsl": "n/a"}}}')
    for seed, (czsl, h_u) in enumerate([(0.60, 0.40), (0.62, 0.42), (0.64, 0.44)]):
        test = gzsl(czsl, h_u, 0.70)
        write_run(cub, f"final-1-seed{seed}", stage="final", seed=seed, parent="t1", test=test, compute_s=900, **kw)
    for seed in range(2):
        test = gzsl(0.90, 0.90, 0.90)
        kw2 = {**kw, "lr": 1e-2}
        write_run(cub, f"final-2-seed{seed}", stage="final", seed=seed, parent="t2", test=test, compute_s=900, **kw2)

    synth = root / "synthsweep"
    write_run(synth, "a", dataset="synth", model="resnet_test", val_h=0.40, test=gzsl(0.55, 0.35, 0.45))
    write_run(synth, "b", dataset="synth", model="vit_test", lr=1e-3, val_h=0.45, test=gzsl(0.50, 0.30, 0.40))
    write_run(synth, "c", dataset="synth", model="vit_test", lr=1e-2, val_h=0.30, test=gzsl(0.99, 0.99, 0.99))
    for seed, u in enumerate([0.50, 0.56]):
        test = gzsl(0.70 + seed / 10, u, 0.60)
        kw3: dict[str, Any] = {"dataset": "synth", "model": "vit_test", "parent": "b", "compute_s": 30}
        write_run(synth, f"final-1-seed{seed}", stage="final", seed=seed, test=test, **kw3)

    runs = root / "runs"
    kw4: dict[str, Any] = {"dataset": "awa2", "model": "vit_test", "stage": "final", "compute_s": 7200}
    write_run(runs, "v-seed0", seed=0, test=gzsl(0.30, 0.20, 0.80), **kw4)
    write_run(runs, "v-seed1", seed=1, test=gzsl(0.34, 0.24, 0.82), **kw4)
    write_run(runs, "w-seed0", seed=0, lr=1e-2, test=gzsl(0.95, 0.95, 0.95), **kw4)

    (root / "junk").mkdir()
    (root / "junk" / "config.yaml").write_text("model: [unclosed\n")
    write_run(root / "_ray", "x", dataset="cub", model="ignored_model")
    return root


@pytest.fixture
def results_tree(tmp_path: Path) -> Path:
    """A fresh copy of the standard results tree."""
    return build_tree(tmp_path / "results")


@pytest.fixture
def reference_dir(tmp_path: Path) -> Path:
    """A folder with one small reference YAML (cub and sun rows, a per-sample awa2 row; an awa2 H-only row)."""
    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / "papers.yaml").write_text(REFERENCE_YAML)
    return ref
