"""A real SLURM cluster on loopback for the ``slurm`` tests: one controller and two node daemons in this machine.

The controller listens for 127.0.0.2, node ``n1`` has ``NodeAddr=127.0.0.2`` and ``n2`` has ``NodeAddr=127.0.0.3``
(Ray keeps those addresses as they are, unlike 127.0.0.1, so the two Ray nodes stay distinct). No munge, no cgroups
(``auth/none``, ``proctrack/linuxproc``, ``task/none``), free ports, ``KillWait=5`` and ``batch_sched_delay=0`` so that
cancels and submissions are quick. The daemons run in the foreground (``-D``) as children of the test process and
are stopped by PID. Without the SLURM binaries the tests skip on a developer machine and fail in CI (``CI=true``).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zsl_bench.ports import free_ports

NODE_ADDRS = ("127.0.0.2", "127.0.0.3")
_BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
_FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_slurm() -> dict[str, str]:
    """Absolute paths of the SLURM programs; skip (locally) or fail (CI) when they cannot run here."""
    found = {name: shutil.which(name, path=_SEARCH_PATH) for name in _BINARIES}
    missing = sorted(name for name, path in found.items() if path is None)
    problem = None
    if missing:
        problem = (
            f"SLURM not installed (missing {', '.join(missing)}); on Debian: apt-get install --no-install-recommends "
            "slurmctld slurmd slurm-client (.ci/run does this)"
        )
    elif os.geteuid() != 0:
        problem = "the local SLURM test cluster must run as root (slurmd launches the jobs)"
    if problem:
        if in_ci():
            pytest.fail(f"{problem}; CI=true, so the slurm tests must run")
        pytest.skip(problem)
    return {name: str(path) for name, path in found.items()}


@dataclass
class LocalSlurm:
    """A running test cluster: ``env`` carries ``SLURM_CONF`` for every client command."""

    root: Path
    bins: dict[str, str]
    env: dict[str, str]
    daemons: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command (``squeue``, ``scontrol`` …) against this cluster."""
        cmd = [self.bins.get(args[0], args[0]), *args[1:]]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60, check=check)

    def job_state(self, job_id: str) -> str | None:
        """``JobState`` from the controller, or from the job-completion log once the job has been purged."""
        out = self.run("scontrol", "show", "job", "-o", job_id, check=False).stdout
        match = re.search(r"\bJobState=(\S+)", out)
        if match:
            return match.group(1)
        comp = self.root / "jobcomp.txt"
        if comp.exists():
            for line in comp.read_text().splitlines():
                if f"JobId={job_id} " in line:
                    match = re.search(r"\bJobState=(\S+)", line)
                    return match.group(1) if match else None
        return None

    def wait_job(self, job_id: str, timeout: float) -> str:
        """Poll until the job reaches a final state; returns it (fails the test on timeout)."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in _FINAL:
                return state
            time.sleep(0.5)
        pytest.fail(f"SLURM job {job_id} still {state} after {timeout:.0f} s")

    def logs(self) -> str:
        """The tails of the daemons' logs, for failure messages."""
        parts = []
        for log in sorted((self.root / "log").glob("*.log")):
            parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(parts)


def _hardware(slurmd: str) -> str:
    """This machine's topology as ``slurmd -C`` prints it, so that no node is drained for a mismatch."""
    out = subprocess.run([slurmd, "-C"], capture_output=True, text=True, timeout=60).stdout
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    found = dict(re.findall(r"\b(\w+)=(\S+)", out.splitlines()[0] if out else ""))
    if not all(k in found for k in keys):
        return "CPUs=2"
    return " ".join(f"{k}={found[k]}" for k in keys)


def start_slurm(root: Path) -> LocalSlurm:
    """Write ``root/slurm.conf``, start the controller and the node daemons, wait until the nodes are idle."""
    bins = require_slurm()
    host = socket.gethostname().split(".")[0]
    ports = free_ports(1 + len(NODE_ADDRS))
    for sub in ("state", "log", *(f"spool/n{i}" for i in range(1, len(NODE_ADDRS) + 1))):
        (root / sub).mkdir(parents=True, exist_ok=True)
    hardware = _hardware(bins["slurmd"])
    lines = [
        "ClusterName=zsltest",
        f"SlurmctldHost={host}({NODE_ADDRS[0]})",
        f"SlurmctldPort={ports[0]}",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool/%n",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd-%n.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd-%n.log",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={root}/jobcomp.txt",
        "AuthType=auth/none",
        "CredType=cred/none",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        "SlurmdTimeout=30",
        "KillWait=5",
        "SchedulerParameters=batch_sched_delay=0",
    ]
    for i, (addr, port) in enumerate(zip(NODE_ADDRS, ports[1:], strict=True), start=1):
        lines.append(f"NodeName=n{i} NodeHostname={host} NodeAddr={addr} Port={port} {hardware} RealMemory=1000")
    lines.append("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = LocalSlurm(root, bins, env)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
    try:
        cluster.daemons.append(subprocess.Popen([bins["slurmctld"], "-D", "-c"], env=env, **quiet))
        for i in range(1, len(NODE_ADDRS) + 1):
            cluster.daemons.append(subprocess.Popen([bins["slurmd"], "-D", "-N", f"n{i}"], env=env, **quiet))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            idle = cluster.run("sinfo", "-h", "-N", "-t", "idle", "-o", "%N", check=False).stdout.split()
            if len(set(idle)) >= len(NODE_ADDRS):
                return cluster
            dead = [d.args for d in cluster.daemons if d.poll() is not None]
            if dead:
                break
            time.sleep(0.2)
        raise RuntimeError(f"local SLURM did not come up (exited: {dead}):\n{cluster.logs()}")
    except BaseException:
        stop_slurm(cluster)
        raise


def stop_slurm(cluster: LocalSlurm) -> None:
    """Cancel what is left, then stop the daemons by PID (SIGTERM, SIGKILL after 10 s)."""
    if all(d.poll() is None for d in cluster.daemons):
        cluster.run("scancel", "--full", f"--user={getpass.getuser()}", check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.strip():
            time.sleep(0.2)
    for daemon in cluster.daemons:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
    for daemon in cluster.daemons:
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    """One local SLURM cluster (2 nodes) shared by the session's slurm tests."""
    cluster = start_slurm(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        stop_slurm(cluster)
