"""DUET's option ``value_mapping`` (issue 20, item 9): the official ``cache/<dataset>/mapping.json`` renames written
into the prompts as the official ``matrix2text`` / ``prepare_original_sample`` / ``prepare_negative_sample`` write
them, against a re-derivation from that description; and the file is read safely (one-line errors naming it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.models.test_duet import _ctx
from zsl_bench.data.datasets import read_dataset
from zsl_bench.errors import UserError
from zsl_bench.models import build_model
from zsl_bench.models import duet_recipe as R
from zsl_bench.models import duet_sampling as S
from zsl_bench.models.duet_prompts import encode

# attribute index (a string key, as in the official files) -> the phrase written instead of the xlsa17 name
MAPPING = {"1": "lime  green", "5": "zebra stripes", "12": "round"}


def _model(synth_root: Path, **options):
    torch.manual_seed(0)
    return build_model("duet_test", 13, 64, dataset="synth", data_root=str(synth_root), **options)


def _write(tmp_path: Path, content: str, name: str = "mapping.json") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def _official_text(present: list[int], groups: list[str], names: list[str], mapping: dict[str, str]) -> str:
    """SUN's branch of the official ``matrix2text``, re-derived: per group in order, "group : " and then, for each
    of its attributes the class has, a space, the mapped phrase (else the name) and a comma; the group's last comma
    dropped; groups joined by " | ", a final ".". (CUB's branch writes the index before the phrase and strips all
    digits afterwards: the same phrases.)"""
    parts = []
    for group in dict.fromkeys(groups):
        prompt = group + " : "
        for a in range(len(names)):
            if groups[a] == group and a in present:
                prompt += " " + mapping.get(str(a), names[a].strip()) + ","
        parts.append(prompt[:-1] if prompt.endswith(",") else prompt)
    return " | ".join(parts) + "."


def _phrases(text: str) -> dict[str, list[str]]:
    """group -> the value phrases it lists (whitespace collapsed), from a text of either form."""
    out = {}
    for part in text.rstrip(".").split(" | "):
        group, _, values = part.partition(" : ")
        out[group.strip()] = [" ".join(v.split()) for v in values.split(",") if v.strip()]
    return out


def test_the_renames_reach_every_prompt_as_the_official_code_writes_them(synth_root: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps(MAPPING))
    synth = read_dataset("synth", synth_root)
    groups, names = list(synth.attributes.groups), list(synth.attributes.values)
    model, plain = _model(synth_root, value_mapping=str(path)), _model(synth_root)
    stats = model._sync(_ctx(synth)).stats
    assert model.template_text() == plain.template_text()  # the official template lists no values
    differs = 0
    for row in range(stats.binary.shape[0]):
        have = S.present(stats, row)
        ours = model.builder.text(have).text
        assert _phrases(ours) == _phrases(_official_text(have, groups, names, MAPPING)), row
        differs += _phrases(ours) != _phrases(plain.builder.text(have).text)
        for k in have:  # the masked word / a negative's target: the mapped phrase's word pieces
            prompt = model._draw_text(stats, row, k, torch.Generator().manual_seed(row))
            phrase = " ".join(MAPPING.get(str(k), names[k]).split())
            assert prompt.text[prompt.target[0] : prompt.target[1]] == phrase
            enc = encode(model.tokenizer, [prompt], model.settings.max_length)
            pieces = model.tokenizer(phrase, add_special_tokens=False)["input_ids"]
            assert enc.ids[enc.target].tolist() == pieces
    assert differs > 0  # some seen class has a renamed attribute
    saved = model.get_extra_state()["values"]  # the renamed vocabulary travels with the weights
    assert [saved[i] for i in (1, 5, 12)] == ["lime green", "zebra stripes", "round"] and saved[0] == names[0]


def test_the_loader_reads_a_flat_index_to_phrase_object(tmp_path: Path) -> None:
    path = _write(tmp_path, '\ufeff{"0": " curved ", "10": "all\\tpurpose"}')
    assert R.load_value_mapping(path) == {0: "curved", 10: "all purpose"}
    assert R.apply_value_mapping(["a", "b", "c"], {2: "z"}, "m.json") == ["a", "b", "z"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"1": "a",', "not a JSON mapping file"),
        ('{"1": {"nested": "x"}}', "must be a non-empty string"),
        ('{"1": "   "}', "must be a non-empty string"),
        ('{"-1": "x"}', "is not an attribute index"),
        ('{"one": "x"}', "is not an attribute index"),
        ('{"1": "x", "1": "y"}', "duplicate key"),
        ("[" * 100000 + "]" * 100000, "not a JSON mapping file|expected a JSON object"),
        ('{"1": "' + "x" * (R.MAPPING_MAX_BYTES + 1) + '"}', "larger than"),
    ],
)
def test_a_bad_file_is_a_one_line_error_naming_it(tmp_path: Path, content: str, reason: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(UserError, match=reason) as err:
        R.load_value_mapping(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_files_fail_the_build(synth_root: Path, tmp_path: Path) -> None:
    (tmp_path / "latin1.json").write_bytes(b'{"1": "caf\xe9"}')
    for path, reason in [
        (tmp_path / "missing.json", "cannot be read"),
        (tmp_path / "latin1.json", "not a JSON mapping file"),
        (_write(tmp_path, '{"13": "x"}', "cub.json"), "out of range for 13 attributes"),
    ]:
        with pytest.raises(UserError, match=reason) as err:
            _model(synth_root, value_mapping=str(path))
        assert str(path) in str(err.value)
