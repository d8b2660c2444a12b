"""The readers on the real xlsa17 files of ../shared/data: counts, label mapping, honest validation split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from zsl_bench.cli import main
from zsl_bench.data.datasets import DATASETS, inspect_dataset, load_dataset, read_dataset
from zsl_bench.data.layouts import read_res101
from zsl_bench.data.protocol import make_protocol
from zsl_bench.data.splits import read_class_list
from zsl_bench.errors import UserError

FOLDER = {"cub": "CUB", "awa2": "AWA2", "sun": "SUN"}

# The numbers: classes, attributes, seen, unseen, trainval, test_seen, test_unseen.
EXPECTED = {
    "cub": (200, 312, 150, 50, 7057, 1764, 2967),
    "awa2": (50, 85, 40, 10, 23527, 5882, 7913),
    "sun": (717, 102, 645, 72, 10320, 2580, 1440),
}
KEYS = ("classes", "attributes", "seen", "unseen", "trainval", "test_seen", "test_unseen")
# honest train / val (train_loc ∩ trainval, val_loc ∩ trainval), images N, images listed without images
HONEST = {"cub": (4702, 2355, 11788, 11788), "awa2": (16187, 7340, 37322, 37322), "sun": (9280, 1040, 14340, 0)}


def link_folder(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    """``dst`` with a symlink to every file of ``src`` except ``skip`` (the shared files are never copied)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name not in skip:
            (dst / f.name).symlink_to(f)
    return dst


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_counts_on_real_files(shared_data: Path, name: str) -> None:
    report, notes = inspect_dataset(name, shared_data / FOLDER[name])
    assert tuple(report[k] for k in KEYS) == EXPECTED[name]
    train, val, n, listed = HONEST[name]
    assert (report["train"], report["val"], report["images"], report["images_listed"]) == (train, val, n, listed)
    assert report["images_missing"] == listed  # no images in ../shared/data
    # every xlsa17 class list present was checked against the per-image labels
    assert report["sources"]["checked_lists"].split(" + ") == [
        "trainvalclasses.txt",
        "testclasses.txt",
        "trainclasses1.txt",
        "valclasses1.txt",
    ]
    assert notes  # says that images were not checked


def test_cli_inspect_json_on_real_files(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in sorted(EXPECTED):
        assert main(["data", "inspect", "--dataset", name, "--root", str(shared_data / FOLDER[name]), "--json"]) == 0
        out, err = capsys.readouterr()
        report = json.loads(out)
        assert tuple(report[k] for k in KEYS) == EXPECTED[name]
        assert {"train", "val", "images_listed", "images_missing"} <= set(report)
        assert err.startswith("note: ")


def test_cli_inspect_subprocess(shared_data: Path, cli) -> None:
    code, out, err = cli("data", "inspect", "--dataset", "sun", "--root", str(shared_data / "SUN"), "--json")
    assert code == 0, err
    assert json.loads(out)["unseen"] == 72
    code, out, _ = cli("data", "inspect", "--dataset", "cub", "--root", str(shared_data / "CUB"))
    assert code == 0 and "test_unseen: 2967" in out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_honest_split_never_touches_test_images(shared_data: Path, name: str) -> None:
    view = read_dataset(name, shared_data / FOLDER[name])
    split, labels = view.split, view.order.labels
    test = np.union1d(split.test_seen_loc, split.test_unseen_loc)
    # the xlsa17 train/val locs DO overlap test_seen (CUB: in sent_splits.mat) ...
    assert np.intersect1d(np.union1d(split.train_loc, split.val_loc), split.test_seen_loc).size > 0
    proto = make_protocol(split, labels, "search", holdout_frac=0.2)
    val, test_eval = proto.evals
    # ... the protocol does not: no test image is trained on or validated on
    for used in (proto.train_idx, val.seen_idx, val.unseen_idx):
        assert np.intersect1d(used, test).size == 0
    assert np.intersect1d(proto.train_idx, val.indices).size == 0
    assert np.union1d(np.union1d(proto.train_idx, val.seen_idx), val.unseen_idx).size == split.trainval_loc.size
    # validation classes play the unseen role: never trained on; they are exactly valclasses1.txt
    root = shared_data / FOLDER[name]
    np.testing.assert_array_equal(val.unseen_classes, read_class_list(root / "valclasses1.txt", split))
    np.testing.assert_array_equal(proto.train_classes, read_class_list(root / "trainclasses1.txt", split))
    assert not set(labels[proto.train_idx]) & set(val.unseen_classes)
    assert set(labels[val.seen_idx]) == set(proto.train_classes)
    # test: the xlsa17 test split; its unseen classes are exactly testclasses.txt
    np.testing.assert_array_equal(test_eval.unseen_classes, read_class_list(root / "testclasses.txt", split))
    np.testing.assert_array_equal(test_eval.seen_classes, read_class_list(root / "trainvalclasses.txt", split))


def test_cub_val_split_from_class_lists_equals_sent_splits(shared_data: Path, tmp_path: Path) -> None:
    with_sent = read_dataset("cub", shared_data / "CUB")
    without = read_dataset("cub", link_folder(shared_data / "CUB", tmp_path / "CUB", skip=("sent_splits.mat",)))
    assert (with_sent.sources["val_split"], without.sources["val_split"]) == (
        "sent_splits.mat",
        "trainclasses1.txt + valclasses1.txt",
    )
    for a, b in (
        (with_sent.split.train_loc, without.split.train_loc),
        (with_sent.split.val_loc, without.split.val_loc),
    ):
        np.testing.assert_array_equal(np.intersect1d(a, with_sent.split.trainval_loc), b)


def test_cub_without_any_val_split_source(shared_data: Path, tmp_path: Path) -> None:
    skip = ("sent_splits.mat", "trainclasses1.txt", "valclasses1.txt")
    view = read_dataset("cub", link_folder(shared_data / "CUB", tmp_path / "CUB", skip=skip))
    assert view.split.train_loc is None and view.sources["val_split"] == "none"
    report, _ = inspect_dataset("cub", tmp_path / "CUB")
    assert report["train"] is None and report["val"] is None and report["unseen"] == 50
    with pytest.raises(UserError, match="no train_loc/val_loc"):
        make_protocol(view.split, view.order.labels, "search")


def test_awa2_split_files_only_uses_class_lists(shared_data: Path, tmp_path: Path) -> None:
    """Without any per-image list, seen/unseen come from the class lists and nothing claims to be checked."""
    root = link_folder(shared_data / "AWA2", tmp_path / "AWA2", skip=("image_label_PS.txt", "test_seen_PS.txt"))
    report, notes = inspect_dataset("awa2", root)
    assert (report["seen"], report["unseen"], report["images"], report["images_listed"]) == (40, 10, 37322, 0)
    assert (report["train"], report["val"]) == (16187, 7340)  # honest split needs no labels
    assert report["sources"]["order"] == "none" and any("not checked" in n for n in notes)


def test_awa2_listing_on_disk_matches_the_lists(shared_data: Path, tmp_path: Path) -> None:
    """The real AwA2 order rule on a real-size tree of empty files: same labels as the PS lists give."""
    names = []
    for f in ("image_label_PS.txt", "test_seen_PS.txt"):
        names += [line.split()[0] for line in (shared_data / "AWA2" / f).read_text().splitlines() if line.strip()]
    root = link_folder(shared_data / "AWA2", tmp_path / "AWA2", skip=("image_label_PS.txt", "test_seen_PS.txt"))
    image_dir = root / DATASETS.get("awa2").image_dir
    for folder in {n.split("/")[0] for n in names}:
        (image_dir / folder).mkdir(parents=True)
    for n in names:
        (image_dir / n).touch()
    on_disk = read_dataset("awa2", root)
    from_lists = read_dataset("awa2", shared_data / "AWA2")
    assert on_disk.sources["order"] == "Animals_with_Attributes2/JPEGImages listing"
    np.testing.assert_array_equal(on_disk.order.labels, from_lists.order.labels)
    data = load_dataset("awa2", root)  # complete: every image present
    assert len(data.image_paths) == 37322 and data.image_paths[0].name == "antelope_10001.jpg"
    (image_dir / names[5]).unlink()
    with pytest.raises(UserError, match="found 37321 images"):
        read_dataset("awa2", root)


def test_cub_images_missing_and_complete(shared_data: Path, tmp_path: Path) -> None:
    root = link_folder(shared_data / "CUB", tmp_path / "CUB")
    rel = [line.split()[1] for line in (shared_data / "CUB" / "images.txt").read_text().splitlines()]
    image_dir = root / DATASETS.get("cub").image_dir
    for folder in {r.split("/")[0] for r in rel}:
        (image_dir / folder).mkdir(parents=True)
    for r in rel[3:]:
        (image_dir / r).touch()
    with pytest.raises(UserError) as exc:
        inspect_dataset("cub", root)
    message = str(exc.value)
    assert message.startswith("3 of 11788 images are missing") and "\n" not in message
    assert all(r in message for r in rel[:3])
    with pytest.raises(UserError, match="3 of 11788 images are missing"):
        load_dataset("cub", root)
    for r in rel[:3]:
        (image_dir / r).touch()
    report, notes = inspect_dataset("cub", root)
    assert (report["images_listed"], report["images_missing"], notes) == (11788, 0, [])
    data = load_dataset("cub", root)
    assert data.sources["val_split"] == "sent_splits.mat" and data.attributes.group_names[0] == "bill shape"
    assert data.image_paths[0] == image_dir / rel[0]


def test_sun_training_needs_res101(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no per-image list for sun \(found labels only \(class-major.*res101\.mat"):
        load_dataset("sun", shared_data / "SUN")
    # a res101.mat in the xlsa17 form (cluster paths, 1-based labels) gives the files
    view = read_dataset("sun", shared_data / "SUN")
    labels = view.order.labels
    paths = [
        f"/BS/Deep_Fragments/work/MSc/data/SUN/images/{view.split.class_names[c][0]}/{view.split.class_names[c]}/"
        f"sun_{i:05d}.jpg"
        for i, c in enumerate(labels)
    ]
    cell = np.empty((len(paths), 1), dtype=object)
    cell[:, 0] = paths
    root = link_folder(shared_data / "SUN", tmp_path / "SUN")
    scipy.io.savemat(root / "res101.mat", {"image_files": cell, "labels": (labels + 1).reshape(-1, 1)})
    report, _ = inspect_dataset("sun", root)
    assert (report["images_listed"], report["images_missing"], report["sources"]["order"]) == (
        14340,
        14340,
        "res101.mat",
    )
    order = read_res101(root / "res101.mat", view.split, DATASETS.get("sun").anchors)
    assert order.files[0] == "images/a/abbey/sun_00000.jpg"
    with pytest.raises(UserError, match="14340 of 14340 images are missing"):
        load_dataset("sun", root)


def test_real_attribute_groups_match_duet(shared_data: Path) -> None:
    for name in sorted(EXPECTED):
        root = shared_data / FOLDER[name]
        info = read_dataset(name, root).attributes
        duet = json.loads((root / "attributeindex2prompt.json").read_text())
        assert info.groups == [duet[str(i)] for i in range(len(info))]
        assert len(info.group_names) == {"cub": 28, "awa2": 12, "sun": 14}[name]


# ----------------------------------------------------------------------------------------------- aPY, AwA1


def _fake_res101(root: Path, dataset: str, path_of) -> np.ndarray:
    """Write ``root/res101.mat`` with labels that agree with the split and every class list (the real file is not
    in ../shared/data): train_loc / val_loc images get train / val classes (aPY: trainval gets seen classes),
    test_unseen the unseen classes, round robin. Returns the 0-based labels."""
    split = read_dataset(dataset, root).split
    lists = {
        role: read_class_list(root / f, split)
        for role, f in (
            ("seen", "trainvalclasses.txt"),
            ("unseen", "testclasses.txt"),
            ("train", "trainclasses1.txt"),
            ("val", "valclasses1.txt"),
        )
    }
    labels = np.full(
        int(max(loc.max() for loc in (split.trainval_loc, split.test_seen_loc, split.test_unseen_loc))) + 1, -1
    )
    groups = [(split.test_unseen_loc, lists["unseen"])]
    if split.train_loc is not None:
        groups += [(split.train_loc, lists["train"]), (split.val_loc, lists["val"])]
    else:
        groups += [(np.r_[split.trainval_loc, split.test_seen_loc], lists["seen"])]
    for loc, classes in groups:
        labels[np.sort(loc)] = classes[np.arange(loc.size) % classes.size]
    assert (labels >= 0).all()
    cell = np.empty((labels.size, 1), dtype=object)
    cell[:, 0] = [path_of(i) for i in range(labels.size)]
    scipy.io.savemat(root / "res101.mat", {"image_files": cell, "labels": (labels + 1).reshape(-1, 1)})
    return labels


def test_apy_with_res101_derives_the_honest_split_from_the_class_lists(shared_data: Path, tmp_path: Path) -> None:
    root = link_folder(shared_data / "APY", tmp_path / "APY")
    aps = "/BS/xian/work/data/APY/images_att/VOCdevkit/VOC2012/JPEGImages/2008_{:06d}.jpg"
    yahoo = "/BS/xian/work/data/APY/images_att/ayahoo_test_images/bag_{}.jpg"
    labels = _fake_res101(root, "apy", lambda i: aps.format(i) if i < 12695 else yahoo.format(i))
    view = read_dataset("apy", root)
    assert view.sources["order"] == "res101.mat" and view.sources["val_split"] == "trainclasses1.txt + valclasses1.txt"
    assert view.sources["checked_lists"].count(".txt") == 4
    np.testing.assert_array_equal(view.order.labels, labels)
    assert view.order.files[0] == "VOCdevkit/VOC2008/JPEGImages/2008_000000.jpg"
    assert view.order.files[-1] == "ayahoo_test_images/bag_15338.jpg"
    train, val = view.split.train_loc, view.split.val_loc
    assert train.size + val.size == 5932 and not set(labels[val]) & set(labels[train])
    report, notes = inspect_dataset("apy", root)
    assert (report["train"], report["val"], report["images_listed"]) == (train.size, val.size, 15339)
    assert any("no image folder" in n for n in notes)
    with pytest.raises(UserError, match=r"15339 of 15339 images are missing.*zsl-bench data fetch apy"):
        load_dataset("apy", root)


def test_awa1_with_res101_points_at_the_features(shared_data: Path, tmp_path: Path) -> None:
    root = link_folder(shared_data / "AWA1", tmp_path / "AWA1")
    _fake_res101(root, "awa1", lambda i: f"/BS/xian/work/data/Animals_with_Attributes//JPEGImages/a/a_{i}.jpg")
    view = read_dataset("awa1", root)
    assert view.order.files[0] == "Animals_with_Attributes/JPEGImages/a/a_0.jpg"
    assert view.attributes.group_names[0] == "color" and len(view.attributes) == 85
    with pytest.raises(UserError, match=r"images are missing.*data\.features=res101"):
        load_dataset("awa1", root)
