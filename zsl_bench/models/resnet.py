"""ResNet backbones of the baselines (:class:`ResNetBackbone`, :func:`resnet_backbone`), and a ResNet in plain
torch interchangeable with transformers' ``ResNetModel``, so that a randomly initialised ResNet (``resnet_test``,
``pretrained=none``) does not import transformers (seconds in every trial process).

Interchangeable means: the same module tree, hence the same state-dict keys (a checkpoint of either loads into the
other), the same outputs for the same weights, and — for the same torch seed — the same random initial weights,
because modules are created and re-initialised in transformers' order (each convolution: torch's default init on
construction, then ``normal_(0, 0.02)`` and ``kaiming_normal_(fan_out, relu)`` in a children-first walk; batch
norms to 1/0). tests/models/test_imports.py checks all three against transformers. Pretrained weights still go
through transformers (``from_pretrained`` converts hub and classification checkpoints); so do :attr:`ResNet.config`
and :meth:`ResNet.save_pretrained`, which import it when called.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from zsl_bench.models.hf_weights import is_random_init, load_backbone_net
from zsl_bench.registry import import_names

log = logging.getLogger(__name__)

LayerType = Literal["basic", "bottleneck"]


@dataclass(frozen=True)
class ResNetArch:
    """The fields of transformers' ``ResNetConfig`` that shape the network (its defaults: ResNet-50)."""

    embedding_size: int = 64
    hidden_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    layer_type: LayerType = "bottleneck"
    num_channels: int = 3
    downsample_in_first_stage: bool = False
    downsample_in_bottleneck: bool = False

    def config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the equivalent ``transformers.ResNetConfig``."""
        return {
            "embedding_size": self.embedding_size,
            "hidden_sizes": list(self.hidden_sizes),
            "depths": list(self.depths),
            "layer_type": self.layer_type,
            "num_channels": self.num_channels,
            "downsample_in_first_stage": self.downsample_in_first_stage,
            "downsample_in_bottleneck": self.downsample_in_bottleneck,
        }


class ResNetOutput(NamedTuple):
    """What ``ResNetModel`` returns, by the same attribute names."""

    last_hidden_state: torch.Tensor  # [B, D, H/32, W/32] (H/16 with three stages)
    pooler_output: torch.Tensor  # [B, D, 1, 1]


class _ConvLayer(nn.Module):
    """Convolution (no bias, 'same' padding) → batch norm → ReLU (or nothing)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        self.normalization = nn.BatchNorm2d(cout)
        self.activation: nn.Module = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.normalization(self.convolution(x)))


class _ShortCut(nn.Module):
    """1x1 projection (with ``stride``) and batch norm of the residual when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)
        self.normalization = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalization(self.convolution(x))


class _Residual(nn.Module):
    """A basic (two 3x3) or bottleneck (1x1 → 3x3 → 1x1, width/4) residual layer."""

    def __init__(self, cin: int, cout: int, stride: int, bottleneck: bool, downsample_in_bottleneck: bool) -> None:
        super().__init__()
        project = cin != cout or stride != 1
        self.shortcut: nn.Module = _ShortCut(cin, cout, stride) if project else nn.Identity()
        if bottleneck:
            mid = cout // 4
            first, second = (stride, 1) if downsample_in_bottleneck else (1, stride)
            self.layer = nn.Sequential(
                _ConvLayer(cin, mid, kernel_size=1, stride=first),
                _ConvLayer(mid, mid, stride=second),
                _ConvLayer(mid, cout, kernel_size=1, relu=False),
            )
        else:
            self.layer = nn.Sequential(_ConvLayer(cin, cout, stride=stride), _ConvLayer(cout, cout, relu=False))
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.layer(x) + self.shortcut(x))


class _Stage(nn.Module):
    def __init__(self, arch: ResNetArch, cin: int, cout: int, stride: int, depth: int) -> None:
        super().__init__()
        bottleneck, down = arch.layer_type == "bottleneck", arch.downsample_in_bottleneck
        first = _Residual(cin, cout, stride, bottleneck, down)
        rest = [_Residual(cout, cout, 1, bottleneck, down) for _ in range(depth - 1)]
        self.layers = nn.Sequential(first, *rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _Embeddings(nn.Module):
    """The stem: 7x7 stride-2 convolution and a 3x3 stride-2 max pool."""

    def __init__(self, arch: ResNetArch) -> None:
        super().__init__()
        self.embedder = _ConvLayer(arch.num_channels, arch.embedding_size, kernel_size=7, stride=2)
        self.pooler = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.num_channels = arch.num_channels

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.shape[1] != self.num_channels:
            raise ValueError(f"expected {self.num_channels} input channels, got {pixel_values.shape[1]}")
        return self.pooler(self.embedder(pixel_values))


class _Encoder(nn.Module):
    def __init__(self, arch: ResNetArch) -> None:
        super().__init__()
        sizes, depths = arch.hidden_sizes, arch.depths
        first = _Stage(arch, arch.embedding_size, sizes[0], 2 if arch.downsample_in_first_stage else 1, depths[0])
        rest = [_Stage(arch, sizes[i - 1], sizes[i], 2, depths[i]) for i in range(1, min(len(sizes), len(depths)))]
        self.stages = nn.ModuleList([first, *rest])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


class ResNet(nn.Module):
    """``ResNetModel`` without transformers: ``net(pixel_values=x)`` → :class:`ResNetOutput`; ``net.arch`` is its
    :class:`ResNetArch` (``hidden_sizes[-1]`` is the output width)."""

    base_model_prefix = "resnet"  # as ResNetModel: the key prefix of its weights inside a classifier

    def __init__(self, arch: ResNetArch) -> None:
        super().__init__()
        self.arch = arch
        self.embedder = _Embeddings(arch)
        self.encoder = _Encoder(arch)
        self.pooler = nn.AdaptiveAvgPool2d((1, 1))
        with torch.no_grad():
            _init_like_transformers(self)

    def forward(self, pixel_values: torch.Tensor) -> ResNetOutput:
        hidden = self.encoder(self.embedder(pixel_values))
        return ResNetOutput(hidden, self.pooler(hidden))

    @property
    def config(self) -> Any:
        """The equivalent ``transformers.ResNetConfig`` (imports transformers)."""
        (config_cls,) = import_names("transformers", "ResNetConfig")
        return config_cls(**self.arch.config_kwargs())

    def save_pretrained(self, directory: str | Path) -> None:
        """Write these weights as the ``save_pretrained`` directory of the equivalent ``ResNetModel`` (imports
        transformers), which ``model.options.pretrained=DIR`` and ``ResNetModel.from_pretrained`` load."""
        (model_cls,) = import_names("transformers", "ResNetModel")
        twin = model_cls(self.config)
        twin.load_state_dict(self.state_dict())
        twin.save_pretrained(directory)


def _init_like_transformers(module: nn.Module) -> None:
    """Children first, then ``module`` (``nn.Module.apply``'s order), as ``ResNetPreTrainedModel._init_weights``:
    the same random draws in the same order as transformers, so a seed gives the same weights."""
    for child in module.children():
        _init_like_transformers(child)
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)  # PreTrainedModel's generic init, then overwritten
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
        module.reset_running_stats()


class ResNetBackbone(nn.Module):
    """A transformers ``ResNetModel`` or its plain-torch twin :class:`~zsl_bench.models.resnet.ResNet`: images
    [B, 3, H, W] → ``pooled`` [B, D] and ``tokens`` [B, h·w, D].

    D = ``hidden_sizes[-1]`` (2048 for ResNet-101); h, w = H/32, W/32 (the last stage's feature map, row-major).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        shape = net.arch if isinstance(net, ResNet) else net.config  # ResNet.config imports transformers
        self.dim: int = shape.hidden_sizes[-1]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(pixel_values=images)
        fmap = out.last_hidden_state  # [B, D, h, w]
        return {"pooled": out.pooler_output.flatten(1), "tokens": fmap.flatten(2).transpose(1, 2)}


def resnet_backbone(arch: ResNetArch, pretrained: str | Path | None, model_name: str) -> ResNetBackbone:
    """A ResNet of shape ``arch``: plain torch for random init, else transformers' ``ResNetModel`` with the weights
    of ``pretrained`` (:func:`~zsl_bench.models.hf_weights.load_backbone_net`)."""
    if is_random_init(pretrained):
        log.info("%s: random init (pretrained=%s)", model_name, pretrained)
        return ResNetBackbone(ResNet(arch))
    config_cls, model_cls = import_names("transformers", "ResNetConfig", "ResNetModel")
    return ResNetBackbone(load_backbone_net(model_cls, config_cls(**arch.config_kwargs()), pretrained, model_name))
