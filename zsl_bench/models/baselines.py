"""CNN and ViT baselines: a transformers backbone, an attribute head, and class scores against attribute vectors.

Registered models (``factory(num_attributes, image_size, **options)``), by backbone (default weights):

* ResNet-101 (``microsoft/resnet-101``): ``resnet101_ale`` (global average pool → linear) and ``resnet101_attn``
  (attribute prototypes attending over the (S/32)² regions of the last feature map);
* ViT-B/16 (``google/vit-base-patch16-224``): ``vit_b16_ale`` (class token) and ``vit_b16_attn`` (attention over
  the patch tokens);
* DeiT-B/16 distilled (``facebook/deit-base-distilled-patch16-224``): ``deit_b16_ale`` (mean of the class and
  distillation tokens) and ``deit_b16_attn``;
* tiny random-init versions for CPU tests and smoke runs: ``resnet_test``, ``vit_test``, ``deit_test``, whose
  ``head`` option (``pooled`` | ``attention``; default ``pooled``, ``deit_test``: ``attention``) picks the variant.

Options shared by all: ``scoring`` (``dot`` | ``cosine`` with a learnable scale initialised to ``scale``),
``attr_weight`` (weight of an MSE attribute-regression term beside the cross-entropy), ``dropout`` (before the
head); ``key_dim`` for the attention heads; ``pretrained``: a hub id (when online or already in the Hugging Face
cache), a local ``save_pretrained`` directory, a state-dict file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``; keys
of the bare backbone or of its ``…ForImageClassification``), or ``none`` for random init (the tiny models' default).

Images arrive normalised with ImageNet mean/std (the ``baseline`` transform preset); the ViT-B/16 checkpoints from
Google expect mean = std = 0.5, so that backbone re-normalises its input (a fixed affine map). ViTs run at any
multiple of the patch size through interpolated position embeddings (the state dict stays the 224-px one).

The backbone/head split (:meth:`AttributeModel.backbone_parameters`) gives the optimiser its two learning rates and
:meth:`AttributeModel.freeze_backbone` the frozen mode.

Importing transformers costs seconds, so this module does it only when a model is built that needs it (through
:func:`~zsl_bench.registry.import_names`, thread-safe): the ViT and DeiT models, and ResNets with pretrained weights.
A randomly initialised ResNet (``resnet_test``'s default) is :class:`~zsl_bench.models.resnet.ResNet`, plain torch
with the same weights, keys and outputs as transformers' ``ResNetModel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from zsl_bench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, TRANSFORMS
from zsl_bench.errors import UserError
from zsl_bench.models.base import ZslModel
from zsl_bench.models.factories import shared_options
from zsl_bench.models.family import ModelFamily
from zsl_bench.models.heads import PooledHead, Scorer, Scoring, TokenAttentionHead
from zsl_bench.models.hf_weights import HUB_IDS, load_backbone_net
from zsl_bench.models.resnet import ResNetArch, ResNetBackbone, resnet_backbone
from zsl_bench.registry import import_names

Head = Literal["pooled", "attention"]


# ----------------------------------------------------------------------------------------------- backbones


class ViTBackbone(nn.Module):
    """A transformers ``ViTModel`` or ``DeiTModel`` (no pooler): images [B, 3, H, W] → ``pooled`` [B, D] (the mean
    of the ``prefix`` leading tokens: class token; DeiT: class and distillation tokens, as DeiT's own inference
    averages its two heads) and ``tokens`` [B, (H/P)·(W/P), D] (the patch tokens after the final layer norm).

    Inputs whose size differs from ``config.image_size`` use bicubically interpolated position embeddings.
    ``symmetric_input``: the weights expect mean = std = 0.5; ImageNet-normalised inputs are mapped to that.
    """

    def __init__(self, net: nn.Module, prefix: int, symmetric_input: bool = False) -> None:
        super().__init__()
        self.net = net
        self.prefix = prefix
        self.dim: int = net.config.hidden_size
        self.symmetric_input = symmetric_input
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("in_scale", std / 0.5, persistent=False)  # x·s + m = pixel in [0, 1]; → (p − ½)/½
        self.register_buffer("in_shift", (mean - 0.5) / 0.5, persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.symmetric_input:
            images = images * self.in_scale + self.in_shift
        size = self.net.config.image_size
        resized = tuple(images.shape[-2:]) != (size, size)
        hidden = self.net(pixel_values=images, interpolate_pos_encoding=resized).last_hidden_state  # [B, T, D]
        return {"pooled": hidden[:, : self.prefix].mean(dim=1), "tokens": hidden[:, self.prefix :]}


# --------------------------------------------------------------------------------------------------- model


class AttributeModel(ZslModel):
    """backbone → head → ``attr`` [B, A]; class scores by :class:`~zsl_bench.models.heads.Scorer`.

    Loss: cross-entropy over the seen classes, plus ``attr_weight`` x MSE between ``attr`` and the target class's
    attribute vector (both unit-normalised under cosine scoring).

    ``forward = forward_head ∘ forward_backbone``; :data:`HEAD_OPTIONS` are the factory options that change only
    the head, so a frozen backbone's cached features serve every value of them.
    """

    HEAD_OPTIONS = ("scoring", "scale", "attr_weight", "dropout", "key_dim")

    def __init__(self, backbone: nn.Module, head: nn.Module, scorer: Scorer, attr_weight: float = 0.0) -> None:
        super().__init__()
        if attr_weight < 0:
            raise UserError(f"attr_weight must be >= 0 (got {attr_weight})")
        self.backbone = backbone
        self.head = head
        self.scorer = scorer
        self.attr_weight = attr_weight
        self.frozen = False

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] → {"attr": [B, A], "features": [B, D], "attention": [B, A, N] (attention head)}."""
        return self.forward_head(self.forward_backbone(images))

    def forward_backbone(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] → what the head consumes: {"pooled": [B, D]}, plus "tokens" [B, N, D] (contiguous)
        for the attention head. With a frozen backbone the feature cache stores these."""
        feats = self.backbone(images)
        out = {"pooled": feats["pooled"]}
        if isinstance(self.head, TokenAttentionHead):
            out["tokens"] = feats["tokens"].contiguous()
        return out

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`forward_backbone`'s dict → {"attr": [B, A], "features": [B, D], "attention" (attention head)}."""
        out = self.head(features["pooled"], features.get("tokens"))
        return {**out, "features": features["pooled"]}

    def class_scores(self, out: dict[str, torch.Tensor], class_attributes: torch.Tensor) -> torch.Tensor:
        """``out["attr"]`` [B, A] against ``class_attributes`` [C, A] → [B, C] (dot or scaled cosine)."""
        return self.scorer(out["attr"], class_attributes)

    def loss(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], class_attributes_seen: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """{"total", "ce", "attr" (only with ``attr_weight`` > 0)}; ``batch["target"]`` [B] indexes seen rows."""
        ce = F.cross_entropy(self.class_scores(out, class_attributes_seen), batch["target"])
        if self.attr_weight == 0:
            return {"total": ce, "ce": ce}
        pred, target = self.scorer.regression_target(out["attr"], class_attributes_seen[batch["target"]])
        mse = F.mse_loss(pred, target)
        return {"total": ce + self.attr_weight * mse, "ce": ce, "attr": mse}

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The pretrained part (``optim.backbone_lr``); everything else is head (``optim.head_lr``)."""
        return list(self.backbone.parameters())

    def freeze_backbone(self) -> None:
        """Stop training the backbone: no gradients, and always eval mode (BatchNorm statistics, dropout off)."""
        self.frozen = True
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> AttributeModel:
        """``nn.Module.train``, except that a frozen backbone stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self


@dataclass(frozen=True)
class _HeadSpec:
    """The attribute head a factory asks for (``pooled`` | ``attention``) and its options."""

    head: str
    scoring: str
    scale: float
    attr_weight: float
    dropout: float
    key_dim: int


def _assemble(backbone: ResNetBackbone | ViTBackbone, num_attributes: int, spec: _HeadSpec) -> AttributeModel:
    """``backbone`` [B, 3, H, W] → [B, D] with the head of ``spec`` onto ``num_attributes`` attributes."""
    if spec.head == "pooled":
        head_module: nn.Module = PooledHead(backbone.dim, num_attributes, spec.dropout)
    elif spec.head == "attention":
        head_module = TokenAttentionHead(backbone.dim, num_attributes, spec.key_dim, spec.dropout)
    else:
        raise UserError(f"head must be 'pooled' or 'attention', not {spec.head!r}")
    if spec.scoring not in ("dot", "cosine"):
        raise UserError(f"scoring must be 'dot' or 'cosine', not {spec.scoring!r}")
    if spec.scale <= 0:
        raise UserError(f"scale must be > 0 (got {spec.scale})")
    scorer = Scorer(spec.scoring, spec.scale)  # type: ignore[arg-type]
    return AttributeModel(backbone, head_module, scorer, spec.attr_weight)


# --------------------------------------------------------------------------------------------- families


def _baseline_family(name: str, tiny: str) -> ModelFamily:
    """A CNN/ViT baseline family: 224-px ImageNet pipeline with flips, a backbone/head split for the feature
    cache, and a tiny variant on the 64-px synthetic images."""
    return ModelFamily(
        name=name,
        tiny=tiny,
        transform=TRANSFORMS["baseline"],
        backbone_split=True,
        head_options=AttributeModel.HEAD_OPTIONS,
    )


RESNET = _baseline_family("resnet", "resnet_test")
VIT = _baseline_family("vit", "vit_test")
DEIT = _baseline_family("deit", "deit_test")


# ------------------------------------------------------------------------------------------- full size


def resnet101_backbone(pretrained: str | Path | None, model_name: str = "resnet101") -> ResNetBackbone:
    """ResNet-101 (bottleneck blocks, depths 3-4-23-3, 2048-d output; the ``microsoft/resnet-101`` config)."""
    return resnet_backbone(ResNetArch(depths=(3, 4, 23, 3)), pretrained, model_name)


def vit_b16_backbone(pretrained: str | Path | None, model_name: str = "vit_b16") -> ViTBackbone:
    """ViT-B/16 at 224 px (768-d, 12 layers, 12 heads); Google's weights expect mean = std = 0.5 inputs."""
    config_cls, model_cls = import_names("transformers", "ViTConfig", "ViTModel")
    config = config_cls(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
    return ViTBackbone(load_backbone_net(model_cls, config, pretrained, model_name), prefix=1, symmetric_input=True)


def deit_b16_backbone(pretrained: str | Path | None, model_name: str = "deit_b16") -> ViTBackbone:
    """DeiT-B/16 distilled at 224 px (class + distillation tokens; ImageNet mean/std inputs)."""
    config_cls, model_cls = import_names("transformers", "DeiTConfig", "DeiTModel")
    config = config_cls(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
    return ViTBackbone(load_backbone_net(model_cls, config, pretrained, model_name), prefix=2)


def _head_options(
    *, scoring: Scoring = "dot", scale: float = 10.0, attr_weight: float = 0.0, dropout: float = 0.0
) -> None:
    """The options every full-size baseline takes besides ``pretrained`` (see the module docstring; a template for
    :func:`~zsl_bench.models.factories.shared_options`, never called)."""


def _attention_options(*, key_dim: int = 256) -> None:
    """The extra option of the ``*_attn`` baselines: the attribute prototypes' key width (a template, never called)."""


@RESNET.variant("resnet101_ale")
@shared_options(_head_options)
def resnet101_ale(
    num_attributes: int, image_size: int, *, pretrained: str | None = HUB_IDS["resnet101"], **options: Any
) -> ZslModel:
    """ResNet-101, global average pool [B, 2048] → linear → attributes."""
    backbone = resnet101_backbone(pretrained, "resnet101_ale")
    return _assemble(backbone, num_attributes, _HeadSpec(head="pooled", key_dim=0, **options))


@RESNET.variant("resnet101_attn")
@shared_options(_head_options, _attention_options)
def resnet101_attn(
    num_attributes: int, image_size: int, *, pretrained: str | None = HUB_IDS["resnet101"], **options: Any
) -> ZslModel:
    """ResNet-101, attribute prototypes attending over the last feature map ((S/32)² regions of 2048-d)."""
    backbone = resnet101_backbone(pretrained, "resnet101_attn")
    return _assemble(backbone, num_attributes, _HeadSpec(head="attention", **options))


@VIT.variant("vit_b16_ale")
@shared_options(_head_options)
def vit_b16_ale(
    num_attributes: int, image_size: int, *, pretrained: str | None = HUB_IDS["vit_b16"], **options: Any
) -> ZslModel:
    """ViT-B/16, class token [B, 768] → linear → attributes."""
    backbone = vit_b16_backbone(pretrained, "vit_b16_ale")
    return _assemble(backbone, num_attributes, _HeadSpec(head="pooled", key_dim=0, **options))


@VIT.variant("vit_b16_attn")
@shared_options(_head_options, _attention_options)
def vit_b16_attn(
    num_attributes: int, image_size: int, *, pretrained: str | None = HUB_IDS["vit_b16"], **options: Any
) -> ZslModel:
    """ViT-B/16, attribute prototypes attending over the (S/16)² patch tokens."""
    backbone = vit_b16_backbone(pretrained, "vit_b16_attn")
    return _assemble(backbone, num_attributes, _HeadSpec(head="attention", **options))


@DEIT.variant("deit_b16_ale")
@shared_options(_head_options)
def deit_b16_ale(
    num_attributes: int, image_size: int, *, pretrained: str | None = HUB_IDS["deit_b16"], **options: Any
) -> ZslModel:
    """DeiT-B/16 distilled, mean of class and distillation tokens [B, 768] → linear → attributes."""
    backbone = deit_b16_backbone(pretrained, "deit_b16_ale")
    return _assemble(backbone, num_attributes, _HeadSpec(head="pooled", key_dim=0, **options))


@DEIT.variant("deit_b16_attn")
@shared_options(_head_options, _attention_options)
def deit_b16_attn(
    num_attributes: int, image_size: int, *, pretrained: str | None = HUB_IDS["deit_b16"], **options: Any
) -> ZslModel:
    """DeiT-B/16 distilled, attribute prototypes attending over the patch tokens."""
    backbone = deit_b16_backbone(pretrained, "deit_b16_attn")
    return _assemble(backbone, num_attributes, _HeadSpec(head="attention", **options))


# ------------------------------------------------------------------------------------------------- tiny


@RESNET.variant("resnet_test")
def resnet_test(
    num_attributes: int,
    image_size: int,
    *,
    width: int = 32,
    depths: tuple[int, ...] = (1, 1, 1),
    head: Head = "pooled",
    scoring: Scoring = "dot",
    scale: float = 10.0,
    attr_weight: float = 0.0,
    dropout: float = 0.0,
    key_dim: int = 32,
    pretrained: str | None = None,
) -> ZslModel:
    """A tiny 3-stage basic-block ResNet (~0.3 M params at width 32; 64 px → 4 x 4 regions) for CPU tests."""
    hidden = tuple(width * 2**i for i in range(len(depths)))
    arch = ResNetArch(embedding_size=width, hidden_sizes=hidden, depths=tuple(depths), layer_type="basic")
    backbone = resnet_backbone(arch, pretrained, "resnet_test")
    return _assemble(backbone, num_attributes, _HeadSpec(head, scoring, scale, attr_weight, dropout, key_dim))


def _tiny_vit_config(
    config_cls: type, *, image_size: int, patch_size: int, hidden: int, layers: int, heads: int
) -> Any:
    """A tiny ViT/DeiT config of ``config_cls``: ``hidden``-wide, MLP 2 x ``hidden``, no dropout."""
    return config_cls(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


@VIT.variant("vit_test")
def vit_test(
    num_attributes: int,
    image_size: int,
    *,
    patch_size: int = 8,
    hidden: int = 96,
    layers: int = 3,
    heads: int = 4,
    head: Head = "pooled",
    scoring: Scoring = "dot",
    scale: float = 10.0,
    attr_weight: float = 0.0,
    dropout: float = 0.0,
    key_dim: int = 32,
    pretrained: str | None = None,
) -> ZslModel:
    """A tiny ViT (patch 8, 3 layers, 96-d; 64 px → 64 patches) for CPU tests; ``pooled`` is the class token."""
    config_cls, model_cls = import_names("transformers", "ViTConfig", "ViTModel")
    config = _tiny_vit_config(
        config_cls, image_size=image_size, patch_size=patch_size, hidden=hidden, layers=layers, heads=heads
    )
    backbone = ViTBackbone(load_backbone_net(model_cls, config, pretrained, "vit_test"), prefix=1)
    return _assemble(backbone, num_attributes, _HeadSpec(head, scoring, scale, attr_weight, dropout, key_dim))


@DEIT.variant("deit_test")
def deit_test(
    num_attributes: int,
    image_size: int,
    *,
    patch_size: int = 8,
    hidden: int = 96,
    layers: int = 3,
    heads: int = 4,
    head: Head = "attention",  # "pooled" reached only ~38 % CZSL on synth (3x chance: 37.5 %), attention 46-51 %
    scoring: Scoring = "dot",
    scale: float = 10.0,
    attr_weight: float = 0.0,
    dropout: float = 0.0,
    key_dim: int = 32,
    pretrained: str | None = None,
) -> ZslModel:
    """A tiny distilled DeiT (class + distillation tokens) for CPU tests and ``deit_b16_*`` smoke runs; its default
    head attends over the patch tokens (``deit_b16_attn``'s), which learns the synthetic data robustly."""
    config_cls, model_cls = import_names("transformers", "DeiTConfig", "DeiTModel")
    config = _tiny_vit_config(
        config_cls, image_size=image_size, patch_size=patch_size, hidden=hidden, layers=layers, heads=heads
    )
    backbone = ViTBackbone(load_backbone_net(model_cls, config, pretrained, "deit_test"), prefix=2)
    return _assemble(backbone, num_attributes, _HeadSpec(head, scoring, scale, attr_weight, dropout, key_dim))
