"""How to train: the settings every lstmkit task shares, validated in one place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from lstmkit.errors import ConfigError

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "plateau", "cosine", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings: optimiser, schedule, clipping, early stopping, checkpoints, logs.

    Attributes:
        max_epochs: upper bound on passes over the training windows.
        batch_size: windows (or sequences) per optimisation step.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (with ``momentum``).
        learning_rate: the initial (or, for one-cycle, the peak) learning rate.
        weight_decay: L2 penalty (decoupled for AdamW).
        momentum: SGD momentum.
        lr_schedule: ``"none"``, ``"plateau"`` (halve on a validation plateau), ``"cosine"``
            (anneal to 0 over ``max_epochs``) or ``"onecycle"`` (Smith 2018, per step).
        gradient_clip: maximum global gradient norm (BPTT's guard against exploding gradients);
            0 disables clipping.
        early_stopping_patience: epochs without validation improvement before stopping; 0
            disables early stopping (the best checkpoint is still the one restored).
        min_delta: the smallest validation improvement that counts.
        seed: makes a CPU run reproducible (weights, shuffling, dropout).
        progress_bar: show a rich progress bar with the loss and validation metric.
        loggers: any of ``"csv"`` and ``"tensorboard"``.
        accelerator: Lightning's accelerator (``"cpu"``, ``"auto"``, ...).
        devices: Lightning's devices (``2`` on the CPU: two processes under DDP).
        strategy: Lightning's strategy (``"auto"``, ``"ddp"``, ``"ddp_spawn"``, ...). With
            several devices ``"auto"`` is DDP, whose processes re-run the calling script; from a
            notebook or inside another program ``"ddp_spawn"`` starts them from this one instead.
        precision: Lightning's precision (``"32-true"``, ``"bf16-mixed"``, ...).
        num_threads: torch intra-op threads during this run (restored afterwards); ``None`` keeps
            torch's setting.
        max_time: a wall-clock budget in seconds (training stops after the optimiser update that
            crosses it; ``None``: no budget).
        checkpoint_interval: seconds between checkpoint writes. The best and the last checkpoint
            are taken after every epoch but written to disk at most this often, and always when
            training ends or stops on an error; a process killed outright loses at most this much.
            0 writes after every epoch (costly when epochs take milliseconds).
    """

    max_epochs: int = 100
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_schedule: str = "plateau"
    gradient_clip: float = 1.0
    early_stopping_patience: int = 10
    min_delta: float = 0.0
    seed: int = 0
    progress_bar: bool = False
    loggers: tuple[str, ...] = ("csv",)
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_threads: int | None = None
    max_time: float | None = None
    checkpoint_interval: float = 30.0

    def __post_init__(self) -> None:
        def positive_int(name: str, minimum: int = 1) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")

        def non_negative(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")

        positive_int("max_epochs")
        positive_int("batch_size")
        positive_int("early_stopping_patience", 0)
        positive_int("seed", 0)
        if self.num_threads is not None:
            positive_int("num_threads")
        if self.max_time is not None and (isinstance(self.max_time, bool) or not isinstance(self.max_time, (int, float))
                                          or not self.max_time > 0):
            raise ConfigError(f"max_time must be a number of seconds > 0, got {self.max_time!r}")
        for name in ("learning_rate", "weight_decay", "momentum", "gradient_clip", "min_delta", "checkpoint_interval"):
            non_negative(name)
        if self.learning_rate == 0:
            raise ConfigError("learning_rate must be > 0, got 0")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer={self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"unknown lr_schedule={self.lr_schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if isinstance(self.loggers, str):  # would otherwise be read letter by letter
            raise ConfigError(f"loggers must be a tuple of names, got the string {self.loggers!r}; "
                              f"write loggers=({self.loggers!r},)")
        unknown = [name for name in self.loggers if name not in ("csv", "tensorboard")]
        if unknown:
            raise ConfigError(f"unknown loggers {unknown}; expected 'csv' and/or 'tensorboard'")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        if "loggers" in values:
            values["loggers"] = tuple(values["loggers"])
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some settings changed (validated again)."""
        return type(self).from_dict({**self.to_dict(), **changes})
