"""The evaluation of an epoch: its batch size follows the device unless set, and no batch size changes a metric."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from zsl_bench.config import EVAL_BATCH_ACCELERATOR, EVAL_BATCH_CPU, EvalConfig, build_config
from zsl_bench.data.datasets import load_dataset
from zsl_bench.data.protocol import make_protocol
from zsl_bench.data.stream import open_images
from zsl_bench.engine.evaluate import evaluate
from zsl_bench.engine.loops import Inputs, class_scores, model_input
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model


def test_the_default_batch_follows_the_device_and_a_number_wins() -> None:
    auto = EvalConfig()
    assert auto.batch_size is None and build_config(None, {"eval.batch_size": "auto"}).eval.batch_size is None
    assert auto.batch_for("cpu") == auto.batch_for(torch.device("cpu")) == EVAL_BATCH_CPU == 64
    assert auto.batch_for("cuda:1") == auto.batch_for(torch.device("cuda", 0)) == EVAL_BATCH_ACCELERATOR == 256
    fixed = build_config(None, {"eval.batch_size": 96}).eval
    assert fixed.batch_for("cpu") == fixed.batch_for("cuda") == 96


@pytest.mark.parametrize("value", [0, -4, 1.5, "big", 1.0e12])
def test_a_bad_batch_size_names_the_key(value) -> None:
    with pytest.raises(UserError, match=r"eval\.batch_size.*'auto'"):
        build_config(None, {"eval.batch_size": value})


@pytest.fixture(scope="module")
def scored(synth_root):
    """A zeromamba_test (random weights, its scans on the CPU default path) and what ``evaluate`` needs."""
    data = load_dataset("synth", synth_root)
    proto = make_protocol(data.split, data.labels, "search", 0.2, seed=0)
    evals = tuple(replace(ev, seen_idx=ev.seen_idx[::3], unseen_idx=ev.unseen_idx[::3]) for ev in proto.evals)
    proto = replace(proto, evals=evals)
    spec = MODELS.get("zeromamba_test").transform_at(32)
    torch.manual_seed(0)
    model = build_model("zeromamba_test", data.split.num_attributes, spec.size)
    inputs = Inputs(open_images(data, spec), spec, torch.device("cpu"))
    att = torch.as_tensor(data.split.att, dtype=torch.float32)
    return model, inputs, proto, att, data.labels


def _evaluate(scored, used: list[int], **settings):
    """``evaluate`` with ``settings``; the batch size of every scoring call goes to ``used``."""
    model, inputs, proto, att, labels = scored

    def scores_of(*args, batch_size: int):
        used.append(batch_size)
        return class_scores(*args, batch_size=batch_size)

    return evaluate(model, inputs, proto, att, labels=labels, settings=EvalConfig(**settings), scores_of=scores_of)


def test_metrics_do_not_depend_on_the_batch_size(scored) -> None:
    """Unset (64 on CPU), 256 (the old default) and batches that leave a remainder: the same scores to float
    rounding, and the same metrics."""
    used: dict[int | None, list[int]] = {None: [], 256: [], 37: []}
    runs = {batch: _evaluate(scored, used[batch], batch_size=batch) for batch in used}
    assert used == {None: [64, 64], 256: [256, 256], 37: [37, 37]}  # val, then test
    records, scores = runs[256]
    for batch, (other, other_scores) in runs.items():
        np.testing.assert_allclose(other_scores["scores"], scores["scores"], rtol=1e-5, atol=1e-6, err_msg=str(batch))
        assert other.keys() == records.keys()
        for split, record in records.items():
            for key, value in record.items():
                if isinstance(value, float):
                    assert other[split][key] == pytest.approx(value, abs=1e-6), (batch, split, key)
                else:
                    assert other[split][key] == value, (batch, split, key)


def test_scores_are_the_models_eval_mode_outputs_whatever_the_batch(scored) -> None:
    """``class_scores`` in batches of 5 equals one forward over all the images (eval mode, no grad)."""
    model, inputs, proto, att, _ = scored
    idx = proto.evals[0].indices[:23]
    batched = class_scores(model, inputs, idx, att, batch_size=5)
    model.eval()
    with torch.no_grad():
        images = model_input(inputs.source.get(idx), inputs.spec, False, None, inputs.device)  # [23, 3, S, S]
        whole = model.class_scores(model(images), att).numpy()
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)
