"""Leaderboard output formats as a registry: the built-ins, a format registered from outside, wrong names."""

from __future__ import annotations

import json

import pytest

from zsl_bench.cli import main
from zsl_bench.errors import UserError
from zsl_bench.report.formats import FORMATS, LeaderboardFormat, RegistryChoices, register_format
from zsl_bench.report.leaderboard import Leaderboard, build, render


@pytest.fixture
def scratch_registry(monkeypatch):
    """Formats registered inside a test are gone after it."""
    for attr in ("_entries", "_providers"):
        monkeypatch.setattr(FORMATS, attr, dict(getattr(FORMATS, attr)))


def test_builtin_formats():
    assert {"md", "csv", "tex", "json"} <= set(FORMATS.names())
    for name in FORMATS.names():
        fmt = FORMATS.get(name)
        assert fmt.name == name and fmt.extension and "." not in fmt.extension and fmt.summary


@pytest.mark.parametrize("name", FORMATS.names())
def test_every_format_renders_an_empty_board(name, tmp_path):
    text = render(build(tmp_path), name)
    assert isinstance(text, str) and text and not text.endswith("\n")


def test_unknown_format_is_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match=r"unknown leaderboard format 'jsn'; did you mean 'json'"):
        render(build(tmp_path), "jsn")


def test_a_registered_format_reaches_render_and_the_cli(results_tree, capsys, scratch_registry):
    def names_only(board: Leaderboard) -> str:
        return json.dumps(sorted({f"{r.dataset}/{r.model}" for r in board.rows}))

    register_format(LeaderboardFormat("names", "json", names_only, "dataset/model pairs"))
    assert "names" in RegistryChoices(FORMATS) and "names" in list(RegistryChoices(FORMATS))
    assert main(["leaderboard", "--results", str(results_tree), "--format", "names", "--no-reference"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "cub/resnet_test" in shown and len(shown) == len(set(shown))


def test_cli_help_lists_the_registered_formats(capsys):
    with pytest.raises(SystemExit):
        main(["leaderboard", "--help"])
    assert "{" + ",".join(FORMATS.names()) + "}" in capsys.readouterr().out
