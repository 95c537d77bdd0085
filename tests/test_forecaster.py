"""LSTMForecaster: validation, fit/predict/backtest in every layout, window transforms, pinball, save/load."""

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch

import lstmkit.io.model_dir as model_dir
from lstmkit.errors import ConfigError, DataError, ModelFileError, NotFittedError, ShapeError
from lstmkit.tasks.forecast import LSTMForecaster, NetConfig
from lstmkit.tasks.forecast.metrics import mase
from lstmkit.tasks.forecast.model import ForecastEnsemble, ForecastNet, pinball
from lstmkit.train import TrainConfig

FAST = TrainConfig(max_epochs=3, learning_rate=1e-2, lr_schedule="none", early_stopping_patience=0, loggers=())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny networks: a second intra-op thread only waits (and spins for long on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def forecaster(**changes) -> LSTMForecaster:
    return LSTMForecaster(**{"horizon": 4, "hidden_size": 4, "ensemble": 1, "transform": "none", "training": FAST,
                             **changes})


def monthly(n: int = 72) -> pd.DataFrame:
    t = np.arange(n)
    noise = np.random.default_rng(0).standard_normal(n)
    return pd.DataFrame({"month": pd.date_range("2015-01-01", periods=n, freq="MS"),
                         "y": 20 + 0.1 * t + 3 * np.sin(2 * np.pi * t / 12) + 0.3 * noise})


def long_table() -> pd.DataFrame:
    """Three series of different lengths and start times, a past and a future covariate."""
    rng = np.random.default_rng(1)
    parts = []
    for k, (sid, n, start) in enumerate([("s1", 50, 0), ("s2", 44, 10), ("s3", 47, 5)]):
        t = np.arange(start, start + n)
        promo = (rng.random(n) < 0.3).astype(float)
        parts.append(pd.DataFrame({"store": sid, "t": t, "y": 5 + k + np.sin(t / 3) + 2 * promo
                                   + 0.1 * rng.standard_normal(n), "p": np.cos(t / 5), "f": promo}))
    return pd.concat(parts, ignore_index=True)


def future_table(value: float = 1.0, rows: int = 3, series=("s1", "s2", "s3")) -> pd.DataFrame:
    return pd.DataFrame({"store": np.repeat(series, rows), "f": value})


@pytest.fixture(scope="module")
def monthly_model() -> LSTMForecaster:
    return forecaster().fit(monthly(), "y", time="month")


@pytest.fixture(scope="module")
def many() -> LSTMForecaster:
    return forecaster(horizon=3).fit(long_table(), "y", "t", "store", past_covariates=["p"], future_covariates=["f"])


def check_intervals(frame: pd.DataFrame, levels=(80,)) -> None:
    columns = [f"lower_{level}" for level in levels] + ["forecast"] + [f"upper_{level}" for level in reversed(levels)]
    values = frame[columns].to_numpy()
    assert np.isfinite(values).all()
    assert (np.diff(values, axis=1) >= 0).all()


# -- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("changes,message", [
    ({"horizon": 0}, "horizon must be >= 1, got 0"),
    ({"horizon": -3}, "horizon must be >= 1, got -3"),
    ({"horizon": 2.5}, "horizon must be an int, got float 2.5"),
    ({"window": 0}, "window must be >= 1"),
    ({"hidden_size": 0}, "hidden_size must be >= 1"),
    ({"ensemble": 0}, "ensemble must be >= 1"),
    ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\)"),
    ({"quantiles": (0.1, 0.9)}, r"include 0.5 \(the point forecast\), got \(0.1, 0.9\)"),
    ({"quantiles": (0.9, 0.5, 0.1)}, "quantiles must be increasing"),
    ({"quantiles": (0.0, 0.5)}, r"in \(0, 1\)"),
    ({"transform": "fourier"}, "unknown transform='fourier'; expected 'auto' or one of none, difference, instance"),
    ({"mode": "iterative"}, "mode must be 'direct' or 'recursive', got 'iterative'"),
    ({"cell": "gru"}, "unknown cell='gru'; expected one of"),
    ({"mode": "recursive"}, "recursive mode feeds its point forecast back and gives no intervals; use quantiles=()"),
    ({"val_size": 2}, r"val_size=2 is shorter than the horizon \(4\)"),
    ({"training": {"max_epochs": 3}}, "training must be a lstmkit.train.TrainConfig, got dict"),
])
def test_bad_parameters_are_refused_before_anything_is_read(changes, message):
    with pytest.raises(ConfigError, match=message):
        forecaster(**changes).fit(monthly(), "y", time="month")


def test_recursive_mode_refuses_past_covariates():
    with pytest.raises(ConfigError, match="recursive mode cannot use past covariates.*pass them as future_covariates"):
        forecaster(horizon=3, mode="recursive", quantiles=()).fit(long_table(), "y", "t", "store",
                                                                   past_covariates=["p"])


def test_params_follow_scikit_learn():
    model = forecaster()
    assert model.get_params()["horizon"] == 4 and model.set_params(horizon=6) is model and model.horizon == 6
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['horizn'\]"):
        model.set_params(horizn=3)
    clone = model.__sklearn_clone__()
    assert clone is not model and clone.get_params() == model.get_params() and not hasattr(clone, "network_")


def test_series_too_short_names_the_series_and_the_lengths():
    frame = long_table()
    frame = frame[(frame["store"] != "s2") | (frame["t"] < 20)]  # s2 keeps 10 steps
    with pytest.raises(DataError, match=r"series 's2' has 10 steps, fewer than window \(8\) \+ horizon \(3\) \+ "
                                        r"validation \(3\) = 14; use a shorter window"):
        forecaster(horizon=3, window=8, val_size=3).fit(frame, "y", "t", "store")


def test_log_needs_positive_targets():
    frame = monthly()
    frame.loc[10, "y"] = 0.0
    with pytest.raises(DataError, match="log=True needs positive targets, but series 'series' has values <= 0"):
        forecaster(log=True).fit(frame, "y", time="month")


def test_a_constant_series_is_refused_before_training():
    frame = monthly().assign(y=5.0)
    with pytest.raises(DataError, match="target 'y' of series 'series' is constant or exactly periodic"):
        forecaster().fit(frame, "y", time="month")


def test_not_fitted():
    model = forecaster()
    for call in (model.predict, lambda: model.backtest(monthly()), lambda: model.save("anywhere")):
        with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
            call()


# -- fit / predict ------------------------------------------------------------------------------


def test_univariate_forecast_continues_the_months_with_intervals(monthly_model):
    forecast = monthly_model.predict()
    assert forecast.columns.tolist() == ["month", "target", "forecast", "lower_80", "upper_80"]
    assert list(forecast["month"]) == list(pd.date_range("2021-01-01", periods=4, freq="MS"))
    assert (forecast["target"] == "y").all()
    check_intervals(forecast)
    # the learned state
    assert monthly_model.season_length_ == 12 and monthly_model.window_ == 24 and monthly_model.val_size_ == 7
    assert monthly_model.transform_ == "none" and set(monthly_model.scores_) == {"none"}
    assert len(monthly_model.fit_results_) == 1 and monthly_model.fit_results_[0].epochs == 3
    # predicting from the same data is predicting from the end of the training data
    pd.testing.assert_frame_equal(monthly_model.predict(monthly()), forecast)
    earlier = monthly_model.predict(monthly().iloc[:60])
    assert list(earlier["month"]) == list(pd.date_range("2020-01-01", periods=4, freq="MS"))
    assert not np.allclose(earlier["forecast"], forecast["forecast"])


def test_update_history_moves_where_predict_without_data_starts(monthly_model, many):
    import copy

    model = copy.deepcopy(monthly_model)
    head = model.predict(monthly().iloc[:60])
    assert model.update_history(monthly().iloc[:60]) is model
    pd.testing.assert_frame_equal(model.predict(), head)  # continues from the new history
    pd.testing.assert_frame_equal(model.predict(), monthly_model.predict(monthly().iloc[:60]))  # weights unchanged
    pd.testing.assert_frame_equal(model.update_history(monthly()).predict(), monthly_model.predict())
    # many series: the series given move, the others keep their history
    several = copy.deepcopy(many)
    table = long_table()
    shorter = table[(table["store"] != "s2") | (table["t"] < 50)]
    several.update_history(shorter[shorter["store"] == "s2"])
    moved = several.predict(future_covariates=future_table())
    expected = many.predict(shorter, future_covariates=future_table())
    pd.testing.assert_frame_equal(moved, expected)
    # bad input: as predict's, named for this call, and nothing changes
    with pytest.raises(DataError, match="series 'series' has 10 steps; update_history needs the last 24"):
        model.update_history(monthly().iloc[:10])
    with pytest.raises(DataError, match=r"series \['s9'\] were not seen in fit"):
        several.update_history(table.replace({"store": {"s1": "s9"}}))
    pd.testing.assert_frame_equal(several.predict(future_covariates=future_table()), moved)
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        forecaster().update_history(monthly())


def test_predict_refuses_data_it_cannot_use(monthly_model, many):
    with pytest.raises(DataError, match="series 'series' has 10 steps; predict needs the last 24"):
        monthly_model.predict(monthly().iloc[:10])
    daily = monthly().assign(month=pd.date_range("2015-01-01", periods=72, freq="D"))
    with pytest.raises(DataError, match="frequency 'D', but the model was fitted on .* frequency 'MS'"):
        monthly_model.predict(daily)
    with pytest.raises(DataError, match="int time stamps"):
        monthly_model.predict(monthly().drop(columns="month").rename_axis("month").reset_index())
    unseen = long_table().replace({"store": {"s2": "s9"}})
    with pytest.raises(DataError, match=r"series \['s9'\] were not seen in fit"):
        many.predict(unseen, future_covariates=future_table())
    with pytest.raises(ConfigError, match="fitted without future covariates"):
        monthly_model.predict(future_covariates=pd.DataFrame({"f": [1.0] * 4}))


def test_multivariate_target_with_two_intervals():
    t = np.arange(60)
    frame = pd.DataFrame({"t": 10 * t, "a": np.sin(t / 4), "b": 2 + np.cos(t / 6)})  # integer steps of 10
    model = forecaster(horizon=3, quantiles=(0.05, 0.1, 0.5, 0.9, 0.95)).fit(frame, ["a", "b"], time="t")
    forecast = model.predict()
    assert forecast.columns.tolist() == ["t", "target", "forecast", "lower_90", "upper_90", "lower_80", "upper_80"]
    assert forecast["target"].tolist() == ["a"] * 3 + ["b"] * 3
    assert forecast["t"].tolist() == [600, 610, 620] * 2
    check_intervals(forecast, levels=(90, 80))
    assert model.network_.config.n_targets == 2 and model.network_.config.n_outputs == 5


def test_many_series_with_past_and_future_covariates(many):
    forecast = many.predict(future_covariates=future_table())
    assert forecast.columns.tolist() == ["store", "t", "target", "forecast", "lower_80", "upper_80"]
    assert forecast["store"].tolist() == ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 3
    assert forecast["t"].tolist() == [50, 51, 52, 54, 55, 56, 52, 53, 54]  # each series continues from its own end
    check_intervals(forecast)
    config = many.network_.config
    assert (config.n_targets, config.n_past, config.n_future) == (1, 1, 1)
    assert many.series_ids_ == ["s1", "s2", "s3"] and many.scaler_.mean.shape == (3, 3)
    # the future covariates reach the head
    other = many.predict(future_covariates=future_table(0.0))
    assert not np.allclose(other["forecast"], forecast["forecast"])
    # a subset of the series, from new data
    subset = long_table()
    subset = subset[subset["store"] == "s3"]
    part = many.predict(subset, future_covariates=future_table(series=("s3",)))
    pd.testing.assert_frame_equal(part, forecast.iloc[6:].reset_index(drop=True))


def test_future_covariates_are_required_with_exactly_horizon_rows(many):
    with pytest.raises(DataError, match=r"uses future covariates \['f'\]; pass their 3 values per series"):
        many.predict()
    short = future_table().drop(index=0)
    with pytest.raises(ShapeError, match="future_covariates has 2 rows for series 's1'; it needs exactly horizon = 3"):
        many.predict(future_covariates=short)
    with pytest.raises(ShapeError, match="has 4 rows for series 's1'"):
        many.predict(future_covariates=pd.concat([future_table(), future_table(series=("s1",), rows=1)]))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['f'\]"):
        many.predict(future_covariates=future_table().rename(columns={"f": "g"}))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['store'\]"):
        many.predict(future_covariates=future_table().drop(columns="store"))
    with pytest.raises(DataError, match="future_covariates of series 's1' has missing or infinite values"):
        many.predict(future_covariates=future_table(np.nan))
    with pytest.raises(DataError, match="future_covariates of series 's1' has non-numeric values"):
        many.predict(future_covariates=future_table("yes"))


def test_recursive_mode_gives_point_forecasts():
    model = forecaster(horizon=3, mode="recursive", quantiles=()).fit(monthly(), "y", time="month")
    forecast = model.predict()
    assert forecast.columns.tolist() == ["month", "target", "forecast"] and len(forecast) == 3
    assert np.isfinite(forecast["forecast"]).all()
    assert model.network_.config.steps_out == 1 and model.network_.config.n_outputs == 1


@pytest.mark.parametrize("transform", ["none", "difference", "instance"])
def test_each_transform_fits_and_predicts(transform):
    model = forecaster(transform=transform).fit(monthly(), "y", time="month")
    assert model.transform_ == model.network_.config.transform == transform and set(model.scores_) == {transform}
    forecast = model.predict()
    check_intervals(forecast)
    assert forecast["forecast"].between(10, 40).all()  # in the range of the data (20 + 0.1 t +- 3)


def test_auto_transform_trains_each_and_keeps_the_lowest_validation_mase():
    model = forecaster(transform="auto").fit(monthly(), "y", time="month")
    assert set(model.scores_) == {"none", "difference", "instance"}
    assert all(np.isfinite(score) and score > 0 for score in model.scores_.values())
    assert model.transform_ == min(model.scores_, key=model.scores_.get)
    assert model.network_.config.transform == model.transform_
    check_intervals(model.predict())


def test_log_model_forecasts_positive_values():
    frame = monthly().assign(y=lambda f: np.exp(f["y"] / 10))
    model = forecaster(log=True).fit(frame, "y", time="month")
    forecast = model.predict()
    check_intervals(forecast)
    assert (forecast["lower_80"] > 0).all()
    with pytest.raises(DataError, match="forecasts the log of the target, but series 'series' has values <= 0"):
        model.backtest(frame.assign(y=lambda f: f["y"].where(f.index != 70, -1.0)), start=-8)


def test_the_model_learns_a_seasonal_trend():
    t = np.arange(156)
    y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    train, test = y[:-12], y[-12:]
    model = LSTMForecaster(horizon=12, hidden_size=16, ensemble=1, transform="difference", quantiles=(),
                           training=FAST.replace(max_epochs=30)).fit(pd.Series(train))
    forecast = model.predict()["forecast"].to_numpy()
    lstm, naive = mase(test, forecast, train, 1), mase(test, np.full(12, train[-1]), train, 1)
    assert naive > 2 and lstm < 0.5


# -- backtest -----------------------------------------------------------------------------------


def test_backtest_from_the_end_matches_predict_from_each_origin(monthly_model):
    data = monthly()
    result = monthly_model.backtest(data, start=-8, step=4)
    assert result.columns.tolist() == ["origin", "month", "target", "forecast", "lower_80", "upper_80", "actual"]
    assert len(result) == 8
    assert list(result["origin"].unique()) == [data["month"][63], data["month"][67]]
    assert list(result["month"]) == list(data["month"][64:72])
    np.testing.assert_array_equal(result["actual"], data["y"][64:72])
    check_intervals(result)
    for origin in (64, 68):
        expected = monthly_model.predict(data.iloc[:origin])
        rows = result[result["origin"] == data["month"][origin - 1]]
        np.testing.assert_allclose(rows["forecast"], expected["forecast"], rtol=1e-5)
    every = monthly_model.backtest(data)  # from the first full window, every step
    assert len(every) == (72 - 4 + 1 - 24) * 4


def test_backtest_many_series_and_bad_origins(monthly_model, many):
    result = many.backtest(long_table(), start=-6, step=3)
    assert result.columns[0] == "store" and len(result) == 3 * 2 * 3
    assert result.groupby("store")["origin"].nunique().tolist() == [2, 2, 2]
    with pytest.raises(ConfigError, match=r"start=3 leaves series 'series' less than a window \(24 steps\)"):
        monthly_model.backtest(monthly(), start=3)
    with pytest.raises(DataError, match="no origin from 70 leaves a full horizon"):
        monthly_model.backtest(monthly(), start=-2)
    with pytest.raises(ConfigError, match="step must be >= 1"):
        monthly_model.backtest(monthly(), step=0)


# -- the network: transforms, pinball -------------------------------------------------------------


def net(transform: str, recursive: bool = False, quantiles=(0.1, 0.5, 0.9), n_future: int = 1) -> ForecastNet:
    config = NetConfig(n_targets=2, n_past=1, n_future=n_future, window=5, horizon=3, quantiles=quantiles,
                       transform=transform, recursive=recursive, cell="standard", hidden_size=4, num_layers=1,
                       dropout=0.0)
    return ForecastNet(config)


def test_window_transforms_golden_values():
    inputs = torch.tensor([[[1.0, 10.0, 7.0, 0.0], [2.0, 10.0, 8.0, 1.0], [4.0, 13.0, 9.0, 0.0]]])  # (1, 3, 2 + 1 + 1)
    target = torch.tensor([[[5.0, 16.0], [7.0, 10.0]]])
    encoded, (last, scale) = net("difference").encode(inputs)
    assert encoded[0, :, 0].tolist() == [0.0, 1.0, 2.0] and encoded[0, :, 1].tolist() == [0.0, 0.0, 3.0]
    assert torch.equal(encoded[..., 2:], inputs[..., 2:])  # covariates pass through
    assert last.tolist() == [[[4.0, 13.0]]] and scale.tolist() == [[[1.0, 1.0]]]
    assert net("difference").encode_target(target, (last, scale)).tolist() == [[[1.0, 3.0], [3.0, -3.0]]]

    encoded, (last, scale) = net("instance").encode(inputs)
    std = np.sqrt(np.mean((np.array([1.0, 2.0, 4.0]) - 7 / 3) ** 2)) + 1e-5
    np.testing.assert_allclose(encoded[0, :, 0], np.array([-3.0, -2.0, 0.0]) / std, rtol=1e-6)
    np.testing.assert_allclose(scale[0, 0], [std, np.sqrt(2.0) + 1e-5], rtol=1e-6)
    np.testing.assert_allclose(net("instance").encode_target(target, (last, scale))[0, :, 0],
                               np.array([1.0, 3.0]) / std, rtol=1e-6)

    encoded, state = net("none").encode(inputs)
    assert torch.equal(encoded, inputs) and net("none").encode_target(target, state) is target


@pytest.mark.parametrize("transform", ["none", "difference", "instance"])
def test_decode_inverts_encode_target(transform):
    network = net(transform)
    generator = torch.Generator().manual_seed(0)
    inputs = 3 * torch.randn(6, 5, 4, generator=generator) + 2
    target = 3 * torch.randn(6, 3, 2, generator=generator) + 2
    _, state = network.encode(inputs)
    back = network.decode(network.encode_target(target, state).unsqueeze(-1), state)[..., 0]
    if transform == "none":
        assert torch.equal(back, target)
    else:
        torch.testing.assert_close(back, target, rtol=0, atol=1e-5)
    # decode sorts the quantiles
    unsorted = torch.tensor([3.0, 1.0, 2.0]).expand(6, 3, 2, 3)
    assert (network.decode(unsorted, state).diff(dim=-1) >= 0).all()


def test_forward_shapes_and_recursive_feedback():
    inputs, future = torch.randn(4, 5, 4), torch.randn(4, 3, 1)
    assert net("instance")(inputs, future).shape == (4, 3, 2, 3)
    recursive = net("difference", recursive=True, quantiles=())
    out = recursive(inputs, future)
    assert out.shape == (4, 3, 2, 1)
    # by hand: one step, append it (with the next future covariates) and go on
    window, steps = inputs, []
    for k in range(3):
        encoded, state = recursive.encode(window)
        step = recursive.decode(recursive.raw(encoded, future[:, k:k + 1]), state)
        steps.append(step)
        nxt = window[:, -1:].clone()
        nxt[..., :2] = step[..., 0]
        nxt[..., -1:] = future[:, k:k + 1]
        window = torch.cat([window[:, 1:], nxt], 1)
    torch.testing.assert_close(out, torch.cat(steps, 1))


def test_ensemble_averages_its_members():
    config = net("none").config
    ensemble = ForecastEnsemble(config, 3)
    inputs, future = torch.randn(2, 5, 4), torch.randn(2, 3, 1)
    expected = torch.stack([member(inputs, future) for member in ensemble.members]).mean(0)
    torch.testing.assert_close(ensemble(inputs, future), expected)


def test_pinball_golden_values():
    quantiles = torch.tensor([0.1, 0.5, 0.9])
    prediction = torch.tensor([[1.0, 2.0, 3.0]])
    # errors target - prediction = (1, 0, -1): losses 0.1 * 1, 0, (0.9 - 1) * -1
    assert pinball(prediction, torch.tensor([2.0]), quantiles).item() == pytest.approx(0.2 / 3)
    # errors (-1, -2, -3): (0.1 - 1) * -1, (0.5 - 1) * -2, (0.9 - 1) * -3
    assert pinball(prediction, torch.tensor([0.0]), quantiles).item() == pytest.approx((0.9 + 1.0 + 0.3) / 3)
    # the median's pinball loss is half the absolute error
    x, y = torch.randn(10, 1), torch.randn(10)
    assert pinball(x, y, torch.tensor([0.5])).item() == pytest.approx(0.5 * (y - x[:, 0]).abs().mean().item())


# -- save / load ----------------------------------------------------------------------------------


def test_save_load_predicts_the_same_numbers_without_pickle(monthly_model, tmp_path, monkeypatch):
    path = monthly_model.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert document["format"] == "lstmkit-model" and document["format_version"] == 1
    assert document["kind"] == "forecaster" and document["config"]["transform"] == "none"
    raw = (path / "model.safetensors").read_bytes()
    assert raw[8:9] == b"{"  # a safetensors header (length, then JSON), not a pickle
    tensors = safetensors.torch.load_file(path / "model.safetensors")
    assert "network.members.0.head.weight" in tensors and tensors["context.0"].shape == (24, 1)

    def no_pickle(*args, **kwargs):
        raise AssertionError("loading used pickle")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = LSTMForecaster.load(path)
    pd.testing.assert_frame_equal(loaded.predict(), monthly_model.predict())
    pd.testing.assert_frame_equal(loaded.predict(monthly().iloc[:60]), monthly_model.predict(monthly().iloc[:60]))
    pd.testing.assert_frame_equal(loaded.backtest(monthly(), start=-8), monthly_model.backtest(monthly(), start=-8))
    assert loaded.get_params() == monthly_model.get_params() | {"run_dir": None}
    assert loaded.scores_ == monthly_model.scores_ and loaded.window_ == 24


def test_save_load_many_series_with_covariates(many, tmp_path):
    loaded = LSTMForecaster.load(many.save(tmp_path / "many"))
    for future in (future_table(), future_table(0.0)):
        pd.testing.assert_frame_equal(loaded.predict(future_covariates=future), many.predict(future_covariates=future))
    assert loaded.series_ids_ == ["s1", "s2", "s3"] and loaded.schema_ == many.schema_


def test_saving_replaces_a_model_but_never_other_files(monthly_model, many, tmp_path):
    path = tmp_path / "model"
    monthly_model.save(path)
    many.save(path)
    assert LSTMForecaster.load(path).series_ids_ == ["s1", "s2", "s3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary directories left

    (tmp_path / "empty").mkdir()
    monthly_model.save(tmp_path / "empty")  # an empty directory is fine
    assert (tmp_path / "empty" / "model.safetensors").is_file()

    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(ModelFileError, match="refusing to overwrite .*notes: it exists and is not an lstmkit model"):
        monthly_model.save(other)
    assert [p.name for p in other.iterdir()] == ["todo.txt"] and (other / "todo.txt").read_text() == "keep me"
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelFileError, match="refusing to overwrite"):
        monthly_model.save(tmp_path / "file.txt")
    assert (tmp_path / "file.txt").read_text() == "x"


def test_a_failed_save_leaves_nothing_half_written(monthly_model, many, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model_dir, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        monthly_model.save(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    path = many.save(tmp_path / "model")
    expected = many.predict(future_covariates=future_table())
    monkeypatch.setattr(model_dir, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        monthly_model.save(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    pd.testing.assert_frame_equal(LSTMForecaster.load(path).predict(future_covariates=future_table()), expected)

    # the last step fails: the new directory cannot be renamed into place
    real_replace = os.replace

    def replace(source, destination):
        if ".tmp-" in str(source):
            raise OSError("rename failed")
        return real_replace(source, destination)

    monkeypatch.setattr(model_dir.os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        monthly_model.save(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    pd.testing.assert_frame_equal(LSTMForecaster.load(path).predict(future_covariates=future_table()), expected)


@pytest.fixture
def saved(monthly_model, tmp_path):
    return monthly_model.save(tmp_path / "model")


def edit_config(path, change) -> None:
    document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    change(document)
    (path / "config.json").write_text(json.dumps(document), encoding="utf-8")


def test_loading_a_missing_or_incomplete_directory(saved, tmp_path):
    with pytest.raises(ModelFileError, match="nowhere does not exist; expected an lstmkit model directory"):
        LSTMForecaster.load(tmp_path / "nowhere")
    with pytest.raises(ModelFileError, match="config.json is not a directory"):
        LSTMForecaster.load(saved / "config.json")
    (saved / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="not a complete lstmkit model directory: model.safetensors is missing"):
        LSTMForecaster.load(saved)
    (saved / "config.json").unlink()
    with pytest.raises(ModelFileError, match="config.json is missing"):
        LSTMForecaster.load(saved)


@pytest.mark.parametrize("content,message", [
    (b'{"format": "lstmkit-model", ', r"config.json is not valid JSON \(line 1, column 29"),
    (b"\xff\xfe{}", r"config.json is not UTF-8 text \(byte 0\)"),
    (b'{"hello": "world"}', r'config.json is not an lstmkit model file \(no "format": "lstmkit-model"\)'),
    (b"[1, 2]", "is not an lstmkit model file"),
])
def test_loading_a_corrupt_config(saved, content, message):
    (saved / "config.json").write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        LSTMForecaster.load(saved)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(format_version=2, lstmkit_version="9.0.0"),
     r"is from another version of lstmkit: it was written in model format 2 \(by lstmkit 9.0.0\); this lstmkit "
     r"reads format 1. Upgrade lstmkit"),
    (lambda d: d.update(format_version="1"), "model format '1'"),
    (lambda d: d.update(kind="classifier"), "holds a 'classifier' model, not a 'forecaster'"),
    (lambda d: d.pop("config"), r'has no settings \("config" is missing'),
    (lambda d: d["config"].pop("scaler"), r"does not describe a valid forecaster \(KeyError: 'scaler'\); the files "
                                          r"are corrupt or were edited"),
    (lambda d: d["config"]["params"].update(horizon=0), r"does not describe a valid forecaster \(ConfigError: "
                                                        r"horizon must be >= 1"),
    (lambda d: d["config"]["params"].update(horizon=6), r"the network forecasts 4 steps but horizon is 6"),
    (lambda d: d["config"]["network"].update(hidden_size=5), r"does not describe a valid forecaster \(RuntimeError"),
    (lambda d: d["config"]["training"].update(epochs=3), r"unknown training setting"),
])
def test_loading_an_edited_config(saved, change, message):
    edit_config(saved, change)
    with pytest.raises(ModelFileError, match=message):
        LSTMForecaster.load(saved)


@pytest.mark.parametrize("corrupt", [
    lambda raw: raw[: len(raw) // 2],  # truncated
    lambda raw: b"garbage" * 10,
    lambda raw: b"",
])
def test_loading_corrupt_weights(saved, corrupt):
    weights = saved / "model.safetensors"
    weights.write_bytes(corrupt(weights.read_bytes()))
    with pytest.raises(ModelFileError, match="model.safetensors is not a readable safetensors file"):
        LSTMForecaster.load(saved)


def test_loading_weights_that_lack_a_tensor(saved):
    tensors = safetensors.torch.load_file(saved / "model.safetensors")
    del tensors["context.0"]
    safetensors.torch.save_file(tensors, saved / "model.safetensors")
    with pytest.raises(ModelFileError, match=r"KeyError: 'context.0'"):
        LSTMForecaster.load(saved)


def test_scaling_is_fitted_on_the_training_part_only():
    """The validation part (and anything after it) never moves the scaler: a validation part made
    wildly different gives the same statistics, which are those of the training steps."""
    data = monthly()
    model = forecaster(val_size=12).fit(data, target="y", time="month")
    train = data["y"].to_numpy()[:-12]
    np.testing.assert_allclose(model.scaler_.mean[0], [train.mean()])
    np.testing.assert_allclose(model.scaler_.std[0], [train.std()])
    changed = data.assign(y=np.r_[data["y"].to_numpy()[:-12], np.full(12, 1e4)])
    other = forecaster(val_size=12).fit(changed, target="y", time="month")
    np.testing.assert_array_equal(other.scaler_.mean, model.scaler_.mean)
    np.testing.assert_array_equal(other.scaler_.std, model.scaler_.std)


@pytest.mark.parametrize("cell", ["vanilla", "peephole", "cifg", "layernorm"])
def test_every_lstm_variant_forecasts_and_saves(cell, tmp_path):
    model = forecaster(cell=cell).fit(monthly(), target="y", time="month")
    assert model.network_.members[0].encoder.cell == cell
    forecast = model.predict()
    assert len(forecast) == 4 and np.isfinite(forecast["forecast"]).all()
    model.save(tmp_path / "m")
    pd.testing.assert_frame_equal(LSTMForecaster.load(tmp_path / "m").predict(), forecast)
