"""ZeroMamba: the SLP/GRL/SeF heads, loss, parameter groups, frozen mode, official backbone keys, checkpoints,
presets, and zero-shot learning of the tiny model on the synthetic dataset."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zsl_bench.config import build_config
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model
from zsl_bench.models.base import TrainContext
from zsl_bench.models.vim import VisionMamba
from zsl_bench.models.zeromamba import (
    GlobalRepresentation,
    SemanticFusion,
    SemanticLocalProjection,
    ZeroMamba,
)

REF = Path(__file__).resolve().parents[2].parent / "shared" / "ref"
PRESETS = Path(__file__).resolve().parents[2] / "zsl_bench" / "presets"
NAMES = ["zeromamba_test", "zeromamba_vmamba_s", "zeromamba_vmamba_b", "zeromamba_vim_s"]


def _att(classes: int = 7, attributes: int = 13) -> torch.Tensor:
    return F.normalize(torch.rand(classes, attributes, generator=torch.Generator().manual_seed(0)), dim=1)


def _tiny(**options: object) -> ZeroMamba:
    torch.manual_seed(0)
    return build_model("zeromamba_test", 13, 64, **options)  # type: ignore[return-value]


def _official_keys(name: str) -> list[tuple[str, list[int]]]:
    path = REF / "vmamba" / name
    if not path.is_file():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"reference file {path} is missing on CI")
        pytest.skip(f"reference file {path} not found")
    rows = (line.split("\t") for line in path.read_text().splitlines())
    return [(key, json.loads(shape)) for key, shape in rows]


# ------------------------------------------------------------------------------------------------ modules


def test_slp_shapes_attention_and_maths() -> None:
    torch.manual_seed(0)
    emb = torch.randn(5, 12)
    slp = SemanticLocalProjection(emb, channels=8)
    torch.testing.assert_close(slp.V.norm(dim=1), torch.ones(5))  # initialised row-normalised
    assert slp.W1.shape == slp.W2.shape == (12, 8)
    assert 0.8 < slp.W1.std().item() < 1.2  # N(0, 1), not a small init
    regions = torch.randn(3, 8, 2, 5)  # non-square region grid
    local, attention = slp(regions)
    assert local.shape == (3, 5) and attention.shape == (3, 5, 10)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 5))
    # the same maths written out for one image and one attribute
    fr = regions[1].reshape(8, 10)
    fr = fr / fr.norm(dim=0, keepdim=True)
    v = slp.V[2] / slp.V[2].norm()
    m = torch.softmax((v @ slp.W1) @ fr, dim=0)  # [R]
    p = fr @ m  # [C]
    torch.testing.assert_close(attention[1, 2], m)
    torch.testing.assert_close(local[1, 2], (v @ slp.W2) @ p)
    scaled, _ = slp(regions * 3.0)  # channel-normalised regions: the scale of F does not matter
    torch.testing.assert_close(scaled, local)


def test_grl_and_sef() -> None:
    grl = GlobalRepresentation(1000, 13)
    assert grl.proj.bias is None and grl(torch.randn(4, 1000)).shape == (4, 13)
    sef = SemanticFusion(13)
    assert [tuple(m.weight.shape) for m in sef.mlp if isinstance(m, torch.nn.Linear)] == [(512, 13), (13, 512)]
    assert all(m.bias is None for m in sef.mlp if isinstance(m, torch.nn.Linear))
    out = sef(torch.randn(4, 13))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))


def test_forward_outputs_and_the_backbone_head_split() -> None:
    model = _tiny().eval()
    images = torch.randn(2, 3, 64, 96)  # non-square
    feats = model.forward_backbone(images)
    assert feats["regions"].shape == (2, 128, 4, 6) and feats["logits"].shape == (2, 1000)
    out = model(images)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "attr": (2, 13),
        "global": (2, 13),
        "local": (2, 13),
        "attention": (2, 13, 24),
    }
    torch.testing.assert_close(out["attr"], out["global"] + model.sef(out["local"]))
    torch.testing.assert_close(model.forward_head(feats)["attr"], out["attr"])  # forward = head(backbone)
    torch.testing.assert_close(out["global"], model.grl(feats["logits"]))
    assert model.class_scores(out, _att()).shape == (2, 7)


def test_vim_backbone_regions_are_patch_tokens() -> None:
    torch.manual_seed(0)
    vim = VisionMamba(img_size=32, patch_size=8, stride=8, embed_dim=16, depth=2, num_classes=20, drop_path_rate=0.0)
    model = ZeroMamba(vim, torch.randn(13, 6), 13).eval()
    images = torch.randn(2, 3, 32, 48)  # 4 x 6 patches (interpolated position table)
    feats = model.forward_backbone(images)
    assert feats["regions"].shape == (2, 16, 4, 6) and feats["logits"].shape == (2, 20)
    tokens = vim.forward_tokens(images)  # [2, 25, 16], class token at 12
    torch.testing.assert_close(feats["logits"], vim(images))
    torch.testing.assert_close(feats["regions"][:, :, 0, 0], tokens[:, 0])
    torch.testing.assert_close(feats["regions"][:, :, 2, 0], tokens[:, 13])  # patch 12 sits after the class token
    assert model(images)["attention"].shape == (2, 13, 24)


# ------------------------------------------------------------------------------------------------- losses


def test_loss_terms() -> None:
    model = _tiny(l1_weight=0.5)
    out = {"attr": torch.randn(4, 13)}
    att, target = _att(), torch.tensor([0, 3, 6, 3])
    loss = model.loss(out, {"target": target}, att)
    ce = F.cross_entropy(out["attr"] @ att.t(), target)
    l1 = (out["attr"] - att[target]).abs().mean()
    torch.testing.assert_close(loss["ce"], ce)
    torch.testing.assert_close(loss["l1"], l1)
    torch.testing.assert_close(loss["total"], ce + 0.5 * l1)
    model.l1_weight = 0.0
    torch.testing.assert_close(model.loss(out, {"target": target}, att)["total"], ce)
    with pytest.raises(UserError, match="l1_weight must be >= 0"):
        _tiny(l1_weight=-1.0)


@pytest.mark.parametrize("l1_weight", [0.0, 1.0])
def test_loss_decreases_on_a_fixed_batch(l1_weight: float) -> None:
    model = _tiny(l1_weight=l1_weight)
    ctx = TrainContext(
        class_attributes=_att(8),
        seen_classes=torch.arange(5),
        unseen_classes=torch.arange(5, 8),
        epoch=1,
        generator=torch.Generator().manual_seed(0),
    )
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    batch = {"image": images, "target": torch.arange(6) % 5}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(25):
        loss = model.training_loss(batch, ctx)
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
        losses.append((loss["total"].item(), loss["ce"].item()))
    (total0, ce0), (total, ce) = losses[0], losses[-1]
    if l1_weight == 0:
        assert ce < 0.05 * ce0, losses  # memorises the batch
    else:  # the L1 term pulls f towards att[y] (unit vectors), which bounds the logits: CE cannot reach 0
        assert total < 0.7 * total0 and ce < 0.4 * ce0, losses


# --------------------------------------------------------------------------------------- groups, frozen


def _cfg(**model: object) -> object:
    optim = {"name": "sgd", "backbone_lr": 1e-3, "head_lr": 1e-3, "group_lr": {"sef": 1e-4}, "weight_decay": 1e-3}
    return build_config({"model": {"name": "zeromamba_test", **model}, "optim": optim})


def test_param_groups_cover_the_model_once() -> None:
    from zsl_bench.engine.optim import build_optimizer

    model = _tiny()
    groups = model.param_groups()
    assert list(groups) == ["backbone", "head", "sef"]
    ids = {name: {id(p) for p in params} for name, params in groups.items()}
    assert sum(len(v) for v in ids.values()) == len({id(p) for p in model.parameters()})  # disjoint and complete
    assert {id(model.slp.V), id(model.slp.W1), id(model.slp.W2)} <= ids["backbone"]  # SLP trains with the backbone
    assert ids["head"] == {id(model.grl.proj.weight)}
    assert ids["sef"] == {id(p) for p in model.sef.parameters()}
    assert {id(p) for p in model.backbone_parameters()} == {id(p) for p in model.backbone.parameters()}
    opt = build_optimizer(model, _cfg())
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"backbone": 1e-3, "head": 1e-3, "sef": 1e-4}  # the official learning rates


def test_frozen_backbone_keeps_the_slp_training() -> None:
    from zsl_bench.engine.optim import build_optimizer

    model = _tiny(drop_path=0.5)
    opt = build_optimizer(model, _cfg(freeze_backbone=True))
    trainable = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in trainable for p in model.backbone.parameters())
    assert id(model.slp.V) in trainable
    model.train()
    assert not any(m.training for m in model.backbone.modules()) and model.slp.training
    images = torch.randn(2, 3, 64, 64)
    first, second = model(images)["attr"], model(images)["attr"]
    torch.testing.assert_close(first, second)  # drop-path is off in the frozen backbone
    model.loss(model(images), {"target": torch.tensor([0, 1])}, _att())["total"].backward()
    assert all(p.grad is None for p in model.backbone.parameters()) and model.slp.W1.grad is not None


# ----------------------------------------------------------------------------------- backbones, weights


@pytest.mark.parametrize(
    ("name", "keys_file", "channels"),
    [("zeromamba_vmamba_s", "vmambav2_small_keys.txt", 768), ("zeromamba_vmamba_b", "vmambav2_base_keys.txt", 1024)],
)
def test_backbone_has_the_official_state_dict(name: str, keys_file: str, channels: int) -> None:
    with torch.device("meta"):
        model = build_model(name, 312, 448, attribute_embeddings="random")
    ours = [(k, list(v.shape)) for k, v in model.backbone.state_dict().items()]
    assert ours == _official_keys(keys_file)  # same keys, shapes and order (the 1000-class head included)
    assert model.slp.W1.shape == (300, channels) and model.grl.proj.weight.shape == (312, 1000)
    assert model.pretrained_source == "random init"


def test_vmamba_s_forward_is_448_ready() -> None:
    torch.manual_seed(0)
    model = build_model("zeromamba_vmamba_s", 312, 448, attribute_embeddings="random").eval()
    assert model.backbone.layers[-1].blocks[-1].drop_path.p == pytest.approx(0.3)  # the official drop-path rate
    with torch.no_grad():
        feats = model.forward_backbone(torch.randn(1, 3, 64, 96))  # any size: no position embedding
    assert feats["regions"].shape == (1, 768, 2, 3) and feats["logits"].shape == (1, 1000)


def test_vim_s_factory_builds() -> None:
    model = build_model("zeromamba_vim_s", 85, 448, attribute_embeddings="random")
    assert model.slp.W1.shape == (300, 384) and model.grl.proj.weight.shape == (85, 1000)
    assert model.backbone.pos_embed.shape == (1, 197, 384)  # the 224-px table of the official checkpoint


def test_pretrained_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    donor = _tiny().backbone
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(torch.randn_like(p))
    state = donor.state_dict()
    torch.save({"model": state, "epoch": 222}, tmp_path / "official.pth")  # the official layout
    model = _tiny(pretrained=str(tmp_path / "official.pth"))
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert model.pretrained_source == f"{tmp_path / 'official.pth'} ({len(state)} tensors)"
    torch.save(state, tmp_path / "bare.pt")  # a bare state dict
    _tiny(pretrained=str(tmp_path / "bare.pt"))
    with caplog.at_level(logging.WARNING, logger="zsl_bench.models.zeromamba"):
        torch.save({"model": {**state, "extra.weight": torch.zeros(1)}}, tmp_path / "extra.pth")
        _tiny(pretrained=str(tmp_path / "extra.pth"))
    assert "1 checkpoint entries not in the backbone ignored" in caplog.text
    missing = {k: v for k, v in state.items() if not k.startswith("classifier.head")}
    torch.save({"model": missing}, tmp_path / "nohead.pth")
    with pytest.raises(UserError, match=r"does not fit the backbone \(2 missing"):
        _tiny(pretrained=str(tmp_path / "nohead.pth"))
    with pytest.raises(UserError, match="with other shapes"):
        torch.save({"model": state}, tmp_path / "wide.pth")
        _tiny(pretrained=str(tmp_path / "wide.pth"), width=8)
    with pytest.raises(UserError, match=r"pretrained checkpoint not found.*pretrained=none for random init"):
        build_model("zeromamba_vmamba_s", 312, 448, pretrained="checkpoints/nothing.pth")
    torch.save({"model": {"w": Path("x")}}, tmp_path / "objects.pth")  # not loadable with weights_only
    with pytest.raises(UserError, match="cannot read checkpoint"):
        _tiny(pretrained=str(tmp_path / "objects.pth"))


# ------------------------------------------------------------------------------------ options, presets


def test_registry_options_and_embedding_source(synth_root: Path) -> None:
    assert set(NAMES) <= set(MODELS.names())
    with pytest.raises(UserError, match=r"has no option.*l1_wieght"):
        build_model("zeromamba_test", 13, 64, l1_wieght=1.0)
    assert _tiny().embedding_source == "random orthogonal (d=300)"
    model = _tiny(attribute_names=f"synth:{synth_root}", embed_dim=16)
    assert model.embedding_source == "hash bag-of-words (d=16) of synth names (attributes.txt)"
    info = model.provenance()
    assert info == {"attribute_embeddings": model.embedding_source, "pretrained": "random init", "scan": info["scan"]}
    assert model.slp.V.shape == (13, 16)
    np.save(synth_root.parent / "emb8.npy", np.ones((13, 8), dtype=np.float32))
    with pytest.raises(UserError, match="embed_dim=16 but"):
        _tiny(attribute_embeddings=str(synth_root.parent / "emb8.npy"), embed_dim=16)
    assert _tiny(attribute_embeddings=str(synth_root.parent / "emb8.npy")).slp.V.shape == (13, 8)


@pytest.mark.parametrize("dataset", ["cub", "awa2", "sun"])
def test_presets_match_the_official_recipe(dataset: str) -> None:
    cfg = build_config(f"zeromamba_{dataset}")
    official = {"cub": (1.0, 0.3), "awa2": (0.0, 0.98), "sun": (0.2, 0.35)}[dataset]
    assert cfg.model.name == "zeromamba_vmamba_s" and cfg.data.image_size == 448
    assert cfg.model.options["l1_weight"] == official[0]
    assert cfg.eval.gamma is None  # chosen on validation; the official value is documented in the file
    assert f"--set eval.gamma={official[1]}" in (PRESETS / f"zeromamba_{dataset}.yaml").read_text()
    o = cfg.optim
    assert (o.name, o.momentum, o.weight_decay, o.backbone_lr, o.head_lr) == ("sgd", 0.9, 1e-3, 1e-3, 1e-3)
    assert o.group_lr == {"sef": 1e-4}
    assert (o.schedule, o.milestones, o.lr_decay) == ("multistep", [10, 20, 30, 40], 0.5)
    assert cfg.train.batch_size == 32
    MODELS.get(cfg.model.name).check_options(cfg.model.options)  # every preset option is a declared option
    names = cfg.model.options["attribute_names"]
    if dataset != "cub":  # built-in names: the preset's embeddings are the hashed names, whatever the folder
        emb_model = build_model(
            "zeromamba_test", {"awa2": 85, "sun": 102}[dataset], 64, attribute_names=names, embed_dim=8
        )
        assert emb_model.embedding_source.startswith(f"hash bag-of-words (d=8) of {dataset} names")


# ------------------------------------------------------------------------------------------------ a real run


@pytest.mark.slow
def test_tiny_model_in_stage_final_reports_its_last_epoch(one_thread: int, synth_root: Path, tmp_path: Path) -> None:
    """zeromamba_test through the engine in stage final (train on trainval, no validation split): the reported
    epoch is the last one, not one chosen on test, and the engine names the dataset's attributes to the model.
    That the tiny model learns (CZSL >= 3x chance, H > 0 with its defaults) is tests/models/test_zoo_learns.py."""
    from zsl_bench.engine import run_trial

    cfg = {
        "model": {"name": "zeromamba_test", "options": {"l1_weight": 0.2}},
        "data": {"name": "synth", "root": str(synth_root), "image_size": 64},
        "train": {"epochs": 2, "batch_size": 32, "seed": 0, "checkpoint": False, "num_threads": one_thread},
        "optim": {"name": "adamw", "lr": 1e-3, "schedule": "cosine"},
        "meta": {"stage": "final"},
    }
    summary = run_trial(cfg, tmp_path / "run")
    best = summary["best_by_val"]
    assert best["epoch"] == 2, best  # no validation split in stage final: the last epoch
    assert set(best["test"]) >= {"czsl", "u", "s", "h"}, best
    # the engine names the dataset's attributes to the model (models.dataset_options): hashed synth names
    info = summary["model_info"]
    assert info["pretrained"] == "random init", info
    assert info["attribute_embeddings"].startswith("hash bag-of-words (d=300) of synth names"), info
