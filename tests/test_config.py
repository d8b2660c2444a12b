import pytest

from zsl_bench.config import (
    ExperimentConfig,
    build_config,
    check_key,
    parse_override,
    read_yaml,
    valid_keys,
)
from zsl_bench.errors import UserError


def test_defaults_and_preset():
    cfg = build_config("quickstart")
    assert cfg.model.name == "resnet_test"
    assert cfg.data.name == "synth"
    assert cfg.meta.stage == "search"


def test_dotted_overrides_are_typed():
    cfg = build_config(None, dict(parse_override(s) for s in ["train.epochs=3", "optim.lr=1e-2", "train.hflip=false"]))
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.optim.lr == pytest.approx(0.01)
    assert cfg.train.hflip is False


def test_free_dict_keys_pass_through():
    cfg = build_config(None, {"model.options.width": 16})
    assert cfg.model.options == {"width": 16}


@pytest.mark.parametrize(
    ("key", "hint"),
    [("train.epoch", "train.epochs"), ("optim.learning_rate", None), ("trian.seed", "train.seed")],
)
def test_unknown_key_names_closest_valid_key(key, hint):
    with pytest.raises(UserError) as err:
        build_config(None, {key: 1})
    msg = str(err.value)
    assert key in msg and "\n" not in msg
    if hint:
        assert f"did you mean {hint!r}" in msg


def test_unknown_key_inside_yaml(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epocs: 3\n")
    with pytest.raises(UserError, match=r"'train.epocs' in .*exp.yaml; did you mean 'train.epochs'"):
        build_config(path)


def test_wrong_type_is_one_line():
    with pytest.raises(UserError, match=r"invalid value for 'train.epochs'.*got 'many'"):
        build_config(None, {"train.epochs": "many"})


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(UserError, match=r"malformed YAML in .*bad.yaml:\d+:\d+"):
        read_yaml(path)


def test_unknown_preset_suggests():
    with pytest.raises(UserError, match="did you mean 'quickstart'"):
        build_config("quickstrat")


def test_valid_keys_cover_schema():
    keys = valid_keys()
    assert "optim.lr" in keys and "meta.stage" in keys and "model.options" in keys
    for key in keys:
        check_key(key, "test")
    assert ExperimentConfig().model_dump()["train"]["epochs"] >= 1


def test_override_needs_equals():
    with pytest.raises(UserError, match="key=value"):
        parse_override("train.epochs")
