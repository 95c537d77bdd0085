"""Accuracy metrics for point and interval forecasts, over plain numpy arrays.

Forecasts and actuals share one of three layouts:

* ``(horizon,)`` - one forecast of one series;
* ``(n_windows, horizon)`` - several forecasts of one series (a rolling-origin backtest);
* ``(n_windows, horizon, n_targets)`` - several series forecast together (pass a single
  multivariate forecast as ``(1, horizon, n_targets)``).

Every metric pools all the values it is given into one number: :func:`mae`, :func:`smape`,
:func:`mase`, :func:`pinball_loss` and :func:`coverage` are means over windows, steps and
targets; :func:`rmse` is the square root of the pooled mean squared error (not a mean of per-window
RMSEs). Slice the arrays first to score one window, step or target.

Inputs are checked before anything is computed: shapes must match exactly (no broadcasting) and
every value must be finite. Errors come from :mod:`lstmkit.errors`.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

from lstmkit.errors import ConfigError, DataError, ShapeError
from lstmkit.tasks.forecast._checks import as_float_array, check_finite, check_int

__all__ = ["mae", "rmse", "smape", "mase", "pinball_loss", "coverage", "evaluate"]

_LAYOUTS = "(horizon,), (n_windows, horizon) or (n_windows, horizon, n_targets)"


def _check_actuals(y_true: ArrayLike) -> np.ndarray:
    actual = as_float_array("y_true", y_true)
    if actual.ndim not in (1, 2, 3) or actual.size == 0:
        raise ShapeError(f"y_true must have shape {_LAYOUTS} with no empty axis, got shape {actual.shape}")
    check_finite("y_true", actual)
    return actual


def _check_like(name: str, values: ArrayLike, actual: np.ndarray) -> np.ndarray:
    array = as_float_array(name, values)
    if array.shape != actual.shape:
        raise ShapeError(
            f"{name} must have the shape of y_true {actual.shape}, got {array.shape}; "
            "align forecasts and actuals (same windows, horizon and targets) before scoring"
        )
    check_finite(name, array)
    return array


def _check_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    actual = _check_actuals(y_true)
    return actual, _check_like("y_pred", y_pred, actual)


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error, ``mean(|y_true - y_pred|)``.

    Args:
        y_true: Actual values, shape ``(horizon,)``, ``(n_windows, horizon)`` or
            ``(n_windows, horizon, n_targets)``.
        y_pred: Point forecasts, same shape as ``y_true``.

    Returns:
        The MAE, in the units of the series.

    Raises:
        ShapeError: The layout is not one of the three above or the shapes differ.
        DataError: A value is NaN, infinite or not numeric.

    Example:
        >>> mae([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])  # errors 1, 0, 2
        1.0
    """
    actual, forecast = _check_pair(y_true, y_pred)
    return float(np.mean(np.abs(actual - forecast)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error, ``sqrt(mean((y_true - y_pred) ** 2))`` over all values.

    Args:
        y_true: Actual values, shape ``(horizon,)``, ``(n_windows, horizon)`` or
            ``(n_windows, horizon, n_targets)``.
        y_pred: Point forecasts, same shape as ``y_true``.

    Returns:
        The RMSE, in the units of the series.

    Raises:
        ShapeError: The layout is not one of the three above or the shapes differ.
        DataError: A value is NaN, infinite or not numeric.

    Example:
        >>> round(rmse([1.0, 2.0, 3.0], [2.0, 2.0, 5.0]), 4)  # sqrt((1 + 0 + 4) / 3)
        1.291
    """
    actual, forecast = _check_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((actual - forecast) ** 2)))


def smape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Symmetric mean absolute percentage error in percent, between 0 and 200.

    .. math::

        \\mathrm{sMAPE} = \\frac{200}{N} \\sum_{i=1}^{N} \\frac{|y_i - \\hat y_i|}{|y_i| + |\\hat y_i|}

    A term whose actual and forecast are both 0 is a perfect forecast and counts as 0 (the formula
    gives 0/0 there). Swapping ``y_true`` and ``y_pred`` leaves the value unchanged. A term with
    exactly one of the two at 0 counts 200, whatever the size of the other.

    Args:
        y_true: Actual values, shape ``(horizon,)``, ``(n_windows, horizon)`` or
            ``(n_windows, horizon, n_targets)``.
        y_pred: Point forecasts, same shape as ``y_true``.

    Returns:
        The sMAPE in percent.

    Raises:
        ShapeError: The layout is not one of the three above or the shapes differ.
        DataError: A value is NaN, infinite or not numeric.

    Example:
        >>> round(smape([1.0, 2.0, 3.0], [2.0, 2.0, 5.0]), 4)  # 200 * (1/3 + 0/4 + 2/8) / 3
        38.8889
        >>> smape([0.0, 1.0], [0.0, 1.0])
        0.0
    """
    actual, forecast = _check_pair(y_true, y_pred)
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(np.abs(actual - forecast), denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return float(200.0 * np.mean(ratio))


def _seasonal_naive_scale(y_train: ArrayLike, season_length: int, actual: np.ndarray) -> np.ndarray:
    """In-sample MAE of the seasonal naive forecast on ``y_train``: a scalar, or one per target."""
    train = as_float_array("y_train", y_train)
    if actual.ndim == 3:
        expected = f"(n_train, {actual.shape[-1]}) (one column per target)"
        ok = train.ndim == 2 and train.shape[1] == actual.shape[-1]
    else:
        expected = "(n_train,)"
        ok = train.ndim == 1
    if not ok:
        raise ShapeError(
            f"y_train must have shape {expected} for forecasts of shape {actual.shape}, got {train.shape}; "
            "pass the training part of the series, time along the first axis"
        )
    check_finite("y_train", train)
    n_train = train.shape[0]
    if n_train < season_length + 1:
        raise DataError(
            f"MASE with season_length={season_length} needs a training part of at least {season_length + 1} "
            f"values to compute the seasonal naive scale, got {n_train}; pass a longer y_train or a smaller "
            "season_length"
        )
    scale = np.mean(np.abs(train[season_length:] - train[:-season_length]), axis=0)
    if np.any(scale == 0):
        which = "" if np.ndim(scale) == 0 else f" for target(s) {np.flatnonzero(scale == 0).tolist()}"
        raise DataError(
            f"MASE is undefined{which}: the seasonal naive forecast (season_length={season_length}) is exact on "
            "the training part, so the scale (its in-sample MAE) is 0; the series is constant or exactly "
            "periodic - score it with mae or smape instead"
        )
    return scale


def mase(y_true: ArrayLike, y_pred: ArrayLike, y_train: ArrayLike, season_length: int) -> float:
    """Mean absolute scaled error: the MAE divided by the in-sample MAE of the seasonal naive forecast.

    .. math::

        \\mathrm{MASE} = \\frac{\\mathrm{mean}\\,|y_i - \\hat y_i|}
        {\\frac{1}{n - m} \\sum_{t=m+1}^{n} |y_t - y_{t-m}|}

    with ``n = len(y_train)`` and ``m = season_length``. Below 1, the forecast beats the one-step
    seasonal naive forecast on the training data. One scale per series: with
    ``(n_windows, horizon)`` forecasts all windows share the scale of ``y_train``; with
    ``(n_windows, horizon, n_targets)`` each target has its own scale and the result is the mean of
    the per-target MASEs.

    Args:
        y_true: Actual values, shape ``(horizon,)``, ``(n_windows, horizon)`` or
            ``(n_windows, horizon, n_targets)``.
        y_pred: Point forecasts, same shape as ``y_true``.
        y_train: The training part of the series, shape ``(n_train,)``, or ``(n_train, n_targets)``
            for 3-D forecasts.
        season_length: Observations per seasonal cycle (1 for the naive scale).

    Returns:
        The MASE (unitless).

    Raises:
        ShapeError: A layout is wrong or the shapes disagree.
        DataError: A value is NaN, infinite or not numeric; ``y_train`` has fewer than
            ``season_length + 1`` values; or the scale is 0 (constant or exactly periodic training
            data).
        ConfigError: ``season_length`` is not an int >= 1.

    Example:
        >>> # Naive in-sample errors are all 1, so the MAE of 0.5 scales to 0.5.
        >>> mase([7.0, 8.0], [7.0, 7.0], y_train=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], season_length=1)
        0.5
    """
    season_length = check_int("season_length", season_length)
    actual, forecast = _check_pair(y_true, y_pred)
    scale = _seasonal_naive_scale(y_train, season_length, actual)
    return float(np.mean(np.abs(actual - forecast) / scale))


def pinball_loss(y_true: ArrayLike, y_quantile: ArrayLike, quantile: float) -> float:
    """Quantile (pinball) loss of a forecast of the ``quantile``-th quantile.

    .. math::

        L_q = \\mathrm{mean}\\, \\max\\big(q (y - \\hat y_q),\\; (q - 1)(y - \\hat y_q)\\big)

    Under-forecasts cost ``q`` per unit, over-forecasts ``1 - q``; the expected loss is smallest at
    the true quantile. Unscaled: at ``q = 0.5`` it is half the MAE. Average it over several
    quantile levels to score a whole predictive distribution.

    Args:
        y_true: Actual values, shape ``(horizon,)``, ``(n_windows, horizon)`` or
            ``(n_windows, horizon, n_targets)``.
        y_quantile: Forecasts of the quantile, same shape as ``y_true``.
        quantile: The quantile level, strictly between 0 and 1 (0.9 for the 90th percentile).

    Returns:
        The mean pinball loss, in the units of the series.

    Raises:
        ShapeError: The layout is not one of the three above or the shapes differ.
        DataError: A value is NaN, infinite or not numeric.
        ConfigError: ``quantile`` is not a number strictly between 0 and 1.

    Example:
        >>> # errors y - q90 = -1, 0, 1 cost 0.1, 0, 0.9
        >>> round(pinball_loss([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], quantile=0.9), 4)
        0.3333
    """
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real) or not 0 < quantile < 1:
        raise ConfigError(
            f"quantile must be a float strictly between 0 and 1, got {quantile!r}; "
            "a 90% quantile is quantile=0.9, not 90"
        )
    actual = _check_actuals(y_true)
    forecast = _check_like("y_quantile", y_quantile, actual)
    error = actual - forecast
    return float(np.mean(np.maximum(quantile * error, (quantile - 1) * error)))


def coverage(y_true: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Empirical coverage: the fraction of actual values inside ``[lower, upper]`` (bounds included).

    Compare it with the nominal level of the interval (0.8 for an 80% interval): a well-calibrated
    interval covers about that fraction. Coverage alone rewards wide intervals, so read it next to
    the interval width or a pinball loss.

    Args:
        y_true: Actual values, shape ``(horizon,)``, ``(n_windows, horizon)`` or
            ``(n_windows, horizon, n_targets)``.
        lower: Lower bounds of the interval, same shape as ``y_true``.
        upper: Upper bounds of the interval, same shape as ``y_true``.

    Returns:
        The coverage, between 0 and 1.

    Raises:
        ShapeError: The layout is not one of the three above or the shapes differ.
        DataError: A value is NaN, infinite or not numeric, or a lower bound exceeds its upper bound.

    Example:
        >>> coverage([1.0, 2.0, 3.0, 4.0], lower=[0.0, 2.0, 3.5, 3.0], upper=[2.0, 3.0, 4.0, 5.0])
        0.75
    """
    actual = _check_actuals(y_true)
    low = _check_like("lower", lower, actual)
    high = _check_like("upper", upper, actual)
    crossed = low > high
    if crossed.any():
        first = tuple(int(i) for i in np.argwhere(crossed)[0])
        raise DataError(
            f"lower exceeds upper at {int(crossed.sum())} position(s) (first at index {first}: "
            f"lower={low[first]}, upper={high[first]}); pass the bounds as coverage(y_true, lower, upper)"
        )
    return float(np.mean((actual >= low) & (actual <= high)))


def evaluate(y_true: ArrayLike, y_pred: ArrayLike, y_train: ArrayLike, season_length: int) -> dict[str, float]:
    """All point-forecast metrics at once: ``mae``, ``rmse``, ``smape`` and ``mase``.

    Args:
        y_true: Actual values, shape ``(horizon,)``, ``(n_windows, horizon)`` or
            ``(n_windows, horizon, n_targets)``.
        y_pred: Point forecasts, same shape as ``y_true``.
        y_train: The training part of the series, as for :func:`mase`.
        season_length: Observations per seasonal cycle, as for :func:`mase`.

    Returns:
        ``{"mae": ..., "rmse": ..., "smape": ..., "mase": ...}`` as Python floats.

    Raises:
        ShapeError, DataError, ConfigError: As for :func:`mase`.

    Example:
        >>> scores = evaluate([7.0, 8.0], [7.0, 7.0], y_train=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], season_length=1)
        >>> {name: round(value, 4) for name, value in scores.items()}
        {'mae': 0.5, 'rmse': 0.7071, 'smape': 6.6667, 'mase': 0.5}
    """
    return {
        "mae": mae(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "smape": smape(y_true, y_pred),
        "mase": mase(y_true, y_pred, y_train, season_length),
    }
