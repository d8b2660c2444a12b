"""Attribute names, groups and value words."""

from __future__ import annotations

from pathlib import Path

import pytest

from zsl_bench.data.attributes import (
    APY_ATTRIBUTES,
    AWA2_PREDICATES,
    SUN_ATTRIBUTES,
    apy_attributes,
    attribute_info,
    awa2_attributes,
    cub_value,
    fixed_attributes,
    sun_attributes,
)
from zsl_bench.data.synth import attribute_names
from zsl_bench.errors import UserError


def test_cub_values() -> None:
    assert cub_value("curved_(up_or_down)") == "curved"
    assert cub_value("all-purpose") == "all purpose"
    assert cub_value("small_(5_-_9_in)") == "small"


def test_built_in_tables() -> None:
    assert len(AWA2_PREDICATES) == 85 and len(set(AWA2_PREDICATES)) == 85
    assert len(SUN_ATTRIBUTES) == 102 and len(set(SUN_ATTRIBUTES)) == 102
    awa2, sun = awa2_attributes(), sun_attributes()
    # docs/model-maths.md#duet-prompts
    assert [len(v) for v in awa2.members().values()] == [8, 3, 3, 4, 17, 5, 8, 2, 7, 5, 7, 16]
    assert [len(v) for v in sun.members().values()] == [6, 13, 17, 14, 15, 9, 3, 8, 2, 2, 3, 3, 2, 5]
    assert sun.names[90] == "semi-enclosed area" and sun.groups[90] == "area"


def test_awa2_predicates_file_agrees_with_the_built_in_list(shared_data: Path) -> None:
    from_file = awa2_attributes(shared_data / "AWA2")
    assert from_file.source == "predicates.txt" and from_file.names == list(AWA2_PREDICATES)


def test_synth_and_count_mismatch(tmp_path: Path) -> None:
    info = attribute_info("synth", tmp_path, len(attribute_names()))  # no attributes.txt: the generator
    assert info.source == "synth generator" and info.group_names == ["colour", "pattern", "size", "shape"]
    assert attribute_info("cub", tmp_path, 312) is None  # CUB without attributes.txt: unknown
    (tmp_path / "attributes.txt").write_text("1 has_size::small\n2 has_size::large\n")
    with pytest.raises(UserError, match=r"lists 2 attribute names but att_splits\.mat has 3"):
        attribute_info("cub", tmp_path, 3)
    (tmp_path / "attributes.txt").write_text("1 has_size::small\n3 has_size::large\n")
    with pytest.raises(UserError, match="line 2"):
        attribute_info("cub", tmp_path, 2)


def test_apy_table_and_file(tmp_path: Path) -> None:
    info = apy_attributes()
    assert len(APY_ATTRIBUTES) == 64 and len(set(APY_ATTRIBUTES)) == 64 and info.source == "built-in"
    assert [len(v) for v in info.members().values()] == [5, 1, 16, 16, 3, 4, 2, 5, 10, 2]
    assert info.groups[APY_ATTRIBUTES.index("Wheel")] == "vehicle part" and info.values[3] == "vertical cylinder"
    (tmp_path / "attribute_data").mkdir()
    (tmp_path / "attribute_data" / "attribute_names.txt").write_text("\n".join(APY_ATTRIBUTES) + "\n")
    from_file = attribute_info("apy", tmp_path, 64)
    assert from_file.source == "attribute_names.txt" and from_file.groups == info.groups
    (tmp_path / "attribute_data" / "attribute_names.txt").write_text("\n".join(APY_ATTRIBUTES[::-1]) + "\n")
    with pytest.raises(UserError, match="does not list the 64 aPascal/aYahoo attributes"):
        attribute_info("apy", tmp_path, 64)


def test_awa1_shares_the_awa2_predicates(tmp_path: Path) -> None:
    assert attribute_info("awa1", tmp_path, 85).groups == awa2_attributes().groups
    with pytest.raises(UserError, match=r"lists 85 attribute names but att_splits\.mat has 84"):
        attribute_info("awa1", None, 84)


def test_fixed_tables() -> None:
    info = fixed_attributes(["a::x", "a::y", "b::z"])(None, 3)
    assert (info.group_names, info.values, info.source) == (["a", "b"], ["x", "y", "z"], "built-in")
    assert fixed_attributes(["p", "q"], ["g", "g"])(None, 2).members() == {"g": [0, 1]}
    with pytest.raises(UserError, match="2 attribute names but 1 groups"):
        fixed_attributes(["p", "q"], ["g"])
