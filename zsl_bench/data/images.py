"""Image decoding into uint8 tensors, and the normalisation/augmentation applied on the fly."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zsl_bench.errors import UserError


def load_image(path: Path, size: int) -> np.ndarray:
    """One RGB image resized to ``size``×``size`` → uint8 array [3, size, size]."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except FileNotFoundError:
        raise UserError(f"image file missing: {path} (is the dataset complete?)") from None
    except OSError as exc:
        raise UserError(f"cannot decode image {path}: {exc}") from None


@lru_cache(maxsize=4)
def _load_all(paths: tuple[Path, ...], size: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([load_image(p, size) for p in paths]))


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    """Decode ``paths`` → uint8 tensor [N, 3, size, size]; cached per process (a reused Ray actor decodes once)."""
    return _load_all(tuple(paths), size)


def to_float(images: torch.Tensor, hflip: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 [B, 3, H, W] → float [B, 3, H, W] in [-1, 1], with an optional random horizontal flip per image."""
    x = images.float().div_(127.5).sub_(1.0)
    if hflip:
        flip = torch.rand(x.shape[0], generator=generator) < 0.5
        x[flip] = x[flip].flip(-1)
    return x
