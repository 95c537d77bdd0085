"""Forecast metrics: golden values by hand, invariants, and bad input."""

import math

import numpy as np
import pytest

from lstmkit.errors import ConfigError, DataError, ShapeError
from lstmkit.tasks.forecast.metrics import coverage, evaluate, mae, mase, pinball_loss, rmse, smape

Y_TRUE = np.array([1.0, 2.0, 4.0, 0.0])
Y_PRED = np.array([2.0, 2.0, 1.0, 0.0])  # errors -1, 0, 3, 0


def test_golden_point_metrics():
    assert mae(Y_TRUE, Y_PRED) == pytest.approx((1 + 0 + 3 + 0) / 4)
    assert rmse(Y_TRUE, Y_PRED) == pytest.approx(math.sqrt((1 + 0 + 9 + 0) / 4))
    # |e| / (|y| + |yhat|): 1/3, 0/4, 3/5, and 0/0 -> 0
    assert smape(Y_TRUE, Y_PRED) == pytest.approx(200 * (1 / 3 + 0 + 3 / 5 + 0) / 4)


def test_golden_values_pool_over_windows_and_targets():
    y_true = np.array([[[1.0, 10.0], [2.0, 20.0]], [[3.0, 30.0], [4.0, 40.0]]])  # (n_windows=2, horizon=2, 2 targets)
    y_pred = y_true + np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 4.0]]])
    assert mae(y_true, y_pred) == pytest.approx(5 / 8)
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt(17 / 8))  # pooled, not a mean of per-window RMSEs
    assert smape(y_true, y_pred) == pytest.approx(200 * (1 / 3 + 4 / 84) / 8)


def test_perfect_forecast_scores_zero_everywhere():
    y_train = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    y_true = np.array([[5.0, 3.0, 5.0], [0.0, 7.0, 9.0]])
    assert evaluate(y_true, y_true.copy(), y_train, season_length=2) == {
        "mae": 0.0,
        "rmse": 0.0,
        "smape": 0.0,
        "mase": 0.0,
    }
    assert pinball_loss(y_true, y_true, quantile=0.1) == 0.0
    assert coverage(y_true, y_true, y_true) == 1.0


def test_smape_is_symmetric_and_bounded():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    assert smape(a, b) == pytest.approx(smape(b, a))
    assert 0 < smape(a, b) <= 200
    assert smape([0.0, 0.0], [0.0, 0.0]) == 0.0  # 0/0 is a perfect forecast
    assert smape([0.0, 0.0], [5.0, -1e-9]) == 200.0  # one side at 0 costs the maximum
    assert smape([1.0], [-1.0]) == 200.0


def test_mase_golden_naive_scale():
    y_train = np.array([1.0, 3.0, 2.0, 5.0])  # naive in-sample errors 2, 1, 3 -> scale 2
    assert mase([4.0, 6.0], [5.0, 5.0], y_train, season_length=1) == pytest.approx(1 / 2)
    # season_length=2: errors |2 - 1|, |5 - 3| -> scale 1.5
    assert mase([4.0, 6.0], [5.0, 5.0], y_train, season_length=2) == pytest.approx(1 / 1.5)


@pytest.mark.parametrize("season_length", [1, 3, 12])
def test_mase_of_seasonal_naive_on_a_linear_trend(season_length):
    # On y_t = t every in-sample seasonal naive error is m, so the scale is m. Out of sample the
    # seasonal naive forecast repeats the last season: steps 1..m are off by m, steps m+1..2m by 2m.
    # Hence MASE = 1 over one season and (m + 2m) / 2 / m = 1.5 over two.
    m = season_length
    y = np.arange(40.0 + 2 * m)
    y_train, y_test = y[:40], y[40:]
    forecast = np.tile(y_train[-m:], 2)
    assert mase(y_test[:m], forecast[:m], y_train, m) == pytest.approx(1.0)
    assert mase(y_test, forecast, y_train, m) == pytest.approx(1.5)


def test_mase_windows_share_the_scale_and_targets_have_their_own():
    y_train = np.array([0.0, 1.0, 2.0, 3.0])  # scale 1
    assert mase([[1.0, 1.0], [1.0, 1.0]], [[2.0, 2.0], [4.0, 4.0]], y_train, 1) == pytest.approx(2.0)
    y_train_2 = np.stack([y_train, 2 * y_train], axis=1)  # scales 1 and 2
    y_true = np.zeros((1, 2, 2))
    y_pred = np.full((1, 2, 2), 2.0)  # |e| = 2 -> per-target MASE 2 and 1
    assert mase(y_true, y_pred, y_train_2, 1) == pytest.approx(1.5)


def test_mase_training_part_too_short():
    with pytest.raises(DataError, match=r"season_length=12 needs a training part of at least 13 values.*got 12"):
        mase([1.0], [1.0], np.arange(12.0), season_length=12)


def test_mase_zero_scale():
    with pytest.raises(DataError, match=r"scale \(its in-sample MAE\) is 0.*mae or smape instead"):
        mase([1.0], [2.0], [4.0, 4.0, 4.0], season_length=1)
    periodic = np.tile([1.0, 2.0, 3.0], 4)
    with pytest.raises(DataError, match="season_length=3"):
        mase([1.0], [2.0], periodic, season_length=3)
    two_targets = np.stack([np.arange(6.0), np.full(6, 2.0)], axis=1)
    with pytest.raises(DataError, match=r"for target\(s\) \[1\]"):
        mase(np.ones((1, 2, 2)), np.ones((1, 2, 2)), two_targets, season_length=1)


def test_mase_y_train_shape():
    with pytest.raises(ShapeError, match=r"y_train must have shape \(n_train,\).*got \(5, 1\)"):
        mase([1.0], [1.0], np.ones((5, 1)), season_length=1)
    with pytest.raises(ShapeError, match=r"\(n_train, 3\).*got \(5, 2\)"):
        mase(np.ones((1, 2, 3)), np.ones((1, 2, 3)), np.ones((5, 2)), season_length=1)


@pytest.mark.parametrize("season_length", [0, -1, 1.0, True])
def test_mase_season_length_validated(season_length):
    with pytest.raises(ConfigError, match="season_length must be an int >= 1"):
        mase([1.0], [1.0], [1.0, 2.0, 3.0], season_length)


def test_pinball_golden():
    y_true = np.array([1.0, 2.0, 3.0])
    y_q = np.array([2.0, 2.0, 2.0])  # y - q: -1 (over), 0, 1 (under)
    assert pinball_loss(y_true, y_q, 0.9) == pytest.approx((0.1 + 0 + 0.9) / 3)
    assert pinball_loss(y_true, y_q, 0.2) == pytest.approx((0.8 + 0 + 0.2) / 3)
    assert pinball_loss(Y_TRUE, Y_PRED, 0.5) == pytest.approx(mae(Y_TRUE, Y_PRED) / 2)


@pytest.mark.parametrize("quantile", [0.0, 1.0, 90, -0.1, True])
def test_pinball_quantile_validated(quantile):
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        pinball_loss([1.0], [1.0], quantile)


def test_coverage_golden_and_inclusive_bounds():
    y_true = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    lower = np.array([1.0, 0.0, 3.5, 0.0, 0.0])
    upper = np.array([2.0, 2.0, 4.0, 3.9, 9.0])  # inside: 1 (on the bound), 2 (on the bound), 5
    assert coverage(y_true, lower, upper) == pytest.approx(3 / 5)


def test_coverage_crossed_bounds():
    with pytest.raises(DataError, match=r"lower exceeds upper at 1 position\(s\) \(first at index \(1,\)"):
        coverage([1.0, 2.0], [0.0, 3.0], [2.0, 2.5])


def test_evaluate_matches_the_single_metrics():
    y_train = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    scores = evaluate(Y_TRUE, Y_PRED, y_train, season_length=1)
    assert list(scores) == ["mae", "rmse", "smape", "mase"]
    assert scores["mase"] == pytest.approx(1.0 / 1.75)  # MAE 1, naive scale (2 + 1 + 3 + 1) / 4
    assert scores["mae"] == mae(Y_TRUE, Y_PRED) and scores["rmse"] == rmse(Y_TRUE, Y_PRED)
    assert scores["smape"] == smape(Y_TRUE, Y_PRED) and scores["mase"] == mase(Y_TRUE, Y_PRED, y_train, 1)
    assert all(isinstance(value, float) for value in scores.values())


@pytest.mark.parametrize(
    "y_true, y_pred, pattern",
    [
        (np.ones(3), np.ones(4), r"y_pred must have the shape of y_true \(3,\), got \(4,\)"),
        (np.ones((2, 3)), np.ones(3), r"shape of y_true \(2, 3\), got \(3,\)"),
        (
            np.ones((1, 1, 1, 1)),
            np.ones((1, 1, 1, 1)),
            r"y_true must have shape \(horizon,\).*got shape \(1, 1, 1, 1\)",
        ),
        (np.ones(0), np.ones(0), r"no empty axis, got shape \(0,\)"),
        (1.0, 1.0, r"got shape \(\)"),
    ],
)
def test_shape_errors(y_true, y_pred, pattern):
    with pytest.raises(ShapeError, match=pattern):
        mae(y_true, y_pred)


def test_nan_and_inf_are_refused():
    with pytest.raises(DataError, match=r"y_pred contains 1 NaN or infinite value\(s\) \(first at index 2: nan\)"):
        rmse([1.0, 2.0, 3.0], [1.0, 2.0, np.nan])
    with pytest.raises(DataError, match=r"y_true contains 2 NaN.*first at index \(0, 1\): inf"):
        smape([[1.0, np.inf], [-np.inf, 1.0]], np.ones((2, 2)))
    with pytest.raises(DataError, match="y_train contains 1 NaN"):
        mase([1.0], [1.0], [1.0, np.nan, 3.0], season_length=1)
    with pytest.raises(DataError, match="upper contains 1 NaN"):
        coverage([1.0], [0.0], [np.nan])


def test_non_numeric_input():
    with pytest.raises(DataError, match="y_true must hold numbers, got an array of dtype <U1"):
        mae(["a", "b"], [1.0, 2.0])
    with pytest.raises(DataError, match="y_pred must hold numbers, got an array of dtype bool"):
        mae([1.0, 2.0], [True, False])
