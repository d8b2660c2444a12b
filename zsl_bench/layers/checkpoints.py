"""Loading official-format checkpoints (``{"model": state_dict, ...}`` or a bare state dict) safely."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_official_checkpoint", "read_state_dict"]


def read_state_dict(path: str | Path, key: str = "model") -> dict[str, torch.Tensor]:
    """The state dict in ``path``: ``ckpt[key]`` when the file holds a dict with that key, else the file itself.

    Always ``torch.load(..., map_location="cpu", weights_only=True)``: tensors and plain containers only.
    """
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(ckpt, Mapping) and key in ckpt and isinstance(ckpt[key], Mapping):
        ckpt = ckpt[key]
    if not isinstance(ckpt, Mapping) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(f"{path}: expected a state dict (or a dict holding one under {key!r})")
    return dict(ckpt)


def load_official_checkpoint(model: nn.Module, path: str | Path, strict: bool = True, key: str = "model"):
    """Load an official checkpoint (dict key ``model``) into ``model``; returns ``load_state_dict``'s result.

    Values are copied into the model's own dtypes (e.g. the float16 reference files into float32 parameters).
    """
    return model.load_state_dict(read_state_dict(path, key), strict=strict)
