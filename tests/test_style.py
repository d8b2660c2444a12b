"""The size limits of the code style hold in zsl_bench/ (tools/style_check.py; ``make lint`` runs it too)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location("style_check", REPO / "tools" / "style_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_modules_functions_and_parameters_stay_within_the_limits():
    check = _checker()
    found = [f for path in sorted((REPO / "zsl_bench").rglob("*.py")) for f in check.findings(path)]
    assert found == [], "\n".join(found)


def test_the_checker_flags_each_limit(tmp_path):
    check = _checker()
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    source = f"def long(a, b, c, d, e, f):\n{body}\n" + "\n" * 400
    path = tmp_path / "big.py"
    path.write_text(source)
    found = check.findings(path)
    assert any("module has" in f for f in found) and any("long has 62 lines" in f for f in found), found
    assert any("6 positional parameters" in f for f in found), found
