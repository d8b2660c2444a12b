"""SLURM batch scripts for sweeps: render ``templates/ray_sweep.sbatch`` (package data) and submit it with ``sbatch``.

The template's ``{{name}}`` placeholders are filled by :class:`SbatchTemplate` (``string.Template``). No shell
string is built from user input: numbers are checked integers, ``#SBATCH`` option values must match strict patterns,
every other value (paths, names, sweep arguments) goes through ``shlex.quote``, and ``sbatch`` is run with an
argument list.
"""

from __future__ import annotations

import os
import re
import shlex
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from zsl_bench.errors import UserError
from zsl_bench.launchers.request import SweepRequest
from zsl_bench.search.shipped import is_shipped, resolve_space

TEMPLATE = Path(__file__).resolve().parent / "templates" / "ray_sweep.sbatch"  # shipped in the wheel
SLURM_DIR = "_slurm"  # under the results root; readers skip ``_``-prefixed directories
_TOKEN = re.compile(r"^[A-Za-z0-9_.,:+=-]+$")  # partition, account: plain names (comma lists allowed)
_TIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")  # [D-]HH:MM:SS


@dataclass(kw_only=True)
class SlurmSweep(SweepRequest):
    """A sweep to run as one SLURM job: the sweep's request, the allocation and Ray's sizes."""

    nodes: int
    cpus_per_node: int
    gpus_per_node: int = 0
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    object_store_mb: int | None = None
    job_name: str | None = None
    python: str = sys.executable
    prelude: Path | None = None
    template: Path | None = None
    sbatch_args: list[str] = field(default_factory=list)
    dry_run: bool = False  # print the script, submit nothing


class SbatchTemplate(string.Template):
    """``{{name}}`` placeholders (lower-case names); the script's own ``$VAR`` and ``${…}`` are left alone."""

    delimiter = "{{"
    pattern = r"\{\{(?:(?P<named>[a-z_]+)\}\}|(?P<braced>(?!))|(?P<escaped>(?!))|(?P<invalid>(?!)))"
    flags = 0  # exact case: {{NAME}} is not a placeholder


def check(job: SlurmSweep) -> None:
    """``UserError`` for any value that cannot go into the script as given."""
    for value, what, low in (
        (job.nodes, "--nodes", 1),
        (job.cpus_per_node, "--cpus-per-node", 1),
        (job.gpus_per_node, "--gpus-per-node", 0),
    ):
        if value < low:
            raise UserError(f"{what} {value}: must be {low} or more")
    if job.object_store_mb is not None and job.object_store_mb < 1:
        raise UserError(f"--object-store-mb {job.object_store_mb}: must be 1 or more (omit it for Ray's default)")
    if job.num_samples is not None and job.num_samples < 1:
        raise UserError(f"--num-samples {job.num_samples}: must be 1 or more")
    for value, what in ((job.partition, "--partition"), (job.account, "--account")):
        if value is not None and not _TOKEN.match(value):
            raise UserError(f"{what} {value!r}: expected a SLURM name (letters, digits, _ . , : + = -)")
    if job.time is not None and not _TIME.match(job.time):
        raise UserError(f"--time {job.time!r}: expected HH:MM:SS or D-HH:MM:SS, e.g. 04:00:00")
    if job.job_name is not None and not _TOKEN.match(job.job_name):
        raise UserError(f"--job-name {job.job_name!r}: letters, digits and _ . , : + = - only")
    resolve_space(job.space)  # a path, or a shipped space's name; else one line with the closest names
    if "\\" in str(Path(job.results).resolve()):
        raise UserError(f"--results {job.results}: SLURM output paths cannot contain a backslash; pick another")
    for arg in job.sbatch_args:
        if not arg.startswith("--"):
            raise UserError(f"--sbatch-arg {arg!r}: give long options with their value, e.g. --sbatch-arg=--qos=high")


def sweep_argv(job: SlurmSweep) -> list[str]:
    """The ``zsl-bench sweep`` arguments the job runs (absolute paths: the job may start in another directory)."""
    return replace(job, space=job_space(job), results=Path(job.results).resolve()).argv()


def job_space(job: SlurmSweep) -> str:
    """``--space`` for the job: an absolute path, or a shipped space's name when the nodes run another Python.

    A file of the user, or a shipped space run by this very interpreter (the default ``--python``, which the nodes
    see at the same path), goes in as its absolute path. A shipped space under another ``--python`` goes in by name,
    so that the nodes' installation finds its own copy (this one's path may not exist there).
    """
    space = resolve_space(job.space)
    if is_shipped(space) and os.path.abspath(job.python) != os.path.abspath(sys.executable):
        return space.name
    return str(space.resolve())


def render(job: SlurmSweep) -> str:
    """The batch script for ``job`` (checked first)."""
    check(job)
    template = Path(job.template) if job.template else TEMPLATE
    try:
        text = template.read_text()
    except OSError:
        raise UserError(f"SLURM template not found: {template}; pass --template FILE (a copy of {TEMPLATE})") from None
    prelude = "# (none: pass --prelude FILE for `module load …` lines)"
    if job.prelude:
        try:
            prelude = Path(job.prelude).read_text().rstrip("\n")
        except OSError as exc:
            raise UserError(f"--prelude {job.prelude}: {exc.strerror}") from None
    values = {
        "job_name": job.job_name or default_job_name(job),
        "nodes": str(int(job.nodes)),
        "cpus_per_node": str(int(job.cpus_per_node)),
        "gpus_per_node": str(int(job.gpus_per_node)),
        "sbatch_options": "\n".join(_sbatch_options(job)),
        "python": shlex.quote(str(job.python)),
        "results": shlex.quote(str(Path(job.results).resolve())),
        "object_store_bytes": str(job.object_store_mb * 2**20) if job.object_store_mb else "''",
        "sweep_args": " ".join(shlex.quote(a) for a in sweep_argv(job)),
        "prelude": prelude,
        "plugins": _plugin_lines(),
    }
    try:
        return SbatchTemplate(text).substitute(values)
    except KeyError as exc:
        key = exc.args[0]
        raise UserError(f"{template}: unknown placeholder {{{{{key}}}}}; known: {', '.join(sorted(values))}") from None


def _plugin_lines() -> str:
    """``export`` lines that give the job (and every Ray process it starts) this command's plugin modules."""
    from zsl_bench.plugins import ray_runtime_env

    env = ray_runtime_env().get("env_vars", {})
    if not env:
        return "# (none)"
    lines = [f"export {key}={shlex.quote(value)}" for key, value in env.items() if key != "PYTHONPATH"]
    if "PYTHONPATH" in env:
        lines.append(f'export PYTHONPATH={shlex.quote(env["PYTHONPATH"])}"${{PYTHONPATH:+:$PYTHONPATH}}"')
    return "\n".join(lines)


def default_job_name(job: SlurmSweep) -> str:
    """``zsl-<sweep name>``, reduced to characters every SLURM accepts."""
    base = job.name or Path(job.space).stem
    return "zsl-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_") or "sweep")[:60]


def log_pattern(job: SlurmSweep) -> Path:
    """Where the job's output goes (``%j``: the job id); a literal ``%`` of the path is doubled for SLURM."""
    return Path(str(slurm_dir(job)).replace("%", "%%")) / "slurm-%j.out"


def slurm_dir(job: SlurmSweep) -> Path:
    """``<results>/_slurm``: scripts, job logs, and each running job's private token directory."""
    return Path(job.results).resolve() / SLURM_DIR


def sbatch_command(job: SlurmSweep, script: Path) -> list[str]:
    """The ``sbatch`` argument list that submits ``script``."""
    return ["sbatch", "--parsable", f"--output={log_pattern(job)}", *job.sbatch_args, str(script)]


@dataclass
class Submitted:
    """A submitted job."""

    job_id: str
    script: Path
    log: Path
    command: list[str]


def submit(job: SlurmSweep, text: str) -> Submitted:
    """Write ``text`` under ``<results>/_slurm/`` and submit it; ``UserError`` when sbatch refuses."""
    sdir = slurm_dir(job)
    sdir.mkdir(parents=True, exist_ok=True)
    script = sdir / f"{job.job_name or default_job_name(job)}-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
    script.write_text(text)
    command = sbatch_command(job, script)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    except FileNotFoundError:
        raise UserError("sbatch not found: run this on a SLURM login node (or use --dry-run)") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise UserError(f"sbatch refused the job: {detail[-1] if detail else proc.returncode}; script: {script}")
    job_id = proc.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise UserError(f"sbatch printed no job id ({proc.stdout.strip()!r}); script: {script}")
    return Submitted(job_id, script, sdir / f"slurm-{job_id}.out", command)


def _sbatch_options(job: SlurmSweep) -> list[str]:
    lines = []
    if job.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={int(job.gpus_per_node)}")
    if job.partition:
        lines.append(f"#SBATCH --partition={job.partition}")
    if job.account:
        lines.append(f"#SBATCH --account={job.account}")
    if job.time:
        lines.append(f"#SBATCH --time={job.time}")
    return lines
