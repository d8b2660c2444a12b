"""Reported numbers: ``results/reference/*.yaml``, shown as ``reported`` rows beside the measured ones.

A file holds ``rows``, each::

    method: ZeroMamba            # shown as "ZeroMamba (AAAI'25)"
    venue: AAAI'25               # optional
    backbone: VMamba-S, 448
    source: "where the numbers come from (paper, table)"   # or one ``source`` for the whole file
    accuracy: per_class          # optional (default per_class): how CZSL, U and S average, for every dataset
    results:                     # dataset name (as in data.name) → percent; null or absent where not reported
      cub: {czsl: 80.0, u: 72.1, s: 76.4, h: 74.2}
      awa2: {czsl: 69.9, u: 63.7, s: 84.7, h: 72.7, accuracy: per_sample, accuracy_source: "script/... --all"}

``accuracy`` is ``per_class`` (per-class means, the xlsa17 standard) or ``per_sample`` (overall accuracies); a
dataset's own ``accuracy`` overrides the row's, and ``accuracy_source`` says where the metric used is documented
(required for ``per_sample``: such numbers are marked in every table and need a reason to be believed).

Files are read in name order, rows in file order. Any problem is a ``UserError`` naming the file and the entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zsl_bench import safe_yaml
from zsl_bench.errors import UserError
from zsl_bench.record import ACCURACY_MODES, metric_names
from zsl_bench.report.aggregate import REPORTED, Row

_FIX = "fix the file or pass --no-reference"


def _fail(where: str, what: str) -> UserError:
    return UserError(f"reference numbers {where}: {what} ({_FIX})")


def _text(entry: dict[str, Any], key: str, where: str, default: Any = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{where}.{key}", f"expected a non-empty string, got {value!r}")
    return value.strip()


def _percent(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 100.0:
        raise _fail(where, f"expected a percentage in [0, 100] or null, got {value!r}")
    return float(value)


def _accuracy(value: Any, where: str) -> str:
    if value not in ACCURACY_MODES:
        raise _fail(where, f"expected one of {', '.join(ACCURACY_MODES)}, got {value!r}")
    return str(value)


def _metric_of(numbers: dict[str, Any], default: str, where: str) -> tuple[str, str | None]:
    """The (accuracy, accuracy_source) of one dataset's numbers (``default``: the row's accuracy)."""
    accuracy = _accuracy(numbers.get("accuracy", default), f"{where}.accuracy")
    source = numbers.get("accuracy_source")
    if source is not None or accuracy == "per_sample":
        source = _text(numbers, "accuracy_source", where)
    return accuracy, source


def _rows_of(path: Path, data: Any) -> list[Row]:
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise _fail(str(path), "expected a mapping with a list 'rows'")
    rows = []
    for i, entry in enumerate(data["rows"]):
        where = f"{path} rows[{i}]"
        if not isinstance(entry, dict):
            raise _fail(where, "expected a mapping")
        method = _text(entry, "method", where)
        venue = entry.get("venue")
        label = f"{method} ({venue})" if venue else method
        backbone = _text(entry, "backbone", where)
        source = _text(entry, "source", where, data.get("source"))
        row_accuracy = _accuracy(entry.get("accuracy", "per_class"), f"{where}.accuracy")
        results = entry.get("results")
        if not isinstance(results, dict) or not results:
            raise _fail(f"{where}.results", f"expected a mapping dataset → {{{', '.join(metric_names())}}}")
        for dataset, numbers in results.items():
            numbers = numbers or {}
            keys = (*metric_names(), "accuracy", "accuracy_source")
            if not isinstance(numbers, dict) or set(numbers) - set(keys):
                raise _fail(f"{where}.results.{dataset}", f"expected a mapping with keys among {', '.join(keys)}")
            values = {m: _percent(numbers.get(m), f"{where}.results.{dataset}.{m}") for m in metric_names()}
            if all(v is None for v in values.values()):
                continue
            accuracy, accuracy_source = _metric_of(numbers, row_accuracy, f"{where}.results.{dataset}")
            rows.append(
                Row(
                    dataset=str(dataset).lower(),
                    model=label,
                    protocol=REPORTED,
                    backbone=backbone,
                    source=source,
                    accuracy=accuracy,
                    accuracy_source=accuracy_source,
                    scores=values,
                )
            )
    return rows


def load_reference(directory: Path) -> list[Row]:
    """Every reported row of ``directory/*.yaml`` (files in name order); ``UserError`` on any bad entry."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"reference folder not found: {directory} (pass --reference DIR or --no-reference)")
    rows: list[Row] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = safe_yaml.load_file(path, "reference numbers file")  # bounded: size, depth, aliases, UTF-8
        except safe_yaml.YamlError as exc:
            raise _fail(str(path), f"cannot be read ({exc.reason})") from None
        rows.extend(_rows_of(path, data))
    return rows
