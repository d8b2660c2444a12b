"""The image pipeline: presets, PIL and torch steps, the per-batch half, and agreement with references."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zsl_bench.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TRANSFORMS,
    TransformSpec,
    augment,
    center_crop,
    center_crop_pil,
    normalize,
    preprocess,
    random_hflip,
    resize,
)
from zsl_bench.errors import UserError

from .conftest import write_jpeg


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "photo.jpg"
    write_jpeg(path, seed=1, size=(500, 375))
    return path


@pytest.mark.parametrize(
    "kwargs",
    [{"resize": 0}, {"resize": 10, "crop": 11}, {"resize": 10, "resize_mode": "shorter"}, {"resize": 8, "norm": "x"}],
)
def test_invalid_specs(kwargs: dict) -> None:
    with pytest.raises(UserError, match="invalid image transform"):
        TransformSpec(**kwargs)


def test_preprocess_shapes_and_modes(photo: Path) -> None:
    for spec in TRANSFORMS.values():
        out = preprocess(photo, spec)
        assert out.shape == (3, spec.size, spec.size) and out.dtype == np.uint8
    shorter = TransformSpec(resize=100, crop=90, resize_mode="shorter")
    with Image.open(photo) as img:  # 500 x 375 → 133 x 100 → centre 90 x 90
        expected = center_crop_pil(img.convert("RGB").resize((133, 100), Image.BILINEAR), 90)
    np.testing.assert_array_equal(preprocess(photo, shorter), np.asarray(expected).transpose(2, 0, 1))


def test_missing_and_corrupt_images(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="image file missing"):
        preprocess(tmp_path / "nope.jpg", TRANSFORMS["duet"])
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"cannot decode image .*bad\.jpg"):
        preprocess(tmp_path / "bad.jpg", TRANSFORMS["duet"])


def test_torch_steps() -> None:
    x = torch.arange(2 * 3 * 6 * 8, dtype=torch.float32).reshape(2, 3, 6, 8)
    assert center_crop(x, 4).shape == (2, 3, 4, 4)
    torch.testing.assert_close(center_crop(x, 4), x[..., 1:5, 2:6])
    u8 = (x % 256).to(torch.uint8)
    assert resize(u8, 12).shape == (2, 3, 12, 12) and resize(u8, 12).dtype == torch.uint8
    assert resize(x, 3, mode="shorter").shape == (2, 3, 3, 4)
    flipped = random_hflip(x, torch.Generator().manual_seed(0), p=1.0)
    torch.testing.assert_close(flipped, x.flip(-1))
    torch.testing.assert_close(random_hflip(x, p=0.0), x)


def test_torch_resize_is_close_to_pil(photo: Path) -> None:
    with Image.open(photo) as img:
        full = torch.from_numpy(np.asarray(img.convert("RGB")).transpose(2, 0, 1).copy())[None]
    pil = torch.from_numpy(preprocess(photo, TransformSpec(resize=224)))[None]
    diff = (resize(full, 224).float() - pil.float()).abs()
    assert diff.mean() < 2.0  # both antialiased bilinear; PIL and torch round differently


def test_normalize_and_augment() -> None:
    batch = torch.full((4, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(batch)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    assert normalize(batch, "symmetric").eq(1.0).all()
    img = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).reshape(4, 3, 2, 2)
    spec = TRANSFORMS["zeromamba"]
    evals = augment(img, spec, train=False)
    torch.testing.assert_close(evals, normalize(img))  # never flipped at evaluation
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(augment(img, spec, True, g1), augment(img, spec, True, g2))
    assert evals.dtype == torch.float32


def test_duet_preset_equals_the_hf_deit_processor(photo: Path) -> None:
    transformers = pytest.importorskip("transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        processor = transformers.DeiTImageProcessor(image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    with Image.open(photo) as img:
        ref = processor(img.convert("RGB"), return_tensors="pt")["pixel_values"]
    ours = normalize(torch.from_numpy(preprocess(photo, TRANSFORMS["duet"]))[None])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
