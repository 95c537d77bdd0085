"""Reproductions of the LSTM papers' experiments: tasks, criteria, runs and reports.

Example:
    >>> from lstmkit.papers import EXPERIMENTS, run_profile
    >>> list(EXPERIMENTS)  # doctest: +NORMALIZE_WHITESPACE
    ['reber', 'lag-2a', 'lag-2b', 'lag-2c', 'noise-3a', 'adding', 'multiplication', 'order-6a', 'order-6b',
     'continual-reber', 'timing-gts', 'timing-msd']
    >>> sorted(EXPERIMENTS["timing-gts"].settings)
    ['gru', 'modern', 'no-forget', 'no-peephole', 'paper', 'rnn']
"""

from lstmkit.papers.experiments import Experiment, Setting
from lstmkit.papers.registry import EXPERIMENTS
from lstmkit.papers.report import PROFILES, markdown, plot_curves, run_profile
from lstmkit.papers.runner import RunResult, run

__all__ = ["EXPERIMENTS", "Experiment", "Setting", "PROFILES", "run_profile", "markdown", "plot_curves", "run",
           "RunResult"]
