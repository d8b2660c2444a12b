"""Vim: official state-dict keys, the tiny golden case (block by block), position-embedding interpolation,
checkpoints and the Vim-S acceptance check."""

from __future__ import annotations

import inspect
import json
import time

import pytest
import torch

from zsl_bench.models.vim import (
    VisionMamba,
    load_official_checkpoint,
    resize_pos_embed,
    vim_base,
    vim_small,
    vim_tiny,
)


@pytest.mark.parametrize(("factory", "keys_file"), [(vim_tiny, "vim_tiny_keys.txt"), (vim_small, "vim_small_keys.txt")])
def test_state_dict_keys_and_shapes_are_official(factory, keys_file: str, official_keys) -> None:
    with torch.device("meta"):
        model = factory()
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == official_keys(f"vim/{keys_file}")


def test_base_size() -> None:
    with torch.device("meta"):
        model = vim_base()
    assert model.embed_dim == 768 and len(model.layers) == 24
    assert model.state_dict()["layers.0.mixer.x_proj.weight"].shape == (48 + 32, 1536)


@pytest.fixture(scope="module")
def golden(ref_file) -> tuple[VisionMamba, torch.Tensor, dict]:
    kw = json.loads(ref_file("vim/tiny_config.json").read_text())["VisionMamba_kwargs"]
    ours = inspect.signature(VisionMamba).parameters  # the official kwargs our class takes (it fixes the others)
    model = VisionMamba(**{name: value for name, value in kw.items() if name in ours}).eval()
    load_official_checkpoint(model, ref_file("vim/tiny_state_dict.pt"))
    x = torch.load(ref_file("vim/tiny_input.pt"), weights_only=True)
    return model, x, torch.load(ref_file("vim/tiny_outputs.pt"), weights_only=True)


def test_tiny_golden_case(golden, assert_rel_close) -> None:
    model, x, expected = golden
    with torch.no_grad():
        patches, _ = model.patch_embed(x)
        assert_rel_close(patches, expected["patch_embed"])
        tokens = model.embed(x)
        assert_rel_close(tokens, expected["tokens_in"])
        assert model.cls_position(patches.shape[1]) == expected["cls_token_position"]
        mixer_in = model.layers[0].norm(tokens)
        assert_rel_close(mixer_in, expected["layer0_mixer_in"])
        assert_rel_close(model.layers[0].mixer(mixer_in), expected["layer0_mixer_out"])
        hidden, residual = tokens, None
        for i, layer in enumerate(model.layers):
            hidden, residual = layer(hidden, residual)
            assert residual.dtype == torch.float32
            assert_rel_close(hidden, expected[f"layers.{i}.hidden_states"])
            assert_rel_close(residual, expected[f"layers.{i}.residual"])
        features = model.forward_features(x)
        logits = model(x)
    assert_rel_close(features, expected["features"])
    assert_rel_close(logits, expected["logits"])


def test_position_embedding_interpolation() -> None:
    torch.manual_seed(0)
    model = VisionMamba(img_size=40, patch_size=8, stride=8, embed_dim=16, depth=2, num_classes=5).eval()
    # resizing to the same grid is the identity
    torch.testing.assert_close(resize_pos_embed(model.pos_embed, (5, 5), (5, 5)), model.pos_embed)
    # a non-square input: grid 5 × 7, class token in the middle of 35 patches, its embedding unchanged
    x = torch.randn(2, 3, 40, 56)
    pos = model._pos_embed((5, 7))
    assert pos.shape == (1, 36, 16)
    torch.testing.assert_close(pos[:, 17], model.pos_embed[:, 12])
    with torch.no_grad():
        assert model.forward_tokens(x).shape == (2, 36, 16)
        assert model(x).shape == (2, 5)


def test_checkpoint_round_trip_with_model_key(assert_self_load) -> None:
    torch.manual_seed(0)
    model = VisionMamba(img_size=32, patch_size=8, stride=8, embed_dim=16, depth=2, num_classes=3).eval()
    torch.manual_seed(1)
    fresh = VisionMamba(img_size=32, patch_size=8, stride=8, embed_dim=16, depth=2, num_classes=3).eval()
    assert_self_load(model, fresh, torch.randn(1, 3, 32, 32))


def test_vim_small_224_forward_backward_and_self_load(record_property, assert_self_load) -> None:
    """The acceptance check: Vim-S on a 224-px batch on CPU, forward + backward, strict self-load."""
    torch.manual_seed(0)
    model = vim_small(num_classes=10)
    x = torch.randn(1, 3, 224, 224)
    start = time.perf_counter()
    tokens = model.forward_tokens(x)
    logits = model.head(tokens[:, model.cls_position(196)])
    (logits.sum() + tokens.mean()).backward()
    record_property("fwd_bwd_seconds", round(time.perf_counter() - start, 2))
    assert tokens.shape == (1, 197, 384) and logits.shape == (1, 10)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert_self_load(model, vim_small(num_classes=10), x)
