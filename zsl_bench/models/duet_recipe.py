"""DUET's official training recipe beyond one step (issue 20): when the official loop leaves its model in eval mode,
the AwA2 tf-idf bonus, and the attribute value renames of the official ``mapping.json`` files.

* :class:`MidEpochEval` (quirk ``eval_after_mid_epoch``): the official ``model/main.py`` evaluates on the test set
  in the middle of an epoch, calls ``model.eval()`` for it and calls ``model.train()`` again only at the start of
  the next epoch, so every later batch of that epoch trains with dropout (and Swin's drop-path) off. The trigger
  differs per dataset (``rule``); :meth:`MidEpochEval.fires` says after which batch the switch happens.
* :func:`tfidf_bonus` (quirk ``tfidf_bonus``): the official tf-idf counts 3 more seen classes for every attribute of
  the groups named habit, diet, behaviour or role (AwA2's), so those attributes are masked less often.
* :func:`load_value_mapping` / :func:`apply_value_mapping` (option ``value_mapping``): the official code writes,
  for SUN and CUB, the phrase of ``cache/<dataset>/mapping.json`` (attribute index as a string → phrase) in place
  of an attribute's name in every class text, masked word and negative target. zsl-bench ships no such file; the
  option names the user's copy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from zsl_bench.errors import UserError

BONUS_GROUPS = ("habit", "diet", "behaviour", "role")  # official main.py's group names (attributeindex2prompt.json)
BONUS_COUNT = 3
_OFFICIAL_RULE = {"awa2": "awa2", "sun": "sun", "cub": "cub"}  # our dataset name -> its official trigger


@dataclass(frozen=True)
class MidEpochEval:
    """After which micro-batch of an epoch the official loop has switched to eval mode for the rest of it.

    All counts are the engine's: ``epoch`` 1-based, ``batch`` 1-based within the epoch, ``batches`` per epoch,
    ``grad_accum`` micro-batches per optimiser step. The official loop evaluates only after an optimiser step
    (``batch`` a multiple of ``grad_accum``; any other batch ``continue``s before the evaluation), and:

    * ``awa2``: once ``(epoch - 1) * batches + batch >= first`` (micro-batches since the start, official 1000) at
      every ``every * grad_accum``-th batch (official 20);
    * ``sun``: from epoch ``from_epoch`` on (official ``epoch >= 5`` counted from 0: our 6) at batch ``at``
      (official 644);
    * ``cub``: from epoch ``from_epoch`` on where ``batches / 2 / grad_accum * grad_accum`` (float arithmetic, as
      the official code writes it) equals the batch, which never holds for an odd number of batches (CUB's 1009).

    The evaluation after the last batch is left out: the next epoch starts in train mode anyway.
    """

    rule: str
    first: int = 1000
    every: int = 20
    from_epoch: int = 6
    at: int = 644

    def fires(self, epoch: int, batch: int, batches: int, grad_accum: int) -> bool:
        """Whether the official loop calls ``model.eval()`` after micro-batch ``batch`` of ``batches``."""
        if batch >= batches or batch % grad_accum != 0:
            return False
        if self.rule == "awa2":
            return (epoch - 1) * batches + batch >= self.first and batch % (self.every * grad_accum) == 0
        if self.rule == "sun":
            return epoch >= self.from_epoch and batch == self.at
        if self.rule == "cub":
            return epoch >= self.from_epoch and batch == batches / 2 / grad_accum * grad_accum
        return False


def mid_epoch_trigger(spec: str | None, dataset: str | None) -> MidEpochEval | None:
    """The trigger of option ``mid_epoch_trigger``: None / ``dataset`` (the official rule of ``dataset``: awa2, sun,
    cub; None for any other dataset, which the official code does not run), ``none``, or a rule with optional
    integers — ``awa2[:first[:every]]``, ``sun[:from_epoch[:at]]``, ``cub[:from_epoch]``."""
    if spec is None or spec == "dataset":
        rule = _OFFICIAL_RULE.get((dataset or "").lower())
        return None if rule is None else MidEpochEval(rule)
    if spec == "none":
        return None
    rule, *numbers = spec.split(":")
    fields = {"awa2": ("first", "every"), "sun": ("from_epoch", "at"), "cub": ("from_epoch",)}.get(rule)
    if fields is None or len(numbers) > len(fields) or not all(n.strip().isdigit() for n in numbers):
        raise UserError(
            f"model option mid_epoch_trigger={spec!r}: expected dataset, none, awa2[:first[:every]], "
            "sun[:from_epoch[:at]] or cub[:from_epoch] with positive integers"
        )
    values = {f: int(n) for f, n in zip(fields, numbers, strict=False)}
    if any(v < 1 for v in values.values()):
        raise UserError(f"model option mid_epoch_trigger={spec!r}: the numbers must be >= 1")
    return MidEpochEval(rule, **values)


def tfidf_bonus(groups: Sequence[str]) -> torch.Tensor:
    """[A] float: :data:`BONUS_COUNT` for attributes whose group (``groups`` [A]) is one of :data:`BONUS_GROUPS`."""
    return torch.tensor([float(BONUS_COUNT) if g in BONUS_GROUPS else 0.0 for g in groups])


MAPPING_MAX_BYTES = 1024 * 1024  # the official files are about 1 kB


def load_value_mapping(path: str | Path) -> dict[int, str]:
    """The renames in the JSON file ``path``: one flat object ``{"<attribute index>": "<phrase>", ...}`` (the
    official ``cache/<dataset>/mapping.json`` format) → {index: phrase with its whitespace collapsed}.

    Raises:
        UserError: one line naming the file when it is missing, over :data:`MAPPING_MAX_BYTES`, not UTF-8 JSON, not
            a flat object, has a duplicate key, a key that is not a non-negative decimal integer or a value that is
            not a non-empty string.
    """
    path = Path(path).expanduser()

    def bad(reason: str) -> UserError:
        return UserError(f"model option value_mapping={str(path)!r}: {reason}")

    try:
        with path.open("rb") as fh:
            data = fh.read(MAPPING_MAX_BYTES + 1)
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAPPING_MAX_BYTES:
        raise bad(f"larger than {MAPPING_MAX_BYTES} bytes")

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
        return dict(items)

    try:
        doc = json.loads(data.decode("utf-8-sig"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"not a JSON mapping file ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(doc, dict):
        raise bad(f"expected a JSON object of index -> phrase, got {type(doc).__name__}")
    out: dict[int, str] = {}
    for key, value in doc.items():
        if not (key.isascii() and key.isdigit()):
            raise bad(f"key {key[:40]!r} is not an attribute index (a non-negative integer)")
        if not isinstance(value, str) or not value.split():
            raise bad(f"the value of {key!r} must be a non-empty string, got {str(value)[:40]!r}")
        out[int(key)] = " ".join(value.split())
    return out


def apply_value_mapping(values: Sequence[str], renames: dict[int, str], source: str) -> list[str]:
    """``values`` [A] (one phrase per attribute) with ``renames[i]`` written in place of ``values[i]``.

    Raises:
        UserError: a renamed index is not below A (names ``source``, the mapping file).
    """
    out = list(values)
    beyond = sorted(i for i in renames if i >= len(out))
    if beyond:
        raise UserError(
            f"model option value_mapping={source!r}: attribute index {beyond[0]} is out of range for "
            f"{len(out)} attributes (a mapping file of another dataset?)"
        )
    for index, phrase in renames.items():
        out[index] = phrase
    return out
