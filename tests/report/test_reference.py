"""Reference rows: the shipped results/reference/*.yaml are well formed and self-consistent; bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from zsl_bench.errors import UserError
from zsl_bench.report.reference import load_reference

SHIPPED = Path(__file__).resolve().parents[2] / "results" / "reference"


def test_shipped_reference_rows():
    rows = load_reference(SHIPPED)
    methods = {r.model for r in rows}
    assert {"ZeroMamba (AAAI'25)", "DUET (AAAI'23)", "MSDN (CVPR'22)", "SVIP (ICCV'25)"} <= methods
    assert {r.dataset for r in rows} == {"cub", "sun", "awa2"}
    assert all(r.protocol == "reported" and r.backbone and r.source for r in rows)
    zm = {r.dataset: r for r in rows if r.model.startswith("ZeroMamba")}
    assert (zm["cub"].czsl, zm["cub"].u, zm["cub"].s, zm["cub"].h) == (80.0, 72.1, 76.4, 74.2)
    assert not any(r.model.startswith("I2MVFormer") and r.dataset == "sun" for r in rows)  # "–" in the spec
    inconsistent = set()
    for r in rows:  # transcription check: H = 2US/(U+S) up to the rounding of U, S and H (±0.1)
        if r.u is not None and r.s is not None and abs(2 * r.u * r.s / (r.u + r.s) - r.h) > 0.1:
            inconsistent.add((r.model, r.dataset))
    assert inconsistent == {("ZSLViT (CVPR'24)", "sun")}  # 45.9/48.3/47.3 as the source gives it (H would be 47.1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rows: [unclosed\n", "cannot be read"),
        ("just text\n", "expected a mapping with a list 'rows'"),
        ("rows:\n  - {method: M, source: S, results: {cub: {h: 1}}}\n", "rows[0].backbone"),
        ("rows:\n  - {method: M, backbone: B, results: {cub: {h: 1}}}\n", "rows[0].source"),
        ("rows:\n  - {method: M, backbone: B, source: S, results: {cub: {h: 101}}}\n", "results.cub.h"),
        ("rows:\n  - {method: M, backbone: B, source: S, results: {cub: {acc: 1}}}\n", "results.cub"),
    ],
)
def test_bad_reference_file(tmp_path, text, message):
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(UserError) as info:
        load_reference(tmp_path)
    assert message in str(info.value) and "r.yaml" in str(info.value) and "\n" not in str(info.value)


def test_shipped_duet_rows_say_which_metric_they_used():
    rows = {r.dataset: r for r in load_reference(SHIPPED) if r.model.startswith("DUET")}
    assert rows["cub"].accuracy == "per_class" and rows["cub"].accuracy_source is None
    for dataset, script in (("awa2", "AWA2/AWA2_GZSL.sh"), ("sun", "SUN/SUN_GZSL.sh")):
        assert rows[dataset].accuracy == "per_sample" and script in rows[dataset].accuracy_source
    others = [r for r in load_reference(SHIPPED) if not r.model.startswith("DUET")]
    assert all(r.accuracy == "per_class" for r in others)


def test_accuracy_of_a_row_and_of_a_dataset(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "rows:\n  - {method: M, backbone: B, source: S, accuracy: per_sample,\n"
        "     results: {cub: {h: 1, accuracy_source: T}, sun: {h: 2, accuracy: per_class}}}\n"
    )
    rows = {r.dataset: r for r in load_reference(tmp_path)}
    assert (rows["cub"].accuracy, rows["cub"].accuracy_source) == ("per_sample", "T")
    assert (rows["sun"].accuracy, rows["sun"].accuracy_source) == ("per_class", None)


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ("{cub: {h: 1, accuracy: overall}}", "results.cub.accuracy"),
        ("{cub: {h: 1, accuracy: per_sample}}", "results.cub.accuracy_source"),  # per-sample needs its source
    ],
)
def test_bad_accuracy_entries(tmp_path, results, message):
    (tmp_path / "r.yaml").write_text(f"rows:\n  - {{method: M, backbone: B, source: S, results: {results}}}\n")
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        load_reference(tmp_path)
