"""The full-size baselines (ResNet-101, ViT-B/16, DeiT-B/16): they build, load the weights of a transformers model
of the same config saved with ``save_pretrained``, and run forward/backward at batch 2 on CPU (224 px; ViT also at
448 px through interpolated position embeddings). No download: the donors are randomly initialised."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zsl_bench.models import build_model

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

ATTRIBUTES = 312  # CUB


def _donor(family: str) -> torch.nn.Module:
    """The transformers model of the hub checkpoint's config (random weights), as it would be downloaded."""
    torch.manual_seed(7)
    if family == "resnet101":
        config = transformers.ResNetConfig(depths=[3, 4, 23, 3], hidden_sizes=[256, 512, 1024, 2048])
        return transformers.ResNetForImageClassification(config)  # microsoft/resnet-101 is a classifier
    if family == "vit_b16":
        return transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False)
    return transformers.DeiTModel(transformers.DeiTConfig(), add_pooling_layer=False)


def _train_step(model: torch.nn.Module, size: int) -> dict[str, torch.Tensor]:
    """Forward + backward at batch 2; returns the model's output."""
    model.train()
    images = torch.randn(2, 3, size, size)
    att = torch.nn.functional.normalize(torch.rand(5, ATTRIBUTES), dim=1)
    out = model(images)
    loss = model.loss(out, {"image": images, "target": torch.tensor([0, 3])}, att)["total"]
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    return out


@pytest.mark.parametrize(
    ("family", "name", "sizes"),
    [
        ("resnet101", "resnet101_attn", [224]),
        ("vit_b16", "vit_b16_attn", [224, 448]),
        ("deit_b16", "deit_b16_ale", [224]),
    ],
)
def test_full_size_loads_saved_weights_and_trains(family: str, name: str, sizes: list[int], tmp_path: Path) -> None:
    donor = _donor(family).eval()
    donor.save_pretrained(tmp_path)
    model = build_model(name, ATTRIBUTES, sizes[0], pretrained=str(tmp_path))
    net = model.backbone.net
    prefix = f"{donor.base_model_prefix}."
    theirs = {k.removeprefix(prefix): v for k, v in donor.state_dict().items()}
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, theirs[key], rtol=0, atol=0, msg=key)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    assert params == pytest.approx({"resnet101": 42.5, "vit_b16": 85.8, "deit_b16": 85.8}[family], abs=0.2)

    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        base = getattr(donor, donor.base_model_prefix, donor)
        if family == "vit_b16":  # Google's ViT sees (pixel − 0.5)/0.5; ours gets ImageNet-normalised pixels
            x_donor = x * model.backbone.in_scale + model.backbone.in_shift
            expected = base(pixel_values=x_donor).last_hidden_state[:, 1:]
        else:
            hidden = base(pixel_values=x).last_hidden_state
            expected = hidden.flatten(2).transpose(1, 2) if family == "resnet101" else hidden[:, 2:]
        tokens = model.backbone(x)["tokens"]
    torch.testing.assert_close(tokens, expected, rtol=1e-4, atol=1e-4)

    for size in sizes:
        model.zero_grad(set_to_none=True)
        out = _train_step(model, size)
        assert out["attr"].shape == (2, ATTRIBUTES)
        if "attention" in out:
            stride = 32 if family == "resnet101" else 16
            assert out["attention"].shape == (2, ATTRIBUTES, (size // stride) ** 2)


def test_full_size_frozen_backbone_and_random_init() -> None:
    model = build_model("resnet101_ale", ATTRIBUTES, 224, pretrained="none", scoring="cosine", attr_weight=1.0)
    model.freeze_backbone()
    out = _train_step(model, 224)
    assert out["features"].shape == (2, 2048)
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
