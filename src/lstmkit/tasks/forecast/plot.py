"""A PNG of history, test forecasts and the forecast beyond the data, with intervals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["plot_forecast"]


def plot_forecast(history: pd.DataFrame, time: str, target: str, test: pd.DataFrame | None, future: pd.DataFrame,
                  path: str | Path, title: str, series_id: str | None = None, max_series: int = 4) -> Path:
    """Draw one panel per series (up to ``max_series``) and write ``path`` (PNG).

    Args:
        history: the observed table.
        time: its time column.
        target: the target column to draw.
        test: the LSTM's forecasts of the held-out part (``forecast``/``lower_*``/``upper_*``), or ``None``.
        future: the forecast beyond the data.
        path: the PNG to write.
        title: the figure title.
        series_id: the series column of a long table.
        max_series: panels at most.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [None] if series_id is None else list(dict.fromkeys(history[series_id].astype(str)))[:max_series]
    fig, axes = plt.subplots(len(ids), 1, figsize=(10, 3.2 * len(ids)), squeeze=False)
    for ax, sid in zip(axes[:, 0], ids):
        def pick(frame: pd.DataFrame | None, sid: str | None = sid) -> pd.DataFrame | None:
            if frame is None or sid is None:
                return frame
            return frame[frame[series_id].astype(str) == sid]

        hist = pick(history)
        ax.plot(hist[time], hist[target], color="0.2", lw=1.2, label="observed")
        for frame, color, label in ((pick(test), "tab:orange", "LSTM on the test part"),
                                    (pick(future), "tab:blue", "LSTM forecast")):
            if frame is None or frame.empty:
                continue
            frame = frame[frame["target"] == target]
            ax.plot(frame[time], frame["forecast"], color=color, lw=1.6, label=label)
            lowers = sorted(c for c in frame.columns if c.startswith("lower_"))
            for lower in lowers:
                upper = "upper_" + lower.split("_", 1)[1]
                ax.fill_between(frame[time], frame[lower], frame[upper], color=color, alpha=0.2,
                                label=f"{lower.split('_', 1)[1]}% interval")
        ax.set_title(title if sid is None else f"{title}: {sid}")
        ax.set_ylabel(target)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
