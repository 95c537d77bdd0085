"""Checkpoints that cost little on short epochs: Lightning's ``ModelCheckpoint``, written to disk
at most every ``interval`` seconds.

A small recurrent model on a CPU runs an epoch in a few tens of milliseconds, and writing a
checkpoint (best and last, each a few milliseconds) after every epoch then adds about a tenth to
the training time. :class:`IntervalCheckpoint` keeps Lightning's choice of *what* to save and
*when it changes* (the best by the monitored loss, or the latest); it only delays the disk write:
the checkpoint is taken in memory (tensors copied), and reaches disk when ``interval`` seconds have
passed since the last write, when training ends (early stopping and ``max_time`` included), and
when training stops on an error (the NaN guard's last good checkpoint). A process killed outright
loses at most ``interval`` seconds of checkpoints. Files are written by Lightning's checkpoint IO
(to a temporary file, then renamed).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["IntervalCheckpoint"]


class IntervalCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose disk writes are batched to at most one per ``interval`` seconds.

    Args:
        interval: seconds between disk writes; 0 writes every checkpoint at once (Lightning's
            behaviour). With more than one process the writes are never delayed.
        **kwargs: ``ModelCheckpoint``'s arguments.
    """

    def __init__(self, interval: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval = interval
        self._pending: dict[str, dict[str, Any]] = {}
        self._written_at = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._written_at = time.monotonic()

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if self.interval <= 0 or trainer.world_size > 1:
            super()._save_checkpoint(trainer, filepath)
            return
        # what Trainer.save_checkpoint would write now, detached from the tensors training changes
        self._pending[filepath] = _snapshot(trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only))
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if time.monotonic() - self._written_at >= self.interval:
            self.flush(trainer)

    def flush(self, trainer: L.Trainer) -> None:
        """Write the checkpoints taken since the last write."""
        for filepath, checkpoint in self._pending.items():
            trainer.strategy.save_checkpoint(checkpoint, filepath)
        if self._pending:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)
        self._pending.clear()
        self._written_at = time.monotonic()

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        self._pending.pop(filepath, None)
        super()._remove_checkpoint(trainer, filepath)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self.flush(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self.flush(trainer)


_IMMUTABLE = (int, float, bool, str, bytes, type(None))


def _snapshot(value: Any) -> Any:
    """A copy that later training cannot change: tensors cloned, containers rebuilt, immutable
    leaves shared (``copy.deepcopy`` spends most of its time on the random generators' ints)."""
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        copied = type(value)() if type(value) is not dict else {}
        for key, item in value.items():
            copied[key] = _snapshot(item)
        return copied
    if type(value) in (list, tuple):
        if all(type(item) in _IMMUTABLE for item in value):  # the generators' long tuples of ints
            return value if type(value) is tuple else list(value)
        return type(value)(_snapshot(item) for item in value)
    return copy.deepcopy(value)
