"""Issue 19's security findings, each as a test that failed on 2752c3d: no file in a results folder runs code
(DeepSpeed shards, ``latest.pt``), YAML is bounded, a loose or foreign Ray token is refused, a sweep name stays
under ``--results``. Each bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import os
import pickle
import re
import stat
import sys
from pathlib import Path

import pytest
import torch
import yaml

from zsl_bench.cli import main
from zsl_bench.errors import UserError

CHAIN = ", ".join(f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10))
BOMB = f"[&a0 [lol], {CHAIN}]"  # ten levels of ten aliases: 10⁹ leaves once expanded, 300 bytes here
CONFIG_KEY = "model:\n  options:\n    x:"  # a free-form dict: validation takes any value there
SPACE_KEY = "set:\n  model.options.x:"


def bad_yaml(case: str, key: str) -> bytes:
    """A YAML document with ``case`` as the value of ``key`` (or as the whole file, for bad bytes)."""
    if case == "binary":
        return b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"
    if case == "latin1":
        return f"{key} caf\xe9\n".encode("latin-1")
    if case == "deep":
        return f"{key} {'[' * 10_000}{']' * 10_000}\n".encode()
    return f"{key} {BOMB}\n".encode()


CASES = ["bomb", "binary", "latin1", "deep"]


class Payload:
    """A pickle that creates ``marker`` when unpickled (what a planted checkpoint would do with os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """Exit code 2 and exactly one stderr line; returns that line."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("zsl-bench: error: ") and "Traceback" not in err, err
    return err


def train_args(synth_root: Path, out: Path, *more: str) -> list[str]:
    args = ["train", "--model", "resnet_test", "--dataset", "synth", "--data-root", str(synth_root)]
    for key, value in {"train.epochs": 1, "train.batch_size": 32, "train.num_threads": 1}.items():
        args += ["--set", f"{key}={value}"]
    return [*args, *more, "--out", str(out)]


# ------------------------------------------------------------------------ finding 1: checkpoints hold tensors only


def test_a_foreign_pickle_in_latest_pt_is_one_line_and_runs_nothing(synth_root, tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "PWNED"
    assert main(train_args(synth_root, run)) == 0
    capsys.readouterr()
    (run / "done").unlink()
    (run / "summary.json").unlink()
    with open(run / "checkpoint" / "latest.pt", "wb") as fh:  # a plain pickle, not even a torch file
        pickle.dump({"epoch": 1, "model": Payload(marker)}, fh, protocol=2)
    line = one_line_error(capsys, main(train_args(synth_root, run)))
    assert str(run / "checkpoint" / "latest.pt") in line and re.search(r"asks for \S*open", line)
    assert not marker.exists()


def test_checkpoint_load_refuses_planted_files(tmp_path):
    from zsl_bench.engine import checkpoint, ds_checkpoint

    marker = tmp_path / "PWNED"
    zipped, raw, alien = tmp_path / "zipped.pt", tmp_path / "raw.pt", tmp_path / "alien.pt"
    torch.save({"epoch": 1, "model": Payload(marker)}, zipped)
    raw.write_bytes(pickle.dumps({"epoch": 1, "model": Payload(marker)}))
    torch.save({"weights": torch.zeros(2)}, alien)  # tensors only, but not a zsl-bench checkpoint
    for path in (zipped, raw, alien):
        with pytest.raises(UserError, match="refused to load the checkpoint") as info:
            checkpoint.load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    for path in (zipped, raw):
        with pytest.raises(UserError, match="refused to load the checkpoint"):
            ds_checkpoint.load_tensors(path)
    (tmp_path / "zero-0001").mkdir()
    zipped.rename(tmp_path / "zero-0001" / "mp_rank_00_model_states.pt")
    with pytest.raises(UserError, match=r"asks for \S*open"):
        ds_checkpoint.check_tag(tmp_path / "zero-0001")  # lists globals, unpickles nothing
    for tag in ("../zero-0001", "/etc", 3):
        with pytest.raises(UserError, match="not zero-NNNN"):
            ds_checkpoint.tag_folder(tmp_path, tag)
    assert not marker.exists()


@pytest.mark.integration
@pytest.mark.slow
def test_a_planted_deepspeed_shard_runs_nothing_on_resume(synth_root, tmp_path, capfd, monkeypatch):
    """The finding as reported: a real ZeRO-2 run, a payload planted in its model states, the same command
    again. The CLI refuses it before any worker starts; the workers' own engine refuses it too."""
    from zsl_bench.config import build_config
    from zsl_bench.engine import ds_checkpoint
    from zsl_bench.engine.launch import launch
    from zsl_bench.errors import TrialFailed

    run, marker = tmp_path / "run", tmp_path / "PWNED"
    settings = {"train.strategy": "deepspeed", "train.num_workers": 2, "train.zero_stage": 2, "model.options.width": 8}
    args = train_args(synth_root, run, *[f"--set={key}={value}" for key, value in settings.items()])
    assert main(args) == 0, capfd.readouterr().err[-3000:]
    capfd.readouterr()
    shard = run / "checkpoint" / "zero-0001" / "mp_rank_00_model_states.pt"
    assert shard.is_file()
    torch.save({"module": Payload(marker), "dp_world_size": 2}, shard)
    (run / "done").unlink()
    (run / "summary.json").unlink()

    code = main(args)
    assert not marker.exists()  # 2752c3d: DeepSpeed unpickled the shard and ran the payload
    line = one_line_error(capfd, code)
    assert str(shard) in line

    monkeypatch.setattr(ds_checkpoint, "check_run", lambda run_dir: None)  # the workers alone now
    train = {"train.epochs": 1, "train.batch_size": 32, "train.num_threads": 1}
    cfg = build_config(
        None, {"model.name": "resnet_test", "data.name": "synth", "data.root": str(synth_root)} | train | settings
    )
    with pytest.raises(TrialFailed, match="exited with code"):
        launch(cfg, run)
    err = capfd.readouterr().err
    assert f"refused to load the checkpoint {shard}" in err and not marker.exists()


# ---------------------------------------------------------------------------------- finding 6: bounded YAML


@pytest.mark.parametrize("case", CASES)
def test_bad_config_file_is_one_line(case, synth_root, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(bad_yaml(case, CONFIG_KEY))
    out = tmp_path / "run"
    line = one_line_error(capsys, main(train_args(synth_root, out, "--config", str(bad))))
    assert str(bad) in line and not out.exists()


@pytest.mark.parametrize("case", CASES)
def test_bad_space_file_is_one_line(case, tmp_path, capsys):
    bad = tmp_path / "space.yaml"
    bad.write_bytes(
        b"base: quickstart\n"
        + bad_yaml(case, SPACE_KEY)
        + b"space:\n  optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2}\n"
    )
    line = one_line_error(capsys, main(["sweep", "--space", str(bad), "--results", str(tmp_path / "results")]))
    assert str(bad) in line and not (tmp_path / "results").exists()


def test_bomb_in_a_set_value_is_one_line(synth_root, tmp_path, capsys):
    line = one_line_error(capsys, main(train_args(synth_root, tmp_path / "run", "--set", f"model.options.x={BOMB}")))
    assert "--set model.options.x" in line and "alias" in line


@pytest.mark.parametrize("case", CASES)
def test_read_yaml_and_run_dirs_are_bounded(case, tmp_path):
    from zsl_bench.config import read_yaml
    from zsl_bench.report.reference import load_reference
    from zsl_bench.rundir import UnreadableRun, read_run

    path = tmp_path / "config.yaml"
    path.write_bytes(bad_yaml(case, CONFIG_KEY))
    with pytest.raises(UserError) as info:
        read_yaml(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UnreadableRun):
        read_run(tmp_path)
    with pytest.raises(UserError, match="reference numbers") as info:
        load_reference(tmp_path)
    assert "\n" not in str(info.value)


def test_bounded_yaml_still_reads_what_configs_use(tmp_path):
    from zsl_bench import safe_yaml

    path = tmp_path / "ok.yaml"
    path.write_text("\ufeffbase: &b {lr: 0.1, tags: [a, b]}\nother: *b\nnested: [[[[1]]]]\n")
    assert safe_yaml.load_file(path) == {
        "base": {"lr": 0.1, "tags": ["a", "b"]},
        "other": {"lr": 0.1, "tags": ["a", "b"]},
        "nested": [[[[1]]]],
    }
    (tmp_path / "cycle.yaml").write_text("a: &x [*x]\n")
    with pytest.raises(UserError, match="refers to a node that contains it"):
        safe_yaml.load_file(tmp_path / "cycle.yaml")
    assert safe_yaml.load_file(tmp_path / "ok.yaml") == yaml.safe_load(path.read_text(encoding="utf-8-sig"))


# ----------------------------------------------------------------------------- finding 7: the Ray token file


@pytest.fixture
def clean_ray_env(monkeypatch):
    """No token in the environment; whatever a test sets is undone afterwards."""
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(var, "")  # records the original value for teardown
        monkeypatch.delenv(var)
    return monkeypatch


def planted(ray_dir: Path, mode: int) -> Path:
    ray_dir.mkdir(parents=True, exist_ok=True)
    token = ray_dir / "auth_token"
    token.write_text("0123456789abcdef\n")
    token.chmod(mode)
    return token


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_loose_token_is_refused(mode, tmp_path, clean_ray_env):
    from zsl_bench.cluster.auth import read_token
    from zsl_bench.search.tune_backend import ensure_local_token

    token = planted(tmp_path / "_ray", mode)
    for use in (lambda: ensure_local_token(tmp_path / "_ray"), lambda: read_token(token)):
        with pytest.raises(UserError, match=r"chmod 600") as info:
            use()
        assert str(token) in str(info.value) and "\n" not in str(info.value)
    assert "RAY_AUTH_TOKEN_PATH" not in os.environ


def test_a_token_of_another_user_is_refused(tmp_path, clean_ray_env):
    from zsl_bench.cluster.auth import check_token_file
    from zsl_bench.search.tune_backend import ensure_local_token

    token = planted(tmp_path / "_ray", 0o600)
    clean_ray_env.setattr(os, "getuid", lambda: token.stat().st_uid + 1)
    with pytest.raises(UserError, match="belongs to another user"):
        ensure_local_token(tmp_path / "_ray")
    with pytest.raises(UserError, match="belongs to another user"):
        check_token_file(token)


def test_a_linked_token_is_refused_and_a_private_one_reused(tmp_path, clean_ray_env):
    from zsl_bench.search.tune_backend import ensure_local_token

    elsewhere = planted(tmp_path / "elsewhere", 0o600)
    (tmp_path / "_ray").mkdir()
    (tmp_path / "_ray" / "auth_token").symlink_to(elsewhere)
    with pytest.raises(UserError, match="not a regular file"):
        ensure_local_token(tmp_path / "_ray")
    own = planted(tmp_path / "ok" / "_ray", 0o600)
    ensure_local_token(own.parent)  # this user's, 0600: a resumed sweep keeps it
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(own) and stat.S_IMODE(own.stat().st_mode) == 0o600


# --------------------------------------------------------------------- finding 3: the sweep name is one folder


@pytest.fixture
def sweep_setup(synth_root, tmp_path, clean_ray_env):
    """A valid space on existing data, results three levels down, and Ray made unimportable (nothing may start)."""
    clean_ray_env.setitem(sys.modules, "ray", None)
    clean_ray_env.chdir(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(
        f"base: quickstart\nset: {{data.root: {synth_root}, train.epochs: 1}}\n"
        "sweep: {searcher: random, scheduler: fifo, num_samples: 1, top_k: 0}\n"
        "space:\n  optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2}\n"
    )
    results = tmp_path / "a" / "b" / "results"
    results.mkdir(parents=True)
    return space, results


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", ["../../X", "ABS", "..", ".", "a/b", "x y", "~"])
def test_name_option_outside_results_is_one_line(name, sweep_setup, tmp_path, capsys):
    space, results = sweep_setup
    name = str(tmp_path / "abs" / "X") if name == "ABS" else name
    before = tree(tmp_path)
    line = one_line_error(capsys, main(["sweep", "--space", str(space), "--results", str(results), "--name", name]))
    assert "not one folder name" in line
    assert tree(tmp_path) == before  # nothing written, inside or outside the results root


def test_name_in_space_file_outside_results_is_one_line(sweep_setup, tmp_path, capsys):
    space, results = sweep_setup
    space.write_text(space.read_text().replace("sweep: {", "sweep: {name: ../../X, "))
    before = tree(tmp_path)
    line = one_line_error(capsys, main(["sweep", "--space", str(space), "--results", str(results)]))
    assert str(space) in line and "sweep.name" in line and "not one folder name" in line
    assert tree(tmp_path) == before


def test_plain_names_pass():
    from zsl_bench.search.space import SweepSettings, sweep_name_problem

    for name in ("cub-vmamba", "sweep_2.v1", "A", "..x"):
        assert sweep_name_problem(name) is None
        assert SweepSettings(name=name).name == name
