from pathlib import Path

import pytest

from zsl_bench.errors import UserError
from zsl_bench.search.space import load_space

REPO = Path(__file__).resolve().parents[2]

GOOD = """
base: quickstart
set: {train.epochs: 2}
sweep: {num_samples: 3, max_concurrent: 1}
space:
  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  train.batch_size: {type: choice, values: [16, 32]}
  model.options.width: {type: int, low: 8, high: 16}
"""


def write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_shipped_quickstart_space_is_valid():
    space, base = load_space(REPO / "zsl_bench" / "spaces" / "quickstart.yaml")
    assert space.sweep.metric == "val/h" and space.sweep.searcher == "optuna" and space.sweep.scheduler == "asha"
    assert base.data.name == "synth" and base.train.epochs == space.set["train.epochs"]


def test_good_space(tmp_path):
    space, base = load_space(write(tmp_path, GOOD))
    assert base.train.epochs == 2
    assert set(space.space) == {"optim.lr", "train.batch_size", "model.options.width"}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (GOOD.replace("optim.lr:", "optim.lrr:"), r"unknown config key 'optim.lrr'.*did you mean 'optim.lr'"),
        (GOOD.replace("low: 1.0e-4, high: 1.0e-2", "low: 1.0e-2, high: 1.0e-4"), r"low .* must be below high"),
        (GOOD.replace("low: 1.0e-4", "low: 0.0"), r"log scale needs low > 0"),
        (GOOD.replace("values: [16, 32]", "values: []"), r"non-empty 'values'"),
        (GOOD.replace("values: [16, 32]", "values: [16, big]"), r"train.batch_size.*invalid value"),
        (GOOD.replace("num_samples", "num_sample"), r"unknown key 'sweep.num_sample'; did you mean 'num_samples'"),
        (GOOD.replace("type: int", "type: integer"), r"space.model.options.width.type"),
        (GOOD.replace("base: quickstart", "base: quickstrat"), r"did you mean 'quickstart'"),
        (GOOD + "  model.name: {type: choice, values: [resnet_test, resnet_tset]}\n", r"unknown model 'resnet_tset'"),
        (GOOD.replace("set: {train.epochs: 2}", "set: {data.name: cub2}"), r"unknown dataset 'cub2'"),
        ("base: quickstart\n", r"missing required key 'space'"),
        ("- just\n- a list\n", r"is a mapping"),
        ("space: {a: [unclosed\n", r"malformed YAML in .*space.yaml:\d+"),
    ],
)
def test_bad_spaces_are_one_line_user_errors(tmp_path, text, pattern):
    with pytest.raises(UserError, match=pattern) as err:
        load_space(write(tmp_path, text))
    assert "\n" not in str(err.value)
    assert "space.yaml" in str(err.value) or "quickstrat" in str(err.value)


def test_base_relative_to_space_file(tmp_path):
    (tmp_path / "exp.yaml").write_text("train: {epochs: 5}\n")
    _, base = load_space(
        write(tmp_path, GOOD.replace("base: quickstart", "base: exp.yaml").replace("set: {train.epochs: 2}\n", ""))
    )
    assert base.train.epochs == 5


def test_domains_translate_to_ray():
    pytest.importorskip("ray")
    from ray.tune.search.sample import Categorical, Float, Integer

    from zsl_bench.search.ray_adapter import to_tune_domain
    from zsl_bench.search.space import Param

    assert isinstance(to_tune_domain(Param(type="float", low=1e-4, high=1e-2, log=True)), Float)
    assert isinstance(to_tune_domain(Param(type="int", low=1, high=4)), Integer)
    assert isinstance(to_tune_domain(Param(type="choice", values=[1, 2])), Categorical)
    domain = to_tune_domain(Param(type="int", low=2, high=3))
    assert {domain.sample() for _ in range(50)} == {2, 3}  # high is inclusive
