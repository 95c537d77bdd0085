"""What the sequence estimators share: scikit-learn parameter handling, splits, training runs."""

from __future__ import annotations

import copy
import inspect
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from lstmkit.errors import ConfigError, NotFittedError
from lstmkit.train import BatchStream, FitResult, TaskModule, TrainConfig, fit

__all__ = ["Estimator", "stratified_split", "random_split", "train_module"]


class Estimator:
    """scikit-learn conventions: ``__init__`` only stores its arguments, learned state ends in ``_``."""

    fitted_attribute = "network_"

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Estimator:
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; {type(self).__name__} takes {self._param_names()}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __sklearn_clone__(self) -> Estimator:
        return type(self)(**copy.deepcopy(self.get_params()))

    def _check_fitted(self) -> None:
        if not hasattr(self, self.fitted_attribute):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) is not v and
                   defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices with (about) ``fraction`` of every class in validation; a class
    with a single example stays in training."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        take = int(round(len(members) * fraction)) if len(members) > 1 else 0
        take = min(max(take, 1 if fraction > 0 and len(members) > 1 else 0), len(members) - 1)
        val.extend(members[:take])
        train.extend(members[take:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def random_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices, ``fraction`` of ``n`` (at least one when > 0) in validation."""
    order = np.random.default_rng(seed).permutation(n)
    take = min(n - 1, max(1, int(round(n * fraction)))) if fraction > 0 else 0
    return np.sort(order[take:]), np.sort(order[:take])


def train_module(module: TaskModule, train_set: Dataset, val_set: Dataset | None, config: TrainConfig,
                 run_dir: str | Path | None, sampler: Any = None, val_batch: int = 256, batch_size: int | None = None,
                 shuffle: bool = True) -> FitResult:
    """Train with the shared engine in ``run_dir`` (a temporary directory when ``None``).

    ``batch_size`` overrides the config's (a language model's dataset yields whole batches, so 1),
    ``shuffle=False`` keeps the dataset's order.
    """
    with tempfile.TemporaryDirectory(prefix="lstmkit-") as scratch:
        root = Path(run_dir) if run_dir is not None else Path(scratch)
        size = batch_size or config.batch_size
        return fit(module, BatchStream(train_set, size, shuffle, config.seed, sampler=sampler),
                   BatchStream(val_set, val_batch, False) if val_set is not None and len(val_set) else None,
                   root)
