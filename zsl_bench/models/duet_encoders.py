"""DUET's pretrained parts: the vision encoder (DeiT / Swin), the BERT text encoder, the tokenizer, the cross layer.

Weights come from a hub id (online, or the local Hugging Face cache when ``HF_HUB_OFFLINE=1``), a local
``save_pretrained`` directory, or ``none`` for random init from the config. A source that cannot be loaded is one
``UserError`` that names the model part and says how to provide it. The tiny test tokenizer is built in memory from
the attribute words (no download). Only this module and ``duet.py`` import transformers.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from zsl_bench.errors import UserError
from zsl_bench.registry import import_names

log = logging.getLogger(__name__)

VISION_HUB_IDS = {
    "deit": "facebook/deit-base-distilled-patch16-224",  # DUET on CUB and AwA2
    "swin": "microsoft/swin-base-patch4-window7-224",  # DUET on SUN (Swin-B/4, window 7, 224)
}
TEXT_HUB_ID = "bert-base-uncased"
RANDOM_INIT = ("none", "random", "scratch")
VisualToken = Literal["logits", "cls"]
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def is_random(source: str | None) -> bool:
    """True for ``None`` and the values asking for random init (``none``, ``random``, ``scratch``)."""
    return source is None or str(source).strip().lower() in RANDOM_INIT


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _how(option: str, hub_id: str) -> str:
    return (
        f"online, use a hub id; offline (HF_HUB_OFFLINE=1 or no network), run `hf download {hub_id} --local-dir "
        f"DIR` on a machine online and set model.options.{option}=DIR (a save_pretrained directory), or ask for "
        f"random init with model.options.{option}=none"
    )


def _source(source: str, what: str, option: str, hub_id: str) -> str:
    """``source`` as a local directory path or a hub id; a path that does not exist is a ``UserError``."""
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path)
    if source.startswith(("/", ".", "~")) or path.exists():
        raise UserError(f"cannot load the {what}: {path} is not a directory; {_how(option, hub_id)}")
    return source


def load_net(
    model_cls: type,
    config: Any,
    source: str | None,
    *,
    what: str,
    option: str,
    hub_id: str,
    allow_missing: Sequence[str] = (),
    **kwargs: Any,
) -> nn.Module:
    """``model_cls`` with the weights of ``source`` (hub id, directory) or random init from ``config``.

    Args:
        model_cls: a transformers model class.
        config: its config, used for random init only.
        source: hub id, directory, or None / ``none`` (random init).
        what: the part's name in messages (e.g. ``vision encoder of duet_deit_b``).
        option: the model option that sets ``source`` (named in the how-to-fix hint).
        hub_id: the official weights' hub id (named in the hint).
        allow_missing: key prefixes that may be missing from the weights (newly initialised heads).
        **kwargs: passed to the constructor and ``from_pretrained``.

    Raises:
        UserError: the source cannot be loaded (offline, no such repo or directory) or lacks weights.
    """
    if is_random(source):
        log.info("%s: random init", what)
        return model_cls(config, **kwargs)
    where = _source(str(source), what, option, hub_id)
    try:
        net, info = model_cls.from_pretrained(where, dtype=torch.float32, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:  # offline without cache, unknown repo, size mismatch
        raise UserError(f"cannot load the {what} from {where!r} ({_first_line(exc)}); {_how(option, hub_id)}") from None
    missing = [k for k in info["missing_keys"] if not k.startswith(tuple(allow_missing))]
    if missing:
        raise UserError(
            f"cannot load the {what} from {where!r}: {len(missing)} weights missing there, e.g. {sorted(missing)[0]}; "
            f"{_how(option, hub_id)}"
        )
    return net


# ------------------------------------------------------------------------------------------------- vision


class VisionEncoder(nn.Module):
    """A transformers ``DeiTForImageClassification(WithTeacher)`` / ``SwinForImageClassification``:
    images [B, 3, H, W] → [B, D].

    ``token="logits"`` (DUET's official visual token): the ImageNet logits, D = ``num_labels`` (1000); the
    distilled DeiT with teacher averages its class and distillation heads. ``token="cls"``: the backbone's pooled
    feature (DeiT: class token, Swin: average-pooled last stage), D = hidden size.
    """

    def __init__(self, net: nn.Module, token: VisualToken = "logits") -> None:
        super().__init__()
        if token not in ("logits", "cls"):
            raise UserError(f"model option visual_token must be 'logits' or 'cls', not {token!r}")
        self.net = net
        self.token = token
        cfg = net.config
        hidden = getattr(cfg, "num_features", None) or cfg.hidden_size  # Swin: last-stage width
        self.dim: int = cfg.num_labels if token == "logits" else int(hidden)
        self.is_swin = cfg.model_type == "swin"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = getattr(self.net.config, "image_size", images.shape[-1])
        kwargs = {} if self.is_swin else {"interpolate_pos_encoding": tuple(images.shape[-2:]) != (size, size)}
        if self.token == "logits":
            return self.net(pixel_values=images, **kwargs).logits
        out = self.net.base_model(pixel_values=images, **kwargs)
        return out.pooler_output if self.is_swin else out.last_hidden_state[:, 0]


def deit_config(image_size: int = 224, patch: int = 16, hidden: int = 768, layers: int = 12, heads: int = 12) -> Any:
    """A DeiT config (DeiT-B/16 by default), 1000 ImageNet labels."""
    (DeiTConfig,) = import_names("transformers", "DeiTConfig")

    return DeiTConfig(
        image_size=image_size,
        patch_size=patch,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        num_labels=1000,
    )


def swin_config(
    image_size: int = 224,
    embed_dim: int = 128,
    depths: Sequence[int] = (2, 2, 18, 2),
    heads: Sequence[int] = (4, 8, 16, 32),
    window: int = 7,
) -> Any:
    """A Swin config (Swin-B/4 window 7 by default), 1000 ImageNet labels."""
    (SwinConfig,) = import_names("transformers", "SwinConfig")

    return SwinConfig(
        image_size=image_size,
        patch_size=4,
        embed_dim=embed_dim,
        depths=list(depths),
        num_heads=list(heads),
        window_size=window,
        num_labels=1000,
    )


def build_vision(
    kind: str, config: Any, source: str | None, *, model_name: str, token: VisualToken, official_head: bool = False
) -> VisionEncoder:
    """The vision encoder ``kind`` (``deit`` | ``swin``) from ``source`` (option ``vision_pretrained``).

    ``official_head`` (DeiT only): the official ``DeiTForImageClassification``, whose single ``classifier`` is not
    in the distilled checkpoint and is therefore newly initialised (docs/model-maths.md#duet-architecture); otherwise
    ``DeiTForImageClassificationWithTeacher`` keeps the checkpoint's two pretrained heads.
    """
    deit, deit_teacher, swin = import_names(
        "transformers",
        "DeiTForImageClassification",
        "DeiTForImageClassificationWithTeacher",
        "SwinForImageClassification",
    )
    if kind == "deit":
        cls = deit if official_head else deit_teacher
        allow = ("classifier.",) if official_head else ()
    elif kind == "swin":
        cls, allow = swin, ()
    else:
        raise UserError(f"model option vision must be 'deit' or 'swin', not {kind!r}")
    what = f"vision encoder of {model_name}"
    hub_id = VISION_HUB_IDS[kind]
    net = load_net(cls, config, source, what=what, option="vision_pretrained", hub_id=hub_id, allow_missing=allow)
    return VisionEncoder(net, token)


# --------------------------------------------------------------------------------------------------- text


def bert_config(
    vocab_size: int = 30522, hidden: int = 768, layers: int = 12, heads: int = 12, dropout: float = 0.1
) -> Any:
    """A BERT config (bert-base-uncased by default)."""
    (BertConfig,) = import_names("transformers", "BertConfig")

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=512,
    )


def build_text(config: Any, source: str | None, model_name: str) -> nn.Module:
    """A ``BertModel`` without pooler from ``source`` (option ``text_pretrained``) or random init."""
    (BertModel,) = import_names("transformers", "BertModel")

    what = f"text encoder (BERT) of {model_name}"
    return load_net(
        BertModel, config, source, what=what, option="text_pretrained", hub_id=TEXT_HUB_ID, add_pooling_layer=False
    )


def load_tokenizer(source: str, model_name: str, option: str = "tokenizer") -> Any:
    """The fast tokenizer of ``source`` (hub id or directory), given by model option ``option``."""
    (AutoTokenizer,) = import_names("transformers", "AutoTokenizer")

    what = f"tokenizer of {model_name}"
    where = _source(source, what, option, TEXT_HUB_ID)
    try:
        tok = AutoTokenizer.from_pretrained(where)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot load the {what} from {where!r} ({_first_line(exc)}); {_how(option, TEXT_HUB_ID)}"
        ) from None
    if not getattr(tok, "is_fast", False) or tok.mask_token_id is None:
        raise UserError(f"the {what} from {where!r} must be a fast tokenizer with a [MASK] token (a BERT tokenizer)")
    return tok


def local_tokenizer(texts: Iterable[str]) -> Any:
    """A WordPiece ``BertTokenizer`` built in memory: special tokens, punctuation, digits, letters (also as
    ``##`` continuations, so any text tokenises) and every lower-cased word of ``texts``."""
    (BertTokenizer,) = import_names("transformers", "BertTokenizer")

    words = sorted({w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower())})
    chars = string.ascii_lowercase + string.digits
    vocab = [*SPECIAL_TOKENS, *string.punctuation, *chars, *(f"##{c}" for c in chars)]
    vocab += [w for w in words if w not in set(vocab)]
    return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})


def xlayer(hidden: int, heads: int, intermediate: int, dropout: float, bert_init: bool = True) -> nn.Module:
    """One randomly initialised LXMERT cross-modality layer (shared cross-attention, two self-attentions, two FFNs):
    BERT's N(0, 0.02) with zero biases, or with ``bert_init=False`` PyTorch's default initialisation (what the
    official code gets, building the layer outside a ``PreTrainedModel``; quirk ``default_init``)."""
    (LxmertConfig,) = import_names("transformers", "LxmertConfig")
    (LxmertXLayer,) = import_names("transformers.models.lxmert.modeling_lxmert", "LxmertXLayer")

    cfg = LxmertConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    layer = LxmertXLayer(cfg)
    if bert_init:
        layer.apply(lambda m: _init(m, cfg.initializer_range))
    return layer


def _init(module: nn.Module, std: float) -> None:
    """BERT-style init (the XLayer is built outside a ``PreTrainedModel``, which would otherwise do it)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
