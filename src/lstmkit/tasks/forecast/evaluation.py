"""The LSTM against the classical methods on the same chronological split.

The last ``test_size`` steps of every series are held out. The LSTM is fitted on the rest (its own
validation part comes from the end of that rest), then every method forecasts the test part
from the same origins (every ``horizon`` steps): the LSTM with its fitted weights, the baselines
refitted on the history up to each origin. MAE, RMSE, sMAPE and MASE (scaled by the seasonal naive
error on the training part) are averaged over series, targets and origins; the coverage of the
80% interval is given where a method has one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.data.frames import to_series
from lstmkit.errors import DataError
from lstmkit.tasks.forecast.baselines import METHODS, baseline_forecasts
from lstmkit.tasks.forecast.estimator import LSTMForecaster
from lstmkit.tasks.forecast.metrics import coverage, evaluate

__all__ = ["Comparison", "compare", "split_frame"]

LEVEL = 80


@dataclass
class Comparison:
    """The outcome of :func:`compare`.

    Attributes:
        table: one row per method (``LSTM`` first), columns ``mae``, ``rmse``, ``smape``, ``mase``
            and ``coverage_80``.
        forecasts: every method's test forecasts (long: method, series, time, target, forecast,
            lower/upper, actual).
        model: the fitted LSTM forecaster.
        season_length: the season used for MASE and the seasonal baselines.
        test_size: held-out steps per series.
    """

    table: pd.DataFrame
    forecasts: pd.DataFrame
    model: LSTMForecaster
    season_length: int
    test_size: int

    @property
    def lstm_wins(self) -> bool:
        """Whether the LSTM has the lowest MASE of all methods."""
        return bool(self.table["mase"].idxmin() == "LSTM")


def split_frame(data: pd.DataFrame, series_id: str | None, test_size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table without, and with only, the last ``test_size`` rows of each series."""
    if series_id is None:
        return data.iloc[:-test_size], data.iloc[-test_size:]
    position = data.groupby(series_id, sort=False).cumcount(ascending=False)
    return data[position >= test_size], data[position < test_size]


def compare(model: LSTMForecaster, data: Any, target: str | list[str] | None = None, time: str | None = None,
            series_id: str | None = None, past_covariates: list[str] | tuple[str, ...] = (),
            future_covariates: list[str] | tuple[str, ...] = (), test_size: int | None = None,
            methods: tuple[str, ...] = METHODS) -> Comparison:
    """Fit ``model`` on all but the last ``test_size`` steps and compare it with the baselines there.

    Args:
        model: an unfitted :class:`LSTMForecaster` (its ``horizon`` sets the forecast length).
        data: the whole table (as for ``LSTMForecaster.fit``).
        target, time, series_id, past_covariates, future_covariates: as for ``fit``.
        test_size: held-out steps per series (default: the horizon); a multiple of the horizon.
        methods: the baselines to run.

    Returns:
        a :class:`Comparison`.
    """
    horizon = model.horizon
    test_size = test_size or horizon
    if test_size % horizon:
        raise DataError(f"test_size ({test_size}) must be a multiple of the horizon ({horizon}): the test part is "
                        "forecast from one origin every horizon steps")
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(
        {"value": np.asarray(data, dtype=float).ravel()} if np.ndim(data) == 1 or isinstance(data, pd.Series)
        else np.asarray(data, dtype=float))
    if not isinstance(data, pd.DataFrame):
        target = target or list(frame.columns)
    series, schema = to_series(frame, target, time, series_id, past_covariates, future_covariates,
                               model.fill_missing)
    for s in series:
        if len(s) <= test_size:
            raise DataError(f"series {s.id!r} has {len(s)} steps, not more than the test part ({test_size})")
    train, _ = split_frame(frame, series_id, test_size)
    try:
        model.fit(train, target=schema.target, time=time, series_id=series_id, past_covariates=past_covariates,
                  future_covariates=future_covariates)
    except DataError as error:  # its lengths are those of the training part: say so
        raise DataError(f"{error} (in the training part: the comparison holds out the last {test_size} steps of "
                        "every series; a smaller test_size leaves more)") from None
    season = model.season_length_
    origins_from = [len(s) - test_size for s in series]
    lstm = model.backtest(frame, start=-test_size, step=horizon)
    rows = {"LSTM": _scores(lstm, series, schema, origins_from, season, model._time_name)}
    forecasts = [lstm.assign(method="LSTM")]
    for method in methods:
        result = _baseline_frame(method, series, schema, origins_from, horizon, season, model._time_name)
        if result is None:
            continue
        rows[method] = _scores(result, series, schema, origins_from, season, model._time_name)
        forecasts.append(result.assign(method=method))
    table = pd.DataFrame(rows).T[["mae", "rmse", "smape", "mase", f"coverage_{LEVEL}"]]
    return Comparison(table, pd.concat(forecasts, ignore_index=True), model, season, test_size)


def _baseline_frame(method: str, series: list, schema, origins_from: list[int], horizon: int, season: int,
                    time_name: str) -> pd.DataFrame | None:
    frames = []
    for s, first in zip(series, origins_from):
        for origin in range(first, len(s) - horizon + 1, horizon):
            for j, name in enumerate(schema.target):
                history = s.target[:origin, j]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = baseline_forecasts(history, horizon, season, methods=(method,), levels=(LEVEL,))[method]
                if not result.ok:
                    return None
                frame = pd.DataFrame({
                    "origin": s.time[origin - 1], time_name: s.time[origin:origin + horizon], "target": name,
                    "forecast": result.mean, f"lower_{LEVEL}": result.lower.get(LEVEL, np.full(horizon, np.nan)),
                    f"upper_{LEVEL}": result.upper.get(LEVEL, np.full(horizon, np.nan)),
                    "actual": s.target[origin:origin + horizon, j]})
                if schema.series_id is not None:
                    frame.insert(0, schema.series_id, s.id)
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _scores(forecasts: pd.DataFrame, series: list, schema, origins_from: list[int], season: int,
            time_name: str) -> dict[str, float]:
    per_part: list[dict[str, float]] = []
    for s, first in zip(series, origins_from):
        part = forecasts if schema.series_id is None else forecasts[forecasts[schema.series_id] == s.id]
        for j, name in enumerate(schema.target):
            rows = part[part["target"] == name]
            scores = evaluate(rows["actual"].to_numpy(), rows["forecast"].to_numpy(), s.target[:first, j], season)
            lower, upper = rows.get(f"lower_{LEVEL}"), rows.get(f"upper_{LEVEL}")
            scores[f"coverage_{LEVEL}"] = (coverage(rows["actual"].to_numpy(), lower.to_numpy(), upper.to_numpy())
                                           if lower is not None and np.isfinite(lower.to_numpy()).all()
                                           else float("nan"))
            per_part.append(scores)
    return {key: float(np.mean([p[key] for p in per_part])) for key in per_part[0]}
