"""Pretrained weights of the baselines: local directories, state-dict files, random init, and the offline error.

Tiny configs only (no downloads); test_baselines_full.py does the same with the full-size configs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zsl_bench.errors import UserError
from zsl_bench.models import build_model

transformers = pytest.importorskip("transformers")


def _donor(name: str, classifier: bool = False) -> torch.nn.Module:
    """A transformers model with the config of the tiny ``name`` (bare, or its …ForImageClassification)."""
    torch.manual_seed(123)
    net = build_model(name, 13, 64).backbone.net
    if not classifier:
        return net
    cls = {"resnet_test": "ResNet", "vit_test": "ViT", "deit_test": "DeiT"}[name]
    cls = getattr(transformers, f"{cls}ForImageClassification")
    return cls(net.config)


def _same_weights(ours: torch.nn.Module, donor: torch.nn.Module) -> None:
    prefix = f"{donor.base_model_prefix}."
    theirs = {k.removeprefix(prefix): v for k, v in donor.state_dict().items()}  # + a classifier, if any
    mine = ours.state_dict()
    assert set(mine) <= set(theirs)
    for key, value in mine.items():
        torch.testing.assert_close(value, theirs[key], msg=key)


@pytest.mark.parametrize("name", ["resnet_test", "vit_test", "deit_test"])
@pytest.mark.parametrize("classifier", [False, True], ids=["bare", "for-classification"])
def test_loads_a_save_pretrained_directory(name: str, classifier: bool, tmp_path: Path) -> None:
    donor = _donor(name, classifier).eval()
    donor.save_pretrained(tmp_path)
    model = build_model(name, 13, 64, pretrained=str(tmp_path)).eval()
    _same_weights(model.backbone.net, donor)
    x = torch.randn(2, 3, 64, 64)
    base = getattr(donor, donor.base_model_prefix, donor)
    with torch.no_grad():
        hidden = base(pixel_values=x).last_hidden_state
        pooled = model(x)["features"]
    expected = hidden.mean((2, 3)) if name == "resnet_test" else hidden[:, : 2 if name == "deit_test" else 1].mean(1)
    torch.testing.assert_close(pooled, expected)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_loads_a_state_dict_file(suffix: str, tmp_path: Path) -> None:
    donor = _donor("resnet_test", classifier=True)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pt":
        torch.save(donor.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(path))
    model = build_model("resnet_test", 13, 64, pretrained=str(path))
    _same_weights(model.backbone.net, donor)


def test_bad_weight_files_are_user_errors(tmp_path: Path) -> None:
    state = _donor("vit_test").state_dict()
    torch.save({k: v for k, v in state.items() if "layers.2." not in k}, tmp_path / "partial.pt")
    with pytest.raises(UserError, match=r"partial\.pt \(16 backbone weights missing there"):
        build_model("vit_test", 13, 64, pretrained=str(tmp_path / "partial.pt"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="is not a state dict"):
        build_model("vit_test", 13, 64, pretrained=str(tmp_path / "notes.txt"))
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"cannot read pretrained file .*broken\.pt"):
        build_model("vit_test", 13, 64, pretrained=str(tmp_path / "broken.pt"))
    with pytest.raises(UserError, match="no such directory or file"):
        build_model("resnet101_ale", 13, 224, pretrained=str(tmp_path / "missing"))


def test_loads_the_older_key_names_of_hub_checkpoints(tmp_path: Path) -> None:
    """Hub checkpoints such as google/vit-base-patch16-224 predate transformers 5's ViT key names."""
    donor = _donor("vit_test")
    old_names = [
        ("layers.", "encoder.layer."),
        ("attention.q_proj", "attention.attention.query"),
        ("attention.k_proj", "attention.attention.key"),
        ("attention.v_proj", "attention.attention.value"),
        ("attention.o_proj", "attention.output.dense"),
        ("mlp.fc1", "intermediate.dense"),
        ("mlp.fc2", "output.dense"),
    ]
    legacy = {}
    for key, value in donor.state_dict().items():
        for new, old in old_names:
            key = key.replace(new, old)
        legacy[f"vit.{key}"] = value
    legacy["classifier.weight"] = torch.zeros(1000, 96)
    torch.save({"state_dict": legacy}, tmp_path / "legacy.pth")
    model = build_model("vit_test", 13, 64, pretrained=str(tmp_path / "legacy.pth"))
    _same_weights(model.backbone.net, donor)
    torch.save({"weights": [1, 2]}, tmp_path / "odd.pt")
    with pytest.raises(UserError, match="does not hold a state dict of tensors"):
        build_model("vit_test", 13, 64, pretrained=str(tmp_path / "odd.pt"))


def test_random_init_when_asked() -> None:
    for value in ("none", "None", "random", None):
        assert build_model("resnet_test", 13, 64, pretrained=value) is not None


def test_offline_hub_id_is_one_line(cli, synth_root: Path, tmp_path: Path) -> None:
    """No network and no local weights: exit 2 with one line that says how to provide them."""
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}  # an empty cache
    args = ["train", "--model", "vit_b16_ale", "--dataset", "synth", "--data-root", str(synth_root)]
    code, _, err = cli(*args, "--set", "train.epochs=1", "--out", str(tmp_path / "run"), env=env, timeout=300)
    assert code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "google/vit-base-patch16-224" in lines[0] and "model.options.pretrained=/path/to/dir" in lines[0]
    assert "model.options.pretrained=none" in lines[0]
