"""Dataset readers on small hand-made folders: label mapping, validation split sources, bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from zsl_bench.cli import main
from zsl_bench.data.datasets import default_root, inspect_dataset, load_dataset, read_dataset
from zsl_bench.data.layouts import _resolve, class_major_labels, read_res101
from zsl_bench.data.protocol import assert_honest, make_protocol
from zsl_bench.data.splits import check_class_lists, fill_val_split
from zsl_bench.data.xlsa17 import read_att_splits, write_att_splits
from zsl_bench.errors import UserError

from .conftest import TINY_CUB, TINY_PER_CLASS

CUB_ANCHORS = (("images", "CUB_200_2011/images"),)


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Run the CLI in-process; assert exit 2 and a single stderr line holding ``needles``; return it."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert out == ""
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------------ tiny CUB


def test_tiny_cub_labels_follow_the_class_number_prefix(tiny_cub) -> None:
    root, facts = tiny_cub
    data = load_dataset(TINY_CUB, root)
    np.testing.assert_array_equal(data.labels, facts["labels"])
    assert [p.relative_to(root / "CUB_200_2011/images").as_posix() for p in data.image_paths] == facts["rel"]
    assert data.sources["order"] == "CUB_200_2011/images.txt"
    assert data.sources["val_split"] == "trainclasses1.txt + valclasses1.txt"  # no train_loc/val_loc in the file
    assert data.attributes.groups == ["bill shape", "bill shape", "wing color", "size"]
    assert data.attributes.values == ["curved", "dagger", "blue", "small"]
    # the derived validation split: trainval images of the val class, nothing else
    np.testing.assert_array_equal(np.unique(data.labels[data.split.val_loc]), facts["val"])
    assert np.intersect1d(data.split.val_loc, data.split.test_seen_loc).size == 0
    report, notes = inspect_dataset(TINY_CUB, root)
    assert (report["classes"], report["seen"], report["unseen"], report["images_missing"], notes) == (6, 4, 2, 0, [])
    assert (report["train"], report["val"]) == (3 * (TINY_PER_CLASS - 1), TINY_PER_CLASS - 1)


def test_tiny_cub_protocol_is_honest(tiny_cub) -> None:
    root, facts = tiny_cub
    data = load_dataset(TINY_CUB, root)
    proto = make_protocol(data.split, data.labels, "search", holdout_frac=0.25)
    val, _ = proto.evals
    np.testing.assert_array_equal(val.unseen_classes, facts["val"])
    assert_honest(proto, data.split)
    cheat = replace(proto, train_idx=np.r_[proto.train_idx, data.split.test_seen_loc[:1]])
    with pytest.raises(ValueError, match="1 test images in train"):
        assert_honest(cheat, data.split)


def test_mislabelled_class_list_is_caught(tiny_cub) -> None:
    root, facts = tiny_cub
    names = facts["split"].class_names
    (root / "testclasses.txt").write_text(f"{names[facts['unseen'][0]]}\n{names[facts['val'][0]]}\n")
    with pytest.raises(UserError, match=r"testclasses\.txt: the unseen images of the split"):
        read_dataset(TINY_CUB, root)


def test_images_txt_that_contradicts_its_labels(tiny_cub) -> None:
    root, _ = tiny_cub
    labels = root / "CUB_200_2011" / "image_class_labels.txt"
    lines = labels.read_text().splitlines()
    lines[0] = "1 2"
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"images.txt line 1: .* is not in the folder of its class"):
        read_dataset(TINY_CUB, root)


def test_sent_splits_must_match(tiny_cub) -> None:
    root, facts = tiny_cub
    split = facts["split"]
    tv = np.sort(split.trainval_loc)
    sent = replace(split, train_loc=tv[:6], val_loc=tv[6:])
    write_att_splits(root / "sent_splits.mat", sent)
    filled, source = fill_val_split(root, split, None)
    assert source == "sent_splits.mat" and np.array_equal(filled.val_loc, tv[6:])
    write_att_splits(root / "sent_splits.mat", replace(sent, test_seen_loc=split.test_seen_loc[:-1]))
    with pytest.raises(UserError, match=r"sent_splits\.mat field 'test_seen_loc' differs"):
        fill_val_split(root, split, None)


def test_check_class_lists_reports_missing_classes(tiny_cub) -> None:
    root, facts = tiny_cub
    split, labels = facts["split"], facts["labels"]
    filled, _ = fill_val_split(root, split, labels)
    assert check_class_lists(root, filled, labels) == [
        "trainvalclasses.txt",
        "testclasses.txt",
        "trainclasses1.txt",
        "valclasses1.txt",
    ]
    names = split.class_names
    (root / "trainclasses1.txt").write_text(f"{names[0]}\n")
    with pytest.raises(UserError, match=r"trainclasses1\.txt: the train images of the split has images of"):
        check_class_lists(root, filled, labels)


def test_default_roots() -> None:
    assert default_root("cub") == Path("data/CUB") and default_root("synth") == Path("data/synth")
    assert default_root("apy") == Path("data/APY") and default_root("awa1") == Path("data/AWA1")


def test_tiny_cub_under_the_name_cub_is_another_dataset(capsys, tiny_cub) -> None:
    root, _ = tiny_cub
    line = one_line_error(
        capsys, ["data", "inspect", "--dataset", "cub", "--root", str(root)], "6 classes x 4 attributes"
    )
    assert f"{root / 'att_splits.mat'} has" in line and "dataset 'cub' has 200 x 312" in line
    with pytest.raises(UserError, match="pass the dataset this folder holds"):
        load_dataset("cub", root)


# ------------------------------------------------------------------------------------------------ res101


def test_res101_paths_resolve_by_suffix() -> None:
    awa2 = {"JPEGImages": "Animals_with_Attributes2/JPEGImages"}
    raw = "/BS/xian/work/data/Animals_with_Attributes2//JPEGImages/antelope/a_1.jpg"
    assert _resolve(raw, awa2) == "Animals_with_Attributes2/JPEGImages/antelope/a_1.jpg"
    raw = "/BS/Deep_Fragments/work/MSc/CUB_200_2011/CUB_200_2011/images/001.Black_footed_Albatross/X.jpg"
    assert _resolve(raw, dict(CUB_ANCHORS)) == "CUB_200_2011/images/001.Black_footed_Albatross/X.jpg"
    assert _resolve("/no/anchor/here.jpg", dict(CUB_ANCHORS)) is None
    # aPY: two anchors, the last one in the path wins
    apy = {"JPEGImages": "VOCdevkit/VOC2008/JPEGImages", "ayahoo_test_images": "ayahoo_test_images"}
    assert _resolve("/x/APY/JPEGImages/2008_000001.jpg", apy) == "VOCdevkit/VOC2008/JPEGImages/2008_000001.jpg"
    assert _resolve("/x/JPEGImages/../ayahoo_test_images/bag_1.jpg", apy) == "ayahoo_test_images/bag_1.jpg"


def test_res101_wins_over_the_own_list(tiny_cub) -> None:
    root, facts = tiny_cub
    labels = facts["labels"]
    raw = [f"/BS/Deep_Fragments/work/MSc/CUB_200_2011/CUB_200_2011/images/{r}" for r in facts["rel"]]
    cell = np.empty((len(raw), 1), dtype=object)
    cell[:, 0] = raw
    scipy.io.savemat(root / "res101.mat", {"image_files": cell, "labels": labels.reshape(-1, 1) + 1, "features": 0})
    data = load_dataset(TINY_CUB, root)
    assert data.sources["order"] == "res101.mat"
    np.testing.assert_array_equal(data.labels, labels)
    bad = labels.reshape(-1, 1) + 1
    bad[0] = 99
    scipy.io.savemat(root / "res101.mat", {"image_files": cell, "labels": bad})
    with pytest.raises(UserError, match=r"1-based class ids in 1\.\.6"):
        read_res101(root / "res101.mat", facts["split"], CUB_ANCHORS)


def test_class_major_rule_refuses_a_mixed_class(tiny_cub) -> None:
    _, facts = tiny_cub
    split = facts["split"]
    assert class_major_labels(split, per_class=4) is None  # 30 images, not 6 x 4
    idx = np.arange(20)
    sorted_split = replace(  # classes 0-3 seen (image 0 of each test-seen), classes 4-5 unseen
        split,
        trainval_loc=idx[idx % 5 != 0],
        test_seen_loc=idx[idx % 5 == 0],
        test_unseen_loc=np.arange(20, 30),
    )
    order = class_major_labels(sorted_split, per_class=5)
    assert order is not None and order.files is None and order.labels[-1] == 5
    mixed = replace(sorted_split, trainval_loc=idx[(idx % 5 != 0) & (idx != 19)], test_unseen_loc=np.r_[19, 20:30])
    assert class_major_labels(mixed, per_class=5) is None


# --------------------------------------------------------------------------------------------- bad input


def test_missing_root(capsys, tmp_path: Path) -> None:
    one_line_error(capsys, ["data", "inspect", "--dataset", "cub", "--root", str(tmp_path / "nope")], "not found")


def test_missing_and_unreadable_att_splits(capsys, tmp_path: Path) -> None:
    one_line_error(capsys, ["data", "inspect", "--dataset", "sun", "--root", str(tmp_path)], "att_splits.mat not found")
    (tmp_path / "att_splits.mat").write_bytes(b"garbage" * 50)
    one_line_error(capsys, ["data", "inspect", "--dataset", "sun", "--root", str(tmp_path)], "not a readable MATLAB")


def _rewrite(root: Path, **fields) -> None:
    mat = {k: v for k, v in scipy.io.loadmat(root / "att_splits.mat").items() if not k.startswith("__")}
    for key, value in fields.items():
        if value is None:
            del mat[key]
        else:
            mat[key] = value
    scipy.io.savemat(root / "att_splits.mat", mat)


def _change(mat: dict, key: str, how: str | None):
    """The new value of field ``key`` (None: delete it)."""
    if how is None:
        return None
    loc = mat[key]
    if how == "transpose":
        return loc.T
    if how == "zero_based":
        return loc - 1
    if how == "duplicate":
        return np.r_[loc, loc[:1]]
    if how == "overlap":
        return np.r_[loc, mat["trainval_loc"][:1]]
    return np.r_[loc[:-1], [[100]]]  # out_of_range


@pytest.mark.parametrize(
    ("fields", "needles"),
    [
        ({"trainval_loc": None}, ["has no field 'trainval_loc'"]),
        ({"att": "transpose"}, ["field 'att'", "transposed"]),
        (dict.fromkeys(("trainval_loc", "test_seen_loc", "test_unseen_loc"), "zero_based"), ["< 1", "1-based"]),
        ({"test_seen_loc": "duplicate"}, ["'test_seen_loc' repeats image index"]),
        ({"test_seen_loc": "overlap"}, ["trainval_loc and test_seen_loc share 1 images"]),
        ({"test_unseen_loc": "out_of_range"}, ["test_unseen_loc has 0-based index 99", "only N=30"]),
    ],
)
def test_bad_split_files(capsys, tiny_cub, fields: dict, needles: list[str]) -> None:
    root, _ = tiny_cub
    mat = scipy.io.loadmat(root / "att_splits.mat")
    changes = {key: _change(mat, key, how) for key, how in fields.items()}
    _rewrite(root, **changes)
    message = one_line_error(capsys, ["data", "inspect", "--dataset", TINY_CUB, "--root", str(root)], *needles)
    assert str(root) in message


def test_images_missing_names_count_and_first_three(capsys, tiny_cub) -> None:
    root, facts = tiny_cub
    for rel in facts["rel"][7:11]:
        (root / "CUB_200_2011" / "images" / rel).unlink()
    message = one_line_error(
        capsys, ["data", "inspect", "--dataset", TINY_CUB, "--root", str(root)], "4 of 30 images are missing"
    )
    assert all(r in message for r in facts["rel"][7:10]) and facts["rel"][10] not in message
    assert f"zsl-bench data fetch {TINY_CUB} --root {root}" in message  # the declared hint, under its name


def test_bad_class_list_line(capsys, tiny_cub) -> None:
    root, _ = tiny_cub
    (root / "valclasses1.txt").write_text("999.No_such_bird\n")
    one_line_error(capsys, ["data", "inspect", "--dataset", TINY_CUB, "--root", str(root)], "valclasses1.txt line 1")


def test_inspect_prints_a_table(capsys, tiny_cub) -> None:
    root, _ = tiny_cub
    assert main(["data", "inspect", "--dataset", TINY_CUB, "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "     test_unseen: 10" in out and "sources:" in out and err == ""


def test_read_att_splits_used_by_readers_is_unchanged(tiny_cub) -> None:
    root, facts = tiny_cub
    assert read_att_splits(root / "att_splits.mat") == facts["split"]
