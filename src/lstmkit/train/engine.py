"""The one training engine: a Lightning Trainer set up the same way for every task.

BPTT with gradient-norm clipping, the optimiser and schedule of the :class:`TrainConfig`, early
stopping on the validation split, the best and the last checkpoint (Lightning writes them
atomically: to a temporary file, then renamed), exact resume (optimiser, schedule, epoch, early
stopping and the random generators), a NaN/Inf guard, a rich progress bar, CSV and TensorBoard
logs. After training the best weights are restored into the module.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from torch.utils.data import DataLoader, Dataset, Sampler

from lstmkit.errors import TrainingError
from lstmkit.train.module import TaskModule

__all__ = ["fit", "FitResult", "NaNGuard", "EpochSeededSampler", "make_loader", "quiet_lightning"]


class EpochSeededSampler(Sampler[int]):
    """Shuffles with a generator seeded by ``(seed, epoch)``: the order of epoch k is the same
    whether the run went straight through or was resumed (Lightning calls ``set_epoch``)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, collate_fn: Any = None) -> DataLoader:
    """A single-process DataLoader (the windows are views of tensors already in memory)."""
    sampler = EpochSeededSampler(len(dataset), seed) if shuffle else None  # type: ignore[arg-type]
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=0,
                      collate_fn=collate_fn)


class NaNGuard(Callback):
    """Stops training with a clear :class:`TrainingError` when the loss stops being finite.

    Raising (rather than asking the trainer to stop) keeps Lightning from writing a checkpoint of
    the broken weights: the last good checkpoint stays the last one on disk.
    """

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            raise TrainingError(
                f"the training loss became {float(loss)} at epoch {trainer.current_epoch}, batch {batch_idx}; "
                "training stopped. Lower the learning rate, keep gradient clipping on, or check the data "
                "for extreme values."
            )

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_loss")
        if value is not None and not math.isfinite(float(value)):
            raise TrainingError(
                f"the validation loss became {float(value)} at epoch {trainer.current_epoch}; training stopped. "
                "Lower the learning rate or check the validation data."
            )


@dataclass
class FitResult:
    """What a training run produced.

    Attributes:
        best_checkpoint: path of the best checkpoint (lowest monitored loss).
        last_checkpoint: path of the last checkpoint.
        best_score: the best monitored loss.
        monitor: the name of the monitored loss.
        epochs: epochs completed.
        stopped_early: whether early stopping ended the run.
    """

    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_score: float
    monitor: str
    epochs: int
    stopped_early: bool


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up chatter and warnings that do not apply to in-memory CPU data."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
            warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _loggers(config, run_dir: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    made: list[Any] = []
    if "csv" in config.loggers:
        made.append(CSVLogger(run_dir, name="logs", version=""))
    if "tensorboard" in config.loggers:
        made.append(TensorBoardLogger(run_dir, name="tensorboard", version="", default_hp_metric=False))
    return made


def fit(
    module: TaskModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    run_dir: str | Path,
    resume_from: str | Path | None = None,
) -> FitResult:
    """Train ``module`` with the settings of its :class:`TrainConfig`; restore its best weights.

    Args:
        module: the task's Lightning module (its network is trained in place).
        train_loader: training batches.
        val_loader: validation batches, or ``None`` (then the training loss picks the best epoch
            and early stopping watches it).
        run_dir: where checkpoints (``checkpoints/best.ckpt``, ``checkpoints/last.ckpt``) and logs go.
        resume_from: a checkpoint to continue from (exactly: optimiser, schedule, epoch, early
            stopping and random generators are restored).

    Returns:
        a :class:`FitResult`.

    Raises:
        TrainingError: when the loss became NaN or infinite; the best weights so far are restored
            into the module first and the checkpoints of the good epochs stay on disk.
    """
    config = module.config
    run_dir = Path(run_dir)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    monitor = "val_loss" if val_loader is not None else "train_loss"
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode="min",
                                 save_top_k=1, save_last=True, enable_version_counter=False)
    callbacks: list[Callback] = [checkpoint, NaNGuard()]
    early = None
    if config.early_stopping_patience > 0:
        early = EarlyStopping(monitor=monitor, mode="min", patience=config.early_stopping_patience,
                              min_delta=config.min_delta, check_finite=False)
        callbacks.append(early)
    if config.progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    with quiet_lightning():
        trainer = L.Trainer(
            max_epochs=config.max_epochs,
            accelerator=config.accelerator,
            devices=config.devices,
            precision=config.precision,
            gradient_clip_val=config.gradient_clip or None,
            gradient_clip_algorithm="norm",
            callbacks=callbacks,
            logger=_loggers(config, run_dir) or False,
            enable_progress_bar=config.progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
            default_root_dir=run_dir,
        )
        try:
            trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from, weights_only=True)
        except TrainingError as error:
            restored = _restore_best(module, checkpoint)
            where = f"; the best weights so far ({restored}) were restored" if restored else ""
            raise TrainingError(f"{error}{where}") from None
    _restore_best(module, checkpoint)
    best = checkpoint.best_model_score
    return FitResult(
        best_checkpoint=Path(checkpoint.best_model_path) if checkpoint.best_model_path else None,
        last_checkpoint=Path(checkpoint.last_model_path) if checkpoint.last_model_path else None,
        best_score=float(best) if best is not None else float("nan"),
        monitor=monitor,
        epochs=trainer.current_epoch,
        stopped_early=bool(early is not None and early.stopped_epoch > 0),
    )


def _restore_best(module: TaskModule, checkpoint: ModelCheckpoint) -> str | None:
    path = checkpoint.best_model_path or checkpoint.last_model_path
    if not path or not Path(path).exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    return path
