"""``--space``: a path first, then a shipped space by name; ``zsl-bench spaces list|show``; SLURM jobs get a path."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from zsl_bench.cluster.slurm import SlurmSweep, sweep_argv
from zsl_bench.errors import UserError
from zsl_bench.search.shipped import SPACES_DIR, is_shipped, resolve_space, shipped_spaces, summarize
from zsl_bench.search.space import load_space


@pytest.mark.parametrize("arg", ["zeromamba_cub.yaml", "zeromamba_cub", "zeromamba_cub.yml"])
def test_a_bare_name_finds_the_shipped_space(arg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = resolve_space(arg)
    assert path == SPACES_DIR / "zeromamba_cub.yaml" and path.is_absolute() and is_shipped(path)


def test_a_file_in_the_cwd_comes_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.yaml").write_text("base: quickstart\nspace: {}\n")
    assert resolve_space("quickstart.yaml") == Path("quickstart.yaml")
    assert resolve_space("quickstart") == SPACES_DIR / "quickstart.yaml"  # only the exact path shadows
    assert resolve_space(str(tmp_path / "quickstart.yaml")) == tmp_path / "quickstart.yaml"


@pytest.mark.parametrize(
    ("arg", "needles"),
    [
        ("zeromamb_cub.yaml", ["zeromamb_cub.yaml", "no shipped space", "did you mean zeromamba_cub.yaml"]),
        ("search_spaces/quickstart.yaml", ["search_spaces/quickstart.yaml", "did you mean quickstart.yaml"]),
        ("qqqqqqqqqq", ["shipped spaces: ", "quickstart", "spaces list"]),
    ],
)
def test_unknown_space_is_one_line_with_the_closest_names(arg, needles, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as info:
        resolve_space(arg)
    message = str(info.value)
    assert "\n" not in message and message.startswith("search-space file not found")
    for needle in needles:
        assert needle in message, message


def test_a_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        resolve_space("quickstart")


@pytest.mark.parametrize("path", shipped_spaces(), ids=lambda p: p.stem)
def test_every_shipped_space_loads_and_summarizes(path):
    space, base = load_space(path)  # presets are found by name from the package, wherever it is installed
    summary = summarize(path)
    assert summary.name == path.stem and summary.dataset == base.data.name
    assert base.model.name in summary.model.split("|")
    assert (summary.searcher, summary.scheduler) == (space.sweep.searcher, space.sweep.scheduler)
    assert summary.num_samples == space.sweep.num_samples


@pytest.mark.parametrize("path", shipped_spaces(), ids=lambda p: p.stem)
def test_every_shipped_space_has_a_smoke_variant_of_tiny_models(path, tmp_path):
    from zsl_bench.models import MODELS
    from zsl_bench.search.stages import smoke_variant

    smoke, base = smoke_variant(*load_space(path), tmp_path / "synth")
    tiny = smoke.space["model.name"].values if "model.name" in smoke.space else [base.model.name]
    assert tiny and all(MODELS.get(name).tiny == name for name in tiny), tiny
    assert base.data.name == "synth" and base.train.epochs == 1 and smoke.sweep.num_samples == 2
    assert not [key for key in smoke.space if key.startswith(("model.options", "data."))]


def test_slurm_job_gets_a_space_that_resolves_on_the_nodes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = sweep_argv(SlurmSweep(space=Path("quickstart.yaml"), nodes=1, cpus_per_node=1))
    assert argv[:2] == ["--space", str(SPACES_DIR / "quickstart.yaml")]  # this installation runs the job
    other = SlurmSweep(space=Path("quickstart"), nodes=1, cpus_per_node=1, python="/nodes/venv/bin/python")
    assert sweep_argv(other)[:2] == ["--space", "quickstart.yaml"]  # another one: it finds its own copy by name
    (tmp_path / "mine.yaml").write_text("base: quickstart\nspace: {}\n")
    mine = SlurmSweep(space=Path("mine.yaml"), nodes=1, cpus_per_node=1, python="/nodes/venv/bin/python")
    assert sweep_argv(mine)[:2] == ["--space", str(tmp_path / "mine.yaml")]  # a user file: always its path


def test_cli_spaces_list_show_and_slurm_by_name(cli, tmp_path):
    code, out, err = cli("spaces", "list", cwd=tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "MODEL", "DATASET", "SEARCHER/SCHEDULER", "SAMPLES"]
    assert len(lines) == 1 + len(shipped_spaces())
    assert any(line.split()[:3] == ["zeromamba_cub", "zeromamba_vmamba_s", "cub"] for line in lines)

    code, out, err = cli("spaces", "show", "zeromamba_cub", cwd=tmp_path)
    assert code == 0 and yaml.safe_load(out)["base"] == "zeromamba_cub"
    assert out == (SPACES_DIR / "zeromamba_cub.yaml").read_text()

    code, out, err = cli("cluster", "slurm", "--space", "quickstart.yaml", "--cpus-per-node", "2", "--dry-run")
    assert code == 0, err
    assert f"--space {shlex.quote(str(SPACES_DIR / 'quickstart.yaml'))}" in out


@pytest.mark.parametrize("command", [["sweep"], ["cluster", "slurm", "--cpus-per-node", "1"], ["spaces", "show"]])
def test_cli_unknown_space_is_one_line_exit_2(cli, tmp_path, command):
    args = [*command, "--space", "zeromamba_cbu.yaml"] if command[0] != "spaces" else [*command, "zeromamba_cbu"]
    code, out, err = cli(*args, cwd=tmp_path)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "did you mean zeromamba_cub.yaml" in err and "Traceback" not in err
