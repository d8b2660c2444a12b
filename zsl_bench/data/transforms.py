"""Image transforms as small functions, split into a deterministic (cacheable) part and a per-batch part.

A :class:`TransformSpec` describes one model's pipeline. It runs in two halves:

* :func:`preprocess` — decode (PIL), resize, centre-crop → ``uint8 [3, S, S]``. Deterministic, so its output can
  be stored once in the memory-mapped cache (:mod:`zsl_bench.data.cache`).
* :func:`augment` — per batch, on tensors: random horizontal flip (training only, if the spec has it), scale to
  [0, 1], normalise → ``float32 [B, 3, S, S]``.

Named pipelines (:data:`TRANSFORMS`) that model families declare as theirs
(:class:`zsl_bench.models.family.ModelFamily`; a family's tiny variant gets the 64-px ``default`` one):

* ``zeromamba``: resize to 448 x 448 (bilinear, as torchvision ``Resize((448, 448))`` on a PIL image), random
  flip, ImageNet mean/std.
* ``duet``: the HF DeiT image processor of ``facebook/deit-base-distilled-patch16-224`` — resize to 256 x 256
  (bicubic), centre-crop 224, ImageNet mean/std, no augmentation.
* ``duet_swin`` (DUET's Swin-B variant, the official SUN setting): resize to 224 x 224 (bicubic), ImageNet
  mean/std, no augmentation.
* ``baseline`` (full-size CNN/ViT baselines ``resnet101*``, ``vit_b16*``, ``deit_b*``): resize to 224 x 224 (or
  ``image_size``; bilinear), random flip, ImageNet mean/std.
* ``default`` (tiny test models on the 64-px synthetic images): resize to 64 square, flip, scale to [-1, 1].

Torch equivalents of the PIL steps (:func:`resize`, :func:`center_crop`) work on tensors for callers that
already hold decoded images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zsl_bench.data.xlsa17 import one_line
from zsl_bench.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


@dataclass(frozen=True)
class TransformSpec:
    """One image pipeline.

    Attributes:
        resize: target of the resize step (pixels).
        crop: side of the centre crop after resizing, or None for no crop.
        resize_mode: ``square`` (resize to ``resize`` x ``resize``) or ``shorter`` (shorter side to ``resize``,
            aspect kept; needs ``crop``).
        interpolation: ``bilinear`` or ``bicubic`` (PIL filters, antialiased when shrinking).
        hflip: random horizontal flip (p = 0.5) for training batches.
        norm: ``imagenet`` (mean/std) or ``symmetric`` ([0, 255] → [-1, 1]).
    """

    resize: int
    crop: int | None = None
    resize_mode: str = "square"
    interpolation: str = "bilinear"
    hflip: bool = False
    norm: str = "imagenet"

    def __post_init__(self) -> None:
        checks = [
            (self.resize >= 1, "resize must be >= 1"),
            (self.crop is None or 1 <= self.crop <= self.resize, "crop must be in 1..resize"),
            (self.resize_mode in ("square", "shorter"), "resize_mode must be 'square' or 'shorter'"),
            (self.resize_mode == "square" or self.crop is not None, "resize_mode 'shorter' needs a crop"),
            (self.interpolation in _PIL_FILTERS, f"interpolation must be one of {sorted(_PIL_FILTERS)}"),
            (self.norm in ("imagenet", "symmetric"), "norm must be 'imagenet' or 'symmetric'"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"invalid image transform {self}: {message}")

    @property
    def size(self) -> int:
        """S, the side of the images this pipeline produces."""
        return self.crop if self.crop is not None else self.resize

    @property
    def cache_key(self) -> str:
        """A file-name-safe key of the deterministic half (what a cached array depends on)."""
        crop = f"c{self.crop}" if self.crop is not None else ""
        mode = "" if self.resize_mode == "square" else "-shorter"
        return f"r{self.resize}{crop}{mode}-{self.interpolation}"

    def at_size(self, size: int) -> TransformSpec:
        """The same pipeline producing ``size`` x ``size`` images (crop ratio kept), e.g. for tiny test models."""
        if self.crop is None:
            return replace(self, resize=size)
        return replace(self, resize=max(size, round(size * self.resize / self.crop)), crop=size)


TRANSFORMS: dict[str, TransformSpec] = {
    "zeromamba": TransformSpec(resize=448, hflip=True),
    "duet": TransformSpec(resize=256, crop=224, interpolation="bicubic"),
    "duet_swin": TransformSpec(resize=224, interpolation="bicubic"),
    "baseline": TransformSpec(resize=224, hflip=True),
    "default": TransformSpec(resize=64, hflip=True, norm="symmetric"),
}


# ------------------------------------------------------------------------------------- deterministic half


def decode(path: Path) -> Image.Image:
    """Open an image file as RGB (fully decoded). Missing or corrupt files raise UserError naming the file."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"image file missing: {path} (is the dataset complete?)") from None
    except OSError as exc:
        raise UserError(f"cannot decode image {path}: {one_line(exc)}; replace the file") from None


def resize_pil(img: Image.Image, spec: TransformSpec) -> Image.Image:
    """Resize step of ``spec`` on a PIL image (torchvision's rounding for ``shorter``)."""
    w, h = img.size
    if spec.resize_mode == "square":
        size = (spec.resize, spec.resize)
    elif w <= h:
        size = (spec.resize, int(spec.resize * h / w))
    else:
        size = (int(spec.resize * w / h), spec.resize)
    return img if img.size == size else img.resize(size, _PIL_FILTERS[spec.interpolation])


def center_crop_pil(img: Image.Image, size: int) -> Image.Image:
    """Centre crop to ``size`` x ``size`` (torchvision's offsets: round((H - size) / 2))."""
    w, h = img.size
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    return img.crop((left, top, left + size, top + size))


def preprocess(path: Path, spec: TransformSpec) -> np.ndarray:
    """Decode, resize and crop one image → ``uint8 [3, S, S]`` (S = ``spec.size``)."""
    img = resize_pil(decode(path), spec)
    if spec.crop is not None:
        img = center_crop_pil(img, spec.crop)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


# --------------------------------------------------------------------------------------- tensor functions


def resize(x: torch.Tensor, size: int, mode: str = "square", interpolation: str = "bilinear") -> torch.Tensor:
    """``[B, 3, H, W]`` (uint8 or float) → resized, antialiased; ``mode`` as in :class:`TransformSpec`."""
    h, w = x.shape[-2:]
    if mode == "square":
        out_hw = (size, size)
    elif w <= h:
        out_hw = (int(size * h / w), size)
    else:
        out_hw = (size, int(size * w / h))
    y = F.interpolate(x.float(), size=out_hw, mode=interpolation, align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else y


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[..., H, W]`` → ``[..., size, size]`` taken from the centre."""
    h, w = x.shape[-2:]
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    return x[..., top : top + size, left : left + size]


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Flip each image of ``[B, C, H, W]`` left-right with probability ``p`` (a new tensor)."""
    flip = torch.rand(x.shape[0], generator=generator) < p
    out = x.clone()
    out[flip] = x[flip].flip(-1)
    return out


def normalize(x: torch.Tensor, norm: str = "imagenet") -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` → float32: ImageNet mean/std of [0, 1] values, or [-1, 1] for ``symmetric``."""
    y = x.float()
    if norm == "symmetric":
        return y.div_(127.5).sub_(1.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return y.div_(255.0).sub_(mean).div_(std)


def augment(
    batch: torch.Tensor, spec: TransformSpec, train: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The per-batch half: uint8 ``[B, 3, S, S]`` → float32 ``[B, 3, S, S]`` (flip only when ``train``)."""
    if train and spec.hflip:
        batch = random_hflip(batch, generator)
    return normalize(batch, spec.norm)
