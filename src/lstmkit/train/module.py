"""The Lightning module every task builds on: optimiser, schedule, logging, reproducible state."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

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


class TaskModule(L.LightningModule):
    """A task's network and loss, trained by :func:`lstmkit.train.fit`.

    Subclasses implement :meth:`step_loss` (and may override :meth:`validation_metrics` to log
    more than the loss). The optimiser and learning-rate schedule come from the
    :class:`TrainConfig`; the random generators' state travels with every checkpoint so that a
    resumed run continues exactly where it stopped.

    Args:
        network: the model (an ``nn.Module`` that knows nothing of training).
        config: the training settings.
    """

    def __init__(self, network: nn.Module, config: TrainConfig) -> None:
        super().__init__()
        self.network = network
        self.config = config

    def step_loss(self, batch: Any) -> Tensor:
        """The mean loss of a batch (abstract)."""
        raise NotImplementedError

    def validation_metrics(self, batch: Any) -> dict[str, Tensor]:
        """Metrics logged on the validation split; ``val_loss`` is what early stopping watches."""
        return {"val_loss": self.step_loss(batch)}

    @staticmethod
    def batch_size_of(batch: Any) -> int:
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return int(first.shape[0]) if isinstance(first, Tensor) else 1

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = self.step_loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=self.batch_size_of(batch))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        metrics = self.validation_metrics(batch)
        self.log_dict(metrics, prog_bar=True, on_step=False, on_epoch=True, batch_size=self.batch_size_of(batch))

    def configure_optimizers(self) -> Any:
        c = self.config
        params = [p for p in self.parameters() if p.requires_grad]
        if c.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=c.learning_rate, weight_decay=c.weight_decay)
        elif c.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=c.learning_rate, weight_decay=c.weight_decay)
        else:
            optimizer = torch.optim.SGD(params, lr=c.learning_rate, momentum=c.momentum, weight_decay=c.weight_decay)
        if c.lr_schedule == "none":
            return optimizer
        if c.lr_schedule == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5,
                                                                   patience=max(1, c.early_stopping_patience // 3))
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"}}
        if c.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.max_epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        steps = self.trainer.estimated_stepping_batches
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=c.learning_rate, total_steps=int(steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @property
    def monitor(self) -> str:
        """The metric that picks the best checkpoint: ``val_loss``, or ``train_loss`` without validation."""
        has_val = self._trainer is not None and self.trainer.val_dataloaders is not None
        return "val_loss" if has_val else "train_loss"

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lstmkit_rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "lstmkit_rng" in checkpoint:
            set_rng_state(checkpoint["lstmkit_rng"])
