"""DUET's registered models: the :data:`DUET` family, its factories and the assembly of a :class:`DuetModel`.

The model registry imports this module on first use of one of its names (``zsl_bench.models._LAZY``); the engine
then calls a factory as ``factory(num_attributes, image_size, **options)`` through
:meth:`~zsl_bench.models.family.ModelSpec.build`:

* ``duet_deit_b``: DeiT-B/16 distilled (``facebook/deit-base-distilled-patch16-224``) + ``bert-base-uncased``
  (DUET on CUB and AwA2);
* ``duet_swin_b``: Swin-B/4 window 7 (``microsoft/swin-base-patch4-window7-224``) + BERT (DUET on SUN);
* ``duet_test``: a tiny random DeiT (or Swin, option ``vision``) and BERT with a tokenizer built in memory from the
  attribute words, for CPU tests and smoke runs.

The options every factory shares are :func:`~zsl_bench.models.duet_settings.duet_options`; the attribute names
of option ``dataset`` / ``data_root`` are read here (:func:`_attribute_source`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from zsl_bench.data.transforms import TRANSFORMS
from zsl_bench.errors import UserError
from zsl_bench.models.base import ZslModel
from zsl_bench.models.duet import DuetModel
from zsl_bench.models.duet_encoders import (
    VISION_HUB_IDS,
    bert_config,
    build_text,
    build_vision,
    deit_config,
    is_random,
    load_tokenizer,
    local_tokenizer,
    swin_config,
    xlayer,
)
from zsl_bench.models.duet_prompts import PromptBuilder
from zsl_bench.models.duet_settings import DuetSettings, duet_options, settings_from_options
from zsl_bench.models.factories import shared_options
from zsl_bench.models.family import ModelFamily

__all__ = ["DUET", "duet_deit_b", "duet_swin_b", "duet_test"]

log = logging.getLogger(__name__)


def _attribute_source(
    dataset: str | None, data_root: str | None, num_attributes: int
) -> tuple[PromptBuilder | None, torch.Tensor | None]:
    """Prompt builder and ``original_att`` [C, A] of ``dataset`` (read with zsl_bench.data), or (None, None)."""
    if dataset is None:
        return None, None
    from zsl_bench.data.datasets import read_dataset

    view = read_dataset(dataset, data_root)
    if view.split.num_attributes != num_attributes:
        raise UserError(
            f"model option dataset={dataset!r} has {view.split.num_attributes} attributes but the model is built "
            f"for {num_attributes}; set model.options.dataset to the trained dataset"
        )
    builder = None if view.attributes is None else PromptBuilder(view.attributes.groups, view.attributes.values)
    if builder is None:
        log.warning("DUET: no attribute names for %s under %s; generic prompts", dataset, view.root)
    original = None if view.split.original_att is None else torch.as_tensor(view.split.original_att)
    return builder, original


def _bert_base(vocab: int) -> Any:
    """bert-base-uncased's config (its 30522-token vocabulary, or more for a larger local tokenizer)."""
    return bert_config(vocab_size=max(vocab, 30522))


def _assemble(
    num_attributes: int,
    vision: nn.Module,
    *,
    text_config: Callable[[int], Any],
    model_name: str,
    settings: DuetSettings,
    options: dict[str, Any],
    xlayer_dropout: float = 0.1,
) -> DuetModel:
    """The model around ``vision``: tokenizer (option ``tokenizer``, else that of ``text_pretrained``, else built
    from the attribute words), BERT from ``text_config(vocab size)`` / ``text_pretrained``, the cross layer."""
    tokenizer, text_pretrained = options["tokenizer"], options["text_pretrained"]
    builder, original = _attribute_source(options["dataset"], options["data_root"], num_attributes)
    if builder is not None and settings.renames:  # the renamed phrases enter the in-memory vocabulary too
        builder = PromptBuilder(builder.groups, settings.renamed(builder.values))
    if tokenizer is not None and not is_random(tokenizer):
        tok = load_tokenizer(tokenizer, model_name)
    elif not is_random(text_pretrained):
        tok = load_tokenizer(str(text_pretrained), model_name, "text_pretrained")
    else:  # random BERT without a tokenizer: WordPiece over the attribute words (plus letters)
        from zsl_bench.data.synth import attribute_names

        texts = [*(builder.groups + builder.values if builder else []), *attribute_names(), "attributes"]
        texts += [phrase for _, phrase in settings.renames]
        tok = local_tokenizer(texts)
    text = build_text(text_config(len(tok)), text_pretrained, model_name)
    if text.config.vocab_size < len(tok):
        raise UserError(f"{model_name}: the tokenizer has {len(tok)} tokens but BERT only {text.config.vocab_size}")
    hidden = text.config.hidden_size
    heads = text.config.num_attention_heads
    bert_init = "default_init" not in settings.quirks
    cross = xlayer(hidden, heads, text.config.intermediate_size, xlayer_dropout, bert_init)
    return DuetModel(
        vision,
        text,
        tok,
        num_attributes=num_attributes,
        cross=cross,
        settings=settings,
        builder=builder,
        original_att=original,
    )


DUET = ModelFamily(
    name="duet",
    tiny="duet_test",
    transform=TRANSFORMS["duet"],  # DeiT's processor: resize 256, centre-crop 224, no flips
    tiny_transform=TRANSFORMS["duet"].at_size(64),  # the same pipeline on the 64-px synthetic images
    needs=("dataset", "data_root"),  # the prompts are built from the dataset's attribute groups
)


@DUET.variant("duet_deit_b")
@shared_options(duet_options)
def duet_deit_b(
    num_attributes: int, image_size: int, *, vision_pretrained: str | None = VISION_HUB_IDS["deit"], **options: Any
) -> ZslModel:
    """DUET with DeiT-B/16 distilled (224 px) and bert-base-uncased (768-d, one 12-head cross layer)."""
    settings = settings_from_options(options)
    official_head = "random_deit_head" in settings.quirks
    config = deit_config(image_size=224)
    vision = build_vision(
        "deit",
        config,
        vision_pretrained,
        model_name="duet_deit_b",
        token=options["visual_token"],
        official_head=official_head,
    )
    return _assemble(
        num_attributes, vision, text_config=_bert_base, model_name="duet_deit_b", settings=settings, options=options
    )


@DUET.variant("duet_swin_b", transform=TRANSFORMS["duet_swin"])  # resize 224, no crop
@shared_options(duet_options)
def duet_swin_b(
    num_attributes: int, image_size: int, *, vision_pretrained: str | None = VISION_HUB_IDS["swin"], **options: Any
) -> ZslModel:
    """DUET with Swin-B/4 window 7 (224 px) and bert-base-uncased."""
    settings = settings_from_options(options)
    config = swin_config(image_size=224)
    vision = build_vision("swin", config, vision_pretrained, model_name="duet_swin_b", token=options["visual_token"])
    return _assemble(
        num_attributes, vision, text_config=_bert_base, model_name="duet_swin_b", settings=settings, options=options
    )


@DUET.variant("duet_test")
@shared_options(duet_options)
def duet_test(
    num_attributes: int,
    image_size: int,
    *,
    vision: str = "deit",
    hidden: int = 64,
    vision_layers: int = 2,
    text_layers: int = 1,
    heads: int = 4,
    patch_size: int = 16,
    vision_pretrained: str | None = None,
    text_pretrained: str | None = None,
    dropout: float = 0.0,
    **options: Any,
) -> ZslModel:
    """Tiny DUET for CPU tests: a ``hidden``-wide DeiT (patch ``patch_size``) or Swin (``vision: swin``), a BERT of
    ``text_layers`` layers with an in-memory WordPiece vocabulary, ``dropout`` in BERT and the cross layer (default
    none); random init unless given weights."""
    settings = settings_from_options(options)
    if vision == "deit":
        config = deit_config(image_size, patch_size, hidden, vision_layers, heads)
    elif vision == "swin":
        config = swin_config(image_size, embed_dim=hidden // 2, depths=(1, 1), heads=(2, 4), window=4)
    else:
        raise UserError(f"model option vision must be 'deit' or 'swin', not {vision!r}")
    official_head = "random_deit_head" in settings.quirks
    enc = build_vision(
        vision,
        config,
        vision_pretrained,
        model_name="duet_test",
        token=options["visual_token"],
        official_head=official_head,
    )

    def text_config(vocab: int) -> Any:
        return bert_config(vocab_size=vocab, hidden=hidden, layers=text_layers, heads=heads, dropout=dropout)

    options = {**options, "text_pretrained": text_pretrained}
    return _assemble(
        num_attributes,
        enc,
        text_config=text_config,
        model_name="duet_test",
        settings=settings,
        options=options,
        xlayer_dropout=dropout,
    )
