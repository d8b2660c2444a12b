"""Tests for zsl_bench.metrics: hand-computed examples, brute-force oracles and hypothesis properties."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zsl_bench.metrics import (
    ausuc,
    calibrate_gamma,
    czsl_accuracy,
    gzsl_accuracy,
    harmonic_mean,
    per_class_accuracy,
)

PROPERTY = settings(max_examples=60, deadline=None)


# ------------------------------------------------------------------------------------------------- oracles


def loop_per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: list[int]) -> float:
    """Plain-Python reference for per_class_accuracy."""
    accs = []
    for c in sorted(set(classes)):
        idx = [i for i, y in enumerate(y_true) if y == c]
        if idx:
            accs.append(sum(y_pred[i] == c for i in idx) / len(idx))
    return sum(accs) / len(accs)


def argmax_gzsl(scores: np.ndarray, y: np.ndarray, seen: list[int], unseen: list[int], gamma: float) -> dict:
    """Reference GZSL: subtract gamma from the seen columns, mask other columns, np.argmax, per-class means."""
    calibrated = scores.astype(np.float64)
    calibrated[:, seen] -= gamma
    labels = np.sort(seen + unseen)  # ascending: np.argmax breaks ties towards the smaller class id
    pred = labels[np.argmax(calibrated[:, labels], axis=1)]
    in_u, in_s = np.isin(y, unseen), np.isin(y, seen)
    u = loop_per_class_accuracy(y[in_u], pred[in_u], unseen)
    s = loop_per_class_accuracy(y[in_s], pred[in_s], seen)
    return {"u": u, "s": s, "h": 0.0 if u + s == 0 else 2 * u * s / (u + s)}


# ------------------------------------------------------------------------------------------- strategies


@dataclass
class Problem:
    scores: np.ndarray  # [N, C]
    y: np.ndarray  # [N]
    seen: list[int]
    unseen: list[int]


@st.composite
def problems(draw: st.DrawFn, integer_scores: bool | None = None, infinities: bool = False) -> Problem:
    """A small GZSL problem; both sides have samples; some classes may be outside seen ∪ unseen.

    Integer scores produce many exact ties; ``infinities`` mixes ±inf into them (masked logits).
    """
    c = draw(st.integers(2, 7))
    perm = draw(st.permutations(range(c)))
    n_seen = draw(st.integers(1, c - 1))
    n_unseen = draw(st.integers(1, c - n_seen))
    seen, unseen = sorted(perm[:n_seen]), sorted(perm[n_seen : n_seen + n_unseen])
    labels = seen + unseen
    y = [draw(st.sampled_from(seen)), draw(st.sampled_from(unseen))]
    y += draw(st.lists(st.sampled_from(labels), max_size=25))
    n = len(y)
    if integer_scores is None:
        integer_scores = draw(st.booleans())
    if integer_scores:
        values = st.integers(-3, 3).map(float)
        if infinities:
            values = values | st.sampled_from([np.inf, -np.inf])
        flat = draw(st.lists(values, min_size=n * c, max_size=n * c))
        scores = np.array(flat, dtype=np.float64).reshape(n, c)
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        scores = rng.normal(scale=draw(st.sampled_from([0.01, 1.0, 50.0])), size=(n, c))
    return Problem(scores, np.array(y), seen, unseen)


HALF_STEPS = st.integers(-9, 9).map(lambda k: k / 2)  # exact in binary: no rounding in s - gamma


# ---------------------------------------------------------------------------------------- hand examples
#
# GZSL example used below: classes 0..4, seen {0, 1}, unseen {2, 3}; column 4 is outside the label space and
# has the highest score in rows 0 and 1, so it must never win.
#
#  row  y   scores (cols 0..4)          best seen   best unseen   unseen wins iff gamma > best_seen - best_unseen
#   0   0   .9  .1  .5  .2  10           .9 (0)      .5 (2)        gamma > 0.4   (then wrong; else right)
#   1   1   .2  .6  .7  .1  10           .6 (1)      .7 (2)        gamma > -0.1  (then wrong; else right)
#   2   2   .8  .1  .6  .3   0           .8 (0)      .6 (2)        gamma > 0.2   (then right; else wrong)
#   3   3   .1  .2  .3  .9   0           .2 (1)      .9 (3)        gamma > -0.7  (then right; else wrong)
#   4   3   .5  .1  .2  .4   0           .5 (0)      .4 (3)        gamma > 0.1   (then right; else wrong)

EX_SCORES = np.array(
    [
        [0.9, 0.1, 0.5, 0.2, 10.0],
        [0.2, 0.6, 0.7, 0.1, 10.0],
        [0.8, 0.1, 0.6, 0.3, 0.0],
        [0.1, 0.2, 0.3, 0.9, 0.0],
        [0.5, 0.1, 0.2, 0.4, 0.0],
    ]
)
EX_Y = np.array([0, 1, 2, 3, 3])
EX_SEEN, EX_UNSEEN = [0, 1], [2, 3]


def test_per_class_accuracy_hand_example_differs_from_overall_under_imbalance() -> None:
    # class 0: 4 samples, all right -> 1.0; class 1: 1 sample, wrong -> 0.0. Per-class mean 0.5, overall 4/5.
    y_true = np.array([0, 0, 0, 0, 1])
    y_pred = np.array([0, 0, 0, 0, 0])
    assert per_class_accuracy(y_true, y_pred, [0, 1]) == 0.5
    assert np.mean(y_true == y_pred) == pytest.approx(0.8)


def test_per_class_accuracy_skips_classes_without_samples_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    # class 2 has no sample: mean over classes 0 (2/3 right) and 1 (1/1 right) = (2/3 + 1) / 2 = 5/6
    y_true = [0, 0, 0, 1]
    y_pred = [0, 0, 1, 1]
    with caplog.at_level(logging.DEBUG, logger="zsl_bench.metrics"):
        assert per_class_accuracy(y_true, y_pred, [2, 1, 0, 1]) == pytest.approx(5 / 6)
    assert any("1 of 3 classes" in r.getMessage() for r in caplog.records)


def test_per_class_accuracy_perfect_is_exactly_one() -> None:
    y = np.repeat(np.arange(7), [49, 3, 10, 7, 1, 13, 99])  # counts where n * (1/n) != 1 in floating point
    assert per_class_accuracy(y, y, np.arange(7)) == 1.0


def test_per_class_accuracy_no_samples_in_classes_raises() -> None:
    with pytest.raises(ValueError, match="classes"):
        per_class_accuracy([0, 1], [0, 1], [2, 3])


def test_czsl_accuracy_hand_example() -> None:
    # unseen {2, 3}: row 0 -> argmax(1, 2) = class 3 (right), row 1 -> argmax(5, 1) = class 2 (right),
    # row 2 -> argmax(3, 4) = class 3 (wrong, true 2). Class 2: 1/2, class 3: 1/1 -> 0.75. Column 0 (9) ignored.
    scores = np.array([[9.0, 0, 1, 2], [0, 9, 5, 1], [0, 0, 3, 4]])
    assert czsl_accuracy(scores, [3, 2, 2], [3, 2]) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("gamma", "expected"),
    [
        # gamma 0: rows 0, 3 right. S = (1 + 0) / 2 = .5; U = (0 + 1/2) / 2 = .25; H = 2*.25*.5/.75 = 1/3
        (0.0, {"u": 0.25, "s": 0.5, "h": 1 / 3}),
        # gamma .3: rows 0, 2, 3, 4 right. S = .5; U = (1 + 1) / 2 = 1; H = 2*.5/1.5 = 2/3
        (0.3, {"u": 1.0, "s": 0.5, "h": 2 / 3}),
        # gamma .5: every row predicts its best unseen class: S = 0, U = 1, H = 0
        (0.5, {"u": 1.0, "s": 0.0, "h": 0.0}),
        # gamma -1: every row predicts its best seen class: S = 1, U = 0, H = 0
        (-1.0, {"u": 0.0, "s": 1.0, "h": 0.0}),
    ],
)
def test_gzsl_accuracy_hand_example(gamma: float, expected: dict) -> None:
    result = gzsl_accuracy(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, gamma=gamma)
    assert result == pytest.approx(expected)


def test_accuracy_and_extra_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        gzsl_accuracy(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, 0.0, "per_sample")  # type: ignore[misc]
    with pytest.raises(TypeError):
        calibrate_gamma(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, None, [0.1])  # type: ignore[misc]
    per_sample = gzsl_accuracy(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, 0.0, accuracy="per_sample")
    assert set(per_sample) == {"u", "s", "h"}


def test_gzsl_accuracy_tie_goes_to_smaller_class_id_like_argmax() -> None:
    # best seen (class 1) and best unseen (class 0) are equal: np.argmax picks column 0, the unseen class.
    scores = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert gzsl_accuracy(scores, [0, 1], [1], [0]) == {"u": 1.0, "s": 0.0, "h": 0.0}
    assert gzsl_accuracy(scores, [0, 1], [0], [1]) == {"u": 0.0, "s": 1.0, "h": 0.0}


def test_calibrate_gamma_hand_example() -> None:
    # H at gamma = 0, .15, .25, .35, .45 (see the table above): 1/3, 1/2, 2/3, 2/3, 0 -> the smallest best: .25
    assert calibrate_gamma(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, grid=[0.45, 0.35, 0.25, 0.15, 0.0]) == 0.25


def test_ausuc_hand_example() -> None:
    # Per-class-mean steps: seen classes 0, 1 have 1 sample each -> a seen row turning wrong costs S 1/2;
    # unseen class 2 has 1 sample (U + 1/2), class 3 has 2 (U + 1/4 each). In increasing gamma:
    #   start (S, U) = (1, 0); row 3 at -.7 -> (1, .25); row 1 at -.1 -> (.5, .25); row 4 at .1 -> (.5, .5);
    #   row 2 at .2 -> (.5, 1); row 0 at .4 -> (0, 1).
    # Trapezoids of U over S: (1 -> .5) * (.25 + .25) / 2 = .125 and (.5 -> 0) * (1 + 1) / 2 = .5: area .625.
    area, s_curve, u_curve = ausuc(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN)
    assert area == pytest.approx(0.625)
    np.testing.assert_allclose(s_curve, [1, 1, 0.5, 0.5, 0.5, 0])
    np.testing.assert_allclose(u_curve, [0, 0.25, 0.25, 0.5, 1, 1])


def test_harmonic_mean_hand_examples() -> None:
    assert harmonic_mean(0.5, 0.25) == pytest.approx(1 / 3)  # 2 * .125 / .75
    assert harmonic_mean(0.0, 0.7) == 0.0
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(1.0, 1.0) == 1.0


def test_samples_outside_label_space_are_ignored_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    scores = np.vstack([EX_SCORES, [[0.0, 0.0, 0.0, 0.0, 1.0]]])
    with caplog.at_level(logging.WARNING, logger="zsl_bench.metrics"):
        result = gzsl_accuracy(scores, np.append(EX_Y, 4), EX_SEEN, EX_UNSEEN)
    assert result == gzsl_accuracy(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN)
    assert any("outside" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------- properties


@PROPERTY
@given(
    y_true=st.lists(st.integers(0, 5), min_size=1, max_size=40),
    data=st.data(),
)
def test_per_class_accuracy_matches_loop_oracle(y_true: list[int], data: st.DataObject) -> None:
    y_pred = data.draw(st.lists(st.integers(0, 6), min_size=len(y_true), max_size=len(y_true)))
    classes = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=8))
    y, pred = np.array(y_true), np.array(y_pred)
    if not set(classes) & set(y_true):
        with pytest.raises(ValueError, match="classes"):
            per_class_accuracy(y, pred, classes)
        return
    assert per_class_accuracy(y, pred, classes) == pytest.approx(loop_per_class_accuracy(y, pred, classes))


@PROPERTY
@given(problem=problems(integer_scores=True, infinities=True), gamma=HALF_STEPS)
def test_gzsl_accuracy_matches_calibrated_argmax(problem: Problem, gamma: float) -> None:
    """Integer (and ±inf) scores, half-integer gammas: exact arithmetic, many ties, same answer as argmax."""
    p = problem
    got = gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=gamma)
    assert got == pytest.approx(argmax_gzsl(p.scores, p.y, p.seen, p.unseen, gamma))


@PROPERTY
@given(problem=problems())
def test_gamma_zero_is_plain_argmax_over_label_space(problem: Problem) -> None:
    p = problem
    cols = np.sort(p.seen + p.unseen)  # ascending, so argmax breaks ties towards the smaller class id
    pred = cols[np.argmax(p.scores[:, cols], axis=1)]
    in_u, in_s = np.isin(p.y, p.unseen), np.isin(p.y, p.seen)
    got = gzsl_accuracy(p.scores, p.y, p.seen, p.unseen)
    assert got["u"] == pytest.approx(per_class_accuracy(p.y[in_u], pred[in_u], p.unseen), rel=1e-12)
    assert got["s"] == pytest.approx(per_class_accuracy(p.y[in_s], pred[in_s], p.seen), rel=1e-12)


@PROPERTY
@given(problem=problems(), gamma=st.floats(-5, 5))
def test_h_is_harmonic_mean_and_zero_when_a_side_is_zero(problem: Problem, gamma: float) -> None:
    p = problem
    r = gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=gamma)
    assert 0.0 <= r["u"] <= 1.0 and 0.0 <= r["s"] <= 1.0
    assert r["h"] == harmonic_mean(r["u"], r["s"])
    if r["u"] == 0 or r["s"] == 0:
        assert r["h"] == 0.0
    else:
        assert r["h"] == pytest.approx(2 * r["u"] * r["s"] / (r["u"] + r["s"]))
        assert min(r["u"], r["s"]) * (1 - 1e-12) <= r["h"] <= max(r["u"], r["s"]) * (1 + 1e-12)


@PROPERTY
@given(problem=problems(integer_scores=False))
def test_extreme_gammas(problem: Problem) -> None:
    """gamma -> +inf: only unseen predictions (S = 0, U = CZSL accuracy); gamma -> -inf: the mirror image."""
    p = problem
    czsl_u = czsl_accuracy(p.scores, p.y, p.unseen)
    czsl_s = czsl_accuracy(p.scores, p.y, p.seen)
    for big in (np.inf, 1e9):
        assert gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=big) == pytest.approx(
            {"u": czsl_u, "s": 0.0, "h": 0.0}
        )
        assert gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=-big) == pytest.approx(
            {"u": 0.0, "s": czsl_s, "h": 0.0}
        )


@PROPERTY
@given(problem=problems(integer_scores=False), data=st.data())
def test_invariant_to_permuting_class_ids(problem: Problem, data: st.DataObject) -> None:
    p = problem
    c = p.scores.shape[1]
    new_id = np.array(data.draw(st.permutations(range(c))))  # class c becomes new_id[c]
    scores = np.empty_like(p.scores)
    scores[:, new_id] = p.scores
    y, seen, unseen = new_id[p.y], new_id[p.seen].tolist(), new_id[p.unseen].tolist()
    for gamma in (0.0, 0.3, -0.7):
        before = gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=gamma)
        after = gzsl_accuracy(scores, y, seen, unseen, gamma=gamma)
        assert after == pytest.approx(before, rel=1e-12, abs=1e-15)
    assert czsl_accuracy(scores, y, unseen) == pytest.approx(czsl_accuracy(p.scores, p.y, p.unseen))
    assert ausuc(scores, y, seen, unseen)[0] == pytest.approx(ausuc(p.scores, p.y, p.seen, p.unseen)[0])
    grid = np.linspace(-1, 1, 21)
    h_before = gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, calibrate_gamma(p.scores, p.y, p.seen, p.unseen, grid))
    h_after = gzsl_accuracy(scores, y, seen, unseen, calibrate_gamma(scores, y, seen, unseen, grid))
    assert h_after["h"] == pytest.approx(h_before["h"], rel=1e-12, abs=1e-15)


@PROPERTY
@given(problem=problems(), grid=st.lists(st.floats(-6, 6), min_size=1, max_size=12) | st.none())
def test_calibrate_gamma_beats_every_grid_point(problem: Problem, grid: list[float] | None) -> None:
    """Brute-force oracle: gzsl_accuracy at every grid point; the winner is the smallest gamma with max H."""
    p = problem
    if grid is None:  # the documented default: 51 points from 0 to the score spread over seen ∪ unseen
        label_scores = p.scores[:, p.seen + p.unseen]
        oracle_grid = np.linspace(0, label_scores.max() - label_scores.min(), 51)
    else:
        oracle_grid = np.array(grid)
    best = calibrate_gamma(p.scores, p.y, p.seen, p.unseen, grid=grid)
    h = {float(g): gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=g)["h"] for g in oracle_grid}
    assert best in h
    assert h[best] >= max(h.values())
    assert best == min(g for g, v in h.items() if v == h[best])


@PROPERTY
@given(problem=problems(integer_scores=False), noise=st.sampled_from([0.0, 0.1, 0.49]))
def test_ausuc_of_perfect_scores_is_one(problem: Problem, noise: float) -> None:
    p = problem
    scores = np.eye(p.scores.shape[1])[p.y] + noise * np.tanh(p.scores)  # true class still strictly highest
    area, s_curve, u_curve = ausuc(scores, p.y, p.seen, p.unseen)
    assert area == pytest.approx(1.0)
    assert s_curve[0] == pytest.approx(1.0) and u_curve[-1] == pytest.approx(1.0)


@PROPERTY
@given(problem=problems())
def test_ausuc_curve_properties(problem: Problem) -> None:
    """Area in [0, 1]; monotone curve whose ends are the gamma = -/+inf accuracies."""
    p = problem
    area, s_curve, u_curve = ausuc(p.scores, p.y, p.seen, p.unseen)
    assert 0.0 <= area <= 1.0
    assert s_curve.shape == u_curve.shape and s_curve.ndim == 1
    assert np.all(np.diff(s_curve) <= 1e-12) and np.all(np.diff(u_curve) >= -1e-12)
    assert area == pytest.approx(np.trapezoid(u_curve[::-1], s_curve[::-1]), abs=1e-12)
    low = gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=-np.inf)
    high = gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=np.inf)
    assert (s_curve[0], u_curve[0]) == (pytest.approx(low["s"]), 0.0)
    assert (s_curve[-1], u_curve[-1]) == (0.0, pytest.approx(high["u"]))


@PROPERTY
@given(problem=problems(integer_scores=True, infinities=True))
def test_ausuc_curve_contains_every_operating_point(problem: Problem) -> None:
    """Integer scores have integer breakpoints, so integer and half-integer gammas reach every (S, U)."""
    p = problem
    _, s_curve, u_curve = ausuc(p.scores, p.y, p.seen, p.unseen)
    for gamma in np.arange(-7, 7.5, 0.5):
        r = gzsl_accuracy(p.scores, p.y, p.seen, p.unseen, gamma=gamma)
        on_curve = np.isclose(s_curve, r["s"], atol=1e-12) & np.isclose(u_curve, r["u"], atol=1e-12)
        assert on_curve.any(), (gamma, r)


def test_ausuc_tie_winners_switch_first() -> None:
    # seen {1}, unseen {0, 2}. Row 0 (y=0): best seen 1 (class 1) = best unseen 1 (class 0): at gamma 0 the
    # smaller id, unseen class 0, wins -> right for gamma >= 0. Row 1 (y=1): best seen 1 (class 1) = best
    # unseen 1 (class 2): class 1 wins the tie -> right for gamma <= 0. Row 2 (y=2): right for gamma > -3.
    # Operating points (S, U): (1, 0) -> (1, .5) at -3 -> (1, 1) at gamma = 0 exactly -> (0, 1): area 1.
    scores = np.array([[1.0, 1.0, -5.0], [-5.0, 1.0, 1.0], [-5.0, 0.0, 3.0]])
    y = np.array([0, 1, 2])
    assert gzsl_accuracy(scores, y, [1], [0, 2]) == {"u": 1.0, "s": 1.0, "h": 1.0}
    area, s_curve, u_curve = ausuc(scores, y, [1], [0, 2])
    assert area == 1.0
    np.testing.assert_array_equal(s_curve, [1, 1, 1, 0])
    np.testing.assert_array_equal(u_curve, [0, 0.5, 1, 1])


def test_equal_infinite_scores_follow_argmax_for_every_finite_gamma() -> None:
    # seen {1}, unseen {0, 2}; inf - gamma is still inf, so equal infinite candidates tie for every gamma and
    # the smaller class id wins, as with np.argmax:
    #   row 0 (y=0): classes 0 and 1 both +inf -> class 0, right;
    #   row 1 (y=1): every label column -inf -> class 0, wrong;
    #   row 2 (y=1): classes 1 and 2 both +inf -> class 1, right.
    # U = 1/1; S = 1/2; H = 2 * .5 / 1.5 = 2/3.
    scores = np.array([[np.inf, np.inf, 0.0], [-np.inf, -np.inf, -np.inf], [-5.0, np.inf, np.inf]])
    y = np.array([0, 1, 1])
    for gamma in (-2.0, 0.0, 3.0):
        result = gzsl_accuracy(scores, y, [1], [0, 2], gamma=gamma)
        assert result == pytest.approx({"u": 1.0, "s": 0.5, "h": 2 / 3})
        assert result == pytest.approx(argmax_gzsl(scores, y, [1], [0, 2], gamma))


def test_ausuc_is_not_trivially_one_or_zero() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((500, 10))
    y = rng.integers(0, 10, 500)
    area, _, _ = ausuc(scores, y, [0, 1, 2, 3, 4, 5], [6, 7, 8, 9])
    assert 0.0 < area < 0.5  # random scores: well below a perfect classifier


def test_calibrate_gamma_int_grid_and_spread_with_infinite_scores() -> None:
    scores = EX_SCORES.copy()
    scores[1, 3] = -np.inf  # a masked logit: the default grid must stay finite (spread of finite scores)
    gamma = calibrate_gamma(scores, EX_Y, EX_SEEN, EX_UNSEEN)
    assert math.isfinite(gamma)
    # finite spread over columns 0..3 is .9 - .1 = .8; 9 points -> step .1
    assert calibrate_gamma(scores, EX_Y, EX_SEEN, EX_UNSEEN, grid=9) in np.linspace(0, 0.9 - 0.1, 9)


def test_contiguous_and_scattered_class_sets_agree() -> None:
    """The contiguous-slice fast path and the column-gather path give the same numbers."""
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(300, 8))
    y = rng.integers(0, 8, 300)
    order = np.array([0, 4, 1, 5, 2, 6, 3, 7])  # old column order[k] moves to k: seen 0..3 become scattered
    moved = np.empty_like(scores)
    moved[:, np.argsort(order)] = scores
    new_id = np.argsort(order)
    a = gzsl_accuracy(scores, y, [0, 1, 2, 3], [4, 5, 6, 7], gamma=0.2)
    b = gzsl_accuracy(moved, new_id[y], new_id[[0, 1, 2, 3]], new_id[[4, 5, 6, 7]], gamma=0.2)
    assert a == pytest.approx(b)


# ------------------------------------------------------------------------------------------ input checking

_S = np.zeros((3, 4))
_Y = np.array([0, 2, 3])


def _nan_in_column(col: int) -> np.ndarray:
    scores = np.zeros((3, 4))
    scores[1, col] = np.nan
    return scores


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: gzsl_accuracy(np.zeros(4), _Y, [0], [2]), "scores"),
        (lambda: gzsl_accuracy(np.zeros((3, 4, 1)), _Y, [0], [2]), "scores"),
        (lambda: gzsl_accuracy(np.zeros((3, 0)), _Y, [0], [2]), "scores"),
        (lambda: gzsl_accuracy(np.array([["a"] * 4] * 3), _Y, [0], [2]), "scores"),
        (lambda: gzsl_accuracy(_S, np.array([0, 2]), [0], [2]), "y_true"),
        (lambda: gzsl_accuracy(_S, _Y[:, None], [0], [2]), "y_true"),
        (lambda: gzsl_accuracy(_S, np.array([0.0, 2.0, 3.0]), [0], [2]), "y_true"),
        (lambda: gzsl_accuracy(_S, np.array([0, 2, 4]), [0], [2]), "y_true"),
        (lambda: gzsl_accuracy(_S, np.array([0, -1, 3]), [0], [2]), "y_true"),
        (lambda: gzsl_accuracy(_S, _Y, [0, 4], [2]), "seen_classes"),
        (lambda: gzsl_accuracy(_S, _Y, [0], [-1, 2]), "unseen_classes"),
        (lambda: gzsl_accuracy(_S, _Y, [], [2]), "seen_classes"),
        (lambda: gzsl_accuracy(_S, _Y, [0], []), "unseen_classes"),
        (lambda: gzsl_accuracy(_S, _Y, [0, 2], [2, 3]), "seen_classes, unseen_classes"),
        (lambda: gzsl_accuracy(_S, _Y, [1], [2]), "seen_classes"),  # no seen sample
        (lambda: gzsl_accuracy(_S, _Y, [0], [1]), "unseen_classes"),  # no unseen sample
        (lambda: gzsl_accuracy(_nan_in_column(0), _Y, [0], [2]), "scores"),  # a seen column
        (lambda: gzsl_accuracy(_nan_in_column(2), _Y, [0], [2]), "scores"),  # an unseen column
        (lambda: gzsl_accuracy(_nan_in_column(1), _Y, [0], [2]), "scores"),  # outside the label space
        (lambda: gzsl_accuracy(_S, _Y, [0], [2], gamma=float("nan")), "gamma"),
        (lambda: czsl_accuracy(_S, _Y, [4]), "unseen_classes"),
        (lambda: czsl_accuracy(_S[:2], _Y, [2]), "y_true"),
        (lambda: czsl_accuracy(np.full((3, 4), np.nan), _Y, [2]), "scores"),
        (lambda: calibrate_gamma(_S, _Y, [0], [2], grid=[0.0, float("nan")]), "grid"),
        (lambda: calibrate_gamma(_S, _Y, [0], [2], grid=[]), "grid"),
        (lambda: calibrate_gamma(_S, _Y, [0], [2], grid=0), "grid"),
        (lambda: calibrate_gamma(_S, _Y, [0, 2], [2], grid=5), "seen_classes, unseen_classes"),
        (lambda: ausuc(_S, _Y, [0], [5]), "unseen_classes"),
        (lambda: ausuc(np.full((3, 4), np.nan), _Y, [0], [2]), "scores"),
        (lambda: per_class_accuracy([0, 1], [0], [0]), "y_pred"),
        (lambda: per_class_accuracy([0, -1], [0, 1], [0]), "y_true"),
        (lambda: per_class_accuracy([0, 1], [0, 1], []), "classes"),
        (lambda: per_class_accuracy([0, 1], [0, 1], [-2]), "classes"),
        (lambda: harmonic_mean(-0.1, 0.5), "u"),
        (lambda: harmonic_mean(0.5, float("nan")), "s"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, name: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(f"{name}:"), str(info.value)


# -------------------------------------------------------------------------------------------------- torch


def test_torch_tensors_are_accepted() -> None:
    torch = pytest.importorskip("torch")
    scores = torch.tensor(EX_SCORES, dtype=torch.float32, requires_grad=True)
    y = torch.tensor(EX_Y)
    seen, unseen = torch.tensor(EX_SEEN), torch.tensor(EX_UNSEEN)
    assert gzsl_accuracy(scores, y, seen, unseen, gamma=torch.tensor(0.3)) == pytest.approx(
        {"u": 1.0, "s": 0.5, "h": 2 / 3}
    )
    assert gzsl_accuracy(scores.to(torch.bfloat16), y, seen, unseen) == pytest.approx(
        gzsl_accuracy(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN)
    )
    assert czsl_accuracy(scores, y, unseen) == czsl_accuracy(EX_SCORES, EX_Y, EX_UNSEEN)
    assert calibrate_gamma(scores, y, seen, unseen, grid=torch.tensor([0.0, 0.25])) == 0.25
    assert ausuc(scores, y, seen, unseen)[0] == pytest.approx(0.625)
    assert per_class_accuracy(y, y, unseen) == 1.0


def test_calibrate_gamma_extra_values_are_tried():
    # seen class 0, unseen classes 1 and 2 (2 has no samples). The unseen sample is recognised once
    # 0.5 > 0.8 - gamma (gamma > 0.3); the seen sample is lost once 0.4 > 0.9 - gamma (gamma > 0.5).
    # Spread = 0.9 - 0.0, so a 2-point grid is {0, 0.9}: H = 0 at both (U = 0, then S = 0) -> 0.0 (smallest).
    scores = np.array([[0.9, 0.4, 0.0], [0.8, 0.5, 0.0]])
    y = np.array([0, 1])
    assert calibrate_gamma(scores, y, [0], [1, 2], grid=2) == 0.0
    assert calibrate_gamma(scores, y, [0], [1, 2], grid=2, extra=[0.4]) == 0.4  # H = 1 there
    with pytest.raises(ValueError, match="extra"):
        calibrate_gamma(scores, y, [0], [1, 2], extra=[float("nan")])


# ------------------------------------------------------------------------------------ per-sample accuracy
# The official DUET code's ``--all`` (its AwA2 and SUN scripts): correct / samples, for CZSL, U and S.


def test_per_sample_czsl_hand_example() -> None:
    # as test_czsl_accuracy_hand_example: rows 0 and 1 right, row 2 wrong -> 2/3 overall (per-class 0.75)
    scores = np.array([[9.0, 0, 1, 2], [0, 9, 5, 1], [0, 0, 3, 4]])
    assert czsl_accuracy(scores, [3, 2, 2], [3, 2], accuracy="per_sample") == pytest.approx(2 / 3)
    assert per_class_accuracy([0, 0, 0, 0, 1], [0] * 5, [0, 1], accuracy="per_sample") == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("gamma", "expected"),
    [
        # gamma 0: rows 0, 3 right. S = 1/2 (rows 0, 1); U = 1/3 (rows 2, 3, 4); H = 2*(1/3)*(1/2)/(5/6) = 0.4
        (0.0, {"u": 1 / 3, "s": 0.5, "h": 0.4}),
        # gamma .15: rows 0, 3, 4 right. S = 1/2, U = 2/3 (per-class: 1/2); H = (2/3)/(7/6) = 4/7
        (0.15, {"u": 2 / 3, "s": 0.5, "h": 4 / 7}),
        # gamma .3: rows 0, 2, 3, 4 right. S = 1/2, U = 1; H = 2/3
        (0.3, {"u": 1.0, "s": 0.5, "h": 2 / 3}),
    ],
)
def test_per_sample_gzsl_hand_example(gamma: float, expected: dict) -> None:
    result = gzsl_accuracy(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, gamma=gamma, accuracy="per_sample")
    assert result == pytest.approx(expected)


def test_per_sample_calibration_maximises_per_sample_h() -> None:
    # per-sample H at gamma 0, .15, .25: 0.4, 4/7, 2/3 (row 2 turns right above .2) -> .25
    grid = [0.0, 0.15, 0.25]
    assert calibrate_gamma(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, grid=grid, accuracy="per_sample") == 0.25


@PROPERTY
@given(problem=problems(integer_scores=True, infinities=True), gamma=HALF_STEPS)
def test_per_sample_gzsl_matches_the_official_loop(problem: Problem, gamma: float) -> None:
    """U and S as ``compute_per_class_acc_gzsl``'s first value: mean(pred == y) over the unseen / seen samples."""
    calibrated = problem.scores.astype(np.float64)
    calibrated[:, problem.seen] -= gamma
    labels = np.sort(problem.seen + problem.unseen)
    pred = labels[np.argmax(calibrated[:, labels], axis=1)]
    u_rows, s_rows = np.isin(problem.y, problem.unseen), np.isin(problem.y, problem.seen)
    u = float(np.mean(pred[u_rows] == problem.y[u_rows]))
    s = float(np.mean(pred[s_rows] == problem.y[s_rows]))
    got = gzsl_accuracy(problem.scores, problem.y, problem.seen, problem.unseen, gamma, accuracy="per_sample")
    assert got["u"] == pytest.approx(u) and got["s"] == pytest.approx(s)


def test_unknown_accuracy_mode_is_a_value_error() -> None:
    for call in (
        lambda: czsl_accuracy(EX_SCORES, EX_Y, EX_UNSEEN, accuracy="overall"),
        lambda: gzsl_accuracy(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, accuracy="overall"),
        lambda: calibrate_gamma(EX_SCORES, EX_Y, EX_SEEN, EX_UNSEEN, accuracy="overall"),
    ):
        with pytest.raises(ValueError, match=r"^accuracy: expected one of per_class, per_sample"):
            call()
