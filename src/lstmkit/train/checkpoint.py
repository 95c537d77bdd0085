"""Checkpoints that cost little on short epochs: Lightning's ``ModelCheckpoint``, written to disk
at most every ``interval`` seconds.

A small recurrent model on a CPU runs an epoch in a few tens of milliseconds, and writing a
checkpoint (best and last, each a few milliseconds) after every epoch then adds about a tenth to
the training time. :class:`IntervalCheckpoint` keeps Lightning's choice of *what* to save and
*when it changes* (the best by the monitored loss, or the latest); it only delays the disk write:
the checkpoint is taken in memory (tensors copied), and reaches disk when ``interval`` seconds have
passed since the last write, when training ends (early stopping and ``max_time`` included), and
when training stops on an error (the NaN guard's last good checkpoint). A process killed outright
loses at most ``interval`` seconds of checkpoints. Files are written by :class:`AtomicCheckpointIO`
(to a temporary file beside the checkpoint, then renamed).

Two such callbacks (the best and the last) usually take their checkpoints at the same moment, the
end of an epoch that improved the best; ``share_with`` lets the second reuse the first's copy,
with only the callbacks' own states taken again (they are what changed in between).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer import call

__all__ = ["IntervalCheckpoint", "AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, writing through a temporary file in the checkpoint's own
    directory and a rename, so that a checkpoint on disk is always whole. (Lightning's own write
    goes through a temporary file in the system's temporary directory, and its final move is a
    copy where that is another file system.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        from lstmkit.io import atomic_write

        if storage_options is not None or "://" in str(path):  # a remote file system: Lightning's own way
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))


class IntervalCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose disk writes are batched to at most one per ``interval`` seconds.

    Args:
        interval: seconds between disk writes; 0 writes every checkpoint at once (Lightning's
            behaviour). With more than one process the writes are never delayed.
        share_with: another ``IntervalCheckpoint`` whose copy this one reuses when both take a
            checkpoint in the same hook of the same step.
        **kwargs: ``ModelCheckpoint``'s arguments.
    """

    def __init__(self, interval: float = 0.0, share_with: IntervalCheckpoint | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval = interval
        self.share_with = share_with
        self._pending: dict[str, dict[str, Any]] = {}
        self._written_at = time.monotonic()
        # (moment, path, checkpoint) of the last checkpoint this callback took in memory
        self._taken: tuple[tuple, str, dict[str, Any]] | None = None
        self._plain = False  # whether a copy may be shared (see _plain_saves); set when training starts

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._written_at = time.monotonic()
        self._plain = _plain_saves(trainer)  # the callbacks and the module are fixed for the run

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if self.interval <= 0 or trainer.world_size > 1:
            super()._save_checkpoint(trainer, filepath)
            return
        self._pending[filepath] = self._take(trainer, filepath)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if time.monotonic() - self._written_at >= self.interval:
            self.flush(trainer)

    def _take(self, trainer: L.Trainer, filepath: str) -> dict[str, Any]:
        """What ``Trainer.save_checkpoint`` would write now, detached from the tensors training changes."""
        module = trainer.lightning_module
        moment = (trainer.global_step, trainer.current_epoch, trainer.fit_loop.epoch_progress.current.processed,
                  getattr(module, "_current_fx_name", None), self.save_weights_only)
        other = self.share_with._taken if self.share_with is not None else None
        if other is not None and other[0] == moment and not self.save_weights_only and self._plain:
            # taken in the same hook of the same step: only the callbacks' states (this one's
            # best path, say) can have changed since
            checkpoint = dict(other[2])
            checkpoint["callbacks"] = _snapshot(call._call_callbacks_state_dict(trainer))
        else:
            checkpoint = _snapshot(trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only))
        self._taken = (moment, filepath, checkpoint)
        return checkpoint

    def taken(self, filepath: str) -> dict[str, Any] | None:
        """The checkpoint last taken in memory if it is the one of ``filepath`` (else ``None``):
        the same content as the file, without reading it back."""
        if self._taken is None or self._taken[1] != filepath:
            return None
        return self._taken[2]

    def forget(self) -> None:
        """Drop the copy kept for :meth:`taken` (the pending writes are not affected)."""
        self._taken = None

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


def _plain_saves(trainer: L.Trainer) -> bool:
    """Whether no callback and no module adds to a checkpoint beyond lstmkit's own (the random
    generators' state, the same at both saves of one hook): a shared copy then has everything."""
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.utilities.model_helpers import is_overridden

    from lstmkit.train.module import TaskModule

    module = trainer.lightning_module
    return (not is_overridden("on_save_checkpoint", module, TaskModule)
            and not any(is_overridden("on_save_checkpoint", c, Callback) for c in trainer.callbacks))


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
