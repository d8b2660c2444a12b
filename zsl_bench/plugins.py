"""Plugins that are not installed as distributions: ``--plugin MODULE`` and ``$ZSL_BENCH_PLUGINS``.

Installed packages extend zsl-bench through entry points (groups ``zsl_bench.models``, ``zsl_bench.datasets``,
``zsl_bench.searchers``, ``zsl_bench.schedulers``, ``zsl_bench.formats``), which every process of the environment
finds by itself (:mod:`zsl_bench.registry`). A module that is only a file on disk is named with ``--plugin MODULE``
(repeatable, anywhere on the command line) or ``ZSL_BENCH_PLUGINS=mod1,mod2``. :func:`activate` imports it here and
exports both the variable and the module's folder (``PYTHONPATH``) to the environment, so that every process a
command starts — Ray's workers on this machine, the ``runtime_env`` of a cluster the sweep attaches to
(:func:`ray_runtime_env`), SLURM jobs (sbatch passes the environment on) — imports it too, before it looks a
model, dataset or searcher up.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from zsl_bench.errors import UserError
from zsl_bench.registry import PLUGINS_ENV, import_env_plugins, plugin_modules

FLAG = "--plugin"


def take_plugin_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(argv without the --plugin options, the modules they name)``; ``--plugin M`` and ``--plugin=M``."""
    rest: list[str] = []
    modules: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == FLAG:
            value = next(it, None)
            if value is None or value.startswith("-"):
                raise UserError("--plugin needs a module name, e.g. --plugin my_package.zsl_plugin")
            modules.append(value)
        elif arg.startswith(FLAG + "="):
            modules.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, modules


def activate(modules: list[str]) -> None:
    """Add ``modules`` to ``$ZSL_BENCH_PLUGINS`` (and their folders to ``PYTHONPATH``) and import every module
    listed there; an unimportable one is a one-line ``UserError``."""
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # `--plugin my_plugin` for my_plugin.py in the working directory
    listed = plugin_modules()
    for module in modules:
        if module not in listed:
            listed.append(module)
        _export_folder(module)
    if listed:
        os.environ[PLUGINS_ENV] = ",".join(listed)
    import_env_plugins()


def _export_folder(module: str) -> None:
    """Put the folder ``module`` is imported from on ``PYTHONPATH`` for child processes, unless it is installed."""
    try:
        spec = importlib.util.find_spec(module.split(".", 1)[0])
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise UserError(
            f"plugin module {module!r} not found (--plugin); install its package or run from the folder that "
            "holds it (or add that folder to PYTHONPATH)"
        )
    origin = Path(spec.origin).resolve()
    folder = origin.parent.parent if origin.name == "__init__.py" else origin.parent
    if "site-packages" in folder.parts:
        return
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(folder) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *paths])


def ray_runtime_env() -> dict[str, Any]:
    """The ``runtime_env`` that gives every Ray worker of a sweep this process's plugin modules (empty: none)."""
    modules = plugin_modules()
    if not modules:
        return {}
    env = {PLUGINS_ENV: ",".join(modules)}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {"env_vars": env}


def provenance(model: str, dataset: str) -> dict[str, dict[str, str | None]]:
    """Which distribution (and version) provided ``model`` and ``dataset``: written into each run's config meta."""
    from zsl_bench.data.datasets import DATASETS
    from zsl_bench.models import MODELS

    return {
        "model": {"name": model, **MODELS.provider(model).record()},
        "dataset": {"name": dataset, **DATASETS.provider(dataset).record()},
    }
