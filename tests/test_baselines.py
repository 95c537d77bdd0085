"""Classical baselines (by hand where possible, AutoETS/AutoARIMA on airline) and rolling-origin splits."""

import math
from statistics import NormalDist

import numpy as np
import pytest
import statsforecast.models

from lstmkit.data.datasets import load_dataset
from lstmkit.errors import ConfigError, DataError, ShapeError
from lstmkit.tasks.forecast.baselines import (
    METHODS,
    BaselineForecast,
    auto_arima,
    auto_ets,
    baseline_forecasts,
    naive,
    rolling_origin_splits,
    seasonal_naive,
)
from lstmkit.tasks.forecast.metrics import coverage, mae, mase

Z80 = NormalDist().inv_cdf(0.9)  # two-sided 80% interval


@pytest.fixture(scope="module")
def airline():
    """Airline passengers split into 132 training months and the last 12 held out."""
    y = load_dataset("airline")["passengers"].to_numpy()
    return y[:-12], y[-12:]


def test_naive_repeats_the_last_value_with_random_walk_intervals():
    y = np.array([3.0, 5.0, 4.0, 8.0])
    forecast = naive(y, horizon=3, levels=(80,))
    np.testing.assert_array_equal(forecast.mean, [8.0, 8.0, 8.0])
    sigma = math.sqrt((2**2 + 1**2 + 4**2) / 3)  # RMS of the one-step naive residuals
    half_width = Z80 * sigma * np.sqrt([1.0, 2.0, 3.0])
    np.testing.assert_allclose(forecast.lower[80], 8.0 - half_width, rtol=1e-9)
    np.testing.assert_allclose(forecast.upper[80], 8.0 + half_width, rtol=1e-9)
    assert forecast.ok and forecast.method == "naive" and forecast.error is None


def test_seasonal_naive_repeats_the_last_season_with_intervals():
    y = np.array([1.0, 2.0, 3.0, 2.0, 4.0, 5.0, 6.0])
    forecast = seasonal_naive(y, horizon=7, season_length=3, levels=(80,))
    np.testing.assert_array_equal(forecast.mean, [4.0, 5.0, 6.0, 4.0, 5.0, 6.0, 4.0])
    # residuals y[t] - y[t-3]: 1, 2, 2, 4 -> sigma = sqrt(25 / 4); sigma_h grows once per full season
    sigma = math.sqrt((1 + 4 + 4 + 16) / 4)
    seasons_ahead = np.array([1, 1, 1, 2, 2, 2, 3])
    np.testing.assert_allclose(forecast.upper[80] - forecast.mean, Z80 * sigma * np.sqrt(seasons_ahead), rtol=1e-9)


@pytest.mark.parametrize("season_length", [1, 4, 12])
def test_seasonal_naive_scores_mase_one_then_one_and_a_half_on_a_trend(season_length):
    # Worked out in test_forecast_metrics: on y_t = t the scale is m, the error m per step over
    # the first season and 2m over the second.
    y = np.arange(30.0 + 2 * season_length)
    y_train, y_test = y[:30], y[30:]
    forecast = seasonal_naive(y_train, horizon=2 * season_length, season_length=season_length).mean
    np.testing.assert_array_equal(forecast, np.tile(y_train[-season_length:], 2))
    assert mase(y_test[:season_length], forecast[:season_length], y_train, season_length) == pytest.approx(1.0)
    assert mase(y_test, forecast, y_train, season_length) == pytest.approx(1.5)


def test_auto_ets_beats_seasonal_naive_on_airline(airline):
    y_train, y_test = airline
    ets = auto_ets(y_train, horizon=12, season_length=12, levels=(80, 95))
    snaive = seasonal_naive(y_train, horizon=12, season_length=12)
    assert ets.mean.shape == (12,) and np.isfinite(ets.mean).all()
    assert mase(y_test, ets.mean, y_train, 12) < mase(y_test, snaive.mean, y_train, 12)
    assert (ets.lower[95] < ets.lower[80]).all() and (ets.lower[80] < ets.mean).all()
    assert (ets.mean < ets.upper[80]).all() and (ets.upper[80] < ets.upper[95]).all()
    assert coverage(y_test, ets.lower[95], ets.upper[95]) >= 0.75


def test_auto_arima_on_airline(airline):
    y_train, y_test = airline
    arima = auto_arima(y_train, horizon=12, season_length=12, levels=(95,))
    assert arima.mean.shape == (12,) and np.isfinite(arima.mean).all()
    seasonal_naive_mean = y_train[-12:]
    assert mase(y_test, arima.mean, y_train, 12) < mase(y_test, seasonal_naive_mean, y_train, 12)
    assert type(arima.lower[95]) is np.ndarray and (arima.lower[95] < arima.upper[95]).all()


def test_season_length_one_gives_a_non_seasonal_ets(airline):
    y_train, _ = airline
    seasonal = auto_ets(y_train, horizon=12, season_length=12).mean
    non_seasonal = auto_ets(y_train, horizon=12, season_length=1).mean
    steps = np.diff(non_seasonal)
    assert (steps >= 0).all() or (steps <= 0).all()  # trend only: monotone
    assert (np.diff(seasonal) > 0).any() and (np.diff(seasonal) < 0).any()


@pytest.mark.parametrize(
    "function, model_name, season_length, expected",
    [
        (auto_ets, "AutoETS", 1, {"season_length": 1, "model": "ZZN"}),
        (auto_ets, "AutoETS", 12, {"season_length": 12, "model": "ZZZ"}),
        (auto_arima, "AutoARIMA", 1, {"season_length": 1, "seasonal": False}),
        (auto_arima, "AutoARIMA", 12, {"season_length": 12, "seasonal": True}),
    ],
)
def test_model_configuration(monkeypatch, function, model_name, season_length, expected):
    seen = {}
    real = getattr(statsforecast.models, model_name)

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(statsforecast.models, model_name, spy)
    function(np.sin(np.arange(40.0)) + 2.0, horizon=2, season_length=season_length)
    assert seen == expected


def test_levels_keys_and_validation():
    forecast = naive([1.0, 2.0, 4.0], horizon=2, levels=(95.0, 80))
    assert sorted(forecast.lower) == [80, 95] and 95 in forecast.upper
    assert sorted(naive([1.0, 2.0, 4.0], horizon=2, levels=np.array([80, 95])).upper) == [80, 95]
    with pytest.raises(ConfigError, match="got 0.8; did you mean 80"):
        naive([1.0, 2.0], horizon=2, levels=(0.8,))
    with pytest.raises(ConfigError, match=r"sequence of percentages such as \(80, 95\), got 95"):
        naive([1.0, 2.0], horizon=2, levels=95)
    with pytest.raises(ConfigError, match=r"percentage in \[1, 100\).*got 100"):
        naive([1.0, 2.0], horizon=2, levels=(100,))


def test_bad_series_and_arguments():
    with pytest.raises(ShapeError, match=r"shape \(n_train,\), got shape \(4, 1\)"):
        naive(np.ones((4, 1)), horizon=2)
    with pytest.raises(DataError, match=r"y_train contains 1 NaN.*index 1"):
        auto_ets([1.0, np.nan, 3.0], horizon=2, season_length=1)
    with pytest.raises(ConfigError, match="horizon must be an int >= 1, got 0"):
        naive([1.0, 2.0], horizon=0)
    with pytest.raises(ConfigError, match="season_length must be an int >= 1, got float 12.0"):
        seasonal_naive(np.ones(30), horizon=2, season_length=12.0)


def test_too_short_series_raise_data_errors_naming_the_model():
    with pytest.raises(DataError, match=r"seasonal naive \(season_length=12\) needs .* at least 12 values.*got 5"):
        seasonal_naive(np.arange(5.0), horizon=3, season_length=12)
    with pytest.raises(DataError, match=r"at least 13 values \(to estimate the spread"):
        seasonal_naive(np.arange(12.0), horizon=3, season_length=12, levels=(80,))
    with pytest.raises(DataError, match="naive needs a training series of at least 2 values"):
        naive([1.0], horizon=3, levels=(80,))
    with pytest.raises(DataError, match=r"AutoETS \(season_length=1\) failed on a training series of 5 values"):
        auto_ets(np.arange(1.0, 6.0), horizon=3, season_length=1)


def test_baseline_forecasts_records_failures_and_keeps_the_rest():
    y_train = np.array([5.0, 7.0, 6.0, 8.0, 9.0])
    with pytest.warns(RuntimeWarning) as caught:
        results = baseline_forecasts(y_train, horizon=3, season_length=12)
    assert [str(warning.message)[:32] for warning in caught] == [
        "baseline 'seasonal_naive' failed",
        "baseline 'auto_ets' failed and i",
    ]
    assert list(results) == list(METHODS)
    assert results["naive"].ok and results["auto_arima"].ok
    for method in ("seasonal_naive", "auto_ets"):
        failed = results[method]
        assert isinstance(failed, BaselineForecast) and not failed.ok and failed.method == method
        assert failed.mean.shape == (3,) and np.isnan(failed.mean).all() and failed.lower == {}
    assert "one full season" in results["seasonal_naive"].error
    assert "AutoETS (season_length=12) failed on a training series of 5 values" in results["auto_ets"].error
    with pytest.raises(DataError, match="y_pred contains 3 NaN"):  # a failed baseline cannot be scored by accident
        mae([1.0, 2.0, 3.0], results["auto_ets"].mean)


def test_baseline_forecasts_on_error_raise():
    with pytest.raises(DataError, match="seasonal naive"):
        baseline_forecasts(np.arange(5.0), horizon=3, season_length=12, on_error="raise")


def test_baseline_forecasts_raises_for_bad_arguments_before_running_anything():
    with pytest.raises(ConfigError, match=r"unknown baseline method\(s\) \['theta'\]; choose from"):
        baseline_forecasts(np.arange(30.0), horizon=3, season_length=1, methods=("naive", "theta"))
    with pytest.raises(ConfigError, match="methods must be a sequence of names"):
        baseline_forecasts(np.arange(30.0), horizon=3, season_length=1, methods="naive")
    with pytest.raises(ConfigError, match="on_error must be 'record' or 'raise'"):
        baseline_forecasts(np.arange(30.0), horizon=3, season_length=1, on_error="ignore")
    with pytest.raises(DataError, match="y_train contains 1 NaN"):
        baseline_forecasts([1.0, np.inf, 2.0], horizon=3, season_length=1)


def test_baseline_forecasts_with_intervals(airline):
    y_train, _ = airline
    results = baseline_forecasts(y_train, 12, 12, methods=("seasonal_naive", "naive"), levels=(80,))
    assert list(results) == ["seasonal_naive", "naive"]
    np.testing.assert_array_equal(results["seasonal_naive"].mean, y_train[-12:])
    assert all((forecast.lower[80] < forecast.upper[80]).all() for forecast in results.values())


@pytest.mark.parametrize(
    "n, horizon, n_windows, step, expected",
    [
        (10, 2, 3, None, [(4, 6), (6, 8), (8, 10)]),
        (10, 3, 3, 1, [(5, 8), (6, 9), (7, 10)]),
        (20, 2, 3, 5, [(8, 10), (13, 15), (18, 20)]),
        (7, 2, 3, None, [(1, 3), (3, 5), (5, 7)]),  # the first window trains on exactly 1 value
        (5, 4, 1, None, [(1, 5)]),
    ],
)
def test_rolling_origin_splits(n, horizon, n_windows, step, expected):
    assert rolling_origin_splits(n, horizon, n_windows, step) == expected


def test_rolling_origin_splits_too_short_series():
    with pytest.raises(ConfigError, match=r"needs a series of at least 7 values.*got n=6"):
        rolling_origin_splits(6, horizon=2, n_windows=3)
    with pytest.raises(ConfigError, match="at least 13 values"):
        rolling_origin_splits(12, horizon=12, n_windows=1)


@pytest.mark.parametrize("argument", ["n", "horizon", "n_windows", "step"])
@pytest.mark.parametrize("value", [0, 2.0, True])
def test_rolling_origin_splits_arguments(argument, value):
    kwargs = {"n": 20, "horizon": 2, "n_windows": 3, "step": 2, argument: value}
    with pytest.raises(ConfigError, match=f"{argument} must be an int >= 1"):
        rolling_origin_splits(**kwargs)
