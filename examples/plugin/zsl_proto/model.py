"""An attribute-prototype model (the ``proto`` family): local CNN features matched against one prototype per
attribute, in the spirit of APN (Xu et al., 2020).

For an image, a small convolutional backbone gives R region features f_r ∈ R^D (a [B, D, h, w] map, R = h·w). Each
attribute a has a learnable prototype p_a ∈ R^D; its score is the best match over the regions,
attr_a = max_r ⟨f_r, p_a⟩ / √D, so an attribute is found wherever it appears. Class scores are the dot product of
``attr`` [B, A] with the class attribute vectors, and the loss is zsl-bench's default cross-entropy over the seen
classes plus ``attr_weight`` x the MSE between ``attr`` and the target class's attributes.

Registering the family is all zsl-bench needs: importing this module (the ``zsl_bench.models`` entry point names it)
registers ``proto_small`` (224 px, ImageNet normalisation) and its tiny CPU variant ``proto_test`` (64 px).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from zsl_bench.data.transforms import TransformSpec
from zsl_bench.models import ModelFamily, ZslModel

PROTO = ModelFamily(
    name="proto",
    tiny="proto_test",  # what `zsl-bench sweep --smoke` and the conformance tests train
    transform=TransformSpec(resize=224, hflip=True),  # ImageNet mean/std
    tiny_transform=TransformSpec(resize=64, hflip=True, norm="symmetric"),
    backbone_split=True,  # forward_backbone / forward_head: model.freeze_backbone and the feature cache work
    head_options=("attr_weight",),  # options that leave the backbone's outputs unchanged
)


def _stage(cin: int, cout: int) -> nn.Sequential:
    """conv 3x3 → BN → ReLU → conv 3x3 → BN → ReLU → 2x2 max-pool: [B, cin, H, W] → [B, cout, H/2, W/2]."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ProtoModel(ZslModel):
    """backbone (``stages`` conv stages) → regions [B, R, D] → attribute prototypes [A, D] → ``attr`` [B, A]."""

    def __init__(self, num_attributes: int, width: int, stages: int, attr_weight: float) -> None:
        super().__init__()
        chans = [3] + [width * 2**i for i in range(stages)]
        self.backbone = nn.Sequential(*(_stage(a, b) for a, b in itertools.pairwise(chans)))
        dim = chans[-1]
        self.prototypes = nn.Parameter(torch.randn(num_attributes, dim) / math.sqrt(dim))
        self.attr_weight = attr_weight

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] → {"attr": [B, A], "match": [B, A, R]}."""
        return self.forward_head(self.forward_backbone(images))

    def forward_backbone(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] → region features [B, R, D] (R = (H / 2^stages)²)."""
        return self.backbone(images).flatten(2).transpose(1, 2).contiguous()

    def forward_head(self, regions: torch.Tensor) -> dict[str, torch.Tensor]:
        """regions [B, R, D] → attribute scores, the best region match of each prototype."""
        match = torch.einsum("brd,ad->bar", regions, self.prototypes) / math.sqrt(regions.shape[-1])
        return {"attr": match.amax(dim=-1), "match": match}

    def loss(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], class_attributes_seen: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """{"total", "ce", "attr"}: cross-entropy over the seen classes (+ attribute regression)."""
        ce = F.cross_entropy(self.class_scores(out, class_attributes_seen), batch["target"])
        mse = F.mse_loss(out["attr"], class_attributes_seen[batch["target"]])
        return {"total": ce + self.attr_weight * mse, "ce": ce, "attr": mse}

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def freeze_backbone(self) -> None:
        self.backbone.requires_grad_(False)
        self.backbone.eval()


@PROTO.variant("proto_small")
def proto_small(num_attributes: int, image_size: int, width: int = 64, attr_weight: float = 0.0) -> ZslModel:
    """Four conv stages of ``width``·2^i channels: 224 px → 14 x 14 regions of 8·``width`` channels."""
    return ProtoModel(num_attributes, width, 4, attr_weight)


@PROTO.variant("proto_test")
def proto_test(num_attributes: int, image_size: int, width: int = 16, attr_weight: float = 0.0) -> ZslModel:
    """Three conv stages of ``width``·2^i channels for CPU tests: 64 px → 8 x 8 regions of 4·``width`` channels."""
    return ProtoModel(num_attributes, width, 3, attr_weight)
