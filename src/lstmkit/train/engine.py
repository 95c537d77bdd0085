"""The one training engine: a Lightning Trainer set up the same way for every task.

BPTT with gradient-norm clipping, the optimiser and schedule of the :class:`TrainConfig`, early
stopping on the validation split, the best and the last checkpoint (taken after every epoch,
written at most every ``checkpoint_interval`` seconds and at the end, atomically: see
:mod:`lstmkit.train.checkpoint`), exact resume (optimiser, schedule, epoch, early
stopping and the random generators), a NaN/Inf guard (in :class:`TaskModule`, before the update
that would spread it), a rich progress bar, CSV and TensorBoard logs. After training the best
weights are restored into the module.

Validation runs every epoch. When nothing needs Lightning's validation loop (one process, plain
precision, no progress bar or other callback of that loop) the module runs the same pass itself
at the end of the epoch (:meth:`TaskModule._validate_inline`), which saves the loop's few
milliseconds of bookkeeping per epoch on small CPU models.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, RichProgressBar
from torch.utils.data import Dataset, default_collate

from lstmkit.errors import ConfigError, DataError, TrainingError
from lstmkit.nn import kernels
from lstmkit.train.checkpoint import AtomicCheckpointIO, IntervalCheckpoint
from lstmkit.train.module import TaskModule

__all__ = ["fit", "FitResult", "EpochSeededSampler", "BatchStream", "quiet_lightning"]


class EpochSeededSampler:
    """Shuffles with a generator seeded by ``(seed, epoch)``: the order of epoch k is the same
    whether the run went straight through or was resumed (Lightning calls ``set_epoch``)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.size))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class BatchStream:
    """Mini-batches of a dataset, handed to Lightning in chunks (see :mod:`lstmkit.train.module`).

    The dataset should implement ``__getitems__(indices)`` returning a whole mini-batch (as
    :class:`lstmkit.data.windows.WindowDataset` does); otherwise samples are collated with
    ``collate_fn`` (default: ``torch.utils.data.default_collate``).

    Under distributed training (DDP: a process group is initialised) every process takes its own
    share of each epoch's mini-batches (Lightning adds a ``DistributedSampler`` only to a
    ``DataLoader``, which this is not). The epoch's batches are the same in every process (their
    order is seeded); process ``r`` of ``world`` takes the ``r``-th of ``world`` consecutive runs
    of them, the last run padded with the epoch's first batches so that every process takes as
    many steps. Whole batches keep a bucketing sampler's batches as they were cut, and consecutive
    ones keep an ordered stream in order: a language model carrying its state from one batch to
    the next carries it within each process's run (from a fresh state at its start).

    Args:
        dataset: the samples.
        batch_size: samples per mini-batch (one optimiser step).
        shuffle: a new order every epoch (seeded by ``seed`` and the epoch).
        seed: the shuffling seed.
        chunk: mini-batches per Lightning step.
        collate_fn: how to assemble samples without ``__getitems__``.
        sampler: the order of the samples (default: shuffled by ``seed`` and the epoch, or in
            order without ``shuffle``).
    """

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, chunk: int = 32,
                 collate_fn: Callable[[list[Any]], Any] | None = None, sampler: Any = None) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        # any index sampler with set_epoch (a BucketSampler groups similar lengths)
        self.sampler = sampler if sampler is not None else EpochSeededSampler(len(dataset), seed, shuffle)  # type: ignore[arg-type]
        self.batch_sampler = None  # looked up by Lightning, as on a DataLoader
        self.chunk = chunk
        self.collate_fn = collate_fn or default_collate

    @staticmethod
    def _share() -> tuple[int, int]:
        """(this process's rank, the world size): (0, 1) unless a process group is initialised."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    @property
    def optimizer_steps(self) -> int:
        """Mini-batches per epoch (of this process, under distributed training)."""
        _, world = self._share()
        return math.ceil(math.ceil(len(self.sampler) / self.batch_size) / world)

    def __len__(self) -> int:
        return math.ceil(self.optimizer_steps / self.chunk)

    def _batch(self, indices: list[int]) -> Any:
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            return getitems(indices)
        return self.collate_fn([self.dataset[i] for i in indices])

    def __iter__(self) -> Iterator[list[Any]]:
        order = list(self.sampler)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rank, world = self._share()
        if world > 1:
            share = math.ceil(len(batches) / world)
            padded = (batches * math.ceil(share * world / max(1, len(batches))))[:share * world]
            batches = padded[rank * share:(rank + 1) * share]
        for start in range(0, len(batches), self.chunk):
            yield [self._batch(indices) for indices in batches[start:start + self.chunk]]


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
        steps: optimiser steps taken.
        seconds: wall time of the training loop (validation and checkpoints included).
    """

    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_score: float
    monitor: str
    epochs: int
    stopped_early: bool
    steps: int = 0
    seconds: float = 0.0


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
            # fit(val_loader=None) is supported: the training loss is monitored instead
            warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`.*")
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
    train_loader: BatchStream,
    val_loader: BatchStream | None,
    run_dir: str | Path,
    resume_from: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train ``module`` with the settings of its :class:`TrainConfig`; restore its best weights.

    Args:
        module: the task's Lightning module (its network is trained in place).
        train_loader: training mini-batches.
        val_loader: validation mini-batches, or ``None`` (then the training loss picks the best epoch
            and early stopping watches it).
        run_dir: where checkpoints (``checkpoints/best.ckpt``, ``checkpoints/last.ckpt``) and logs go.
        resume_from: a checkpoint to continue from (exactly: optimiser, schedule, epoch, early
            stopping and random generators are restored). Without it the random generators are
            seeded with the config's ``seed``.
        callbacks: more Lightning callbacks (a task's own stopping rule, say).

    lstmkit's fused kernels are built first when the network may run on them
    (:func:`lstmkit.nn.kernels.prepare`), so that a first build is not charged to ``max_time``.

    Returns:
        a :class:`FitResult`.

    Raises:
        DataError: the training (or the given validation) loader has no samples.
        TrainingError: when the loss became NaN or infinite; the best weights so far are restored
            into the module first and the checkpoints of the good epochs stay on disk.
    """
    config = module.config
    run_dir = Path(run_dir)
    # Lightning would run zero steps (or never see the monitored loss) without a word
    if len(train_loader) == 0:
        raise DataError("the training loader has no samples; nothing to train on")
    if val_loader is not None and len(val_loader) == 0:
        raise DataError("the validation loader has no samples; pass val_loader=None to monitor the training loss")
    # a first build of the fused kernels (about 20 seconds on 2 cores) is not charged to max_time or the run's time
    kernels.prepare(module)
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)  # for this run only; restored below
    try:
        return _fit(module, train_loader, val_loader, run_dir, resume_from, callbacks)
    finally:
        torch.set_num_threads(threads)


def _fit(module: TaskModule, train_loader: BatchStream, val_loader: BatchStream | None, run_dir: Path,
         resume_from: str | Path | None, callbacks: Sequence[Callback]) -> FitResult:
    config = module.config
    monitor = "val_loss" if val_loader is not None else "train_loss"
    module.train_stream = train_loader
    # two callbacks: Lightning's save_last writes last.ckpt only in epochs that improved the best
    checkpoint = IntervalCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode="min",
                                    save_top_k=1, enable_version_counter=False, interval=config.checkpoint_interval)
    last = IntervalCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                              enable_version_counter=False, interval=config.checkpoint_interval, share_with=checkpoint)
    callbacks = [checkpoint, last, *callbacks]
    early = None
    if config.early_stopping_patience > 0:
        early = EarlyStopping(monitor=monitor, mode="min", patience=config.early_stopping_patience,
                              min_delta=config.min_delta, check_finite=False)
        callbacks.append(early)
    if config.progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    with quiet_lightning(), _lightning_settings(config):
        trainer = L.Trainer(
            max_epochs=config.max_epochs,
            max_time=None if config.max_time is None else timedelta(seconds=config.max_time),
            accelerator=config.accelerator,
            devices=config.devices,
            strategy=config.strategy,
            precision=config.precision,
            callbacks=callbacks,
            logger=_loggers(config, run_dir) or False,
            enable_progress_bar=config.progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
            default_root_dir=run_dir,
            plugins=[AtomicCheckpointIO()],
        )
    with quiet_lightning():
        # the config's seed decides dropout and any other draw during training, whatever the caller
        # did with the generators before; a resumed run then takes their state from the checkpoint
        L.seed_everything(config.seed, verbose=False)
        own = [checkpoint, last] + ([early] if early is not None else [])
        inline = val_loader is not None and _inline_validation(trainer, module, own)
        module.inline_validation = val_loader if inline else None
        started = time.perf_counter()
        try:
            trainer.fit(module, train_loader, None if inline else val_loader, ckpt_path=resume_from,
                        weights_only=True)
        except TrainingError as error:
            restored = _restore_best(module, checkpoint, last)
            where = f"; the best weights so far ({restored}) were restored" if restored else ""
            raise TrainingError(f"{error}{where}") from None
        finally:
            module.inline_validation = None  # the loaders are not kept with the trained module
            module.train_stream = None
    seconds = time.perf_counter() - started
    if _spawned(trainer):
        _take_spawned_state(trainer, checkpoint, last, early)
    _restore_best(module, checkpoint, last)
    best = checkpoint.best_model_score
    return FitResult(
        best_checkpoint=Path(checkpoint.best_model_path) if checkpoint.best_model_path else None,
        last_checkpoint=Path(last.best_model_path) if last.best_model_path else None,  # its only file
        best_score=float(best) if best is not None else float("nan"),
        monitor=monitor,
        epochs=trainer.current_epoch,
        stopped_early=bool(early is not None and early.stopped_epoch > 0),
        steps=int(trainer.global_step),
        seconds=seconds,
    )


_VALIDATION_HOOKS = ("on_validation_start", "on_validation_end", "on_validation_epoch_start",
                     "on_validation_epoch_end", "on_validation_batch_start", "on_validation_batch_end")
# module hooks of Lightning's validation loop and batch transfer, and the epoch-end hook the inline
# pass runs in, which a subclass must not have changed
_MODULE_HOOKS = ("validation_step", "on_validation_start", "on_validation_end", "on_validation_batch_start",
                 "on_validation_batch_end", "on_validation_model_eval", "on_validation_model_train",
                 "on_validation_model_zero_grad", "on_train_epoch_end", "transfer_batch_to_device",
                 "on_before_batch_transfer", "on_after_batch_transfer", "configure_callbacks")


def _inline_validation(trainer: L.Trainer, module: TaskModule, own: Sequence[Callback]) -> bool:
    """Whether the module may run validation itself at the end of each training epoch
    (:meth:`TaskModule._validate_inline`) instead of Lightning's validation loop.

    Only when that changes nothing but the time taken: one process on the CPU in plain 32-bit
    precision (no device transfer, input conversion, sharding or autocast to reproduce), the
    module's validation, batch-transfer and epoch-end hooks TaskModule's own, and no callback of the
    loop's hooks or of the epoch's end (which would run before the inline pass, and see the last
    epoch's metrics) besides ``own`` (the engine's checkpoints and early stopping, which act at
    the end of the training epoch either way) and Lightning's timer. A progress bar (which shows
    the validation pass), a user's checkpoint or any other such callback keeps Lightning's loop.
    """
    from lightning.pytorch.callbacks import Timer
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.strategies import SingleDeviceStrategy
    from lightning.pytorch.utilities.model_helpers import is_overridden

    if (type(trainer.strategy) is not SingleDeviceStrategy or trainer.strategy.root_device.type != "cpu"
            or type(trainer.precision_plugin) is not Precision):
        return False
    if any(is_overridden(hook, module, TaskModule) for hook in _MODULE_HOOKS):
        return False
    for callback in trainer.callbacks:
        if any(callback is known for known in own) or type(callback) is Timer:
            continue
        if any(is_overridden(hook, callback, Callback) for hook in (*_VALIDATION_HOOKS, "on_train_epoch_end")):
            return False
    return True


@contextlib.contextmanager
def _lightning_settings(config) -> Iterator[None]:
    """Lightning's refusal of an accelerator, device count, strategy or precision, as a ConfigError."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        yield
    except (MisconfigurationException, ValueError, RuntimeError) as error:
        raise ConfigError(f"Lightning cannot train with accelerator={config.accelerator!r}, "
                          f"devices={config.devices!r}, strategy={config.strategy!r}, precision={config.precision!r}: "
                          f"{error}") from None


def _spawned(trainer: L.Trainer) -> bool:
    """Whether the training ran in processes this one started (``ddp_spawn``), not in this one."""
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    return isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher)


def _take_spawned_state(trainer: L.Trainer, best: IntervalCheckpoint, last: IntervalCheckpoint,
                        early: EarlyStopping | None) -> None:
    """After a spawned run this process's trainer and callbacks have not moved (Lightning sends
    back the weights, the metrics and the best checkpoint's path only): read where the run ended
    from its last checkpoint, which rank 0 wrote when training ended."""
    path = Path(best.dirpath) / f"{last.filename}{last.FILE_EXTENSION}"
    if not path.exists():
        return
    state = torch.load(path, map_location="cpu", weights_only=True)
    trainer.fit_loop.epoch_progress.current.completed = int(state["epoch"]) + 1
    trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress.total.completed = int(state["global_step"])
    callbacks = state.get("callbacks", {})
    best.load_state_dict(callbacks.get(best.state_key, {}))
    last.best_model_path = str(path)
    if early is not None:
        early.load_state_dict(callbacks.get(early.state_key, {}))


def _restore_best(module: TaskModule, best: IntervalCheckpoint, last: IntervalCheckpoint) -> str | None:
    path = best.best_model_path or last.best_model_path
    if not path or not Path(path).exists():
        return None
    # the copy still in memory when this run took it (a resumed run may not have), else the file
    taken = best.taken(path) or last.taken(path)
    checkpoint = taken if taken is not None else torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(checkpoint["state_dict"])
    best.forget()
    last.forget()
    return path
