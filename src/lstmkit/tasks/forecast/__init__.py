"""lstmkit.tasks.forecast: forecasting metrics, classical baselines and (soon) the LSTM forecaster."""

from lstmkit.tasks.forecast import baselines, metrics

__all__ = ["baselines", "metrics"]
