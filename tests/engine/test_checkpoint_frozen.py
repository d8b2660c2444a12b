"""A frozen backbone is checkpointed once per run (a hard link to the previous trial's same file): the frozen
file, loading it back, resuming and exploiting from it, a damaged frozen file; and the per-process memos a sweep's
trials share (dataset, pretrained backbone)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from zsl_bench.config import DataConfig
from zsl_bench.engine import checkpoint, run_trial
from zsl_bench.engine.features import HeadOnly, load_trial_dataset
from zsl_bench.models import build_model, hf_weights


def frozen_cfg(root: Path, cache: Path, **train: object) -> dict:
    return {
        "model": {"name": "resnet_test", "options": {"width": 8}, "freeze_backbone": True},
        "data": {"name": "synth", "root": str(root), "feature_cache_dir": str(cache)},
        "train": {"epochs": 2, "seed": 0, "num_threads": 1, **train},
        "optim": {"lr": 3e-3},
    }


def test_frozen_tensors_are_written_once_and_loaded_back(tmp_path):
    model = build_model("resnet_test", 13, 64, width=8)
    model.freeze_backbone()
    frozen = checkpoint.FrozenPart.matching(model.state_dict(), model.backbone_state())
    assert frozen.keys == {k for k in model.state_dict() if k.startswith("backbone.")}
    for epoch in (1, 2):
        checkpoint.save(tmp_path, {"epoch": epoch, "model": model.state_dict()}, best=epoch == 1, frozen=frozen)
    folder = tmp_path / checkpoint.DIR
    [file] = folder.glob("frozen-*.pt")
    stamp = file.stat().st_mtime_ns
    raw = torch.load(folder / checkpoint.LATEST, weights_only=True)
    assert not frozen.keys & set(raw["model"]) and raw["frozen"]["file"] == file.name
    for name in (checkpoint.LATEST, checkpoint.BEST):
        state = checkpoint.load(folder / name)
        assert state is not None and "frozen" not in state and state["model"].keys() == model.state_dict().keys()
        assert all(torch.equal(state["model"][k], t) for k, t in model.state_dict().items())

    with torch.no_grad():  # a "frozen" tensor changed in place: written again, under another name
        next(iter(model.backbone.parameters())).add_(1.0)
    checkpoint.save(tmp_path, {"epoch": 3, "model": model.state_dict()}, frozen=frozen)
    assert len(list(folder.glob("frozen-*.pt"))) == 2 and file.stat().st_mtime_ns == stamp
    latest = checkpoint.load(folder / checkpoint.LATEST)
    assert all(torch.equal(latest["model"][k], t) for k, t in model.state_dict().items())
    assert checkpoint.load(folder / checkpoint.BEST)["epoch"] == 1  # still names the first frozen file

    file.write_bytes(file.read_bytes()[:100])  # the frozen file of best.pt damaged: best.pt cannot be read
    assert checkpoint.load(folder / checkpoint.BEST) is None


def test_the_next_trial_links_the_same_frozen_file_and_writes_a_changed_one(tmp_path):
    model = build_model("resnet_test", 13, 64, width=8)
    model.freeze_backbone()
    files = []
    for trial in ("a", "b", "c"):  # each trial its own FrozenPart, as run_trial makes them
        if trial == "c":
            with torch.no_grad():
                next(iter(model.backbone.parameters())).mul_(2.0)
        frozen = checkpoint.FrozenPart.matching(model.state_dict(), model.backbone_state())
        checkpoint.save(tmp_path / trial, {"epoch": 1, "model": model.state_dict()}, best=True, frozen=frozen)
        [file] = (tmp_path / trial / checkpoint.DIR).glob("frozen-*.pt")
        files.append(file)
        state = checkpoint.load(tmp_path / trial / checkpoint.DIR / checkpoint.LATEST)
        assert all(torch.equal(state["model"][k], t) for k, t in model.state_dict().items())
    a, b, c = (os.stat(f) for f in files)
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2) and files[0].name == files[1].name  # b links a's file
    assert c.st_ino != a.st_ino and files[2].name != files[0].name and c.st_nlink == 1
    files[2].unlink()  # the file to link is gone: the next trial writes its own
    frozen = checkpoint.FrozenPart.matching(model.state_dict(), model.backbone_state())
    checkpoint.save(tmp_path / "d", {"epoch": 1, "model": model.state_dict()}, frozen=frozen)
    assert os.stat(tmp_path / "d" / checkpoint.DIR / files[2].name).st_nlink == 1
    assert checkpoint.load(tmp_path / "d" / checkpoint.DIR / checkpoint.LATEST)["epoch"] == 1


def test_a_frozen_run_resumes_and_is_exploited_from_its_checkpoints(synth_root, tmp_path):
    cfg = frozen_cfg(synth_root, tmp_path / "features", keep_checkpoints=2)
    run_trial(cfg, tmp_path / "whole")
    names = sorted(p.name for p in (tmp_path / "whole" / checkpoint.DIR).iterdir())
    assert names[:2] == ["best.pt", "epoch_0001.pt"] and names[-1] == "latest.pt" and names[3].startswith("frozen-")

    def interrupt(flat: dict) -> None:
        if flat["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, tmp_path / "resumed", report=interrupt)
    assert run_trial(cfg, tmp_path / "resumed")["epochs_run"] == 2

    def records(run: Path) -> list[dict]:
        return [{**json.loads(line), "time_s": 0} for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert records(tmp_path / "resumed") == records(tmp_path / "whole")
    source = tmp_path / "whole" / checkpoint.DIR / "epoch_0001.pt"
    copy = run_trial(frozen_cfg(synth_root, tmp_path / "features", epochs=3), tmp_path / "copy", init_from=source)
    assert copy["epochs_run"] == 3 and len(list((tmp_path / "copy" / checkpoint.DIR).glob("frozen-*.pt"))) == 1


def test_the_dataset_is_loaded_again_only_when_its_folder_changes(synth_root, tmp_path):
    data = DataConfig(name="synth", root=str(synth_root))
    first = load_trial_dataset(data)
    assert load_trial_dataset(data) is first
    spec = synth_root / "synth_spec.json"
    os.utime(spec, ns=(spec.stat().st_atime_ns, spec.stat().st_mtime_ns + 1_000_000))
    again = load_trial_dataset(data)
    assert again is not first and again.image_paths == first.image_paths


def test_a_pretrained_backbone_file_is_read_once_per_process(tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = tmp_path / "backbone.pt"
    torch.save(build_model("resnet_test", 13, 64, width=8).backbone.net.state_dict(), weights)
    reads: list[Path] = []
    real = hf_weights._load_local
    monkeypatch.setattr(hf_weights, "_load_local", lambda *a, **k: reads.append(a[2]) or real(*a, **k))
    a, b, c = (build_model("resnet_test", 13, 64, width=8, pretrained=str(weights)) for _ in range(3))
    assert len(reads) == 1 and a.backbone.net is not b.backbone.net
    with torch.no_grad():  # each trial holds its own copy
        next(iter(a.backbone.parameters())).add_(1.0)
    first = [next(iter(m.backbone.parameters())) for m in (a, b, c)]
    assert torch.equal(first[1], first[2]) and not torch.equal(first[0], first[1])
    state = torch.load(weights, weights_only=True)
    next(iter(state.values())).add_(1e-3)
    torch.save(state, weights)
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))  # another time
    changed = build_model("resnet_test", 13, 64, width=8, pretrained=str(weights))
    assert len(reads) == 2 and not torch.equal(next(iter(changed.backbone.parameters())), first[1])


def test_the_head_only_model_switches_its_head_and_leaves_the_backbone_alone():
    model = build_model("resnet_test", 13, 64, width=8, dropout=0.5)
    model.freeze_backbone()
    view = HeadOnly(model)
    view.train()
    assert view.training and model.training and model.head.training
    assert not any(m.training for m in model.backbone.modules())
    view.eval()
    assert not view.training and not model.training and not any(m.training for m in model.head.modules())
