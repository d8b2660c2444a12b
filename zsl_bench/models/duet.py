"""DUET (AAAI'23): a vision encoder and a BERT read together by one LXMERT cross layer (models.md §2).

Registered models (``factory(num_attributes, image_size, **options)``):

* ``duet_deit_b``: DeiT-B/16 distilled (``facebook/deit-base-distilled-patch16-224``) + ``bert-base-uncased``
  (DUET on CUB and AwA2);
* ``duet_swin_b``: Swin-B/4 window 7 (``microsoft/swin-base-patch4-window7-224``) + BERT (DUET on SUN);
* ``duet_test``: a tiny random DeiT (or Swin, option ``vision``) and BERT with a tokenizer built in memory from the
  attribute words, for CPU tests and smoke runs.

Forward (test time): the image's visual token v = Linear(vision logits) [B, 1, H] (option ``visual_token: cls``:
from the class token instead) and the BERT states of the *fixed template* (computed once per call, tokenised once)
go through the cross layer; ``fc_image`` on the final visual token gives ``attr`` [B, A], scored by dot product with
the class attributes. The training step (:meth:`DuetModel.training_loss`) draws, per batch, the masked branch
(probability ``mask_prob``: class texts with one attribute masked, others dropped at ``attribute_miss``; masked
attribute modelling + attribute-level contrast) or the template branch (paired-image contrast), and always adds
classification, attribute regression and self-calibration (see docs/duet.md for the losses and their weights).

Attribute names, groups and the binary class attributes come, in this order of preference, from the training
context (``ctx.attribute_info`` / ``ctx.original_att`` when the engine provides them), from options ``dataset`` /
``data_root`` (read with ``zsl_bench.data``), or else generic names and the binarised ``ctx.class_attributes``.

Official-code quirks (models.md §7) are off by default; ``official_quirks`` lists those to reproduce (:data:`QUIRKS`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zsl_bench.data.transforms import TRANSFORMS
from zsl_bench.errors import UserError
from zsl_bench.models import duet_losses as L
from zsl_bench.models import duet_recipe as R
from zsl_bench.models import duet_sampling as S
from zsl_bench.models.base import TrainContext, ZslModel
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
from zsl_bench.models.duet_prompts import (
    Encoded,
    Prompt,
    PromptBuilder,
    binarize,
    encode,
    generic_builder,
    masked,
    official_awa2_template,
)
from zsl_bench.models.duet_settings import QUIRKS, DuetSettings, duet_options, settings_from_options
from zsl_bench.models.factories import shared_options
from zsl_bench.models.family import ModelFamily

__all__ = ["DUET", "QUIRKS", "DuetModel", "DuetSettings"]

log = logging.getLogger(__name__)

OFFICIAL_PRUNE = 170  # the official util.py prunes CUB's texts above this many tokens
LOSS_KEYS = ("total", "ce", "attr", "sc", "mlm", "acl", "naive")


@dataclass
class _Attributes:
    """What the step knows about the attributes: prompts, binary matrix [C, A] and seen-class statistics."""

    key: tuple
    binary: torch.Tensor
    stats: S.ClassStats


class DuetModel(ZslModel):
    """Vision encoder + BERT + one cross layer + heads (see the module docstring).

    Args:
        vision: images [B, 3, H, W] → [B, Dv] (``vision.dim`` = Dv).
        text: a ``BertModel`` (hidden H).
        tokenizer: its fast tokenizer (with a ``[MASK]`` token).
        num_attributes: A.
        cross: the LXMERT cross layer (hidden H).
        settings: loss weights and step options.
        builder: prompts from attribute names (None: generic names until the training context gives some).
        original_att: [C, A] continuous class attributes to binarise (None: binarise ``ctx``'s).
    """

    def __init__(
        self,
        vision: nn.Module,
        text: nn.Module,
        tokenizer: Any,
        num_attributes: int,
        cross: nn.Module,
        settings: DuetSettings,
        builder: PromptBuilder | None = None,
        original_att: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        hidden = text.config.hidden_size
        self.vision = vision
        self.visual_proj = nn.Linear(vision.dim, hidden)
        self.text = text
        self.cross = cross
        self.fc_image = nn.Linear(hidden, num_attributes)
        self.mlm_head = L.MlmHead(hidden, text.config.vocab_size)
        self.contrast_proj = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.tokenizer = tokenizer
        self.settings = settings
        self.num_attributes = num_attributes
        self._original = original_att
        self._attrs: _Attributes | None = None
        self._template: Encoded | None = None
        self._costs: list[int] = []
        self._budget = 0
        self._set_builder(builder or generic_builder(num_attributes))

    # ------------------------------------------------------------------------------------------- prompts

    def _set_builder(self, builder: PromptBuilder) -> None:
        if builder.num_attributes != self.num_attributes:
            raise UserError(
                f"DUET got {builder.num_attributes} attribute names for {self.num_attributes} attributes; "
                "use the attribute files of the same dataset"
            )
        if self.settings.renames:  # option value_mapping (idempotent: a saved vocabulary is already renamed)
            builder = PromptBuilder(builder.groups, self.settings.renamed(builder.values))
        self.builder = builder
        self._template = None
        self._attrs = None
        pieces = self.tokenizer(builder.values, add_special_tokens=False)["input_ids"]
        self._costs = [len(p) + 1 for p in pieces]  # value word pieces + the ", " separator
        base = len(self.tokenizer(builder.template())["input_ids"])
        cap = self.settings.max_length
        if "prune_170" in self.settings.quirks:
            cap = min(cap, OFFICIAL_PRUNE)
        self._budget = cap - base

    def template_text(self) -> str:
        """The fixed template of the current attribute names (quirk ``awa2_template``: AwA2's official one)."""
        if "awa2_template" in self.settings.quirks:
            official = official_awa2_template(self.builder.group_names)
            if official is not None:
                return official
        return self.builder.template()

    def get_extra_state(self) -> dict[str, Any]:
        """The prompt vocabulary (group and value phrases) travels with the weights."""
        return self.builder.state()

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state and len(state.get("values", [])) == self.num_attributes:
            self._set_builder(PromptBuilder(state["groups"], state["values"]))

    def _encode(self, prompts: Sequence[Prompt], device: torch.device) -> Encoded:
        return encode(self.tokenizer, prompts, self.settings.max_length).to(device)

    def _template_encoding(self, device: torch.device) -> Encoded:
        if self._template is None or self._template.ids.device != device:
            self._template = self._encode([Prompt(self.template_text())], device)
        return self._template

    # ------------------------------------------------------------------------------------------- encoders

    def visual_token(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] → visual tokens [B, 1, H]."""
        return self.visual_proj(self.vision(images))[:, None]

    def _cross(self, lang: torch.Tensor, mask: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """lang [N | 1, L, H] (mask [N | 1, L]) x visual [N, 1, H] → (lang [N, L, H], visual [N, H])."""
        if lang.shape[0] != visual.shape[0]:
            lang = lang.expand(visual.shape[0], -1, -1)
        ext = None
        if "attn_padding" not in self.settings.quirks:
            ext = (1.0 - mask[:, None, None, :].to(lang.dtype)) * torch.finfo(lang.dtype).min
        lang_out, vis_out = self.cross(lang, ext, visual, None)
        return lang_out, vis_out[:, 0]

    def _read(self, enc: Encoded, ids: torch.Tensor | None = None) -> torch.Tensor:
        """BERT states [N, L, H] of the encoded texts (``ids`` overrides the token ids, e.g. masked ones)."""
        return self.text(input_ids=enc.ids if ids is None else ids, attention_mask=enc.mask).last_hidden_state

    def _with_template(self, visual: torch.Tensor) -> torch.Tensor:
        """Final visual tokens [B, H] of visual tokens [B, 1, H] read with the fixed template."""
        enc = self._template_encoding(visual.device)
        return self._cross(self._read(enc), enc.mask, visual)[1]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] → {"attr": [B, A], "visual": [B, H] (final visual token)} with the fixed template."""
        vis = self._with_template(self.visual_token(images))
        return {"attr": self.fc_image(vis), "visual": vis}

    # ------------------------------------------------------------------------------------------ attributes

    def _sync(self, ctx: TrainContext) -> _Attributes:
        """Attribute names and binary attributes for this step (context first, then options, then fallback)."""
        info = getattr(ctx, "attribute_info", None)
        original = getattr(ctx, "original_att", None)
        if original is None:
            original = self._original
        key = (id(info), id(original), id(ctx.class_attributes), tuple(ctx.seen_classes.tolist()))
        if self._attrs is not None and self._attrs.key == key:
            return self._attrs
        if original is not None and tuple(original.shape) != tuple(ctx.class_attributes.shape):
            log.warning("DUET: original_att %s does not match the class attributes; binarising those", original.shape)
            original = None
        fits = info is not None and len(info.values) == self.num_attributes
        if fits and (list(info.values) != self.builder.values or list(info.groups) != self.builder.groups):
            self._set_builder(PromptBuilder(info.groups, info.values))
        if self.builder.group_names == ["attributes"]:
            log.warning("DUET: no attribute names (ctx.attribute_info or model.options.dataset); generic prompts")
        source = ctx.class_attributes if original is None else original
        binary = binarize(torch.as_tensor(source).float().cpu(), self.settings.binarize)
        seen = ctx.seen_classes.cpu()
        group_of = torch.tensor(self.builder.group_of)
        bonus = R.tfidf_bonus(self.builder.groups) if "tfidf_bonus" in self.settings.quirks else None
        stats = S.class_stats(ctx.class_attributes[ctx.seen_classes].cpu(), binary[seen], group_of, bonus)
        self._attrs = _Attributes(key, binary, stats)
        return self._attrs

    def _draw_text(self, stats: S.ClassStats, row: int, target: int, gen: torch.Generator) -> Prompt:
        """Text of seen class ``row`` with its attributes dropped at ``attribute_miss`` (``target`` kept)."""
        kept = S.drop_attributes(S.present(stats, row), target, self.settings.attribute_miss, gen)
        if "tfidf_prune" in self.settings.quirks:
            kept = S.prune_by_tfidf(kept, target, self._costs, self._budget, stats.rarity, gen)
        else:
            kept = S.prune(kept, target, self._costs, self._budget, gen)
        return self.builder.text(kept, None if target < 0 else target)

    # ------------------------------------------------------------------------------------------- training

    def training_loss(self, batch: dict[str, torch.Tensor], ctx: TrainContext) -> dict[str, torch.Tensor]:
        """One step: ``batch["image"]`` [B, 3, H, W], ``batch["target"]`` [B] rows of ``ctx.seen_classes``.

        Returns every entry of :data:`LOSS_KEYS` (weighted; 0 when a term is not drawn this step).
        """
        cfg, gen = self.settings, ctx.generator
        attrs = self._sync(ctx)
        images, y = batch["image"], batch["target"]
        device = images.device
        masked_branch = cfg.mask_prob > 0 and float(torch.rand((), generator=gen)) < cfg.mask_prob
        paired = not masked_branch and cfg.naive_weight > 0 and ctx.sample_images is not None and len(y) > 1
        if paired:  # a second image of each sample's class, through the encoders in the same batch
            images = torch.cat([images, ctx.sample_images(y, self._pool())])
        visual = self.visual_token(images)  # [B | 2B, 1, H]
        template = self._template_encoding(device)
        template_states = self._read(template)  # [1, L, H]: the same for every image, read once per step
        zero = visual.sum() * 0.0
        out = dict.fromkeys(LOSS_KEYS, zero)
        if masked_branch:
            vis = self._masked_branch(visual, y, ctx, attrs, out)
            vis_cls = vis if "masked_cls" in cfg.quirks else self._cross(template_states, template.mask, visual)[1]
        else:
            vis_all = self._cross(template_states, template.mask, visual)[1]  # [B | 2B, H]
            vis_cls = vis_all[: len(y)]
            if paired:
                zero = "paired_zero" in cfg.quirks
                out["naive"] = cfg.naive_weight * L.paired_contrast(vis_all, y, cfg.temperature, zero)
        pred = self.fc_image(vis_cls)  # [B, A]
        att_seen = ctx.seen_attributes
        double = "double_softmax" in cfg.quirks
        out["ce"] = cfg.xe_weight * L.classification(pred @ att_seen.t(), y, double)
        out["attr"] = cfg.attr_weight * L.attribute_regression(pred, att_seen[y])
        if cfg.sc_weight > 0 and len(ctx.unseen_classes):
            classes = torch.cat([ctx.seen_classes, ctx.unseen_classes])
            unseen = torch.arange(len(classes), device=device) >= len(ctx.seen_classes)
            out["sc"] = cfg.sc_weight * L.self_calibration(pred @ ctx.class_attributes[classes].t(), unseen)
        out["total"] = sum(out[k] for k in LOSS_KEYS[1:])
        return out

    def eval_after_batch(self, epoch: int, batch: int, batches: int, grad_accum: int) -> bool:
        """Quirk ``eval_after_mid_epoch``: eval mode from here to the epoch's end where the official loop evaluated."""
        trigger = self.settings.mid_epoch
        return trigger is not None and trigger.fires(epoch, batch, batches, grad_accum)

    def keeps_grad_tail(self) -> bool:
        """Quirk ``grad_tail``: an epoch's last incomplete ``grad_accum`` group adds to the next epoch's first step."""
        return "grad_tail" in self.settings.quirks

    def _pool(self) -> str:
        return "all" if "test_pool" in self.settings.quirks else "train"

    def _masked_branch(
        self, visual: torch.Tensor, y: torch.Tensor, ctx: TrainContext, attrs: _Attributes, out: dict
    ) -> torch.Tensor:
        """Masked texts: MLM and attribute contrast into ``out``; returns the final visual tokens [B, H] of the
        masked texts (what the official code classifies, quirk ``masked_cls``)."""
        cfg, gen, stats = self.settings, ctx.generator, attrs.stats
        rows = y.tolist()
        own = "class_tfidf" in cfg.quirks
        if "mask_redraw" in cfg.quirks:
            ks = [S.choose_masked_redrawn(stats, r, gen, own) for r in rows]
        else:
            ks = [S.choose_masked(stats, r, gen, own) for r in rows]
        enc = self._encode([self._draw_text(stats, r, k, gen) for r, k in zip(rows, ks, strict=True)], visual.device)
        lang, vis = self._cross(self._read(enc, masked(enc, self.tokenizer.mask_token_id)), enc.mask, visual)
        valid = torch.tensor([k >= 0 for k in ks], device=visual.device) & enc.target.any(1)
        deal = torch.stack([stats.deal[r, k] if k >= 0 else torch.tensor(0.0) for r, k in zip(rows, ks, strict=True)])
        weights = 3.0 * deal.to(visual.device) * valid
        positions = torch.ones_like(enc.target) if "mlm_padding" in cfg.quirks else enc.target
        sample, token = positions.nonzero(as_tuple=True)
        logits = self.mlm_head(lang[sample, token])  # [T, V]
        mlm = L.masked_lm(logits, enc.ids[sample, token], sample, weights, len(rows))
        out["mlm"] = cfg.mlm_weight * mlm
        if cfg.acl_weight > 0 and ctx.sample_images is not None:
            out["acl"] = cfg.acl_weight * self._attribute_contrast(lang, enc, valid, rows, ks, ctx, stats)
        return vis

    def _attribute_contrast(
        self,
        lang: torch.Tensor,
        enc: Encoded,
        valid: torch.Tensor,
        rows: list[int],
        ks: list[int],
        ctx: TrainContext,
        stats: S.ClassStats,
    ) -> torch.Tensor:
        """Attribute-level contrast of the masked anchors against a positive and four negatives (unweighted by
        ``acl_weight``); 0 when no anchor has both."""
        gen, cfg = ctx.generator, self.settings
        anchors, pairs, weights = [], [], []
        for b in valid.nonzero().flatten().tolist():
            if cfg.acl_anchors is not None and len(anchors) >= cfg.acl_anchors:
                break
            pos = S.choose_positive(stats, rows[b], ks[b], gen, "anchor_positive" in cfg.quirks)
            negs = S.choose_negatives(stats, rows[b], ks[b], gen, "mask_redraw" in cfg.quirks)
            if pos is None or len(negs) < 4:
                continue
            anchors.append(b)
            pairs += [(pos, ks[b]), *negs]
            weights.append(torch.minimum(stats.deal[rows[b], ks[b]], stats.deal[pos, ks[b]]))
        if not anchors:
            return lang.sum() * 0.0
        device = lang.device
        enc_o = self._encode([self._draw_text(stats, r, a, gen) for r, a in pairs], device)
        images = ctx.sample_images(torch.tensor([r for r, _ in pairs], device=device), self._pool())
        lang_o, _ = self._cross(self._read(enc_o), enc_o.mask, self.visual_token(images))
        idx = torch.tensor(anchors, device=device)
        anchor = self.contrast_proj(L.span_mean(lang[idx], enc.target[idx]))  # [N, H]
        others = self.contrast_proj(L.span_mean(lang_o, enc_o.target)).view(len(anchors), 5, -1)
        raw = "raw_logits" in cfg.quirks
        return L.attribute_contrast(anchor, others, torch.stack(weights).to(device), cfg.temperature, raw)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``vision`` (the image encoder), ``text`` (BERT) and ``head`` (visual projection, cross layer, heads)."""
        vision = list(self.vision.parameters())
        text = list(self.text.parameters())
        taken = {id(p) for p in vision + text}
        return {"vision": vision, "text": text, "head": [p for p in self.parameters() if id(p) not in taken]}


# ---------------------------------------------------------------------------------------------- factories


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
    return DuetModel(vision, text, tok, num_attributes, cross, settings, builder, original)


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
    num_attributes: int, image_size: int, vision_pretrained: str | None = VISION_HUB_IDS["deit"], **options: Any
) -> ZslModel:
    """DUET with DeiT-B/16 distilled (224 px) and bert-base-uncased (768-d, one 12-head cross layer)."""
    settings = settings_from_options(options)
    official_head = "random_deit_head" in settings.quirks
    config = deit_config(image_size=224)
    vision = build_vision("deit", config, vision_pretrained, "duet_deit_b", options["visual_token"], official_head)
    return _assemble(num_attributes, vision, _bert_base, "duet_deit_b", settings, options)


@DUET.variant("duet_swin_b", transform=TRANSFORMS["duet_swin"])  # resize 224, no crop
@shared_options(duet_options)
def duet_swin_b(
    num_attributes: int, image_size: int, vision_pretrained: str | None = VISION_HUB_IDS["swin"], **options: Any
) -> ZslModel:
    """DUET with Swin-B/4 window 7 (224 px) and bert-base-uncased."""
    settings = settings_from_options(options)
    config = swin_config(image_size=224)
    vision = build_vision("swin", config, vision_pretrained, "duet_swin_b", options["visual_token"])
    return _assemble(num_attributes, vision, _bert_base, "duet_swin_b", settings, options)


@DUET.variant("duet_test")
@shared_options(duet_options)
def duet_test(
    num_attributes: int,
    image_size: int,
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
    enc = build_vision(vision, config, vision_pretrained, "duet_test", options["visual_token"], official_head)

    def text_config(vocab: int) -> Any:
        return bert_config(vocab_size=vocab, hidden=hidden, layers=text_layers, heads=heads, dropout=dropout)

    options = {**options, "text_pretrained": text_pretrained}
    return _assemble(num_attributes, enc, text_config, "duet_test", settings, options, xlayer_dropout=dropout)
