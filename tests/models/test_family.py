"""Model families: the declared transform, tiny variant, typed options and capabilities of every registry entry."""

from __future__ import annotations

import pytest

from zsl_bench.data.transforms import TRANSFORMS
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model
from zsl_bench.models.family import TINY_TRANSFORM, ModelFamily


def test_full_size_models_get_their_family_pipeline() -> None:
    assert MODELS.get("zeromamba_vmamba_s").transform_at(None) == TRANSFORMS["zeromamba"]
    assert TRANSFORMS["zeromamba"].size == 448 and TRANSFORMS["zeromamba"].hflip
    duet = MODELS.get("duet_deit_b").transform_at(None)
    assert (duet.resize, duet.crop, duet.size, duet.hflip, duet.interpolation) == (256, 224, 224, False, "bicubic")
    assert MODELS.get("duet_swin_b").transform_at(None) == TRANSFORMS["duet_swin"]  # the variant's own, any dataset
    for name in ("resnet101_ale", "resnet101_attn", "vit_b16_ale", "vit_b16_attn", "deit_b16_ale", "deit_b16_attn"):
        assert MODELS.get(name).transform_at(None) == TRANSFORMS["baseline"]
    spec = TRANSFORMS["baseline"]
    assert (spec.size, spec.crop, spec.hflip, spec.norm) == (224, None, True, "imagenet")
    big = MODELS.get("resnet101_ale").transform_at(448)
    assert (big.resize, big.norm, big.hflip) == (448, "imagenet", True)


def test_tiny_variants_default_to_64_px() -> None:
    """The defaults of every tiny model fit the 64-px synthetic images (zeromamba_test used to get 448 px and was
    OOM-killed; duet_test got a 224-px crop and did not learn)."""
    for name in ("resnet_test", "vit_test", "deit_test"):
        assert MODELS.get(name).transform_at(None) == TRANSFORMS["default"] == TINY_TRANSFORM
    assert MODELS.get("zeromamba_test").transform_at(None).size == 64
    tiny = MODELS.get("duet_test").transform_at(None)
    assert (tiny.resize, tiny.crop) == (73, 64)  # DUET's 256/224 ratio kept


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_declares_a_tiny_variant_of_its_own_family(name: str) -> None:
    spec = MODELS.get(name)
    tiny = MODELS.get(spec.tiny)
    assert tiny.family == spec.family and tiny.tiny == tiny.name
    assert tiny.transform_at(None).size <= 64  # runs on the synthetic images in bounded memory
    assert spec.inputs in ("images", "features")
    assert not spec.head_options or spec.backbone_split  # head-only options only mean something with a split
    for need in spec.needs:
        assert need in spec.options.model_fields, f"{name}: needs {need} but has no such option"


def test_options_are_typed_and_typos_get_a_hint() -> None:
    with pytest.raises(UserError, match=r"model 'zeromamba_test' has no option 'pretraind'.*did you mean 'pretrained'"):
        build_model("zeromamba_test", 13, 64, pretraind="x")
    with pytest.raises(UserError, match=r"model 'resnet_test' option 'width'.*valid integer.*'abc'"):
        build_model("resnet_test", 13, 64, width="abc")
    with pytest.raises(UserError, match=r"option 'head'.*'pooled' or 'attention'"):
        MODELS.get("vit_test").check_options({"head": "mlp"})
    assert MODELS.get("resnet_test").check_options({"depths": [1, 1]}) == {"depths": (1, 1)}  # YAML list → tuple


def test_a_family_registers_variants_with_their_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from zsl_bench.registry import Registry

    reg: Registry = Registry("model")
    fam = ModelFamily(name="toy", tiny="toy_test", transform=TRANSFORMS["baseline"], registry=reg)

    @fam.variant("toy_big")
    @fam.variant("toy_test")
    def toy(num_attributes: int, image_size: int, hidden: int = 4, mode: str = "a") -> object:
        return (num_attributes, image_size, hidden, mode)

    assert reg.get("toy_big").transform_at(None) == TRANSFORMS["baseline"]
    assert reg.get("toy_test").transform_at(None) == TINY_TRANSFORM
    assert reg.get("toy_test").build(3, 64, {"hidden": "7"}) == (3, 64, 7, "a")
    assert sorted(reg.get("toy_big").options.model_fields) == ["hidden", "mode"]
    # defined outside zsl_bench: attributed to its own module, not to zsl-bench
    assert reg.provider("toy_big").distribution == f"module:{toy.__module__}"
