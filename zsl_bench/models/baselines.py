"""CNN and ViT baselines with an attribute head (ALE-style: image → attribute vector → dot product).

Backbones come from transformers' config classes (random init here); only this module imports transformers.
"""

from __future__ import annotations

import torch
from torch import nn

from zsl_bench.models import MODELS
from zsl_bench.models.base import ZslModel


class BackboneWithAttributeHead(ZslModel):
    """``backbone(images [B,3,H,W]) -> features [B, D]`` followed by ``Linear(D, A)``."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_attributes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_attributes)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] → {"features": [B, D], "attr": [B, A]}."""
        feats = self.backbone(images)
        return {"features": feats, "attr": self.head(feats)}


class _ResNetFeatures(nn.Module):
    def __init__(self, config: object) -> None:
        super().__init__()
        from transformers import ResNetModel

        self.net = ResNetModel(config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=images).pooler_output.flatten(1)  # [B, hidden_sizes[-1]]


class _ViTFeatures(nn.Module):
    def __init__(self, config: object) -> None:
        super().__init__()
        from transformers import ViTModel

        self.net = ViTModel(config, add_pooling_layer=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=images).last_hidden_state[:, 0]  # CLS token [B, hidden]


@MODELS.register("resnet_test")
def resnet_test(num_attributes: int, image_size: int, width: int = 32, depths: tuple[int, ...] = (1, 1, 1)) -> ZslModel:
    """A tiny 3-stage basic-block ResNet (~0.3 M params at width 32) for CPU tests and the quickstart."""
    from transformers import ResNetConfig

    hidden = [width * 2**i for i in range(len(depths))]
    config = ResNetConfig(
        num_channels=3, embedding_size=width, hidden_sizes=hidden, depths=list(depths), layer_type="basic"
    )
    return BackboneWithAttributeHead(_ResNetFeatures(config), hidden[-1], num_attributes)


@MODELS.register("vit_test")
def vit_test(
    num_attributes: int, image_size: int, patch_size: int = 8, hidden: int = 96, layers: int = 3, heads: int = 4
) -> ZslModel:
    """A tiny ViT (patch 8, 3 layers, 96-d) for CPU tests."""
    from transformers import ViTConfig

    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BackboneWithAttributeHead(_ViTFeatures(config), hidden, num_attributes)
