"""Training windows cut from series without copying them.

All series are concatenated once into one ``(N, F)`` tensor; a window is just an origin index into
it. A batch is gathered with one indexing operation (``Dataset.__getitems__``), so no window is
ever materialised outside the batch that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["WindowDataset", "window_origins"]


def window_origins(lengths: Sequence[int], window: int, horizon: int, first_target: Sequence[int] | int = 0,
                   last_target: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Global origins of every window whose targets fall in ``[first_target, last_target)`` of its series.

    Args:
        lengths: the length of each series, in the order they are concatenated.
        window: input steps.
        horizon: target steps after the window.
        first_target: per series (or one for all), the earliest step a target may be at.
        last_target: per series, one past the latest step a target may be at (default: the end).

    Returns:
        ``(origins, series)``: the index of each window's first input step in the concatenated
        array, and the series it belongs to.

    Example:
        >>> origins, which = window_origins([6, 5], window=2, horizon=2)
        >>> origins.tolist(), which.tolist()
        ([0, 1, 2, 6, 7], [0, 0, 0, 1, 1])
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    firsts = [int(first_target)] * len(lengths) if np.ndim(first_target) == 0 else list(first_target)
    lasts = list(lengths) if last_target is None else list(last_target)
    origins, series = [], []
    for k, (offset, first, last) in enumerate(zip(offsets, firsts, lasts)):
        # targets are origin + window ... origin + window + horizon - 1
        start = max(0, first - window)
        stop = last - window - horizon + 1
        if stop > start:
            local = np.arange(start, stop, dtype=np.int64)
            origins.append(offset + local)
            series.append(np.full(len(local), k, dtype=np.int64))
    if not origins:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(origins), np.concatenate(series)


class WindowDataset(Dataset):
    """``(inputs, future covariates, targets, series)`` windows over concatenated series.

    Args:
        values: ``(N, F)`` float tensor, columns ``[targets | past covariates | future covariates]``.
        origins: index of each window's first input step in ``values``.
        series: the series each window belongs to.
        window: input steps ``W``.
        horizon: target steps ``H``.
        n_targets: number of target columns.
        n_future: number of future-covariate columns (the last columns of ``values``).

    A sample: inputs ``(W, F)``, the future covariates over the horizon ``(H, n_future)``, the
    targets ``(H, n_targets)`` and the series index.
    """

    def __init__(self, values: Tensor, origins: np.ndarray, series: np.ndarray, window: int, horizon: int,
                 n_targets: int, n_future: int) -> None:
        self.values = values
        self.origins = torch.as_tensor(origins, dtype=torch.long)
        self.series = torch.as_tensor(series, dtype=torch.long)
        self.window, self.horizon = window, horizon
        self.n_targets, self.n_future = n_targets, n_future
        self._steps = torch.arange(window + horizon)

    def __len__(self) -> int:
        return len(self.origins)

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        block = self.values[self.origins[index, None] + self._steps]  # (B, W + H, F)
        inputs = block[:, : self.window]
        ahead = block[:, self.window:]
        future = ahead[:, :, ahead.shape[-1] - self.n_future:]
        return inputs, future, ahead[:, :, : self.n_targets], self.series[index]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        inputs, future, targets, series = self.__getitems__([index])
        return inputs[0], future[0], targets[0], series[0]

    @staticmethod
    def collate(batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The batch is already assembled by ``__getitems__``."""
        return batch
