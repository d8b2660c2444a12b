"""Launchers: where a sweep runs. One :class:`~zsl_bench.launchers.request.SweepRequest` (the sweep's flags, declared
once) is handed to a :class:`~zsl_bench.launchers.base.Launcher`:

* ``local``: Ray started and shut down by ``zsl-bench sweep`` on this machine;
* ``attach``: ``zsl-bench sweep --address HOST:PORT``, on a running cluster (``zsl-bench cluster up``, a SLURM job);
* ``slurm``: ``zsl-bench cluster slurm``, a SLURM batch job that starts its own Ray cluster and runs the sweep.

A new launcher is one module: a :class:`~zsl_bench.launchers.base.Launcher` subclass registered in
:data:`LAUNCHERS` (``@LAUNCHERS.register("name")``), found by a ``register_lazy`` line below or by an entry point of
group ``zsl_bench.launchers``. One with a ``command`` gets its own ``zsl-bench cluster COMMAND``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_bench.registry import Registry

if TYPE_CHECKING:
    from zsl_bench.launchers.base import Launcher

LAUNCHERS: Registry[type[Launcher]] = Registry("launcher", group="zsl_bench.launchers")
LAUNCHERS.register_lazy("local", "zsl_bench.launchers.local")
LAUNCHERS.register_lazy("attach", "zsl_bench.launchers.local")
LAUNCHERS.register_lazy("slurm", "zsl_bench.launchers.slurm")
