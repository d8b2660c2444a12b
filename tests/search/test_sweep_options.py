"""Searchers and schedulers as registered plugins: their typed options and checks, validated when a space file
loads (one line, before Ray starts), and what each registry entry declares. The real sweeps of every entry are in
test_searcher_conformance.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from pydantic import BaseModel

from zsl_bench.config import build_config
from zsl_bench.errors import UserError
from zsl_bench.search import searchers
from zsl_bench.search.schedulers import SCHEDULERS
from zsl_bench.search.searchers import SEARCHERS, SearcherSpec, register_searcher
from zsl_bench.search.space import load_space
from zsl_bench.search.stages import smoke_plugins

HEAD = "base: quickstart\nset: {train.epochs: 2}\n"
SPACE = """space:
  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  model.options.width: {type: choice, values: [8, 16]}
"""


def load(tmp_path, sweep: str, space: str = SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(f"{HEAD}sweep: {sweep}\n{space}")
    return load_space(path)[0]


@pytest.mark.parametrize(
    ("sweep", "pattern"),
    [
        ("{scheduler_options: {grace_perod: 1}}", r"unknown scheduler_options key 'grace_perod' .*'grace_period'"),
        ("{searcher_options: {sampler: tpee}}", r"sampler .*'tpe', 'cmaes', 'gp', 'qmc' or 'random'.*'tpee'"),
        ("{searcher: optuan}", r"unknown searcher 'optuan'; did you mean 'optuna'"),
        ("{scheduler: medain}", r"unknown scheduler 'medain'; did you mean 'median'"),
        ("{scheduler: asha, scheduler_options: {grace_period: soon}}", r"scheduler_options.grace_period .*integer"),
        ("{scheduler: pbt, scheduler_options: {quantile_fraction: 0.9}}", r"quantile_fraction .*0.5"),
        ("{searcher_options: {sampler: cmaes, multivariate: true}}", r"multivariate applies to sampler tpe"),
        ("{searcher: random, searcher_options: {sampler: tpe}}", r"unknown searcher_options key 'sampler'.*none"),
        ("{grace_period: 3}", r"grace_period moved: write it as scheduler_options: \{grace_period: 3\}"),
        ("{scheduler: pbt}", r"scheduler pbt evolves its own population: use searcher grid or random, not optuna"),
        ("{searcher: grid}", r"searcher grid cannot take float parameters \(optim.lr\); searchers that can: optuna"),
    ],
)
def test_bad_settings_are_one_line_user_errors(tmp_path, sweep, pattern):
    with pytest.raises(UserError, match=pattern) as err:
        load(tmp_path, sweep)
    assert "\n" not in str(err.value) and "space.yaml" in str(err.value)


def test_the_cli_refuses_a_typo_in_one_line_before_ray_starts(tmp_path, capsys):
    from zsl_bench.cli import main

    path = tmp_path / "space.yaml"
    path.write_text(f"{HEAD}sweep: {{scheduler_options: {{grace_perod: 1}}}}\n{SPACE}")
    assert main(["sweep", "--space", str(path), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'grace_period'" in err
    assert not (tmp_path / "results").exists()


def test_optuna_cannot_take_grid_parameters(tmp_path):
    space = "space:\n  train.batch_size: {type: grid, values: [16, 32]}\n"
    with pytest.raises(
        UserError, match=r"searcher optuna cannot take grid parameters .*searchers that can: grid, random"
    ):
        load(tmp_path, "{searcher: optuna}", space)


def test_resolved_settings_are_plain_data(tmp_path):
    sweep = load(tmp_path, "{searcher_options: {sampler: gp, n_startup_trials: 4}, scheduler: median}").sweep
    record = sweep.record()
    assert record["searcher"] == "optuna" and record["scheduler"] == "median"
    assert record["searcher_options"]["sampler"] == "gp" and record["searcher_options"]["n_startup_trials"] == 4
    assert record["scheduler_options"] == {"grace_period": 1, "min_samples_required": 3}  # defaults filled in
    assert json.loads(json.dumps(record)) == record
    assert sweep.searcher_config().sampler == "gp"  # the typed options


def test_replace_drops_the_options_of_a_replaced_entry(tmp_path):
    sweep = load(tmp_path, "{scheduler_options: {grace_period: 2}, searcher_options: {sampler: qmc}}").sweep
    fifo = sweep.replace(scheduler="fifo", seed=4)
    assert (fifo.scheduler_options, fifo.seed, fifo.searcher_options["sampler"]) == ({}, 4, "qmc")
    assert sweep.replace(scheduler="asha").scheduler_options["grace_period"] == 2  # same entry: options kept
    with pytest.raises(ValueError, match="unknown scheduler 'nope'"):
        sweep.replace(scheduler="nope")


def test_cmaes_takes_choice_parameters_with_a_note(tmp_path, caplog):
    """Optuna's CMA-ES samples choice parameters independently (at random): allowed, and said once at load."""
    with caplog.at_level(logging.WARNING, logger="zsl_bench.search.searchers"):
        sweep = load(tmp_path, "{searcher_options: {sampler: cmaes}}").sweep
    assert sweep.searcher_options["sampler"] == "cmaes"
    notes = " ".join(r.getMessage() for r in caplog.records)
    assert "model.options.width" in notes and "at random" in notes
    assert "two or more float/int parameters" in notes  # optim.lr is the only numeric one


def test_a_sampler_without_its_package_says_how_to_install_it(tmp_path, monkeypatch):
    real = searchers.importlib.util.find_spec
    monkeypatch.setattr(searchers.importlib.util, "find_spec", lambda name: None if name == "cmaes" else real(name))
    with pytest.raises(UserError, match=r"sampler cmaes needs cmaes: pip install cmaes"):
        load(tmp_path, "{searcher_options: {sampler: cmaes}}")


@pytest.mark.parametrize("name", SEARCHERS.names())
def test_every_searcher_declares_typed_options_and_types(name):
    spec = SEARCHERS.get(name)
    assert spec.name == name and spec.supports and spec.supports <= searchers.PARAM_TYPES
    assert issubclass(spec.options, BaseModel) and spec.options.model_config.get("extra") == "forbid"
    assert isinstance(spec.parse_options({}), spec.options)  # the defaults are valid


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_every_scheduler_declares_typed_options(name):
    spec = SCHEDULERS.get(name)
    assert spec.name == name and spec.keeps_checkpoints >= 0
    assert issubclass(spec.options, BaseModel) and spec.options.model_config.get("extra") == "forbid"
    assert isinstance(spec.parse_options({}), spec.options)


@pytest.mark.parametrize("sampler", ["tpe", "cmaes", "gp", "qmc", "random"])
def test_every_optuna_sampler_suggests_and_learns(sampler, tmp_path, monkeypatch):
    """Each sampler, built with the sweep's seed and its journal, proposes values in range and takes results."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # ray reads it on import (see ray_adapter.ensure_local_token)
    from zsl_bench.search.ray_adapter import to_tune_domain

    text = "{searcher_options: {sampler: %s}, seed: 3}" % sampler  # noqa: UP031
    space = load(tmp_path, text, SPACE + "  optim.weight_decay: {type: float, low: 0.0, high: 0.1}\n")
    ray_dir = tmp_path / "sweep" / "_ray"
    ray_dir.mkdir(parents=True)
    param_space = {k: to_tune_domain(p) for k, p in space.space.items()}
    algo = space.sweep.searcher_spec().build(space.sweep.searcher_config(), space.sweep, ray_dir, param_space)
    assert algo.set_search_properties("val/h", "max", param_space)
    for i in range(3):
        params = algo.suggest(f"t{i}")
        assert 1e-4 <= params["optim.lr"] <= 1e-2 and params["model.options.width"] in (8, 16)
        algo.on_trial_complete(f"t{i}", {"val/h": params["optim.lr"]})
    assert (ray_dir / "optuna.journal").stat().st_size > 0
    assert type(algo._ot_study.sampler).__name__.lower().startswith(sampler[:2])


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_every_scheduler_builds_with_its_defaults(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    searcher = "random" if SCHEDULERS.get(name).evolves_population else "optuna"
    space = load(tmp_path, f"{{searcher: {searcher}, scheduler: {name}}}")
    spec = space.sweep.scheduler_spec()
    for multi in (False, True):
        assert spec.build(space.sweep.scheduler_config(), space.sweep, 4, space.space, multi) is not None


def test_pausing_schedulers_need_single_process_trials(tmp_path):
    from zsl_bench.search.ray_adapter import workers_per_trial

    space = load(tmp_path, "{scheduler: hyperband}")
    base = build_config("quickstart", {"train.strategy": "ddp", "train.num_workers": 2})
    with pytest.raises(UserError, match=r"scheduler hyperband needs single-process trials .*use one of asha, fifo"):
        workers_per_trial(space, base)


def test_smoke_falls_back_to_plain_entries_where_needed(tmp_path):
    pbt = load(tmp_path, "{searcher: random, scheduler: pbt, scheduler_options: {perturbation_interval: 1}}").sweep
    plain = {"searcher": "random", "searcher_options": {}, "scheduler": "fifo", "scheduler_options": {}}
    assert smoke_plugins(pbt, {}) == plain
    optuna = load(tmp_path, "{searcher_options: {sampler: qmc}}")
    assert smoke_plugins(optuna.sweep, optuna.space) == {}  # what it can run is kept, options included
    assert smoke_plugins(optuna.sweep, {})["searcher"] == "random"


def test_a_registered_searcher_is_usable_at_once(tmp_path, monkeypatch):
    class Opts(searchers.Options):
        width: int = 2

    for attr in ("_entries", "_providers"):  # unregistered again after the test
        monkeypatch.setattr(SEARCHERS, attr, dict(getattr(SEARCHERS, attr)))
    spec = register_searcher(SearcherSpec(name="conformance_dummy", build=lambda *a: None, options=Opts))
    sweep = load(tmp_path, "{searcher: conformance_dummy, searcher_options: {width: 3}}").sweep
    assert sweep.searcher_spec() is spec and sweep.record()["searcher_options"] == {"width": 3}
    with pytest.raises(UserError, match=r"unknown searcher_options key 'widht'.*did you mean 'width'"):
        load(tmp_path, "{searcher: conformance_dummy, searcher_options: {widht: 3}}")


def test_validation_imports_neither_ray_nor_optuna(tmp_path):
    code = (
        "import sys; from zsl_bench.search.space import SearchSpace; SearchSpace.model_validate({'base': 'q', "
        "'sweep': {'searcher': 'random', 'scheduler': 'pbt'}, 'space': {'optim.lr': {'type': 'float', 'low': 0.1, "
        "'high': 1}}}); assert not {'ray', 'optuna'} & set(sys.modules), sorted(sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
