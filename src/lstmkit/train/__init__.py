"""The training engine every task shares (on Lightning): config, module base, fit."""

from lstmkit.train.config import OPTIMIZERS, SCHEDULES, TrainConfig
from lstmkit.train.engine import BatchStream, EpochSeededSampler, FitResult, fit
from lstmkit.train.module import TaskModule, rng_state, set_rng_state

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES", "TaskModule", "fit", "FitResult", "BatchStream",
           "EpochSeededSampler", "rng_state", "set_rng_state"]
