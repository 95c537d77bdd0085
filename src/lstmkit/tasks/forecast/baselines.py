"""Classical forecasts to compare a learned model against, and rolling-origin backtest splits.

Four baselines on a univariate training series, each returning a :class:`BaselineForecast` with a
point forecast of shape ``(horizon,)`` and, on request, normal prediction intervals at levels in
percent (``levels=(80, 95)``; values below 1 are refused, as 0.8 almost surely means 80):

* :func:`naive` - the last value, repeated;
* :func:`seasonal_naive` - the last season, repeated;
* :func:`auto_ets` - the exponential smoothing model chosen by AICc (``statsforecast`` AutoETS);
* :func:`auto_arima` - the ARIMA model chosen by AICc (``statsforecast`` AutoARIMA).

All four are computed by statsforecast, so the intervals follow one convention (Hyndman &
Athanasopoulos, *Forecasting: Principles and Practice*): for the naive forecast
``sigma_h = sigma * sqrt(h)``, for the seasonal naive forecast
``sigma_h = sigma * sqrt(floor((h - 1) / m) + 1)``, with ``sigma`` the root mean square of the
one-step in-sample residuals. With ``season_length=1`` the automatic models are non-seasonal.

:func:`baseline_forecasts` runs several baselines for a comparison; a baseline that cannot handle
the series is recorded as failed in its result instead of aborting the others (see there).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from lstmkit.errors import ConfigError, DataError, ShapeError
from lstmkit.tasks.forecast._checks import as_float_array, check_finite, check_int

__all__ = [
    "METHODS",
    "BaselineForecast",
    "naive",
    "seasonal_naive",
    "auto_ets",
    "auto_arima",
    "baseline_forecasts",
    "rolling_origin_splits",
]

METHODS: tuple[str, ...] = ("naive", "seasonal_naive", "auto_ets", "auto_arima")
"""The baseline names :func:`baseline_forecasts` accepts, in its default order."""


@dataclass(frozen=True, eq=False)
class BaselineForecast:
    """The forecast of one baseline method.

    Attributes:
        method: The method name, one of :data:`METHODS`.
        mean: Point forecast, shape ``(horizon,)``. All NaN when the method failed.
        lower: Lower interval bounds by level in percent (``lower[95]``), each of shape
            ``(horizon,)``; empty when no levels were requested or the method failed.
        upper: Upper interval bounds, keyed like ``lower``.
        error: ``None`` on success; otherwise why the method failed (only
            :func:`baseline_forecasts` records failures, the single-method functions raise).
    """

    method: str
    mean: np.ndarray
    lower: dict[float, np.ndarray] = field(default_factory=dict)
    upper: dict[float, np.ndarray] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the method produced a forecast."""
        return self.error is None


def _check_series(y_train: ArrayLike) -> np.ndarray:
    series = as_float_array("y_train", y_train)
    if series.ndim != 1 or series.size == 0:
        raise ShapeError(
            f"y_train must be a non-empty univariate series of shape (n_train,), got shape {series.shape}; "
            "pass one column (for a (n, 1) array, y_train[:, 0])"
        )
    check_finite("y_train", series)
    return series


def _check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    if isinstance(levels, np.ndarray) and levels.ndim == 1:
        levels = levels.tolist()
    if isinstance(levels, str | bytes) or not isinstance(levels, Sequence):
        raise ConfigError(f"levels must be a sequence of percentages such as (80, 95), got {levels!r}")
    checked = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 1 <= level < 100:
            # Levels below 1 are refused rather than read as fractions: 0.8 almost surely means 80.
            hint = f"; did you mean {level * 100:g}?" if isinstance(level, float) and 0 < level < 1 else ""
            raise ConfigError(
                f"every level must be a percentage in [1, 100) (80 for an 80% interval), got {level!r}{hint}"
            )
        # 80.0 -> 80 so that statsforecast's keys ("lo-80") and ours agree whichever the caller wrote.
        checked.append(int(level) if float(level).is_integer() else float(level))
    return tuple(sorted(set(checked)))


def _require_length(label: str, series: np.ndarray, minimum: int, reason: str) -> None:
    if series.size < minimum:
        raise DataError(
            f"{label} needs a training series of at least {minimum} values ({reason}), got {series.size}; "
            "pass a longer training part"
        )


def _interval_length(label: str, series: np.ndarray, levels: tuple[float, ...], minimum: int = 2) -> None:
    if levels:
        _require_length(label, series, minimum, "to estimate the spread of prediction intervals")


def _run_statsforecast(
    method: str, label: str, model: Any, series: np.ndarray, horizon: int, levels: tuple[float, ...]
) -> BaselineForecast:
    try:
        raw = model.forecast(y=series, h=horizon, level=list(levels) if levels else None)
    except Exception as exc:  # statsforecast reports unusable data with assorted exception types
        raise DataError(
            f"{label} failed on a training series of {series.size} values ({type(exc).__name__}: {exc}); "
            "use a longer training part, a smaller season_length or a simpler baseline"
        ) from exc
    mean = np.asarray(raw["mean"], dtype=np.float64)
    lower = {level: np.asarray(raw[f"lo-{level}"], dtype=np.float64) for level in levels}
    upper = {level: np.asarray(raw[f"hi-{level}"], dtype=np.float64) for level in levels}
    for values in (mean, *lower.values(), *upper.values()):
        if values.shape != (horizon,) or not np.isfinite(values).all():
            raise DataError(
                f"{label} returned an unusable forecast on a training series of {series.size} values "
                f"(shape {values.shape}, {int(np.sum(~np.isfinite(values)))} non-finite values); "
                "the series is probably too short or degenerate for this model"
            )
    return BaselineForecast(method=method, mean=mean, lower=lower, upper=upper)


def naive(y_train: ArrayLike, horizon: int, levels: Sequence[float] = ()) -> BaselineForecast:
    """Naive forecast: the last observed value, repeated over the horizon.

    Args:
        y_train: Training series, shape ``(n_train,)``.
        horizon: Number of steps to forecast.
        levels: Prediction-interval levels in percent in [1, 100), e.g. ``(80, 95)``; none by default.

    Returns:
        The forecast; ``mean`` has shape ``(horizon,)``.

    Raises:
        ShapeError: ``y_train`` is not a non-empty 1-D series.
        DataError: ``y_train`` has NaN or infinite values, or fewer than 2 values with ``levels``.
        ConfigError: ``horizon`` or a level is invalid.

    Example:
        >>> naive([1.0, 3.0, 2.0], horizon=3).mean
        array([2., 2., 2.])
    """
    series, horizon, levels = _check_series(y_train), check_int("horizon", horizon), _check_levels(levels)
    _interval_length("naive", series, levels)
    from statsforecast.models import Naive  # imported on use: statsforecast takes seconds to import

    return _run_statsforecast("naive", "naive (statsforecast Naive)", Naive(), series, horizon, levels)


def seasonal_naive(
    y_train: ArrayLike, horizon: int, season_length: int, levels: Sequence[float] = ()
) -> BaselineForecast:
    """Seasonal naive forecast: the last ``season_length`` values, repeated over the horizon.

    Args:
        y_train: Training series, shape ``(n_train,)``.
        horizon: Number of steps to forecast.
        season_length: Observations per seasonal cycle (12 for monthly data with yearly seasons).
        levels: Prediction-interval levels in percent in [1, 100), e.g. ``(80, 95)``; none by default.

    Returns:
        The forecast; ``mean`` has shape ``(horizon,)``.

    Raises:
        ShapeError: ``y_train`` is not a non-empty 1-D series.
        DataError: ``y_train`` has NaN or infinite values, fewer than ``season_length`` values, or
            fewer than ``season_length + 1`` values with ``levels``.
        ConfigError: ``horizon``, ``season_length`` or a level is invalid.

    Example:
        >>> seasonal_naive([1.0, 2.0, 3.0, 4.0, 5.0], horizon=5, season_length=2).mean
        array([4., 5., 4., 5., 4.])
    """
    series, horizon, levels = _check_series(y_train), check_int("horizon", horizon), _check_levels(levels)
    season_length = check_int("season_length", season_length)
    label = f"seasonal naive (season_length={season_length})"
    _require_length(label, series, season_length, "one full season to repeat")
    _interval_length(label, series, levels, minimum=season_length + 1)
    from statsforecast.models import SeasonalNaive

    model = SeasonalNaive(season_length=season_length)
    return _run_statsforecast("seasonal_naive", label, model, series, horizon, levels)


def auto_ets(y_train: ArrayLike, horizon: int, season_length: int, levels: Sequence[float] = ()) -> BaselineForecast:
    """Exponential smoothing (ETS) forecast with the model chosen by AICc (statsforecast ``AutoETS``).

    With ``season_length=1`` only non-seasonal models are considered (``model="ZZN"``); otherwise
    all (``"ZZZ"``). AutoETS itself drops the seasonal candidates when the series is no longer
    than one season.

    Args:
        y_train: Training series, shape ``(n_train,)``.
        horizon: Number of steps to forecast.
        season_length: Observations per seasonal cycle; 1 for non-seasonal data.
        levels: Prediction-interval levels in percent in [1, 100), e.g. ``(80, 95)``; none by default.

    Returns:
        The forecast; ``mean`` has shape ``(horizon,)``.

    Raises:
        ShapeError: ``y_train`` is not a non-empty 1-D series.
        DataError: ``y_train`` has NaN or infinite values, or AutoETS cannot fit it (for example
            fewer than about 7 values: too few to estimate the smoothing parameters).
        ConfigError: ``horizon``, ``season_length`` or a level is invalid.

    Example:
        >>> forecast = auto_ets([10.0, 12.0, 11.0, 13.0, 12.0, 14.0, 13.0, 15.0], horizon=4, season_length=1,
        ...                     levels=(80,))
        >>> forecast.mean.shape, bool((forecast.lower[80] < forecast.upper[80]).all())
        ((4,), True)
    """
    series, horizon, levels = _check_series(y_train), check_int("horizon", horizon), _check_levels(levels)
    season_length = check_int("season_length", season_length)
    label = f"AutoETS (season_length={season_length})"
    _interval_length(label, series, levels)
    from statsforecast.models import AutoETS

    model = AutoETS(season_length=season_length, model="ZZZ" if season_length > 1 else "ZZN")
    return _run_statsforecast("auto_ets", label, model, series, horizon, levels)


def auto_arima(y_train: ArrayLike, horizon: int, season_length: int, levels: Sequence[float] = ()) -> BaselineForecast:
    """ARIMA forecast with the orders chosen by AICc (statsforecast ``AutoARIMA``, stepwise search).

    With ``season_length=1`` the search is non-seasonal (``seasonal=False``).

    Args:
        y_train: Training series, shape ``(n_train,)``.
        horizon: Number of steps to forecast.
        season_length: Observations per seasonal cycle; 1 for non-seasonal data.
        levels: Prediction-interval levels in percent in [1, 100), e.g. ``(80, 95)``; none by default.

    Returns:
        The forecast; ``mean`` has shape ``(horizon,)``.

    Raises:
        ShapeError: ``y_train`` is not a non-empty 1-D series.
        DataError: ``y_train`` has NaN or infinite values, fewer than 2 values with ``levels``, or
            AutoARIMA cannot fit it.
        ConfigError: ``horizon``, ``season_length`` or a level is invalid.

    Example:
        >>> auto_arima([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], horizon=3, season_length=1).mean.shape
        (3,)
    """
    series, horizon, levels = _check_series(y_train), check_int("horizon", horizon), _check_levels(levels)
    season_length = check_int("season_length", season_length)
    label = f"AutoARIMA (season_length={season_length})"
    _interval_length(label, series, levels)
    from statsforecast.models import AutoARIMA

    model = AutoARIMA(season_length=season_length, seasonal=season_length > 1)
    return _run_statsforecast("auto_arima", label, model, series, horizon, levels)


# One signature for all: (y_train, horizon, season_length, levels).
_BASELINES: dict[str, Callable[[np.ndarray, int, int, tuple[float, ...]], BaselineForecast]] = {
    "naive": lambda series, horizon, _season_length, levels: naive(series, horizon, levels),
    "seasonal_naive": seasonal_naive,
    "auto_ets": auto_ets,
    "auto_arima": auto_arima,
}


def baseline_forecasts(
    y_train: ArrayLike,
    horizon: int,
    season_length: int,
    methods: Sequence[str] = METHODS,
    levels: Sequence[float] = (),
    on_error: Literal["record", "raise"] = "record",
) -> dict[str, BaselineForecast]:
    """Run several baselines on one training series, for a comparison table.

    A comparison should not lose every baseline because one of them cannot handle the series
    (AutoETS on 6 values, a seasonal naive forecast on less than one season). So by default a
    method that fails with a :class:`~lstmkit.errors.DataError` is *recorded*: its result has
    ``ok == False``, ``error`` set to the reason, an all-NaN ``mean`` (which every metric in
    :mod:`lstmkit.tasks.forecast.metrics` refuses, so it cannot be scored by accident) and no
    intervals, and a ``RuntimeWarning`` names it. Problems with the arguments themselves (wrong
    shape, NaN in ``y_train``, unknown method, bad horizon or level) are raised at once, before any
    model runs. Pass ``on_error="raise"`` to raise the first model failure instead.

    Args:
        y_train: Training series, shape ``(n_train,)``.
        horizon: Number of steps to forecast.
        season_length: Observations per seasonal cycle; 1 for non-seasonal data. ``naive``
            ignores it.
        methods: Names from :data:`METHODS`, run in the order given.
        levels: Prediction-interval levels in percent in [1, 100), e.g. ``(80, 95)``; none by default.
        on_error: ``"record"`` (default) or ``"raise"``, see above.

    Returns:
        ``{method: BaselineForecast}`` in the order of ``methods``.

    Raises:
        ShapeError: ``y_train`` is not a non-empty 1-D series.
        DataError: ``y_train`` has NaN or infinite values; or a method failed and
            ``on_error="raise"``.
        ConfigError: An unknown method, or an invalid ``horizon``, ``season_length``, level or
            ``on_error``.

    Example:
        >>> forecasts = baseline_forecasts([1.0, 2.0, 3.0, 4.0], horizon=2, season_length=2,
        ...                                methods=("naive", "seasonal_naive"))
        >>> {name: forecast.mean.tolist() for name, forecast in forecasts.items()}
        {'naive': [4.0, 4.0], 'seasonal_naive': [3.0, 4.0]}
    """
    series, horizon, level_tuple = _check_series(y_train), check_int("horizon", horizon), _check_levels(levels)
    season_length = check_int("season_length", season_length)
    if isinstance(methods, str) or not isinstance(methods, Sequence):
        raise ConfigError(f"methods must be a sequence of names such as ('naive', 'auto_ets'), got {methods!r}")
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise ConfigError(f"unknown baseline method(s) {unknown}; choose from {list(METHODS)}")
    if on_error not in ("record", "raise"):
        raise ConfigError(f"on_error must be 'record' or 'raise', got {on_error!r}")

    results: dict[str, BaselineForecast] = {}
    for method in methods:
        try:
            results[method] = _BASELINES[method](series, horizon, season_length, level_tuple)
        except DataError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"baseline {method!r} failed and is recorded as failed: {exc}", RuntimeWarning, stacklevel=2)
            results[method] = BaselineForecast(method=method, mean=np.full(horizon, np.nan), error=str(exc))
    return results


def rolling_origin_splits(n: int, horizon: int, n_windows: int, step: int | None = None) -> list[tuple[int, int]]:
    """Index pairs ``(train_end, test_end)`` of a rolling-origin (expanding window) backtest.

    Window ``k`` trains on ``y[:train_end]`` and is scored on ``y[train_end:test_end]``, where
    ``test_end - train_end == horizon``. Consecutive origins are ``step`` apart, the windows are in
    time order, and the last one ends at ``n``. With the default ``step = horizon`` the test parts
    tile the end of the series without overlap.

    Args:
        n: Length of the series.
        horizon: Length of each test part.
        n_windows: Number of windows (forecast origins).
        step: Distance between consecutive origins; ``horizon`` by default.

    Returns:
        ``n_windows`` pairs ``(train_end, test_end)``, oldest first.

    Raises:
        ConfigError: An argument is not an int >= 1, or the series is too short for every training
            part to hold at least 1 value.

    Example:
        >>> rolling_origin_splits(10, horizon=2, n_windows=3)
        [(4, 6), (6, 8), (8, 10)]
        >>> rolling_origin_splits(10, horizon=3, n_windows=3, step=1)
        [(5, 8), (6, 9), (7, 10)]
    """
    n, horizon, n_windows = check_int("n", n), check_int("horizon", horizon), check_int("n_windows", n_windows)
    step = horizon if step is None else check_int("step", step)
    span = (n_windows - 1) * step + horizon  # from the first origin to the end of the series
    first_train_end = n - span
    if first_train_end < 1:
        raise ConfigError(
            f"a backtest of n_windows={n_windows}, horizon={horizon}, step={step} needs a series of at least "
            f"{span + 1} values so that the first window trains on at least 1 value, got n={n}; "
            "use fewer windows, a smaller step or a shorter horizon"
        )
    return [(first_train_end + k * step, first_train_end + k * step + horizon) for k in range(n_windows)]
