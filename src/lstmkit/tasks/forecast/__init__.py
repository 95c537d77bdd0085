"""Forecasting: the estimator, its network, metrics and the classical baselines it is judged against."""

from lstmkit.tasks.forecast import baselines, metrics
from lstmkit.tasks.forecast.estimator import DEFAULT_TRAINING, LSTMForecaster
from lstmkit.tasks.forecast.model import TRANSFORMS, ForecastNet, NetConfig

__all__ = ["LSTMForecaster", "DEFAULT_TRAINING", "ForecastNet", "NetConfig", "TRANSFORMS", "baselines", "metrics"]
