"""The CLI as a user meets it: bad input is one line on stderr and exit code 2; good input works."""

import json

import pytest


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "--model", "resnet_tset", "--dataset", "synth"], ["unknown model 'resnet_tset'", "resnet_test"]),
        (["train", "--model", "resnet_test", "--dataset", "synht"], ["unknown dataset 'synht'", "synth"]),
        (["sweep", "--space", "no/such/space.yaml"], ["search-space file not found", "no/such/space.yaml"]),
        (["train", "--model", "resnet_test", "--dataset", "synth", "--set", "train.epochz=1"], ["train.epochs"]),
        (["leaderboard", "--results", "no/such/dir"], ["results directory not found"]),
        (["train", "--model", "resnet_test"], ["--dataset"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, tmp_path, args, needles):
    code, _, err = cli(*args, cwd=tmp_path)
    assert_one_line_error(code, err, *needles)


def test_malformed_yaml_space(cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("base: quickstart\nspace:\n  optim.lr: {type: float, low: 1\n")
    code, _, err = cli("sweep", "--space", "bad.yaml", cwd=tmp_path)
    assert_one_line_error(code, err, "malformed YAML in bad.yaml:")


def test_missing_dataset_dir_says_how_to_make_it(cli, tmp_path):
    code, _, err = cli("train", "--model", "resnet_test", "--dataset", "synth", "--data-root", "nowhere", cwd=tmp_path)
    assert_one_line_error(code, err, "zsl-bench data synth --out")
    code, _, err = cli("data", "inspect", "--dataset", "synth", "--root", "nowhere", cwd=tmp_path)
    assert_one_line_error(code, err, "zsl-bench data synth --out")


def test_models_list(cli):
    code, out, _ = cli("models", "list")
    assert code == 0 and {"resnet_test", "vit_test"} <= set(out.split())
    code, out, _ = cli("models", "list", "vit*")
    assert "vit_test" in out.split() and all(name.startswith("vit") for name in out.split())


def test_synth_inspect_train_leaderboard(cli, tmp_path):
    code, out, err = cli("data", "synth", "--out", "data/synth", "--seed", "1", cwd=tmp_path)
    assert code == 0, err
    code, out, err = cli("data", "inspect", "--dataset", "synth", "--root", "data/synth", "--json", cwd=tmp_path)
    assert code == 0, err
    counts = json.loads(out)
    for key in ("classes", "attributes", "seen", "unseen", "trainval", "test_seen", "test_unseen"):
        assert isinstance(counts[key], int)
    assert counts["classes"] >= 24 and counts["unseen"] >= 6 and counts["seen"] + counts["unseen"] == counts["classes"]

    code, out, err = cli(
        "train",
        "--model",
        "resnet_test",
        "--dataset",
        "synth",
        "--data-root",
        "data/synth",
        "--set",
        "train.epochs=1",
        "--set",
        "model.options.width=8",
        "--out",
        "results/one",
        cwd=tmp_path,
    )
    assert code == 0, err
    assert "test CZSL" in out and (tmp_path / "results" / "one" / "done").exists()

    code, out, err = cli("leaderboard", "--results", "results", "--out", "board.md", cwd=tmp_path)
    assert code == 0, err
    assert "| synth" in out and (tmp_path / "board.md").read_text().strip() == out.strip()


def test_synth_into_a_foreign_directory_is_refused(cli, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    code, _, err = cli("data", "synth", "--out", "taken", cwd=tmp_path)
    assert_one_line_error(code, err, "taken")
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep me"


def test_help_does_not_import_heavy_packages(cli):
    import subprocess
    import sys

    code, out, _ = cli("--help")
    assert code == 0 and "sweep" in out
    heavy = "('torch', 'ray', 'optuna', 'transformers')"
    probes = {
        "zsl_bench.cli": "[]",  # --help and argument errors need nothing heavy
        "zsl_bench.models": "['torch']",  # the registry is lazy: transformers only when a model is built
    }
    for module, expected in probes.items():
        code = f"import sys, {module}; print(sorted(m for m in {heavy} if m in sys.modules))"
        loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert loaded.strip() == expected, module


def _subparser(parser, *path):
    """The parser of ``zsl-bench PATH...``."""
    import argparse

    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def test_every_sweep_flag_is_declared_once_and_reaches_every_launcher_command():
    """``sweep`` and ``cluster slurm`` take each flag of the one table, filling the same request field."""
    from zsl_bench.cli import build_parser
    from zsl_bench.launchers.request import SWEEP_FLAGS

    parser = build_parser()
    for path in (["sweep"], ["cluster", "slurm"]):
        options = {opt: a.dest for a in _subparser(parser, *path)._actions for opt in a.option_strings}
        for flag in SWEEP_FLAGS:
            assert options.get(flag.option) == flag.dest, (path, flag.option)


def test_a_request_survives_its_argv():
    """``SweepRequest.argv`` (what a SLURM job runs) parses back, through ``zsl-bench sweep``, to the same request."""
    from pathlib import Path

    from zsl_bench.cli import build_parser
    from zsl_bench.launchers.request import SweepRequest

    request = SweepRequest(
        space="/spaces/it's a space.yaml",
        name="a -b",
        results=Path("/r s"),
        num_samples=3,
        overrides=["optim.lr=0.1", "meta.note=x=y"],
        resume=True,
        smoke=True,
    )
    args = build_parser().parse_args(["sweep", *request.argv()])
    assert SweepRequest.from_args(args) == request
    bare = SweepRequest(space="quickstart")
    assert bare.argv() == ["--space", "quickstart", "--results", "results"]
    assert SweepRequest.from_args(build_parser().parse_args(["sweep", *bare.argv()])) == bare


def test_launchers_are_registered_and_chosen_by_command():
    import argparse

    from zsl_bench.cli import build_parser
    from zsl_bench.launchers import LAUNCHERS
    from zsl_bench.launchers.local import AttachRequest

    assert {"local", "attach", "slurm"} <= set(LAUNCHERS.names())
    assert LAUNCHERS.get("slurm").command == "slurm" and LAUNCHERS.get("local").command is None
    args = build_parser().parse_args(["sweep", "--space", "q.yaml", "--address", "10.0.0.5:6379"])
    request = LAUNCHERS.get("attach")().request(args)
    assert isinstance(request, AttachRequest) and request.address == "10.0.0.5:6379" and request.space == "q.yaml"
    slurm = build_parser().parse_args(["cluster", "slurm", "--space", "q", "--cpus-per-node", "2"])
    assert isinstance(slurm, argparse.Namespace) and slurm.launcher == "slurm"
