"""VMamba v2: official state-dict keys, the tiny golden case, configs, checkpoints, non-square inputs, VMamba-S."""

from __future__ import annotations

import json
import time

import pytest
import torch

from zsl_bench.models.vmamba import (
    build_vmamba_from_official,
    load_official_checkpoint,
    official_vmamba_config,
    vmamba_base,
    vmamba_small,
    vmamba_tiny,
)


@pytest.mark.parametrize(
    ("factory", "keys_file"),
    [
        (vmamba_tiny, "vmambav2v_tiny_keys.txt"),
        (vmamba_small, "vmambav2_small_keys.txt"),
        (vmamba_base, "vmambav2_base_keys.txt"),
    ],
)
def test_state_dict_keys_and_shapes_are_official(factory, keys_file: str, official_keys) -> None:
    with torch.device("meta"):
        model = factory()
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == official_keys(f"vmamba/{keys_file}")  # same keys, same shapes, same order


@pytest.fixture(scope="module")
def golden(ref_file):
    cfg = json.loads(ref_file("vmamba/tiny_config.json").read_text())
    model = build_vmamba_from_official(cfg).eval()
    load_official_checkpoint(model, ref_file("vmamba/tiny_state_dict.pt"))  # a bare state dict, strict
    x = torch.load(ref_file("vmamba/tiny_input.pt"), weights_only=True)
    outputs = torch.load(ref_file("vmamba/tiny_outputs.pt"), weights_only=True)
    return model, x, outputs


def test_tiny_golden_case(golden, assert_rel_close) -> None:
    model, x, expected = golden
    with torch.no_grad():
        h = model.patch_embed(x)
        assert_rel_close(h, expected["patch_embed"])
        for i, layer in enumerate(model.layers, start=1):
            h = layer.blocks(h)
            assert_rel_close(h, expected[f"stage{i}_blocks"])
            h = layer.downsample(h)
            assert_rel_close(h, expected[f"stage{i}_out"])
        features = model.forward_features(x)
        logits = model(x)
        pooled = model.classifier.flatten(model.classifier.avgpool(model.classifier.norm(features)))
    assert_rel_close(features, expected["stage4_pre_norm"])
    assert_rel_close(pooled, expected["pooled"])
    assert_rel_close(logits, expected["logits"])
    torch.testing.assert_close(model.forward_head(features), logits)


def test_config_validation() -> None:
    cfg = official_vmamba_config("tiny")
    cfg["MODEL"]["VSSM"]["SSM_FORWARDTYPE"] = "v2"
    with pytest.raises(ValueError, match="SSM_FORWARDTYPE"):
        build_vmamba_from_official(cfg)
    with pytest.raises(ValueError, match="size"):
        official_vmamba_config("huge")
    small = official_vmamba_config("small")["MODEL"]
    assert small["VSSM"]["DEPTHS"] == [2, 2, 15, 2] and small["DROP_PATH_RATE"] == 0.3


def _tiny_model(**overrides) -> torch.nn.Module:
    cfg = official_vmamba_config("tiny", num_classes=7)
    cfg["MODEL"]["VSSM"].update({"EMBED_DIM": 16, "DEPTHS": [1, 1, 1, 1], **overrides})
    return build_vmamba_from_official(cfg)


def test_checkpoint_round_trip_with_model_key(assert_self_load) -> None:
    torch.manual_seed(0)
    model = _tiny_model().eval()
    torch.manual_seed(1)
    fresh = _tiny_model().eval()
    path = assert_self_load(model, fresh, torch.randn(1, 3, 64, 64), epoch=3)  # other top-level keys are ignored
    torch.save({"model": {**model.state_dict(), "extra.weight": torch.zeros(1)}}, path)
    with pytest.raises(RuntimeError, match="Unexpected"):
        load_official_checkpoint(fresh, path)


@pytest.mark.parametrize(("h", "w"), [(64, 96), (70, 45)])
def test_non_square_inputs(h: int, w: int) -> None:
    torch.manual_seed(0)
    model = _tiny_model().eval()
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    size = (h, w)
    for _ in range(5):  # stride-2 convolutions with padding 1: ceil(n / 2) each time
        size = tuple((n + 1) // 2 for n in size)
    assert features.shape == (2, model.num_features, *size)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    # the transposed image gives a different map (routes are not symmetric), but the transposed shape
    assert model.forward_features(x.transpose(2, 3)).shape == (2, model.num_features, size[1], size[0])


def test_train_mode_drop_path_and_gradients() -> None:
    torch.manual_seed(0)
    model = _tiny_model(DEPTHS=[1, 1, 2, 1])
    model.train()
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def test_vmamba_small_224_forward_backward_and_self_load(record_property, assert_self_load) -> None:
    """The acceptance check: VMamba-S on a 224-px batch on CPU, forward + backward, strict self-load."""
    torch.manual_seed(0)
    model = vmamba_small(num_classes=10)
    x = torch.randn(1, 3, 224, 224)
    start = time.perf_counter()
    features = model.forward_features(x)
    logits = model.forward_head(features)
    (logits.sum() + features.mean()).backward()
    record_property("fwd_bwd_seconds", round(time.perf_counter() - start, 2))
    assert features.shape == (1, 768, 7, 7) and logits.shape == (1, 10)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert_self_load(model, vmamba_small(num_classes=10), x)
