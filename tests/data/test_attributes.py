"""Attribute names, groups and value words."""

from __future__ import annotations

from pathlib import Path

import pytest

from zsl_bench.data.attributes import (
    AWA2_PREDICATES,
    SUN_ATTRIBUTES,
    attribute_info,
    awa2_attributes,
    cub_value,
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
    assert [len(v) for v in awa2.members().values()] == [8, 3, 3, 4, 17, 5, 8, 2, 7, 5, 7, 16]  # models.md §2.2
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
