"""Feature datasets (xlsa17 res101.mat) and the feature store: reading the real format, locking, atomic entries."""

from __future__ import annotations

import os
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from zsl_bench.cli import main
from zsl_bench.data.datasets import read_dataset
from zsl_bench.data.feature_store import FeatureStore
from zsl_bench.data.features import (
    FeatureBatch,
    FeatureSource,
    load_feature_dataset,
    write_synth_res101,
)
from zsl_bench.data.protocol import make_protocol
from zsl_bench.errors import UserError


def link_files(src: Path, dst: Path, names: tuple[str, ...] | None = None) -> Path:
    """``dst`` with symlinks to the files of ``src`` (all, or ``names``); nothing is copied."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and (names is None or f.name in names):
            (dst / f.name).symlink_to(f)
    return dst


SYNTH_FILES = ("att_splits.mat", "image_files.txt", "attributes.txt", "synth_spec.json", "allclasses.txt")
SYNTH_FILES += ("trainvalclasses.txt", "testclasses.txt", "trainclasses1.txt", "valclasses1.txt")


@pytest.fixture
def synth_split_only(synth_root: Path, tmp_path: Path) -> Path:
    """The synthetic dataset's split and image list (no images, no res101.mat) in a private folder."""
    return link_files(synth_root, tmp_path / "synth", SYNTH_FILES)


def test_reads_the_real_res101_format_on_the_real_cub_split(shared_data: Path, tmp_path: Path) -> None:
    """A res101.mat written the way xlsa17 ships it (cluster paths, [D, N] float64, [N, 1] 1-based labels)."""
    labels = read_dataset("cub", shared_data / "CUB").order.labels  # from images.txt + image_class_labels.txt
    rel = [line.split()[1] for line in (shared_data / "CUB" / "images.txt").read_text().splitlines()]
    files = np.empty((len(rel), 1), dtype=object)
    files[:, 0] = [f"/BS/xian/work/data/CUB/CUB_200_2011/images/{r}" for r in rel]
    rng = np.random.default_rng(0)
    features = rng.random((8, len(rel)))  # D = 8 keeps the file small; the reader does not assume 2048
    root = link_files(shared_data / "CUB", tmp_path / "CUB")
    scipy.io.savemat(
        root / "res101.mat", {"features": features, "labels": (labels + 1.0)[:, None], "image_files": files}
    )

    data = load_feature_dataset("cub", root)
    assert data.sources["order"] == "res101.mat" and data.sources["features"] == "res101.mat [8-d]"
    assert data.image_paths == [] and data.split.num_classes == 200
    np.testing.assert_array_equal(data.labels, labels)
    batch = data.source.get([0, 11787])
    assert batch.single and batch.flipped is None
    np.testing.assert_array_equal(batch.select().numpy(), features[:, [0, 11787]].T.astype(np.float32))
    proto = make_protocol(data.split, data.labels, "search")  # the honest split works on feature datasets too
    assert proto.train_idx.size > 0 and len(data.source) == 11788


def test_synthetic_res101_round_trip(synth_split_only: Path) -> None:
    path = write_synth_res101(synth_split_only)
    first = path.read_bytes()
    assert write_synth_res101(synth_split_only) == path and path.read_bytes() == first  # written once
    data = load_feature_dataset("synth", synth_split_only)
    x = data.source.get(np.arange(len(data.source))).select()
    assert x.shape == (1280, 2048) and x.dtype == torch.float32 and (x >= 0).all()
    mat = scipy.io.loadmat(path)  # the xlsa17 layout: [D, N] features, [N, 1] 1-based labels, [N, 1] cells
    assert mat["features"].shape == (2048, 1280) and mat["labels"].shape == (1280, 1) and mat["labels"].min() == 1
    assert mat["image_files"].shape == (1280, 1) and str(mat["image_files"][0, 0][0]).endswith(".png")


def test_bad_feature_files_are_one_line_user_errors(synth_split_only: Path) -> None:
    with pytest.raises(UserError, match=r"needs .*res101\.mat.*--res101"):
        load_feature_dataset("synth", synth_split_only)
    labels = read_dataset("synth", synth_split_only).order.labels
    path = synth_split_only / "res101.mat"
    scipy.io.savemat(path, {"features": np.ones((labels.size, 4)), "labels": labels[:, None] + 1.0})
    with pytest.raises(UserError, match="looks transposed"):
        load_feature_dataset("synth", synth_split_only)
    scipy.io.savemat(path, {"features": np.ones((4, labels.size)), "labels": labels[::-1, None] + 1.0})
    with pytest.raises(UserError, match=r"labels disagree with image_files\.txt"):
        load_feature_dataset("synth", synth_split_only)
    path.write_bytes(b"not a mat file")
    with pytest.raises(UserError, match="not a readable MATLAB"):
        load_feature_dataset("synth", synth_split_only)
    with pytest.raises(UserError, match=r"unknown data\.features"):
        load_feature_dataset("synth", synth_split_only, "vgg19")


def test_feature_batch_picks_the_flipped_view_per_sample() -> None:
    plain = {"pooled": torch.zeros(4, 3), "tokens": torch.zeros(4, 2, 3)}
    flipped = {"pooled": torch.ones(4, 3), "tokens": torch.ones(4, 2, 3)}
    out = FeatureBatch(plain, flipped).select(torch.tensor([True, False, False, True]))
    assert out["pooled"][:, 0].tolist() == [1, 0, 0, 1] and out["tokens"][:, 0, 0].tolist() == [1, 0, 0, 1]
    assert plain["pooled"].sum() == 0  # the cached batch is not modified
    single = FeatureBatch({"features": torch.arange(6.0).view(3, 2)}, single=True)
    assert torch.equal(single.select(), torch.arange(6.0).view(3, 2)) and len(single) == 3
    with pytest.raises(ValueError, match="no flipped view"):
        single.select(torch.tensor([True, False, False]))


def _build_flips(writer, n: int = 10, rows: tuple[int, ...] = (1, 2, 5, 8)):
    """Plain rows i → [i, i, i]; flipped rows of ``rows`` only → [-i, -i, -i]."""
    writer.flip_only(np.array(rows))
    writer.add("pooled", torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3))
    writer.add("pooled.hflip", -torch.tensor(rows, dtype=torch.float32)[:, None].repeat(1, 3))
    return {"names": ["pooled"], "single": False, "hflip": True}


def test_an_entry_with_flips_of_some_images_serves_those_and_refuses_the_others(tmp_path: Path) -> None:
    source, _ = FeatureStore(tmp_path).open("k", {}, _build_flips, 10)
    [meta] = FeatureStore(tmp_path).entries()
    assert meta["hflip_rows"] == 4 and meta["shapes"] == {"pooled": [10, 3], "pooled.hflip": [4, 3]}
    batch = source.get([8, 3, 1])
    assert batch.flipped is None  # the flipped view is read only when a flip is asked for
    assert batch.select(torch.tensor([False, False, False]))["pooled"][:, 0].tolist() == [8, 3, 1]
    assert batch.flipped is None
    assert batch.select(torch.tensor([True, False, True]))["pooled"][:, 0].tolist() == [-8, 3, -1]
    assert batch.flippable.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="has no flipped view"):
        batch.select(torch.tensor([False, True, False]))
    every = source.get([5, 2])  # all of them flippable: no mask
    assert every.select(torch.tensor([True, True]))["pooled"][:, 0].tolist() == [-5, -2] and every.flippable is None
    clone = pickle.loads(pickle.dumps(source))  # the flip rows travel with the path
    assert clone.get([9, 8]).select(torch.tensor([False, True]))["pooled"][:, 0].tolist() == [9, -8]


def test_the_writer_checks_the_flip_rows(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    with pytest.raises(ValueError, match="ascending, distinct"):
        store.open("a", {}, lambda w: _build_flips(w, rows=(2, 1)), 10)
    with pytest.raises(ValueError, match="ascending, distinct"):
        store.open("b", {}, lambda w: _build_flips(w, rows=(3, 10)), 10)

    def short(writer):
        writer.flip_only(np.array([0, 1]))
        writer.add("pooled", torch.zeros(4, 3))
        writer.add("pooled.hflip", torch.zeros(1, 3))
        return {"names": ["pooled"], "single": False, "hflip": True}

    with pytest.raises(RuntimeError, match=r"wrote \{'pooled.hflip': 1\} rows"):
        store.open("c", {}, short, 4)
    assert store.entries() == [] and not list(tmp_path.glob(".*.tmp-*"))
    with pytest.raises(ValueError, match="flip_rows lists 3"):
        FeatureSource({"pooled": np.zeros((4, 3))}, {"pooled": np.zeros((2, 3))}, flip_rows=np.array([0, 1, 2]))


def _build_rows(n: int, delay: float = 0.0, calls: list[int] | None = None):
    def build(writer):
        if calls is not None:
            calls.append(1)
        for start in range(0, n, 4):
            time.sleep(delay)
            rows = torch.arange(start, min(start + 4, n), dtype=torch.float32)[:, None].repeat(1, 3)
            writer.add("pooled", rows)
        return {"names": ["pooled"], "single": False, "hflip": False}

    return build


def test_store_builds_once_when_two_callers_race(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "features")
    calls: list[int] = []
    results: list[tuple[FeatureSource, bool]] = []
    seen_during_build: list[bool] = []

    def worker() -> None:
        results.append(store.open("k1", {"model": "m", "dataset": "d"}, _build_rows(40, 0.02, calls), 40))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    while not calls:  # the first caller is extracting: no entry may be visible until it is complete
        time.sleep(0.005)
    seen_during_build.append(store.entry("k1").exists())
    for t in threads:
        t.join()
    assert calls == [1] and seen_during_build == [False]
    assert sorted(built for _, built in results) == [False, True]
    for source, _ in results:
        assert torch.equal(source.get([0, 39]).select()["pooled"][:, 0], torch.tensor([0.0, 39.0]))
    assert [p.name for p in (tmp_path / "features").iterdir() if p.name.startswith(".")] == []  # no temp left
    again, built = store.open("k1", {}, _build_rows(40, calls=calls), 40)
    assert not built and calls == [1]
    clone = pickle.loads(pickle.dumps(again))  # travels as its path
    assert len(pickle.dumps(again)) < 500 and torch.equal(
        clone.get([5]).select()["pooled"], again.get([5]).select()["pooled"]
    )


def test_a_failed_extraction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)

    def broken(writer):
        writer.add("pooled", torch.zeros(4, 3))
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        store.open("k", {}, broken, 8)
    assert not store.entry("k").exists() and not list(tmp_path.glob(".k.tmp-*"))
    _, built = store.open("k", {}, _build_rows(8), 8)
    assert built and store.entries()[0]["n"] == 8

    def lost_the_race(writer):  # another node completed the entry meanwhile (a lock its filesystem ignored)
        store.open("other", {}, _build_rows(8), 8)
        os.rename(store.entry("other"), store.entry("k2"))
        return _build_rows(8)(writer)

    source, built = store.open("k2", {}, lost_the_race, 8)
    assert not built and len(source) == 8 and not list(tmp_path.glob(".k2.tmp-*"))


def test_cache_ls_and_rm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = FeatureStore(tmp_path)
    for key in ("resnet_test-synth-aaaa1111", "resnet_test-synth-bbbb2222"):
        store.open(key, {"model": "resnet_test", "dataset": "synth"}, _build_rows(8), 8)
    (tmp_path / ".resnet_test-synth-cccc.tmp-x").mkdir()  # an extraction that died
    assert main(["cache", "ls", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["KEY", "MODEL", "DATASET", "SIZE", "CREATED"]
    assert out[1].split()[:3] == ["resnet_test-synth-aaaa1111", "resnet_test", "synth"] and len(out) == 3

    assert main(["cache", "rm", "no-such-key", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-key" in err and "cache ls" in err
    assert main(["cache", "rm", "resnet_test-synth-aaaa", "--dir", str(tmp_path)]) == 0  # a unique prefix
    assert "removed resnet_test-synth-aaaa1111" in capsys.readouterr().out
    assert [e["key"] for e in store.entries()] == ["resnet_test-synth-bbbb2222"]
    assert main(["cache", "rm", "--all", "--dir", str(tmp_path)]) == 0
    assert store.entries() == [] and sorted(p.name for p in tmp_path.iterdir()) == []
