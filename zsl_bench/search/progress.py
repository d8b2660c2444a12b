"""The sweep's console progress table: the run each Tune trial writes and the searched parameters, by short name.

Ray Tune's default table (its newer output engine) makes one column per sampled entry of the parameter space, with
the full key as the header, and cannot be given columns: a replayed stage (final runs, continued trials), whose
one parameter is the whole ``{"name", "config"}`` of a run, showed a truncated dict there. The sweep uses Tune's
``CLIReporter`` instead (its public reporter, which takes columns: ``RAY_AIR_NEW_OUTPUT=0`` selects it, unless
the environment already says otherwise), built by :func:`sweep_reporter`:

- ``Trial name`` (Tune's, ``trainable_<trial id>``) and status, as always;
- ``run``: the run directory of a replayed trial (``final-1-seed0``, a continued trial's id); a search trial's run
  directory is its trial id, already in the name;
- one column per searched key of the space, headed by its short name (:func:`short_names`: ``optim.lr`` → ``lr``,
  ``model.name`` → ``model``), read from wherever the experiment keeps it (:func:`fit_columns`);
- epoch, validation H and CZSL, test H (final runs have no validation split), and the trial's time.

Caller: ``ray_adapter.run_config`` (every Tune experiment of a sweep). ray is imported inside :func:`sweep_reporter`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

RUN_NAME = "run/name"  # a replayed trial's run directory name in its config ({"run": {"name", "config"}})
RUN_CONFIG = "run/config/"  # where a replayed trial's config tree lies
POINT = "_point/"  # grid points of a resumed sweep's top-up, several parameters in one entry

METRIC_COLUMNS = {
    "epoch": "epoch",
    "val/h": "val H",
    "val/czsl": "val CZSL",
    "test/h": "test H",
    "time_total_s": "time (s)",
}
"""Reported metric → column header (a column shows only once some trial reported it)."""

_GENERIC = ("name", "type", "options")  # a last segment that says little alone: model.name → model


def short_names(keys: Iterable[str]) -> dict[str, str]:
    """Each dotted config key → its shortest distinct header: its last segment (the one before for a generic last
    segment: ``model.name`` → ``model``), more trailing segments where two keys would share one, the whole key
    where even that does not tell them apart."""
    keys = list(dict.fromkeys(keys))
    parts = {key: _meaningful(key) for key in keys}
    depth = dict.fromkeys(keys, 1)
    while True:
        names = {key: ".".join(parts[key][-depth[key] :]) for key in keys}
        shared = [k for k in keys if list(names.values()).count(names[k]) > 1 and depth[k] < len(parts[k])]
        if not shared:
            break
        for key in shared:
            depth[key] += 1
    return {key: name if list(names.values()).count(name) == 1 else key for key, name in names.items()}


def _meaningful(key: str) -> list[str]:
    parts = key.split(".")
    return parts[:-1] if len(parts) > 1 and parts[-1] in _GENERIC else parts


def candidate_columns(searched: Iterable[str]) -> dict[str, str]:
    """Every place a trial's config may hold each searched key (a search trial: the key itself; a grid top-up:
    under ``_point``; a replayed run: inside its config tree), plus the replayed run's name → header."""
    columns = {RUN_NAME: "run"}
    for key, short in short_names(searched).items():
        for path in (key, POINT + key, RUN_CONFIG + key.replace(".", "/")):
            columns[path] = short
    return columns


_MISSING = object()


def lookup(config: dict[str, Any], path: str) -> Any:
    """The value at ``path`` (``/``-separated, as Tune's tables look keys up) in ``config``, or a sentinel."""
    node: Any = config
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def fit_columns(columns: dict[str, str], config: dict[str, Any]) -> dict[str, str]:
    """The ``columns`` that a trial config of this experiment holds, in order (every trial of one experiment has
    the same shape)."""
    return {path: header for path, header in columns.items() if lookup(config, path) is not _MISSING}


def sweep_reporter(searched: Iterable[str]) -> Any:
    """A ``CLIReporter`` with the run and the ``searched`` keys as parameter columns and :data:`METRIC_COLUMNS`;
    it keeps the columns the first trials' configs hold. Selects Tune's reporter output (``RAY_AIR_NEW_OUTPUT=0``)
    unless the variable is already set."""
    from ray.tune import CLIReporter

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # read by Tune when an experiment starts
    everywhere = candidate_columns(searched)
    parameter_columns = dict(everywhere)

    class SweepReporter(CLIReporter):
        columns = parameter_columns  # the dict the table reads its parameter columns from
        fitted = False

        def fit(self, trials: list[Any]) -> None:
            """Keep the columns the first trial's config holds (once: each experiment has its own reporter)."""
            if trials and not self.fitted:
                kept = fit_columns(everywhere, trials[0].config)
                self.columns.clear()  # in place: the reporter was given this very dict
                self.columns.update(kept)
                self.fitted = True

        def report(self, trials: list[Any], done: bool, *sys_info: str) -> None:
            self.fit(trials)
            super().report(trials, done, *sys_info)

    return SweepReporter(
        parameter_columns=parameter_columns,
        metric_columns=dict(METRIC_COLUMNS),
        max_report_frequency=10,
        print_intermediate_tables=True,  # its default follows Ray's verbosity at construction: set by an earlier run
    )
