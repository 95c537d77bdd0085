"""Regularisers for recurrent networks, as small pieces that compose with any layer.

* :class:`LockedDropout` (variational dropout, Gal & Ghahramani 2016): one mask per sequence,
  the same at every time step; put it on a layer's input or output.
* :func:`weight_drop` (Merity et al. 2017): DropConnect on the hidden-to-hidden weights, one mask
  per forward pass, through ``torch.nn.utils.parametrize`` so that it wraps any layer.
* :class:`Zoneout` (Krueger et al. 2016): each unit of ``h`` and ``c`` keeps its previous value
  with a probability, a fresh mask at every step; handed to a layer's ``zoneout=`` argument.
* dropout between stacked layers is the layers' own ``dropout=`` argument, as in ``torch.nn``.

All of them are inactive in ``eval()`` mode (zoneout then uses its expectation).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from lstmkit.errors import ConfigError, ShapeError
from lstmkit.nn._checks import check_probability

__all__ = ["LockedDropout", "DropConnect", "weight_drop", "Zoneout"]


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all time steps (variational dropout).

    Args:
        p: probability of zeroing a feature of a sequence.
        batch_first: whether inputs are ``(B, T, F)`` rather than ``(T, B, F)``.

    Example:
        >>> drop = LockedDropout(0.5)
        >>> y = drop(torch.ones(6, 2, 3))
        >>> bool((y == y[0]).all())  # the same units are dropped at every step
        True
    """

    def __init__(self, p: float = 0.5, batch_first: bool = False) -> None:
        super().__init__()
        self.p = check_probability("p", p, allow_one=False)
        self.batch_first = batch_first

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if x.dim() not in (2, 3):
            raise ShapeError(f"LockedDropout expected (T, B, F), (B, T, F) or (T, F), got shape {tuple(x.shape)}")
        time_dim = 1 if (self.batch_first and x.dim() == 3) else 0
        mask_shape = list(x.shape)
        mask_shape[time_dim] = 1
        mask = x.new_empty(mask_shape).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, batch_first={self.batch_first}"


class DropConnect(nn.Module):
    """A parametrization that drops weight entries (scaled by ``1/(1-p)``) in training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = check_probability("p", p, allow_one=False)

    def forward(self, weight: Tensor) -> Tensor:
        return F.dropout(weight, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def weight_drop(module: nn.Module, p: float = 0.5, names: Iterable[str] | None = None) -> nn.Module:
    """DropConnect on a layer's hidden-to-hidden weights (AWD-LSTM's weight drop); returns ``module``.

    A new mask is drawn each time the weight is read, which lstmkit's layers do once per forward
    pass, so every time step of a sequence sees the same dropped weights. Remove it with
    ``torch.nn.utils.parametrize.remove_parametrizations(module, name)``. While registered the
    raw weight is stored as ``parametrizations.<name>.original`` in the ``state_dict``.

    Args:
        module: an lstmkit :class:`~lstmkit.nn.LSTM`, :class:`~lstmkit.nn.GRU`,
            :class:`~lstmkit.nn.RNN` or a cell.
        p: probability of dropping each weight entry.
        names: parameters to drop; default every ``weight_hh*``.

    Example:
        >>> from lstmkit.nn import LSTM
        >>> lstm = weight_drop(LSTM(3, 4), p=0.5)
        >>> out, _ = lstm(torch.randn(5, 2, 3))
    """
    if isinstance(module, nn.RNNBase):
        raise ConfigError("weight_drop needs an lstmkit layer: torch.nn.LSTM caches its weights outside "
                          "the parametrization; convert it with lstmkit.nn.LSTM.from_torch")
    params = [n for n, _ in module.named_parameters(recurse=False)]
    chosen = list(names) if names is not None else [n for n in params if n.startswith("weight_hh")]
    missing = [n for n in chosen if n not in params]
    if missing or not chosen:
        raise ConfigError(f"weight_drop: {type(module).__name__} has no parameter(s) {missing or chosen}; "
                          f"its parameters are {params}")
    for name in chosen:
        parametrize.register_parametrization(module, name, DropConnect(p))
    return module


class Zoneout(nn.Module):
    """Zoneout on a recurrent state: each unit keeps its previous value with probability ``h`` or ``c``.

    In training a fresh Bernoulli mask is drawn at every step; in evaluation the state is the
    expectation ``p * previous + (1 - p) * new`` (Krueger et al. 2016). Pass it to a layer:
    ``LSTM(..., zoneout=Zoneout(h=0.05, c=0.5))``. GRU and RNN layers use ``h`` only.

    Args:
        h: zoneout probability of the hidden output ``h``.
        c: zoneout probability of the LSTM cell ``c``.
    """

    def __init__(self, h: float = 0.0, c: float = 0.0) -> None:
        super().__init__()
        self.h = check_probability("h", h, allow_one=False)
        self.c = check_probability("c", c, allow_one=False)

    def forward(self, new: tuple[Tensor, ...], old: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(self._mix(n, o, p, self.training) for n, o, p in zip(new, old, (self.h, self.c)))

    def expectation(self, new: tuple[Tensor, ...], old: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The evaluation-mode transition, whatever the module's mode (used by steppers)."""
        return tuple(self._mix(n, o, p, False) for n, o, p in zip(new, old, (self.h, self.c)))

    @staticmethod
    def _mix(new: Tensor, old: Tensor, p: float, training: bool) -> Tensor:
        if p == 0:
            return new
        if not training:
            return p * old + (1 - p) * new
        keep_old = torch.rand_like(new) < p
        return torch.where(keep_old, old, new)

    def extra_repr(self) -> str:
        return f"h={self.h}, c={self.c}"
