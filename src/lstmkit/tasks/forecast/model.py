"""The forecasting network, the window transforms that let it extrapolate, and its Lightning module.

A window of ``W`` past steps (targets and covariates, already scaled per series) is transformed,
read by an LSTM of any :mod:`lstmkit.nn` variant, and a linear head maps the last hidden state
(and the future covariates of the horizon) to every horizon step and quantile at once (direct
multi-step), or to the next step only (recursive mode, where predictions are fed back).

Window transforms of the target (covariates pass through):

* ``"none"``: the scaled values as they are;
* ``"difference"``: inputs are first differences, outputs are offsets from the last observed
  value, ``y[t+k] - y[t]``: the level is never an input, so a trend can continue beyond the range
  seen in training;
* ``"instance"``: each window is centred on its last value and divided by its own standard
  deviation (per-window normalisation, as RevIN), outputs in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lstmkit.nn as lnn
from lstmkit.errors import ConfigError
from lstmkit.train import TaskModule, TrainConfig

__all__ = ["TRANSFORMS", "NetConfig", "ForecastNet", "ForecastEnsemble", "ForecastModule", "pinball"]

TRANSFORMS = ("none", "difference", "instance")
_EPS = 1e-5


@dataclass(frozen=True)
class NetConfig:
    """The network's structure (saved with the model; everything needed to rebuild it)."""

    n_targets: int
    n_past: int
    n_future: int
    window: int
    horizon: int
    quantiles: tuple[float, ...]
    transform: str
    recursive: bool
    cell: str
    hidden_size: int
    num_layers: int
    dropout: float

    @property
    def n_inputs(self) -> int:
        return self.n_targets + self.n_past + self.n_future

    @property
    def steps_out(self) -> int:
        return 1 if self.recursive else self.horizon

    @property
    def n_outputs(self) -> int:
        """Outputs per step and target: one per quantile, or one point forecast (MSE) without quantiles."""
        return max(1, len(self.quantiles))

    @property
    def point_index(self) -> int:
        """Where the point forecast is among the outputs: the median, or the only output."""
        return self.quantiles.index(0.5) if self.quantiles else 0

    def to_dict(self) -> dict:
        return {**self.__dict__, "quantiles": list(self.quantiles)}

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        return cls(**{**data, "quantiles": tuple(data["quantiles"])})


class ForecastNet(nn.Module):
    """Window in, forecast out; knows nothing of files or training.

    Args:
        config: the structure.

    Shapes: ``inputs`` ``(B, W, F)`` with ``F = n_targets + n_past + n_future``; ``future``
    ``(B, H, n_future)``; output ``(B, steps_out, n_targets, n_quantiles)`` in scaled units.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        if config.transform not in TRANSFORMS:
            raise ConfigError(f"unknown transform={config.transform!r}; expected one of {', '.join(TRANSFORMS)}")
        self.config = config
        has_forget = lnn.get_variant(config.cell).forget_gate
        self.encoder = lnn.LSTM(config.n_inputs, config.hidden_size, config.num_layers, batch_first=True,
                                dropout=config.dropout if config.num_layers > 1 else 0.0, cell=config.cell,
                                forget_bias=1.0 if has_forget else None, kernel="fastest")
        head_inputs = config.hidden_size + config.steps_out * config.n_future
        self.head = nn.Linear(head_inputs, config.steps_out * config.n_targets * config.n_outputs)

    # -- transforms ---------------------------------------------------------------------------

    def encode(self, inputs: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Transform the target channels of a window; returns the network input and the state
        needed to decode: the last value ``(B, 1, n_t)`` and the scale ``(B, 1, n_t)``."""
        nt = self.config.n_targets
        target, rest = inputs[..., :nt], inputs[..., nt:]
        last = target[:, -1:]
        scale = torch.ones_like(last)
        if self.config.transform == "none":
            return inputs, (last, scale)
        if self.config.transform == "difference":
            target = torch.diff(target, dim=1, prepend=target[:, :1])
        else:  # "instance"
            scale = target.std(dim=1, keepdim=True, unbiased=False) + _EPS
            target = (target - last) / scale
        return (torch.cat([target, rest], -1) if rest.shape[-1] else target), (last, scale)

    def encode_target(self, target: Tensor, state: tuple[Tensor, Tensor]) -> Tensor:
        """Targets ``(B, H, n_t)`` in the space the network predicts in."""
        last, scale = state
        if self.config.transform == "none":
            return target
        return (target - last) / scale

    def decode(self, output: Tensor, state: tuple[Tensor, Tensor]) -> Tensor:
        """Network output ``(B, S, n_t, Q)`` back to scaled units, quantiles sorted."""
        last, scale = state
        if self.config.transform != "none":
            output = last.unsqueeze(-1) + scale.unsqueeze(-1) * output
        return output.sort(dim=-1).values

    # -- forward ------------------------------------------------------------------------------

    def raw(self, encoded: Tensor, future: Tensor) -> Tensor:
        """The network on an encoded window: ``(B, steps_out, n_t, Q)`` in transformed units."""
        out, _ = self.encoder(encoded)
        features = out[:, -1]
        if self.config.n_future:
            features = torch.cat([features, future[:, : self.config.steps_out].flatten(1)], -1)
        c = self.config
        return self.head(features).view(-1, c.steps_out, c.n_targets, c.n_outputs)

    def forward(self, inputs: Tensor, future: Tensor) -> Tensor:
        """Forecast ``(B, H, n_t, Q)`` in scaled units (recursive mode feeds the median back)."""
        if not self.config.recursive:
            encoded, state = self.encode(inputs)
            return self.decode(self.raw(encoded, future), state)
        steps, window = [], inputs
        median = self.config.point_index
        for k in range(self.config.horizon):
            encoded, state = self.encode(window)
            step = self.decode(self.raw(encoded, future[:, k:k + 1]), state)  # (B, 1, n_t, Q)
            steps.append(step)
            nxt = window[:, -1:].clone()
            nxt[..., : self.config.n_targets] = step[..., median]
            if self.config.n_future:
                nxt[..., -self.config.n_future:] = future[:, k:k + 1]
            window = torch.cat([window[:, 1:], nxt], 1)
        return torch.cat(steps, 1)


class ForecastEnsemble(nn.Module):
    """The mean forecast (every quantile averaged) of networks of one structure trained from
    different seeds: the variance of a single small network's training is the largest source of
    error on short series.

    Args:
        config: the members' structure.
        members: how many.
    """

    def __init__(self, config: NetConfig, members: int) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(ForecastNet(config) for _ in range(members))

    def forward(self, inputs: Tensor, future: Tensor) -> Tensor:
        return torch.stack([member(inputs, future) for member in self.members]).mean(0)


def pinball(prediction: Tensor, target: Tensor, quantiles: Tensor) -> Tensor:
    """Mean quantile (pinball) loss; ``prediction`` ``(..., Q)``, ``target`` ``(...)``."""
    error = target.unsqueeze(-1) - prediction
    return torch.maximum(quantiles * error, (quantiles - 1) * error).mean()


class ForecastModule(TaskModule):
    """Trains a :class:`ForecastNet`: pinball loss over the quantiles (MSE for a point forecast
    without quantiles), in the space of the window transform."""

    def __init__(self, network: ForecastNet, config: TrainConfig) -> None:
        super().__init__(network, config)
        self.register_buffer("quantiles", torch.tensor(network.config.quantiles, dtype=torch.float32),
                             persistent=False)

    def step_loss(self, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
        inputs, future, target, _ = batch
        net: ForecastNet = self.network
        encoded, state = net.encode(inputs)
        output = net.raw(encoded, future)
        target = net.encode_target(target[:, : net.config.steps_out], state)
        if not net.config.quantiles:
            return F.mse_loss(output[..., 0], target)
        return pinball(output, target, self.quantiles)
