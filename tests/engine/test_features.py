"""The frozen-backbone feature cache in real trials: one extraction for many trials, identical metrics, a race of
two processes, invalidation by weights and transform, and the models it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zsl_bench.data.datasets import load_dataset
from zsl_bench.data.feature_store import FeatureStore
from zsl_bench.engine import features as engine_features
from zsl_bench.engine import run_trial
from zsl_bench.engine.features import HeadOnly, cache_key, check_cacheable, describe_backbone
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model
from zsl_bench.models.base import ZslModel


def frozen_cfg(root: Path, cache: Path, **sections: dict) -> dict:
    cfg = {
        "model": {"name": "resnet_test", "options": {"width": 8}, "freeze_backbone": True},
        "data": {"name": "synth", "root": str(root), "feature_cache_dir": str(cache)},
        "train": {"epochs": 1, "seed": 0, "num_threads": 1, "checkpoint": False},
        "optim": {"lr": 3e-3},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg[section], **values}
    return cfg


def records(run_dir: Path) -> list[dict]:
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("time_s")
        out.append(rec)
    return out


@pytest.fixture
def count_extractions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = engine_features.extract

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_features, "extract", counted)
    return calls


def test_one_extraction_serves_many_trials_with_identical_metrics(synth_root, tmp_path, count_extractions):
    cache = tmp_path / "features"
    end_to_end = frozen_cfg(synth_root, cache, data={"feature_cache": False}, train={"epochs": 2})
    run_trial(end_to_end, tmp_path / "uncached")
    assert count_extractions == []

    run_trial(frozen_cfg(synth_root, cache, train={"epochs": 2}), tmp_path / "cached")
    head_options = {"width": 8, "scoring": "cosine", "attr_weight": 0.5}  # head-only options share the entry
    run_trial(frozen_cfg(synth_root, cache, model={"options": head_options}, optim={"lr": 1e-2}), tmp_path / "c2")
    run_trial(frozen_cfg(synth_root, cache, optim={"weight_decay": 0.0}, train={"seed": 0}), tmp_path / "c3")
    assert len(count_extractions) == 1
    [entry] = FeatureStore(cache).entries()
    assert entry["hflip"] and entry["names"] == ["pooled"] and entry["shapes"]["pooled"] == [1280, 32]
    # flipped views only of the images a trial can train on: all but the 512 test images
    assert entry["hflip_rows"] == 768 and entry["shapes"]["pooled.hflip"] == [768, 32]
    # same seed, flips on: the cached run draws each flip as the image path does, so every record is equal
    assert records(tmp_path / "uncached") == records(tmp_path / "cached")
    assert json.loads((tmp_path / "c2" / "summary.json").read_text())["status"] == "completed"


def test_an_interrupted_cached_trial_resumes_to_the_same_records(synth_root, tmp_path, count_extractions):
    cfg = frozen_cfg(synth_root, tmp_path / "features", train={"epochs": 2, "checkpoint": True})
    run_trial(cfg, tmp_path / "whole")

    def interrupt(flat: dict) -> None:
        if flat["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, tmp_path / "resumed", report=interrupt)
    assert not (tmp_path / "resumed" / "done").exists()
    assert run_trial(cfg, tmp_path / "resumed")["epochs_run"] == 2  # continues from the epoch-1 checkpoint
    assert records(tmp_path / "resumed") == records(tmp_path / "whole") and len(count_extractions) == 1


def test_entries_change_with_weights_and_transform(synth_root, tmp_path, count_extractions):
    cache = tmp_path / "features"
    run_trial(frozen_cfg(synth_root, cache), tmp_path / "a")
    run_trial(frozen_cfg(synth_root, cache, train={"seed": 1}), tmp_path / "b")  # random init: other weights
    run_trial(frozen_cfg(synth_root, cache, data={"image_size": 32}), tmp_path / "c")  # another transform
    run_trial(frozen_cfg(synth_root, cache, train={"hflip": False}), tmp_path / "d")  # no flipped view
    assert len(count_extractions) == 4 and len({e["key"] for e in FeatureStore(cache).entries()}) == 4

    # pretrained weights from a file: the same file gives one key whatever the seed, other bytes another key
    data = load_dataset("synth", synth_root)
    spec = MODELS.get("resnet_test").transform_at(64)
    torch.manual_seed(0)
    weights = tmp_path / "backbone.pt"
    torch.save(build_model("resnet_test", 13, 64, width=8).backbone.net.state_dict(), weights)

    def key(seed: int, path: Path, **options) -> str:
        torch.manual_seed(seed)
        options = {"width": 8, "pretrained": str(path), **options}
        model = build_model("resnet_test", 13, 64, **options)
        return cache_key(describe_backbone(model, "resnet_test", options, data, spec))

    state = torch.load(weights, weights_only=True)
    next(iter(state.values())).add_(1e-3)
    changed = tmp_path / "changed.pt"
    torch.save(state, changed)
    same = key(0, weights)
    assert key(5, weights) == same == key(5, weights, scoring="cosine", dropout=0.2)
    assert key(0, changed) != same and key(0, weights, head="attention") != same


def test_two_concurrent_trials_extract_once(synth_root, tmp_path):
    cache = tmp_path / "features"
    argv = [sys.executable, "-m", "zsl_bench.cli", "-v", "train", "--model", "resnet_test", "--dataset", "synth"]
    argv += ["--data-root", str(synth_root)]
    for kv in ("model.freeze_backbone=true", "model.options.width=8", "train.epochs=1", "train.num_threads=1"):
        argv += ["--set", kv]
    argv += ["--set", f"data.feature_cache_dir={cache}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([*argv, "--out", str(tmp_path / f"run{i}")], env=env, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    extracted = [e.count("feature cache: extracting") for e in errs]
    reused = [e.count("feature cache: reusing") for e in errs]
    assert sorted(extracted) == [0, 1] and sorted(reused) == [0, 1], errs
    assert len(FeatureStore(cache).entries()) == 1 and not list(cache.glob(".*tmp*"))
    assert records(tmp_path / "run0") == records(tmp_path / "run1")


class _NoHead(ZslModel):
    """Has a backbone to freeze but no forward_backbone/forward_head (as DUET)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Linear(2, 2)

    def backbone_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.backbone.parameters())

    def freeze_backbone(self) -> None:
        self.backbone.requires_grad_(False)


class _OwnStep(_NoHead):
    def forward_backbone(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"attr": features}

    def training_loss(self, batch, ctx):  # needs images in its step
        return super().training_loss(batch, ctx)


def test_models_that_cannot_be_cached_are_user_errors():
    with pytest.raises(UserError, match=r"declares no backbone/head split.*data\.feature_cache=false"):
        check_cacheable(_NoHead(), MODELS.get("duet_test"))
    with pytest.raises(UserError, match=r"its own training step.*data\.feature_cache=false"):
        check_cacheable(_OwnStep(), MODELS.get("resnet_test"))


def test_head_only_view_delegates_and_checkpoints_the_full_model():
    model = build_model("resnet_test", 13, 64, width=8, head="attention", scoring="cosine")
    model.freeze_backbone()
    view = HeadOnly(model)
    assert view.state_dict().keys() == model.state_dict().keys()
    groups = view.param_groups()
    assert groups["backbone"] == [] and {id(p) for p in groups["head"]} == {
        id(p) for p in model.parameters() if p.requires_grad
    }
    images = torch.randn(3, 3, 64, 64)
    model.eval()
    feats = model.forward_backbone(images)
    assert set(feats) == {"pooled", "tokens"} and feats["tokens"].is_contiguous()
    torch.testing.assert_close(view(feats)["attr"], model(images)["attr"])
    view.train()
    assert not any(m.training for m in model.backbone.modules())  # a frozen backbone stays in eval mode


class _CountingImages:
    """An image source that records every index it is asked for."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images
        self.asked: list[int] = []

    def __len__(self) -> int:
        return self.images.shape[0]

    def get(self, idx) -> torch.Tensor:
        self.asked.extend(int(i) for i in idx)
        return self.images[torch.as_tensor(idx, dtype=torch.long)]


def test_extraction_reads_each_image_once_and_matches_the_backbone(synth_root, tmp_path):
    """Parity: every cached row equals ``forward_backbone`` of that image alone (plain, and flipped for the
    trainable images), though the extraction runs plain and flipped views of a batch in one forward."""
    from zsl_bench.data.features import FLIP_SUFFIX
    from zsl_bench.data.transforms import augment

    data = load_dataset("synth", synth_root)
    spec = MODELS.get("resnet_test").transform_at(32)
    torch.manual_seed(0)
    model = build_model("resnet_test", 13, 32, width=8, head="attention")
    model.freeze_backbone()
    images = _CountingImages(torch.randint(0, 256, (len(data.image_paths), 3, 32, 32), dtype=torch.uint8))
    rows = engine_features.trainable_rows(data)
    assert rows.size == 768 and not np.isin(rows, np.r_[data.split.test_seen_loc, data.split.test_unseen_loc]).any()

    def build(writer):
        return engine_features.extract(
            model, images, spec, writer, batch_size=100, device=torch.device("cpu"), flip_rows=rows
        )

    source, built = FeatureStore(tmp_path).open("k", {}, build, len(images))
    assert built and sorted(images.asked) == list(range(len(images)))  # one read of each image
    model.eval()
    some = [0, 1, int(rows[0]), int(rows[-1]), int(data.split.test_unseen_loc[0]), len(images) - 1]
    with torch.no_grad():
        plain = model.forward_backbone(augment(images.images[some], spec, train=False))
        flipped = model.forward_backbone(augment(images.images[some].flip(-1), spec, train=False))
    batch = source.get(some)
    for name in ("pooled", "tokens"):
        torch.testing.assert_close(batch.plain[name], plain[name], rtol=1e-5, atol=1e-5)
    flip = torch.from_numpy(np.isin(some, rows))
    picked = batch.select(flip)
    for name in ("pooled", "tokens"):
        torch.testing.assert_close(picked[name][flip], flipped[name][flip], rtol=1e-5, atol=1e-5)
    assert source.flipped["pooled"].shape[0] == 768 and (tmp_path / "k" / f"tokens{FLIP_SUFFIX}.npy").is_file()
