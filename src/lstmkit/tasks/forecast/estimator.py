"""``LSTMForecaster``: a scikit-learn-style estimator for the forecasting task.

``fit`` validates the table, splits each series chronologically (the last ``val_size`` steps are
the validation part), scales each series with statistics of its training part only, cuts windows
and trains on the shared engine; ``predict`` forecasts the ``horizon`` steps after the data with
prediction intervals. With ``transform="auto"`` every window transform is trained and the one with
the lowest validation MASE is kept: the default is chosen by validation, not by hope.
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

import lstmkit.nn as lnn
from lstmkit.data.frames import Schema, Series, future_times, season_length_for, to_series
from lstmkit.data.windows import WindowDataset, window_origins
from lstmkit.errors import ConfigError, DataError, NotFittedError, ShapeError
from lstmkit.tasks.forecast.metrics import mase
from lstmkit.tasks.forecast.model import TRANSFORMS, ForecastEnsemble, ForecastModule, ForecastNet, NetConfig
from lstmkit.train import BatchStream, TrainConfig, fit

__all__ = ["LSTMForecaster", "DEFAULT_TRAINING"]

DEFAULT_TRAINING = TrainConfig(max_epochs=300, batch_size=32, learning_rate=3e-3, lr_schedule="plateau",
                               early_stopping_patience=30, gradient_clip=1.0)


@dataclass
class _Scaler:
    """Per-series, per-column location and scale, from the training part only."""

    mean: np.ndarray  # (n_series, columns)
    std: np.ndarray

    def apply(self, k: int, values: np.ndarray, columns: slice = slice(None)) -> np.ndarray:
        """Scale ``values`` (``(..., columns)``) of series ``k``."""
        return (values - self.mean[k][columns]) / self.std[k][columns]

    def invert(self, k: int, values: np.ndarray, columns: slice = slice(None)) -> np.ndarray:
        return values * self.std[k][columns] + self.mean[k][columns]


def _check_quantiles(quantiles: Any) -> tuple[float, ...]:
    values = tuple(float(q) for q in (quantiles or ()))
    if values and (0.5 not in values or sorted(values) != list(values) or len(set(values)) != len(values)
                   or not all(0 < q < 1 for q in values)):
        raise ConfigError(f"quantiles must be increasing, in (0, 1) and include 0.5 (the point forecast), got "
                          f"{quantiles!r}; for example (0.1, 0.5, 0.9) for an 80% interval")
    return values


def _time_to_json(value: Any) -> str | int:
    return int(value) if isinstance(value, (int, np.integer)) else pd.Timestamp(value).isoformat()


def _time_from_json(value: str | int, kind: str) -> Any:
    return pd.Timestamp(value) if kind == "datetime" else int(value)


class LSTMForecaster:
    """An LSTM forecaster with intervals, judged by validation, saved without pickle.

    Args:
        horizon: steps to forecast.
        window: past steps the network reads; default ``max(2 * season_length, 3 * horizon)``,
            capped so that training keeps at least 16 windows per series.
        cell: the :mod:`lstmkit.nn` LSTM variant.
        hidden_size: LSTM units.
        num_layers: stacked LSTM layers.
        dropout: dropout between stacked layers.
        transform: window transform of the target: ``"none"``, ``"difference"``, ``"instance"``
            or ``"auto"`` (train each, keep the best on validation).
        mode: ``"direct"`` (all horizon steps at once) or ``"recursive"`` (one step, fed back;
            point forecasts only, no past covariates).
        quantiles: quantiles to predict (must include 0.5); ``()`` for a point forecast (MSE).
        log: forecast the logarithm of the target (for positive series with multiplicative
            seasonality).
        season_length: observations per season for MASE and the default window; inferred from the
            time stamps' frequency when omitted.
        val_size: steps at the end of each series used for validation (early stopping and the
            choice of transform); default ``max(horizon, 10% of the shortest series)``.
        fill_missing: ``"error"`` or ``"interpolate"`` for missing values.
        ensemble: networks trained per candidate from consecutive seeds; their forecasts are
            averaged (fewer: faster; more: less variance from training).
        training: the engine settings (:class:`lstmkit.train.TrainConfig`).
        run_dir: where checkpoints and logs go (default: a temporary directory).

    Example:
        >>> from lstmkit.data import load_dataset
        >>> model = LSTMForecaster(horizon=6, hidden_size=8, transform="none",
        ...                        training=TrainConfig(max_epochs=2))
        >>> forecast = model.fit(load_dataset("airline"), target="passengers", time="month").predict()
        >>> forecast.columns.tolist()
        ['month', 'target', 'forecast', 'lower_80', 'upper_80']
    """

    def __init__(self, horizon: int = 12, window: int | None = None, *, cell: str = "standard",
                 hidden_size: int = 64, num_layers: int = 1, dropout: float = 0.0, transform: str = "auto",
                 mode: str = "direct", quantiles: tuple[float, ...] = (0.1, 0.5, 0.9), log: bool = False,
                 season_length: int | None = None, val_size: int | None = None, fill_missing: str = "error",
                 ensemble: int = 3, training: TrainConfig | None = None, run_dir: str | Path | None = None) -> None:
        self.horizon = horizon
        self.window = window
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.transform = transform
        self.mode = mode
        self.quantiles = quantiles
        self.log = log
        self.season_length = season_length
        self.val_size = val_size
        self.fill_missing = fill_missing
        self.ensemble = ensemble
        self.training = training
        self.run_dir = run_dir

    # -- parameters ---------------------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (scikit-learn convention)."""
        return {name: getattr(self, name) for name in (
            "horizon", "window", "cell", "hidden_size", "num_layers", "dropout", "transform", "mode", "quantiles",
            "log", "season_length", "val_size", "fill_missing", "ensemble", "training", "run_dir")}

    def set_params(self, **params: Any) -> LSTMForecaster:
        unknown = sorted(set(params) - set(self.get_params()))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; LSTMForecaster takes {sorted(self.get_params())}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _validate_params(self) -> tuple[TrainConfig, tuple[float, ...], list[str]]:
        from lstmkit.nn._checks import check_probability, check_size

        check_size("horizon", self.horizon)
        if self.window is not None:
            check_size("window", self.window)
        check_size("hidden_size", self.hidden_size)
        check_size("num_layers", self.num_layers)
        check_size("ensemble", self.ensemble)
        check_probability("dropout", self.dropout, allow_one=False)
        lnn.get_variant(self.cell)
        if self.season_length is not None:
            check_size("season_length", self.season_length)
        if self.val_size is not None:
            check_size("val_size", self.val_size)
            if isinstance(self.horizon, int) and self.val_size < self.horizon:
                raise ConfigError(f"val_size={self.val_size} is shorter than the horizon ({self.horizon}): validation "
                                  "forecasts whole horizons; use val_size >= horizon")
        if self.mode not in ("direct", "recursive"):
            raise ConfigError(f"mode must be 'direct' or 'recursive', got {self.mode!r}")
        if self.transform != "auto" and self.transform not in TRANSFORMS:
            raise ConfigError(f"unknown transform={self.transform!r}; expected 'auto' or one of "
                              f"{', '.join(TRANSFORMS)}")
        quantiles = _check_quantiles(self.quantiles)
        if self.mode == "recursive" and quantiles:
            raise ConfigError("recursive mode feeds its point forecast back and gives no intervals; use "
                              "quantiles=() with mode='recursive' (on the command line: leave out --quantiles), "
                              "or mode='direct' for intervals")
        training = self.training if self.training is not None else DEFAULT_TRAINING
        if not isinstance(training, TrainConfig):
            raise ConfigError(f"training must be a lstmkit.train.TrainConfig, got {type(training).__name__}")
        candidates = list(TRANSFORMS) if self.transform == "auto" else [self.transform]
        return training, quantiles, candidates

    # -- fit ----------------------------------------------------------------------------------

    def fit(self, data: Any, target: str | list[str] | None = None, time: str | None = None,
            series_id: str | None = None, past_covariates: list[str] | tuple[str, ...] = (),
            future_covariates: list[str] | tuple[str, ...] = ()) -> LSTMForecaster:
        """Train on the whole history given (its last ``val_size`` steps validate).

        Args:
            data: a long DataFrame, Series or array (see :func:`lstmkit.data.frames.to_series`).
            target: the column(s) to forecast.
            time: the time column (default: the index).
            series_id: the column that tells series apart, for a global model over many series.
            past_covariates: columns known only up to the forecast origin.
            future_covariates: columns known over the horizon as well.

        Returns:
            ``self``.
        """
        training, quantiles, candidates = self._validate_params()
        series, schema = to_series(data, target, time, series_id, past_covariates, future_covariates,
                                   self.fill_missing)
        if self.mode == "recursive" and schema.past_covariates:
            raise ConfigError("recursive mode cannot use past covariates: their future values are unknown when the "
                              "forecast is fed back; use mode='direct' or pass them as future_covariates")
        season = self.season_length or season_length_for(schema.freq)
        shortest = min(len(s) for s in series)
        val_size = self.val_size or max(self.horizon, shortest // 10)
        window = self.window or self._default_window(season, shortest, val_size)
        self._check_lengths(series, window, val_size)
        self._check_mase_defined(series, val_size, season, schema.target)
        targets = [s.target for s in series]
        if self.log:
            for s, values in zip(series, targets):
                if (values <= 0).any():
                    raise DataError(f"log=True needs positive targets, but series {s.id!r} has values <= 0; "
                                    "use log=False")
            targets = [np.log(values) for values in targets]
        scaler = self._fit_scaler(series, targets, val_size)
        values = torch.from_numpy(np.concatenate([
            scaler.apply(k, np.concatenate([t, s.past, s.future], axis=1))
            for k, (s, t) in enumerate(zip(series, targets))
        ]).astype(np.float32))
        lengths = [len(s) for s in series]
        n_t, n_p, n_f = len(schema.target), len(schema.past_covariates), len(schema.future_covariates)
        steps_out = 1 if self.mode == "recursive" else self.horizon
        train_origins = window_origins(lengths, window, steps_out, 0, [n - val_size for n in lengths])
        val_origins = window_origins(lengths, window, self.horizon, [n - val_size for n in lengths])
        train_set = WindowDataset(values, *train_origins, window, steps_out, n_t, n_f)
        val_set = WindowDataset(values, *val_origins, window, self.horizon, n_t, n_f)
        val_loss_set = val_set if steps_out == self.horizon else WindowDataset(
            values, *window_origins(lengths, window, 1, [n - val_size for n in lengths]), window, 1, n_t, n_f)

        self.scores_: dict[str, float] = {}
        best: tuple[float, ForecastEnsemble, str, Any] | None = None
        with tempfile.TemporaryDirectory(prefix="lstmkit-") as scratch:
            root = Path(self.run_dir) if self.run_dir is not None else Path(scratch)
            for transform in candidates:
                config = NetConfig(n_t, n_p, n_f, window, self.horizon, quantiles, transform,
                                   self.mode == "recursive", self.cell, self.hidden_size, self.num_layers,
                                   float(self.dropout))
                ensemble = ForecastEnsemble(config, self.ensemble)
                results = []
                for k, member in enumerate(ensemble.members):
                    seed = training.seed + k
                    L.seed_everything(seed, verbose=False)
                    member.load_state_dict(ForecastNet(config).state_dict())  # initialised from this seed
                    run = root / f"{transform}-{k}"
                    results.append(fit(ForecastModule(member, training.replace(seed=seed)),
                                       BatchStream(train_set, training.batch_size, True, seed),
                                       BatchStream(val_loss_set, 256, False), run))
                score = self._validation_mase(ensemble, val_set, series, targets, scaler, val_size, season)
                self.scores_[transform] = score
                if best is None or score < best[0]:
                    best = (score, ensemble, transform, results)
        assert best is not None
        self.network_ = best[1].eval()
        self.transform_ = best[2]
        self.fit_results_ = best[3]
        self.schema_ = schema
        self.series_ids_ = [s.id for s in series]
        self.scaler_ = scaler
        self.window_ = window
        self.val_size_ = val_size
        self.season_length_ = season
        # the last window of every series, in original units, so predict() needs no data
        self.context_ = [np.concatenate([s.target, s.past, s.future], axis=1)[-window:] for s in series]
        self.last_time_ = [s.time[-1] for s in series]
        self.train_series_ = [s.target for s in series]
        return self

    def _default_window(self, season: int, shortest: int, val_size: int) -> int:
        wanted = max(2 * season, 3 * self.horizon, 8)
        # keep at least 16 training windows in the shortest series
        room = shortest - val_size - self.horizon - 16 + 1
        return max(2, min(wanted, room))

    def _check_lengths(self, series: list[Series], window: int, val_size: int) -> None:
        needed = window + self.horizon + val_size
        for s in series:
            if len(s) < needed:
                raise DataError(
                    f"series {s.id!r} has {len(s)} steps, fewer than window ({window}) + horizon ({self.horizon}) + "
                    f"validation ({val_size}) = {needed}; use a shorter window or horizon, or a smaller val_size"
                )

    @staticmethod
    def _check_mase_defined(series: list[Series], val_size: int, season: int, names: list[str]) -> None:
        """The validation MASE (which picks the transform) needs a non-zero seasonal naive error on
        every training part: say so before training, not after."""
        for s in series:
            train = s.target[: len(s) - val_size]
            if len(train) <= season:
                raise DataError(f"series {s.id!r} has {len(train)} training steps, not more than a season "
                                f"({season}); use a smaller season_length or val_size")
            flat = np.abs(train[season:] - train[:-season]).mean(axis=0) == 0
            if flat.any():
                raise DataError(f"target {names[int(np.flatnonzero(flat)[0])]!r} of series {s.id!r} is constant or "
                                f"exactly periodic (season {season}) on its training part: the seasonal naive "
                                "forecast is exact there and no model can be judged against it (MASE is undefined)")

    @staticmethod
    def _fit_scaler(series: list[Series], targets: list[np.ndarray], val_size: int) -> _Scaler:
        means, stds = [], []
        for s, t in zip(series, targets):
            train = np.concatenate([t, s.past, s.future], axis=1)[: len(s) - val_size]
            std = train.std(axis=0)
            means.append(train.mean(axis=0))
            stds.append(np.where(std > 1e-12, std, 1.0))
        return _Scaler(np.stack(means), np.stack(stds))

    def _validation_mase(self, net: ForecastEnsemble, val_set: WindowDataset, series: list[Series],
                         targets: list[np.ndarray], scaler: _Scaler, val_size: int, season: int) -> float:
        """Mean MASE over the validation windows, in original units."""
        net.eval()
        with torch.no_grad():
            inputs, future, actual, which = val_set.__getitems__(range(len(val_set)))
            point = net(inputs, future)[..., net.config.point_index]  # (N, H, n_t)
        scores = []
        n_t = actual.shape[-1]
        for k in range(len(series)):
            rows = (which == k).numpy()
            if not rows.any():
                continue
            pred = scaler.invert(k, point[rows].numpy(), slice(0, n_t))
            true = scaler.invert(k, actual[rows].numpy(), slice(0, n_t))
            train = targets[k][: len(series[k]) - val_size]
            if self.log:
                pred, true, train = np.exp(pred), np.exp(true), np.exp(train)
            if n_t == 1:  # (windows, horizon) against a 1-D training series
                pred, true, train = pred[..., 0], true[..., 0], train[:, 0]
            scores.append(mase(true, pred, train, season))
        return float(np.mean(scores)) if scores else math.inf

    # -- predict ------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError("this LSTMForecaster is not fitted yet; call fit(data) first")

    def predict(self, data: Any = None, future_covariates: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast the ``horizon`` steps after the end of the data.

        Args:
            data: new history in the layout used in ``fit`` (its last ``window`` steps are read);
                ``None`` forecasts from the end of the training data, or of the history given to
                :meth:`update_history` since.
            future_covariates: with future covariates, their values over the horizon: a table with
                the future-covariate columns (and the series id column for many series), exactly
                ``horizon`` rows per series, in time order.

        Returns:
            a DataFrame with the time column (``step`` for integer time), the series id column
            for many series, ``target``, ``forecast`` and ``lower_XX``/``upper_XX`` interval columns.
        """
        self._check_fitted()
        schema: Schema = self.schema_
        if data is None:
            contexts, last_times = self.context_, self.last_time_
            ids = self.series_ids_
        else:
            ids, contexts, last_times = self._history_of(data, "predict")
        future = self._future_block(ids, future_covariates)
        inputs = []
        for sid, context in zip(ids, contexts):
            k = self.series_ids_.index(sid)
            values = context.copy()
            n_t = len(schema.target)
            if self.log:
                if (values[:, :n_t] <= 0).any():
                    raise DataError(f"the model forecasts the log of the target, but series {sid!r} has values <= 0")
                values[:, :n_t] = np.log(values[:, :n_t])
            inputs.append(self.scaler_.apply(k, values))
        x = torch.from_numpy(np.stack(inputs).astype(np.float32))
        n_f = len(schema.future_covariates)
        future_columns = slice(x.shape[-1] - n_f, x.shape[-1])
        fut = torch.from_numpy(np.stack([self.scaler_.apply(self.series_ids_.index(sid), f, future_columns)
                                         for sid, f in zip(ids, future)]).astype(np.float32))
        with torch.no_grad():
            output = self.network_.eval()(x, fut).numpy()  # (S, H, n_t, Q)
        return self._frame(ids, last_times, output)

    def update_history(self, data: Any) -> LSTMForecaster:
        """Make ``data`` the history that :meth:`predict` without data continues from: the last
        ``window`` steps of each series in it (series not in ``data`` keep theirs). The weights
        and the scaling stay as fitted; nothing is retrained (as sktime's ``update`` with
        ``update_params=False``).

        After a fit on a training split, ``predict()`` forecasts what follows the split, i.e. the
        held-out steps. ``lstmkit forecast`` calls this with the whole data before it saves the
        model, so that a saved run's ``predict()`` forecasts beyond the data, as its
        ``forecast.csv`` does.

        Args:
            data: history in the layout used in ``fit``, at least ``window`` steps per series.

        Returns:
            the estimator itself.
        """
        self._check_fitted()
        ids, contexts, last_times = self._history_of(data, "update_history")
        for sid, context, last in zip(ids, contexts, last_times):
            k = self.series_ids_.index(sid)
            self.context_[k], self.last_time_[k] = context, last
        return self

    def _history_of(self, data: Any, caller: str) -> tuple[list, list[np.ndarray], list]:
        """The series ids in ``data``, the last window of each (in original units) and its last time."""
        schema: Schema = self.schema_
        series, new_schema = to_series(data, schema.target, schema.time, schema.series_id,
                                       schema.past_covariates, schema.future_covariates, self.fill_missing)
        self._check_time_layout(new_schema)
        ids = [s.id for s in series]
        unknown = [i for i in ids if i not in self.series_ids_]
        if unknown:
            raise DataError(f"series {unknown} were not seen in fit; a global model scales each series with its "
                            f"training statistics. Known series: {self.series_ids_}")
        for s in series:
            if len(s) < self.window_:
                raise DataError(f"series {s.id!r} has {len(s)} steps; {caller} needs the last {self.window_} "
                                f"(the window) of each series")
        contexts = [np.concatenate([s.target, s.past, s.future], axis=1)[-self.window_:] for s in series]
        return ids, contexts, [s.time[-1] for s in series]

    def backtest(self, data: Any, start: int | None = None, step: int = 1) -> pd.DataFrame:
        """Rolling-origin forecasts over history, with the fitted model (no refitting).

        From every origin ``start, start + step, ...`` (a position in each series) the ``horizon``
        following steps are forecast from the ``window`` before the origin and set against the
        actual values.

        Args:
            data: history in the layout used in ``fit`` (covariates included).
            start: the first origin, a 0-based position in each series (``>= window``); negative
                counts from the end of each series (``-24``: the last 24 steps); default ``window``.
            step: steps between origins.

        Returns:
            a DataFrame with the series id column (for many series), ``origin`` (the time of the
            last observed step), the time column, ``target``, ``forecast``, the interval columns
            and ``actual``.
        """
        self._check_fitted()
        schema: Schema = self.schema_
        series, new_schema = to_series(data, schema.target, schema.time, schema.series_id, schema.past_covariates,
                                       schema.future_covariates, self.fill_missing)
        self._check_time_layout(new_schema)
        if step < 1:
            raise ConfigError(f"step must be >= 1, got {step}")
        n_t = len(schema.target)
        frames = []
        for s in series:
            if s.id not in self.series_ids_:
                raise DataError(f"series {s.id!r} was not seen in fit; known series: {self.series_ids_}")
            k = self.series_ids_.index(s.id)
            first = self.window_ if start is None else (start if start >= 0 else len(s) + start)
            if first < self.window_:
                raise ConfigError(f"start={start} leaves series {s.id!r} less than a window ({self.window_} steps) "
                                  "before the first origin")
            values = np.concatenate([s.target, s.past, s.future], axis=1)
            if self.log:
                if (values[:, :n_t] <= 0).any():
                    raise DataError(f"the model forecasts the log of the target, but series {s.id!r} has values <= 0")
                values[:, :n_t] = np.log(values[:, :n_t])
            scaled = torch.from_numpy(self.scaler_.apply(k, values).astype(np.float32))
            origins = np.arange(first, len(s) - self.horizon + 1, step)
            if len(origins) == 0:
                raise DataError(f"series {s.id!r} has {len(s)} steps: no origin from {first} leaves a full horizon "
                                f"({self.horizon}) of actual values")
            dataset = WindowDataset(scaled, origins - self.window_, np.zeros(len(origins), dtype=np.int64),
                                    self.window_, self.horizon, n_t, len(schema.future_covariates))
            inputs, future, _, _ = dataset.__getitems__(range(len(dataset)))
            with torch.no_grad():
                values = self._unscale(k, self.network_.eval()(inputs, future).numpy())  # (origins, H, n_t, Q)
            steps = origins[:, None] + np.arange(self.horizon)[None]  # (origins, H)
            for j, name in enumerate(schema.target):
                columns = {key: column.ravel() for key, column in self._columns(values[:, :, j]).items()}
                frame = pd.DataFrame({
                    "origin": np.repeat(s.time[origins - 1], self.horizon),
                    self._time_name: s.time[steps.ravel()],
                    "target": name,
                    **columns,
                    "actual": s.target[steps.ravel(), j],
                })
                if schema.series_id is not None:
                    frame.insert(0, schema.series_id, s.id)
                frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def _check_time_layout(self, new: Schema) -> None:
        """New data must have the kind of time stamps and the frequency the model was fitted on."""
        fitted: Schema = self.schema_
        same_freq = new.freq is None or new.freq == fitted.freq or (
            isinstance(new.freq, str) and isinstance(fitted.freq, str)
            and pd.tseries.frequencies.to_offset(new.freq) == pd.tseries.frequencies.to_offset(fitted.freq))
        if new.time_kind != fitted.time_kind or not same_freq:
            raise DataError(f"the data has {new.time_kind} time stamps with frequency {new.freq!r}, but the model "
                            f"was fitted on {fitted.time_kind} time stamps with frequency {fitted.freq!r}; pass data "
                            "in the layout used in fit")

    def _future_block(self, ids: list[str], future_covariates: pd.DataFrame | None) -> list[np.ndarray]:
        schema: Schema = self.schema_
        columns = schema.future_covariates
        if not columns:
            if future_covariates is not None:
                raise ConfigError("the model was fitted without future covariates; do not pass future_covariates")
            return [np.zeros((self.horizon, 0)) for _ in ids]
        if future_covariates is None:
            raise DataError(f"the model uses future covariates {columns}; pass their {self.horizon} values per "
                            f"series over the horizon as future_covariates=")
        needed = columns + ([schema.series_id] if schema.series_id is not None else [])
        missing = [c for c in needed if c not in future_covariates.columns]
        if missing:
            raise DataError(f"future_covariates lacks column(s) {missing}; it needs {needed}")
        blocks = []
        for sid in ids:
            part = future_covariates
            if schema.series_id is not None:
                part = future_covariates[future_covariates[schema.series_id].astype(str) == sid]
            if len(part) != self.horizon:
                raise ShapeError(f"future_covariates has {len(part)} rows for series {sid!r}; it needs exactly "
                                 f"horizon = {self.horizon}")
            try:
                block = part[columns].to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise DataError(f"future_covariates of series {sid!r} has non-numeric values ({error})") from None
            if not np.isfinite(block).all():
                raise DataError(f"future_covariates of series {sid!r} has missing or infinite values")
            blocks.append(block)
        return blocks

    def _unscale(self, k: int, output: np.ndarray) -> np.ndarray:
        """Network output ``(..., H, n_t, Q)`` of series ``k`` in scaled units -> original units."""
        n_t = len(self.schema_.target)
        values = np.stack([self.scaler_.invert(k, output[..., q], slice(0, n_t)) for q in range(output.shape[-1])],
                          axis=-1)
        return np.exp(values) if self.log else values

    def _columns(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """``forecast`` and ``lower_XX``/``upper_XX`` columns from ``(..., Q)`` values."""
        config = self.network_.config
        columns = {"forecast": values[..., config.point_index]}
        quantiles = config.quantiles
        for low, high in zip(quantiles, reversed(quantiles)):
            if low >= 0.5:
                break
            level = round(100 * (high - low))
            columns[f"lower_{level}"] = values[..., quantiles.index(low)]
            columns[f"upper_{level}"] = values[..., quantiles.index(high)]
        return columns

    @property
    def _time_name(self) -> str:
        schema: Schema = self.schema_
        return schema.time or ("step" if schema.time_kind == "int" else "time")

    def _frame(self, ids: list[str], last_times: list[Any], output: np.ndarray) -> pd.DataFrame:
        schema: Schema = self.schema_
        rows = []
        for s, (sid, last) in enumerate(zip(ids, last_times)):
            values = self._unscale(self.series_ids_.index(sid), output[s])  # (H, n_t, Q)
            times = future_times(last, schema.freq, schema.time_kind, self.horizon)
            for j, name in enumerate(schema.target):
                frame = pd.DataFrame({self._time_name: times, "target": name, **self._columns(values[:, j])})
                if schema.series_id is not None:
                    frame.insert(0, schema.series_id, sid)
                rows.append(frame)
        return pd.concat(rows, ignore_index=True)

    # -- save / load --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Save to a model directory (``config.json`` + ``model.safetensors``), atomically.

        Returns:
            the directory.
        """
        from lstmkit import __version__
        from lstmkit.io import save_model_dir

        self._check_fitted()
        params = {k: v for k, v in self.get_params().items() if k not in ("training", "run_dir")}
        params["quantiles"] = list(params["quantiles"])
        config = {
            "params": params,
            "training": (self.training or DEFAULT_TRAINING).to_dict(),
            "network": self.network_.config.to_dict(),
            "members": len(self.network_.members),
            "schema": self.schema_.to_dict(),
            "series_ids": self.series_ids_,
            "last_time": [_time_to_json(t) for t in self.last_time_],
            "scaler": {"mean": self.scaler_.mean.tolist(), "std": self.scaler_.std.tolist()},
            "window": self.window_, "val_size": self.val_size_, "season_length": self.season_length_,
            "transform": self.transform_, "validation_mase": self.scores_,
        }
        tensors = {f"network.{k}": v for k, v in self.network_.state_dict().items()}
        tensors.update({f"context.{k}": torch.from_numpy(c) for k, c in enumerate(self.context_)})
        return save_model_dir(path, "forecaster", config, tensors, __version__)

    @classmethod
    def load(cls, path: str | Path) -> LSTMForecaster:
        """Load a model directory written by :meth:`save`; no code in it is run.

        Raises:
            ModelFileError: the directory is missing, corrupt or from an incompatible version.
        """
        from lstmkit.errors import ModelFileError
        from lstmkit.io import load_model_dir

        config, tensors = load_model_dir(path, "forecaster")
        try:
            model = cls(**{**config["params"], "quantiles": tuple(config["params"]["quantiles"]),
                           "training": TrainConfig.from_dict(config["training"])})
            model._validate_params()
            net_config = NetConfig.from_dict(config["network"])
            if net_config.horizon != model.horizon:
                raise ValueError(f"the network forecasts {net_config.horizon} steps but horizon is {model.horizon}")
            net = ForecastEnsemble(net_config, int(config["members"]))
            state = {k[len("network."):]: v for k, v in tensors.items() if k.startswith("network.")}
            net.load_state_dict(state)
            model.network_ = net.eval()
            model.schema_ = Schema.from_dict(config["schema"])
            model.series_ids_ = list(config["series_ids"])
            model.last_time_ = [_time_from_json(t, model.schema_.time_kind) for t in config["last_time"]]
            model.scaler_ = _Scaler(np.asarray(config["scaler"]["mean"], dtype=np.float64),
                                    np.asarray(config["scaler"]["std"], dtype=np.float64))
            model.window_, model.val_size_ = int(config["window"]), int(config["val_size"])
            model.season_length_, model.transform_ = int(config["season_length"]), config["transform"]
            model.scores_ = dict(config["validation_mase"])
            model.context_ = [tensors[f"context.{k}"].numpy() for k in range(len(model.series_ids_))]
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ModelFileError(f"{path} does not describe a valid forecaster ({type(error).__name__}: {error}); "
                                 "the files are corrupt or were edited") from None
        return model

    def __sklearn_clone__(self) -> LSTMForecaster:
        return type(self)(**copy.deepcopy(self.get_params()))
