"""Reproductions of the LSTM papers' experiments: tasks, criteria, runs and reports.

Example:
    >>> from lstmkit.papers import EXPERIMENTS, run_profile
    >>> sorted(EXPERIMENTS)[:3]
    ['adding', 'lag-2a', 'lag-2b']
"""

from lstmkit.papers.experiments import EXPERIMENTS, Experiment, Setting
from lstmkit.papers.report import PROFILES, markdown, plot_curves, run_profile
from lstmkit.papers.runner import RunResult, run

__all__ = ["EXPERIMENTS", "Experiment", "Setting", "PROFILES", "run_profile", "markdown", "plot_curves", "run",
           "RunResult"]
