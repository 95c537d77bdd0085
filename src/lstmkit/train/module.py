"""The Lightning module every task builds on: optimiser, schedule, NaN guard, reproducible state.

Training uses Lightning's manual optimisation over *chunks* of mini-batches: one Lightning step
runs several ordinary optimiser steps (zero_grad, backward, clip, step - the same updates, in the
same order, as a hand-written loop). Small recurrent models on a CPU take a few milliseconds per
mini-batch, and Lightning's per-step bookkeeping would otherwise add a large fraction of that.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from lstmkit.errors import ConfigError, TrainingError
from lstmkit.train.config import TrainConfig

__all__ = ["TaskModule", "rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    """The state of every random generator a CPU run uses, as tensors and plain values only
    (so that checkpoints load with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


_UPDATE_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def _plain_updates(module: L.LightningModule) -> bool:
    """Whether an update may call ``loss.backward()`` and the optimiser directly instead of through
    Lightning's ``manual_backward`` and ``LightningOptimizer.step``.

    Those dispatch six hooks to the module and every callback per update, about a millisecond on a
    CPU: a tenth of the time of a small network's update. Going direct changes nothing when one
    process trains in plain 32- or 64-bit precision (no loss scaling, no gradient synchronisation)
    and neither the module nor a callback implements the hooks. The optimiser step is still counted
    by Lightning's manual-optimisation loop (``global_step``, which checkpoints rely on).
    """
    from lightning.pytorch.plugins.precision import DoublePrecision, Precision
    from lightning.pytorch.strategies import SingleDeviceStrategy
    from lightning.pytorch.utilities.model_helpers import is_overridden

    trainer = module.trainer
    optimizer = module.optimizers()
    return (type(trainer.strategy) is SingleDeviceStrategy
            and type(trainer.precision_plugin) in (Precision, DoublePrecision)
            and not isinstance(optimizer, list)
            and callable(getattr(optimizer, "_on_before_step", None))
            and callable(getattr(optimizer, "_on_after_step", None))
            and not any(is_overridden(hook, module, L.LightningModule) for hook in _UPDATE_HOOKS)
            and not any(is_overridden(hook, callback, Callback) for callback in trainer.callbacks
                        for hook in _UPDATE_HOOKS))


def clip_grad_norm(parameters: Tensor | Iterable[Tensor], max_norm: float) -> None:
    """Scale the gradients so that their global 2-norm is at most ``max_norm``: exactly the result
    of ``torch.nn.utils.clip_grad_norm_``. On the CPU, gradients already within the bound (most
    updates once training settles) are left as they are instead of multiplied by 1, a pass over
    every gradient saved per update; a non-finite norm is scaled as torch scales it (the finite
    entries become zero for an infinite norm, NaN for a NaN one; infinite entries become NaN). On
    an accelerator reading the norm would synchronise, so the gradients are always scaled, as
    torch does."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    if not hasattr(nn.utils, "get_total_norm"):  # torch < 2.6
        nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        return
    first = grads[0]
    if first.device.type == "cpu" and all(g.dtype == first.dtype and g.device == first.device for g in grads):
        # get_total_norm's own computation for gradients of one device and dtype, without its
        # grouping (half of its time on a small network)
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    else:
        total = nn.utils.get_total_norm(grads, foreach=True)
    # torch scales by min(1, max_norm / (total + 1e-6)), which is exactly 1 when total + 1e-6 <= max_norm;
    # read as a Python float (a margin covers the tensor's rounding), the check costs no tensor op
    if total.device.type == "cpu" and float(total) + 1e-6 <= max_norm * (1 - 1e-6):
        return
    nn.utils.clip_grads_with_norm_(params, max_norm, total, foreach=True)


def _fused(cls: type[torch.optim.Optimizer], params: list[nn.Parameter], **settings: Any) -> torch.optim.Optimizer:
    """The optimiser with torch's fused kernel (one C++ call per step for all parameters; the same
    update up to rounding) where the parameters' device has one, else torch's default."""
    try:
        return cls(params, fused=True, **settings)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return cls(params, **settings)


class TaskModule(L.LightningModule):
    """A task's network and loss, trained by :func:`lstmkit.train.fit`.

    Subclasses implement :meth:`step_loss` (the mean loss of one mini-batch) and may override
    :meth:`validation_metrics`. A training "batch" is a chunk (a list) of mini-batches; see the
    module docstring. The optimiser and learning-rate schedule come from the :class:`TrainConfig`;
    the random generators' state travels with every checkpoint so that a resumed run continues
    exactly where it stopped.

    Args:
        network: the model (an ``nn.Module`` that knows nothing of training).
        config: the training settings.
    """

    def __init__(self, network: nn.Module, config: TrainConfig) -> None:
        super().__init__()
        self.network = network
        self.config = config
        self.automatic_optimization = False
        # the training batches, set by lstmkit.train.fit: the one-cycle schedule counts their steps in the
        # process that trains (under DDP, each process's share)
        self.train_stream: Any = None
        self._loss_sum = torch.zeros(())
        self._loss_count = 0
        # the validation batches when lstmkit.train.fit runs validation itself (see _validate_inline)
        self.inline_validation: Iterable[list[Any]] | None = None

    @property
    def optimizer_steps_per_epoch(self) -> int:
        """Optimiser steps in an epoch of this process (1 outside :func:`lstmkit.train.fit`)."""
        return self.train_stream.optimizer_steps if self.train_stream is not None else 1

    def step_loss(self, batch: Any) -> Tensor:
        """The mean loss of a mini-batch (abstract)."""
        raise NotImplementedError

    def validation_metrics(self, batch: Any) -> dict[str, Tensor]:
        """Metrics of a validation mini-batch; ``val_loss`` is what early stopping watches."""
        return {"val_loss": self.step_loss(batch)}

    @staticmethod
    def batch_size_of(batch: Any) -> int:
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return int(first.shape[0]) if isinstance(first, Tensor) else 1

    # -- training -----------------------------------------------------------------------------

    def on_train_start(self) -> None:
        from lightning.pytorch.callbacks import Timer

        self._plain_updates = _plain_updates(self)
        # max_time: Lightning's Timer looks at the clock once per Lightning step (a chunk of updates);
        # training_step looks after every update, so that a budget is kept to within one update
        timers = [c for c in self.trainer.callbacks if isinstance(c, Timer) and c.time_remaining() is not None]
        self._timer = timers[0] if timers else None

    def training_step(self, chunk: list[Any], chunk_idx: int) -> None:
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers() if self.config.lr_schedule == "onecycle" else None
        plain = getattr(self, "_plain_updates", False)
        timer = getattr(self, "_timer", None)
        clip = self.config.gradient_clip
        params = [p for p in self.parameters() if p.requires_grad] if clip > 0 else []
        for batch in chunk:
            loss = self.step_loss(batch)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the training loss became {float(loss.detach())} at epoch {self.current_epoch}; training "
                    "stopped before the update. Lower the learning rate, keep gradient clipping on, or check the "
                    "data for extreme values."
                )
            optimizer.zero_grad(set_to_none=True)
            if plain:
                loss.backward()
            else:
                self.manual_backward(loss)
            if clip > 0:
                clip_grad_norm(params, clip)
            if plain:  # the step as Lightning counts it, without dispatching hooks nobody implements
                optimizer._on_before_step()
                optimizer.optimizer.step()
                optimizer._on_after_step()
            else:
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            size = self.batch_size_of(batch)
            self._loss_sum = self._loss_sum + loss.detach() * size
            self._loss_count += size
            # (under DDP each process's clock differs, and a process that stopped early would leave the
            # others' next gradient exchange unpaired: the Timer's decision, shared at the step's end, stops them)
            if timer is not None and not self._distributed and timer.time_remaining() <= 0:
                break  # the rest of the chunk is skipped; the Timer stops the run at the end of this step

    def on_train_epoch_end(self) -> None:
        if self.inline_validation is not None:
            self._validate_inline()
        if self._loss_count:
            # sync_dist: under DDP every process logs (and stops, and checkpoints on) the mean over processes
            self.log("train_loss", self._loss_sum / self._loss_count, prog_bar=True, sync_dist=self._distributed)
        self._loss_sum, self._loss_count = torch.zeros(()), 0
        scheduler = self.lr_schedulers()
        if self.config.lr_schedule == "cosine":
            scheduler.step()
        elif self.config.lr_schedule == "plateau" and not self._has_validation:
            scheduler.step(self.trainer.callback_metrics["train_loss"])

    # -- validation ---------------------------------------------------------------------------

    def validation_step(self, chunk: list[Any], chunk_idx: int) -> None:
        for batch in chunk:
            metrics = self.validation_metrics(batch)
            self.log_dict(metrics, prog_bar=True, on_step=False, on_epoch=True, batch_size=self.batch_size_of(batch),
                          sync_dist=self._distributed)

    def on_validation_epoch_end(self) -> None:
        value = self.trainer.callback_metrics.get("val_loss")
        if value is None:
            return
        if not torch.isfinite(value):
            raise TrainingError(
                f"the validation loss became {float(value)} at epoch {self.current_epoch}; training stopped. "
                "Lower the learning rate or check the validation data."
            )
        if self.config.lr_schedule == "plateau" and not self.trainer.sanity_checking:
            self.lr_schedulers().step(value)

    def _validate_inline(self) -> None:
        """The validation pass of Lightning's loop, run here at the end of the training epoch.

        :func:`lstmkit.train.fit` chooses this when nothing needs Lightning's validation loop (one
        process, plain precision, no callback or module hook of that loop beyond those of the
        checkpoints, early stopping and the timer; see ``engine._inline_validation``): the loop's
        own bookkeeping costs a few milliseconds per epoch, a tenth of a small model's epoch on a
        CPU. It does what the loop does: eval mode, no gradients, the epoch hooks, every metric
        of :meth:`validation_metrics` averaged over the samples (weighted by batch size) and
        logged for the progress bar, the loggers, early stopping and the checkpoints, which act on
        it at the end of the same epoch. Two visible differences: the CSV log has ``val_loss`` on
        the row of the epoch's ``train_loss`` (the loop writes its own row), and
        ``trainer.validating`` stays false.
        """
        batches = self.inline_validation
        sampler = getattr(batches, "sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(self.current_epoch)  # as Lightning sets it (some validation orders follow it)
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        sums: dict[str, Tensor] = {}
        count = 0
        try:
            with torch.no_grad():  # as Lightning's validation during fit (not inference mode)
                self.on_validation_epoch_start()
                for chunk in batches or ():
                    for batch in chunk:
                        size = self.batch_size_of(batch)
                        for name, value in self.validation_metrics(batch).items():
                            value = value.detach()
                            weighted = (value if value.is_floating_point() else value.float()).mean() * size
                            sums[name] = sums[name] + weighted if name in sums else weighted
                        count += size
                if "val_loss" not in sums:
                    raise ConfigError(f"{type(self).__name__}.validation_metrics returned {sorted(sums)}; it must "
                                      "include 'val_loss' (what early stopping and the best checkpoint watch)")
                for name, total in sums.items():
                    self.log(name, total / count, prog_bar=True, on_step=False, on_epoch=True)
                self.on_validation_epoch_end()
        finally:
            for module, mode in modes:
                module.training = mode

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    @property
    def _has_validation(self) -> bool:
        return self._trainer is not None and (self.inline_validation is not None or bool(self.trainer.num_val_batches))

    # -- optimiser ----------------------------------------------------------------------------

    def configure_optimizers(self) -> Any:
        c = self.config
        params = [p for p in self.parameters() if p.requires_grad]
        if c.optimizer == "adam":
            optimizer = _fused(torch.optim.Adam, params, lr=c.learning_rate, weight_decay=c.weight_decay)
        elif c.optimizer == "adamw":
            optimizer = _fused(torch.optim.AdamW, params, lr=c.learning_rate, weight_decay=c.weight_decay)
        else:
            optimizer = _fused(torch.optim.SGD, params, lr=c.learning_rate, momentum=c.momentum,
                               weight_decay=c.weight_decay)
        if c.lr_schedule == "none":
            return optimizer
        if c.lr_schedule == "plateau":
            scheduler: Any = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=0.5, patience=max(1, c.early_stopping_patience // 3))
        elif c.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.max_epochs)
        else:
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=c.learning_rate, total_steps=c.max_epochs * self.optimizer_steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}

    # -- checkpoints --------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lstmkit_rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_planned_schedule(checkpoint.get("lr_schedulers") or [])
        if "lstmkit_rng" in checkpoint:
            set_rng_state(checkpoint["lstmkit_rng"])

    def _check_planned_schedule(self, states: list[dict[str, Any]]) -> None:
        """Cosine and one-cycle schedules span the run they were planned for; resuming one with
        another length would go on with the old plan (cosine climbs again, one-cycle fails)."""
        c = self.config
        planned = {"cosine": ("T_max", c.max_epochs, "epochs"),
                   "onecycle": ("total_steps", c.max_epochs * self.optimizer_steps_per_epoch, "steps")}
        if c.lr_schedule not in planned or not states:
            return
        key, length, unit = planned[c.lr_schedule]
        if states[0].get(key) != length:
            raise ConfigError(
                f"the checkpoint's learning-rate schedule was planned for {states[0].get(key)} {unit} but this "
                f"{c.lr_schedule} run plans {length} {unit} (max_epochs={c.max_epochs}); resume with the settings "
                "and data the run started with, or start a new run")
