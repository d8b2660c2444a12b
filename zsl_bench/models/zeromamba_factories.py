"""ZeroMamba's registered models: the :data:`ZEROMAMBA` family, its factories, their shared options and the
assembly of a :class:`~zsl_bench.models.zeromamba.ZeroMamba` around a backbone.

The model registry imports this module on first use of one of its names (``zsl_bench.models._LAZY``); the engine
then calls a factory as ``factory(num_attributes, image_size, **options)`` through
:meth:`~zsl_bench.models.family.ModelSpec.build`. Factories: ``zeromamba_vmamba_s`` (the official VMamba-S
backbone; 448 px in the presets), ``zeromamba_vmamba_b``, ``zeromamba_vim_s`` (Vim-S: regions = patch tokens) and
``zeromamba_test`` (a 3-stage VMamba with 32-128 channels, 16 regions at 64 px, for CPU tests and smoke runs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from torch import nn

from zsl_bench.data.transforms import TRANSFORMS, TransformSpec
from zsl_bench.errors import UserError
from zsl_bench.models.embeddings import attribute_embeddings as load_attribute_embeddings
from zsl_bench.models.factories import shared_options
from zsl_bench.models.family import ModelFamily
from zsl_bench.models.vim import vim_small
from zsl_bench.models.vmamba import VSSM, build_vmamba_from_official, official_vmamba_config
from zsl_bench.models.zeromamba import ZeroMamba, load_backbone_checkpoint

__all__ = ["ZEROMAMBA", "zeromamba_test", "zeromamba_vim_s", "zeromamba_vmamba_b", "zeromamba_vmamba_s"]

log = logging.getLogger(__name__)

DEFAULT_EMBED_DIM = 300  # the official word2vec width


def _assemble(
    backbone: nn.Module,
    model_name: str,
    num_attributes: int,
    *,
    pretrained: str | None,
    l1_weight: float,
    attribute_embeddings: str | None,
    attribute_names: str | None,
    embed_dim: int | None,
    fusion_hidden: int,
) -> ZeroMamba:
    """A :class:`ZeroMamba` around ``backbone`` (images [B, 3, H, W] → regions and logits) for ``num_attributes``
    attributes: the backbone's checkpoint loaded, the SLP initialised from the attribute embeddings [A, d]."""
    if embed_dim is not None and embed_dim < 1:
        raise UserError(f"embed_dim must be >= 1 (got {embed_dim})")
    source = load_backbone_checkpoint(backbone, pretrained, model_name, warn_random=model_name != "zeromamba_test")
    emb = load_attribute_embeddings(
        attribute_embeddings, num_attributes, embed_dim or DEFAULT_EMBED_DIM, names_spec=attribute_names
    )
    if embed_dim is not None and emb.vectors.shape[1] != embed_dim:
        raise UserError(
            f"{model_name}: embed_dim={embed_dim} but the attribute embeddings ({emb.source}) are "
            f"{emb.vectors.shape[1]}-d; drop embed_dim (it is taken from the file/encoder) or make them agree"
        )
    log.info("%s: attribute embeddings: %s; backbone: %s", model_name, emb.source, source)
    return ZeroMamba(
        backbone,
        emb.vectors,
        num_attributes,
        l1_weight=l1_weight,
        fusion_hidden=fusion_hidden,
        embedding_source=emb.source,
        pretrained_source=source,
    )


def _vmamba(size: str, drop_path: float | None) -> VSSM:
    cfg = official_vmamba_config(size, num_classes=1000)
    if drop_path is not None:
        _check_drop_path(drop_path)
        cfg["MODEL"]["DROP_PATH_RATE"] = drop_path
    return build_vmamba_from_official(cfg)


def _check_drop_path(drop_path: float) -> None:
    if not 0.0 <= drop_path < 1.0:
        raise UserError(f"drop_path must be in [0, 1) (got {drop_path})")


def _zeromamba_options(
    *,
    pretrained: str | None = None,
    l1_weight: float = 1.0,
    attribute_embeddings: str | None = None,
    attribute_names: str | None = None,
    embed_dim: int | None = None,
    drop_path: float | None = None,
    fusion_hidden: int = 512,
) -> None:
    """The options of every ZeroMamba factory (a template for :func:`~zsl_bench.models.factories.shared_options`,
    never called). ``pretrained``: the backbone's official ImageNet checkpoint file or None/``none`` (random init).
    ``l1_weight``: weight of the attribute L1 term. ``attribute_embeddings``/``attribute_names``: see
    :mod:`zsl_bench.models.embeddings`; ``embed_dim``: d of generated embeddings (default 300). ``drop_path``: the
    backbone's drop-path rate (each factory declares its own default). ``fusion_hidden``: width of the SeF MLP."""


ZEROMAMBA = ModelFamily(
    name="zeromamba",
    tiny="zeromamba_test",
    transform=TRANSFORMS["zeromamba"],  # 448 px, flips, ImageNet mean/std (the official recipe)
    tiny_transform=TransformSpec(resize=64, hflip=True),  # the 64-px synthetic images, same normalisation
    backbone_split=True,
    head_options=ZeroMamba.HEAD_OPTIONS,
    needs=("attribute_names",),  # the SLP's attribute embeddings are built from the dataset's attribute names
)


@ZEROMAMBA.variant("zeromamba_vmamba_s")
@shared_options(_zeromamba_options)
def zeromamba_vmamba_s(
    num_attributes: int, image_size: int, *, drop_path: float | None = None, **options: Any
) -> ZeroMamba:
    """ZeroMamba with VMamba-S v2 (``vmambav2_small_224``, 768-d regions: 14 x 14 at 448 px; drop-path 0.3).

    ``pretrained``: the official ImageNet checkpoint file (``vssm_small_0229_ckpt_epoch_222.pth``) or None/``none``
    (random init). ``drop_path``: None = the official 0.3. The other options: see :func:`_zeromamba_options`.
    """
    return _assemble(_vmamba("small", drop_path), "zeromamba_vmamba_s", num_attributes, **options)


@ZEROMAMBA.variant("zeromamba_vmamba_b")
@shared_options(_zeromamba_options)
def zeromamba_vmamba_b(
    num_attributes: int, image_size: int, *, drop_path: float | None = None, **options: Any
) -> ZeroMamba:
    """ZeroMamba with VMamba-B v2 (``vmambav2_base_224``, 1024-d regions; drop-path 0.6); options as ``_s``."""
    return _assemble(_vmamba("base", drop_path), "zeromamba_vmamba_b", num_attributes, **options)


@ZEROMAMBA.variant("zeromamba_vim_s")
@shared_options(_zeromamba_options)
def zeromamba_vim_s(num_attributes: int, image_size: int, *, drop_path: float = 0.1, **options: Any) -> ZeroMamba:
    """ZeroMamba with Vim-S (384-d, 24 blocks, patch 16): regions = the (S/16)² final patch tokens, global = the
    class token's ImageNet head. Built at 224 px (the checkpoint's position table), interpolated at other sizes."""
    _check_drop_path(drop_path)
    backbone = vim_small(img_size=224, num_classes=1000, drop_path_rate=drop_path)
    return _assemble(backbone, "zeromamba_vim_s", num_attributes, **options)


@ZEROMAMBA.variant("zeromamba_test")
@shared_options(_zeromamba_options)
def zeromamba_test(
    num_attributes: int,
    image_size: int,
    *,
    width: int = 32,
    depths: Sequence[int] = (1, 1, 1),
    backbone_classes: int = 1000,
    drop_path: float = 0.0,
    **options: Any,
) -> ZeroMamba:
    """A tiny VMamba v2 (3 stages of ``width``·2^i channels, one block each, ssm_ratio 2) for CPU tests and smoke
    runs: 64 px → 4 x 4 regions of 128 channels, 0.63 M parameters with the heads. Random init by default."""
    _check_drop_path(drop_path)
    if width < 2 or width % 2 or not depths or min(depths) < 1:
        raise UserError(f"zeromamba_test needs an even width >= 2 and depths >= 1 (got {width}, {list(depths)})")
    cfg = {
        "MODEL": {
            "NUM_CLASSES": backbone_classes,
            "DROP_PATH_RATE": drop_path,
            "VSSM": {"EMBED_DIM": width, "DEPTHS": list(depths), "SSM_RATIO": 2.0},
        }
    }
    return _assemble(build_vmamba_from_official(cfg), "zeromamba_test", num_attributes, **options)
