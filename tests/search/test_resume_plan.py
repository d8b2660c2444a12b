"""Resume reconciliation without Ray: what an interrupted sweep still owes, read from its run directories alone
(the Ray-driven resume, killed drivers included, is test_resume.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from zsl_bench.rundir import CONFIG, DONE, ERROR, write_yaml
from zsl_bench.search import resume
from zsl_bench.search.crashes import record_crashes, replayed_name, trial_id
from zsl_bench.search.space import load_space

HEAD = "base: quickstart\nset: {train.epochs: 2}\n"
GRID = """sweep: {searcher: grid, num_samples: 2, seed: 7}
space:
  optim.lr: {type: grid, values: [0.001, 0.01]}
  model.options.width: {type: grid, values: [8, 16]}
"""
RANDOM = """sweep: {searcher: random, num_samples: 5, seed: 7}
space:
  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
"""


def space_of(tmp_path: Path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(HEAD + text)
    return load_space(path)[0]


def run(sweep_dir: Path, name: str, state: str, stage: str = "search", **values) -> None:
    """A run directory: ``state`` is done, failed or running; ``values`` {"lr": …, "width": …}."""
    config = {"meta": {"stage": stage}, "optim": {"lr": values.get("lr")}}
    config["model"] = {"options": {"width": values.get("width")}}
    (sweep_dir / name).mkdir(parents=True)
    write_yaml(sweep_dir / name / CONFIG, config)
    if state == "done":
        (sweep_dir / name / DONE).write_text("")
    elif state == "failed":
        (sweep_dir / name / ERROR).write_text("boom\n")


def test_unfinished_runs_are_the_search_runs_neither_done_nor_failed(tmp_path):
    run(tmp_path, "a", "done")
    run(tmp_path, "b", "failed")
    run(tmp_path, "c", "running", lr=0.01)
    run(tmp_path, "final-1-seed0", "running", stage="final")
    (left,) = resume.unfinished_runs(tmp_path)
    assert left.name == "c" and left.config["optim"]["lr"] == 0.01


def test_random_top_up_draws_the_missing_samples_past_the_draws_made(tmp_path):
    space = space_of(tmp_path, RANDOM)
    sweep = tmp_path / "sweep"
    run(sweep, "a", "done")
    run(sweep, "b", "failed")  # a failed trial counts towards num_samples too
    run(sweep, "c", "running")
    plan = resume.plan_top_up(space, sweep, continued=1)
    assert plan == resume.TopUp(missing=3, samples=3, seed=7 + 2 + 1, points=None)


def test_grid_top_up_runs_exactly_the_points_no_run_directory_holds(tmp_path):
    space = space_of(tmp_path, GRID)
    sweep = tmp_path / "sweep"
    for name, lr, width in [("a", 0.001, 8), ("b", 0.001, 8), ("c", 0.01, 16), ("d", 0.001, 16)]:
        run(sweep, name, "done", lr=lr, width=width)
    plan = resume.plan_top_up(space, sweep, continued=0)
    assert plan.samples == 1 and plan.seed == 7 + 4
    wanted = [{"optim.lr": 0.001, "model.options.width": 16}]
    wanted += [{"optim.lr": 0.01, "model.options.width": 8}] * 2 + [{"optim.lr": 0.01, "model.options.width": 16}]
    assert sorted(map(repr, plan.points)) == sorted(map(repr, wanted)) and plan.missing == 4


def test_a_complete_grid_owes_nothing(tmp_path):
    space = space_of(tmp_path, GRID.replace("num_samples: 2", "num_samples: 1"))
    sweep = tmp_path / "sweep"
    for i, (lr, width) in enumerate([(0.001, 8), (0.001, 16), (0.01, 8), (0.01, 16)]):
        run(sweep, f"t{i}", "done", lr=lr, width=width)
    assert resume.plan_top_up(space, sweep, continued=0).missing == 0


def result(path: str, error: Exception | None = None, trial: str | None = None, name: str = "") -> SimpleNamespace:
    metrics = {"trial_id": trial} if trial else {}
    return SimpleNamespace(path=path, error=error, metrics=metrics, config={"run": {"name": name}})


def test_trial_ids_come_from_metrics_else_the_trial_folder():
    assert trial_id(result("/x/trainable_3f2a9c1d_1_lr=0.1", trial="abc")) == "abc"
    assert trial_id(result("/x/trainable_3f2a9c1d_1_lr=0.1")) == "3f2a9c1d"
    assert trial_id(result("/x/trainable_87130_00000_0_lr=0.1")) == "87130_00000"
    assert trial_id(result("/x/odd")) == "odd"
    assert replayed_name(result("/x/y", name="final-1-seed0")) == "final-1-seed0"


def test_a_crashed_trial_gets_tunes_error_and_finalised_runs_are_left_alone(tmp_path):
    for name in ("crashed", "failed", "done"):
        (tmp_path / name).mkdir()
    (tmp_path / "failed" / ERROR).write_text("its own\n")
    (tmp_path / "done" / DONE).write_text("")
    grid = [result(f"/x/{n}", error=MemoryError("oom"), name=n) for n in ("crashed", "failed", "done", "absent")]
    record_crashes(grid, tmp_path, name_of=replayed_name)
    assert (tmp_path / "crashed" / ERROR).read_text() == "MemoryError: oom\n"
    assert (tmp_path / "failed" / ERROR).read_text() == "its own\n"
    assert not (tmp_path / "done" / ERROR).exists() and not (tmp_path / "absent").exists()


def test_a_scheduler_ended_trial_with_an_unreadable_checkpoint_never_ends_the_sweep(tmp_path):
    """A single-process trial Tune ended between two writes is left as it is (its checkpoint is not read); a
    multi-worker one whose checkpoint is not a tensors-only file gets that as its error record."""
    for name, strategy in (("single", "single"), ("ddp", "ddp")):
        (tmp_path / name / "checkpoint").mkdir(parents=True)
        write_yaml(tmp_path / name / CONFIG, {"train": {"strategy": strategy}})
        (tmp_path / name / "checkpoint" / "latest.pt").write_text('{"epoch": 1}')
    record_crashes([result(f"/x/{n}", name=n) for n in ("single", "ddp")], tmp_path, name_of=replayed_name)
    assert not (tmp_path / "single" / ERROR).exists() and not (tmp_path / "single" / DONE).exists()
    recorded = (tmp_path / "ddp" / ERROR).read_text()
    assert recorded.startswith("UserError: refused to load the checkpoint") and "latest.pt" in recorded
