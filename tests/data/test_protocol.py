import numpy as np
import pytest

from zsl_bench.data.datasets import load_dataset
from zsl_bench.data.protocol import holdout_split, make_protocol
from zsl_bench.data.xlsa17 import read_att_splits
from zsl_bench.errors import UserError


def test_holdout_split_is_per_class_and_disjoint():
    labels = np.repeat(np.arange(4), [10, 20, 1, 5])
    idx = np.arange(labels.size)
    kept, out = holdout_split(idx, labels, 0.2, seed=0)
    assert np.intersect1d(kept, out).size == 0
    assert np.array_equal(np.sort(np.concatenate([kept, out])), idx)
    assert np.bincount(labels[out], minlength=4).tolist() == [2, 4, 1, 1]  # every class gives at least one
    again = holdout_split(idx, labels, 0.2, seed=0)
    assert np.array_equal(again[1], out)


def test_search_protocol_on_synth(synth_root):
    data = load_dataset("synth", synth_root)
    split, labels = data.split, data.labels
    proto = make_protocol(split, labels, "search", holdout_frac=0.2)
    val, test = proto.evals
    assert (val.name, test.name) == ("val", "test")
    # training never sees val classes, unseen classes or test images
    train_cls = set(labels[proto.train_idx])
    assert train_cls == set(proto.train_classes)
    assert not train_cls & set(val.unseen_classes)
    assert not train_cls & set(test.unseen_classes)
    assert not set(proto.train_idx) & (set(split.test_seen_loc) | set(split.test_unseen_loc))
    assert not set(proto.train_idx) & set(val.seen_idx)
    # val: held-out images of train classes (seen) + val-class images (unseen)
    assert set(labels[val.seen_idx]) <= set(proto.train_classes)
    assert set(labels[val.unseen_idx]) == set(val.unseen_classes)
    # test: the xlsa17 test split, with all trainval classes as seen
    assert np.array_equal(test.seen_classes, np.unique(labels[split.trainval_loc]))
    assert len(test.unseen_classes) == 8


def test_final_protocol_trains_on_trainval(synth_root):
    data = load_dataset("synth", synth_root)
    proto = make_protocol(data.split, data.labels, "final")
    assert [e.name for e in proto.evals] == ["test"]
    assert np.array_equal(proto.train_idx, np.sort(data.split.trainval_loc))


def test_search_needs_train_and_val_locs(shared_data):
    split = read_att_splits(shared_data / "CUB" / "att_splits.mat")  # this copy has no train_loc/val_loc
    labels = np.zeros(11788, dtype=np.int64)
    with pytest.raises(UserError, match="no train_loc/val_loc"):
        make_protocol(split, labels, "search")
