"""Sweep trials run in other processes and working directories: relative paths of the base config become absolute."""

from zsl_bench.config import build_config, to_dict
from zsl_bench.search.tune_backend import absolute_paths


def test_relative_paths_become_absolute(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt.pth").write_bytes(b"")
    tree = to_dict(
        build_config(
            {
                "model": {"name": "zeromamba_test", "options": {"pretrained": "ckpt.pth", "l1_weight": 0.5}},
                "data": {"name": "cub", "cache_dir": "cache"},
            }
        )
    )
    out = absolute_paths(tree)
    assert out["data"]["root"] == str(tmp_path / "data" / "CUB")  # the default root, made absolute
    assert out["data"]["cache_dir"] == str(tmp_path / "cache")
    assert out["model"]["options"] == {"pretrained": str(tmp_path / "ckpt.pth"), "l1_weight": 0.5}
    tree["model"]["options"] = {"attribute_embeddings": "hash"}  # not a path here: left alone
    assert absolute_paths(tree)["model"]["options"] == {"attribute_embeddings": "hash"}
