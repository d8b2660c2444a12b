"""DUET's options: the official-code quirks (:data:`QUIRKS`), the settings of a training step
(:class:`DuetSettings`) and the option template every DUET factory shares (:func:`duet_options`).

:func:`settings_from_options` turns a factory's options into its :class:`DuetSettings`: ``official_quirks`` (a list,
a comma/space string, or ``all``), the ``mid_epoch_trigger`` of quirk ``eval_after_mid_epoch`` and the attribute
value renames of ``value_mapping`` (read with :func:`zsl_bench.models.duet_recipe.load_value_mapping`).
"""

# No ``from __future__ import annotations``: the options' annotations (the ``VisualToken`` Literal) must be objects,
# since the registry evaluates string annotations in the factory's module, not in this one.
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zsl_bench.errors import UserError
from zsl_bench.models import duet_recipe as R
from zsl_bench.models.duet_encoders import TEXT_HUB_ID, VisualToken
from zsl_bench.models.duet_prompts import check_binarize_rule

QUIRKS = {
    "double_softmax": "cross-entropy applied to softmax probabilities",
    "mlm_padding": "masked-LM loss averaged over every position, padding included",
    "test_pool": "contrastive images drawn from all images of a seen class, test-seen included",
    "attn_padding": "the cross layer attends to padding tokens",
    "raw_logits": "attribute contrast by plain dot products (no normalisation, no temperature)",
    "masked_cls": "the masked branch classifies from the masked class texts instead of the template",
    "random_deit_head": "DeiT logits from a newly initialised head instead of the distilled checkpoint's heads",
    "class_tfidf": "masked attribute drawn with tf-idf min-max scaled over the class's own attributes",
    "anchor_positive": "the anchor's class counts among the positive candidates (and is the positive when alone)",
    "paired_zero": "paired contrast: same-class logits set to 0 but kept in the denominator",
    "awa2_template": "AwA2's official test-time template (diet | role | habitat | habit, 'behavior')",
    "default_init": "PyTorch's default initialisation for the cross layer instead of BERT's N(0, 0.02)",
    "mask_redraw": "masked attribute redrawn up to 3 times until it has negatives",
    "prune_170": "masked-branch texts pruned at 170 tokens (binds on CUB only, max_length 250)",
    "eval_after_mid_epoch": "eval mode (no dropout) for the rest of an epoch after the official mid-epoch evaluation",
    "tfidf_bonus": "tf-idf counts 3 more classes for the habit, diet, behaviour and role groups (AwA2)",
    "tfidf_prune": "over-long texts rebuilt from attributes drawn by tf-idf instead of dropping random ones",
    "grad_tail": "no step on an epoch's last incomplete grad_accum group: its gradients join the next epoch's first",
}


@dataclass(frozen=True)
class DuetSettings:
    """Loss weights and step options of a :class:`DuetModel` (the factories' options of the same names)."""

    xe_weight: float = 1.0
    attr_weight: float = 1e-2
    sc_weight: float = 1e-3
    mlm_weight: float = 1.0
    acl_weight: float = 0.01
    naive_weight: float = 0.05
    temperature: float = 0.05
    mask_prob: float = 0.4
    attribute_miss: float = 0.5
    max_length: int = 150
    acl_anchors: int | None = None
    binarize: str = "mean"
    quirks: frozenset[str] = frozenset()
    mid_epoch: R.MidEpochEval | None = None  # quirk eval_after_mid_epoch: the official trigger, when it has one
    renames: tuple[tuple[int, str], ...] = ()  # option value_mapping: (attribute index, phrase written instead)
    renames_file: str | None = None  # where the renames came from (named in errors)

    def __post_init__(self) -> None:
        for name in ("xe_weight", "attr_weight", "sc_weight", "mlm_weight", "acl_weight", "naive_weight"):
            if getattr(self, name) < 0:
                raise UserError(f"model option {name} must be >= 0 (got {getattr(self, name)})")
        for name in ("mask_prob", "attribute_miss"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"model option {name} must be in [0, 1] (got {getattr(self, name)})")
        if self.temperature <= 0:
            raise UserError(f"model option temperature must be > 0 (got {self.temperature})")
        if self.max_length < 8:
            raise UserError(f"model option max_length must be >= 8 (got {self.max_length})")
        if self.acl_anchors is not None and self.acl_anchors < 1:
            raise UserError(f"model option acl_anchors must be >= 1 or null (got {self.acl_anchors})")
        check_binarize_rule(self.binarize)
        unknown = sorted(self.quirks - set(QUIRKS))
        if unknown:
            raise UserError(f"unknown official_quirks {', '.join(unknown)}; known: {', '.join(QUIRKS)}")

    def renamed(self, values: Sequence[str]) -> list[str]:
        """``values`` [A] with the ``value_mapping`` phrases in place (a mapped index >= A is a ``UserError``)."""
        return R.apply_value_mapping(values, dict(self.renames), self.renames_file or "value_mapping")


def duet_options(
    *,
    text_pretrained: str | None = TEXT_HUB_ID,
    tokenizer: str | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    visual_token: VisualToken = "logits",
    binarize: str = "mean",
    official_quirks: list[str] | str | None = None,  # a list, "a, b", or "all"
    mid_epoch_trigger: str | None = None,  # quirk eval_after_mid_epoch: "dataset" (None), "none", "awa2:1000:20", …
    value_mapping: str | None = None,  # a JSON file {"<attribute index>": "phrase"} (official cache/<DS>/mapping.json)
    xe_weight: float = 1.0,
    attr_weight: float = 1e-2,
    sc_weight: float = 1e-3,
    mlm_weight: float = 1.0,
    acl_weight: float = 0.01,
    naive_weight: float = 0.05,
    temperature: float = 0.05,
    mask_prob: float = 0.4,
    attribute_miss: float = 0.5,
    max_length: int = 150,
    acl_anchors: int | None = None,
) -> None:
    """The options of every DUET factory besides ``vision_pretrained`` (a template for
    :func:`~zsl_bench.models.factories.shared_options`, never called): weights (``text_pretrained``, ``tokenizer``),
    the dataset whose attribute words make the prompts (``dataset``, ``data_root``), ``visual_token``, the
    official-code quirks, ``value_mapping`` (the official value renames), and the :class:`DuetSettings` of the
    training step (the module docstring and docs/duet.md describe them)."""


STEP_OPTIONS = (
    "xe_weight",
    "attr_weight",
    "sc_weight",
    "mlm_weight",
    "acl_weight",
    "naive_weight",
    "temperature",
    "mask_prob",
    "attribute_miss",
    "max_length",
    "acl_anchors",
    "binarize",
)


def settings_from_options(options: dict[str, Any]) -> DuetSettings:
    """The :class:`DuetSettings` from a factory's options (``official_quirks``: a list or a comma/space string;
    ``all`` selects every quirk of :data:`QUIRKS`)."""
    quirks = options["official_quirks"]
    if isinstance(quirks, str):
        quirks = [q for q in quirks.replace(",", " ").split() if q]
    chosen = set(quirks or ())
    if "all" in chosen:
        chosen = (chosen - {"all"}) | set(QUIRKS)
    trigger = R.mid_epoch_trigger(options["mid_epoch_trigger"], options["dataset"])  # parsed (checked) always
    mid_epoch = trigger if "eval_after_mid_epoch" in chosen else None
    path = options["value_mapping"]
    renames = tuple(sorted(R.load_value_mapping(path).items())) if path else ()
    step = {k: options[k] for k in STEP_OPTIONS}
    return DuetSettings(quirks=frozenset(chosen), mid_epoch=mid_epoch, renames=renames, renames_file=path, **step)
