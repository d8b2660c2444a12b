"""DUET (AAAI'23): a vision encoder and a BERT read together by one LXMERT cross layer (docs/model-maths.md#duet).

:class:`DuetModel` is the model; its factories (``duet_deit_b``, ``duet_swin_b``, ``duet_test``) and their assembly
are in :mod:`zsl_bench.models.duet_factories`, which builds it, and the engine calls its forward and training step.

Forward (test time): the image's visual token v = Linear(vision logits) [B, 1, H] (option ``visual_token: cls``:
from the class token instead) and the BERT states of the *fixed template* (computed once per call, tokenised once)
go through the cross layer; ``fc_image`` on the final visual token gives ``attr`` [B, A], scored by dot product with
the class attributes. The training step (:meth:`DuetModel.training_loss`) draws, per batch, the masked branch
(probability ``mask_prob``: class texts with one attribute masked, others dropped at ``attribute_miss``; masked
attribute modelling + attribute-level contrast) or the template branch (paired-image contrast), and always adds
classification, attribute regression and self-calibration (see docs/duet.md for the losses and their weights).

Attribute names, groups and the binary class attributes come, in this order of preference, from the training
context (``ctx.attribute_info`` / ``ctx.original_att`` when the engine provides them), from options ``dataset`` /
``data_root`` (read by :mod:`~zsl_bench.models.duet_factories`), or else generic names and the binarised
``ctx.class_attributes``.

Official-code quirks (docs/duet.md#official-quirks) are off by default; ``official_quirks`` lists those to reproduce
(:data:`QUIRKS`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zsl_bench.errors import UserError
from zsl_bench.models import duet_losses as L
from zsl_bench.models import duet_recipe as R
from zsl_bench.models import duet_sampling as S
from zsl_bench.models.base import TrainContext, ZslModel
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
from zsl_bench.models.duet_settings import QUIRKS, DuetSettings

__all__ = ["QUIRKS", "DuetModel", "DuetSettings"]

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
        *,
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
            kept = S.prune_by_tfidf(kept, target, self._costs, self._budget, rarity=stats.rarity, gen=gen)
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
            contrast = self._attribute_contrast(lang, enc, ctx, valid=valid, rows=rows, ks=ks, stats=stats)
            out["acl"] = cfg.acl_weight * contrast
        return vis

    def _attribute_contrast(
        self,
        lang: torch.Tensor,
        enc: Encoded,
        ctx: TrainContext,
        *,
        valid: torch.Tensor,
        rows: list[int],
        ks: list[int],
        stats: S.ClassStats,
    ) -> torch.Tensor:
        """Attribute-level contrast of the masked anchors against a positive and four negatives (unweighted by
        ``acl_weight``); 0 when no anchor has both.

        Args:
            lang: [B, L, H] the masked texts' final language states; ``enc`` their encoding (``enc.target``
                [B, L] marks the masked attribute's word pieces).
            valid: [B] bool, the samples whose masked attribute may anchor.
            rows, ks: each sample's seen-class row and masked attribute (-1: none).
        """
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
