"""The SLURM batch script: every value survives the shell exactly, options are checked, nothing is submitted."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from zsl_bench.cluster.slurm import SlurmSweep, render, sweep_argv
from zsl_bench.errors import UserError
from zsl_bench.search.shipped import SPACES_DIR

QUICKSTART = SPACES_DIR / "quickstart.yaml"
HOSTILE = 'it\'s "q" $(touch pwned) `touch pwned` ; rm -rf x\n& $HOME *'


def values_block(script: str) -> str:
    match = re.search(r"^# >>> values.*?$(.*?)^# <<< values", script, re.S | re.M)
    assert match, "the template lost its values block"
    return match.group(1)


def test_values_reach_the_sweep_exactly(tmp_path):
    results = tmp_path / HOSTILE
    job = SlurmSweep(
        space=QUICKSTART,
        nodes=3,
        cpus_per_node=8,
        gpus_per_node=2,
        partition="gpu,gpu-long",
        time="1-02:00:00",
        account="proj_42",
        results=results,
        name=HOSTILE,
        overrides=["optim.lr=0.01", f"meta.note={HOSTILE}"],
        smoke=True,
        python=str(tmp_path / "my env" / "bin" / "python"),
    )
    script = render(job)
    for line in (
        "#SBATCH --nodes=3",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --partition=gpu,gpu-long",
        "#SBATCH --account=proj_42",
        "#SBATCH --time=1-02:00:00",
        "#SBATCH --job-name=zsl-it_s_q_touch_pwned_touch_pwned_rm_-rf_x_HOME",
    ):
        assert line in script.splitlines(), line
    bash = shutil.which("bash")
    assert subprocess.run([bash, "-n"], input=script, text=True).returncode == 0  # the whole script parses
    printer = values_block(script) + '\nprintf "%s\\0" "$ZSL_PYTHON" "$ZSL_RESULTS" "${ZSL_SWEEP_ARGS[@]}"\n'
    out = subprocess.run([bash, "-c", printer], capture_output=True, cwd=tmp_path, check=True).stdout
    got = out.decode().split("\0")[:-1]
    assert got == [job.python, str(results.resolve()), *sweep_argv(job)]
    assert "--smoke" in got and HOSTILE in got and f"meta.note={HOSTILE}" in got
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--time", "1 hour"), "--time"),
        (("--partition", "a b"), "--partition"),
        (("--account", "x;y"), "--account"),
        (("--nodes", "0"), "--nodes"),
        (("--gpus-per-node", "-1"), "--gpus-per-node"),
        (("--job-name", "a'b"), "--job-name"),
        (("--sbatch-arg", "qos=high"), "--sbatch-arg"),
    ],
)
def test_bad_options_are_one_line_errors(cli, tmp_path, args, message):
    code, out, err = cli(
        "cluster", "slurm", "--space", str(QUICKSTART), "--cpus-per-node", "2", "--dry-run", *args, cwd=tmp_path
    )
    assert code == 2 and message in err and "Traceback" not in err, err
    assert out == ""


def test_dry_run_prints_the_script_and_submits_nothing(cli, tmp_path):
    prelude = tmp_path / "site.sh"
    prelude.write_text("module load cuda/12.4  # site setup\n")
    results = tmp_path / "res ults"
    code, out, err = cli(
        *("cluster", "slurm", "--space", str(QUICKSTART), "--nodes", "2", "--cpus-per-node", "4"),
        *("--results", str(results), "--prelude", str(prelude), "--sbatch-arg=--qos=high", "--dry-run"),
    )
    assert code == 0, err
    assert out.startswith("#!/bin/bash") and "module load cuda/12.4  # site setup" in out
    assert "--gpus-per-node" not in out  # no GPU line for a CPU job
    assert "--address" in out and "ray start" not in out.split("# <<< site setup")[0].split("# >>> values")[1]
    assert "sbatch --parsable" in err and "--qos=high" in err
    assert not results.exists()


def test_unknown_template_placeholder_is_reported(tmp_path):
    template = tmp_path / "t.sbatch"
    template.write_text("#!/bin/bash\n#SBATCH --nodes={{nodes}}\necho {{nope}}\n")
    job = SlurmSweep(space=QUICKSTART, nodes=1, cpus_per_node=1, template=template, python=sys.executable)
    with pytest.raises(UserError, match="nope"):
        render(job)


def test_plugin_modules_reach_the_job(cli, tmp_path):
    """A --plugin module (not installed) is exported by the job script itself, whatever sbatch's --export says: the
    sweep driver and every Ray node of the allocation import it."""
    (tmp_path / "site_plugin.py").write_text("X = 1\n")
    code, out, err = cli(
        *("--plugin", "site_plugin", "cluster", "slurm", "--space", str(QUICKSTART), "--cpus-per-node", "2"),
        *("--results", str(tmp_path / "r"), "--dry-run"),
        cwd=tmp_path,
    )
    assert code == 0, err
    block = out.split("# >>> plugins")[1].split("# <<< plugins")[0]
    assert "export ZSL_BENCH_PLUGINS=site_plugin" in block
    assert f"export PYTHONPATH={tmp_path}" in block
    code, out, err = cli(
        *("cluster", "slurm", "--space", str(QUICKSTART), "--cpus-per-node", "2", "--dry-run"), cwd=tmp_path
    )
    assert code == 0 and "export ZSL_BENCH_PLUGINS" not in out, err


def test_only_lower_case_double_braced_names_are_placeholders():
    """The shell's own ``$VAR``, ``${VAR}``, ``${#a[@]}`` and ``{{UPPER}}`` pass through the template untouched."""
    from zsl_bench.cluster.slurm import SbatchTemplate

    text = "a={{nodes}} b=$HOME c=${x:-1} d=${#n[@]} e={{NODES}} f={{ nodes }} g={{nodes}}{{nodes}} $$ {{"
    out = SbatchTemplate(text).substitute({"nodes": "3"})
    assert out == "a=3 b=$HOME c=${x:-1} d=${#n[@]} e={{NODES}} f={{ nodes }} g=33 $$ {{"
