r"""Convolutional LSTM (Shi et al. 2015) for sequences of frames.

The matrix products of the LSTM become 2-D convolutions (``*``, "same" padding) so that states
keep the frames' spatial layout; with ``peephole=True`` the gates also see the cell through
Hadamard (element-wise, per position) weights, the paper's "peephole convolutional LSTM":

.. math::
    i_t = \sigma(W_{xi} * X_t + W_{hi} * H_{t-1} + W_{ci} \odot C_{t-1} + b_i) \\
    f_t = \sigma(W_{xf} * X_t + W_{hf} * H_{t-1} + W_{cf} \odot C_{t-1} + b_f) \\
    C_t = f_t \odot C_{t-1} + i_t \odot \tanh(W_{xc} * X_t + W_{hc} * H_{t-1} + b_c) \\
    o_t = \sigma(W_{xo} * X_t + W_{ho} * H_{t-1} + W_{co} \odot C_t + b_o),\qquad
    H_t = o_t \odot \tanh(C_t)

Shapes: frames ``(C, Y, X)`` (channels, height, width); sequences ``(T, B, C, Y, X)`` or
``(B, T, C, Y, X)`` with ``batch_first``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.errors import ConfigError, ShapeError
from lstmkit.nn._checks import check_bool, check_size, check_state, check_tensor_like_params

__all__ = ["ConvLSTMCell", "ConvLSTM"]


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2:
        raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}")
    return check_size(name, pair[0]), check_size(name, pair[1])


class ConvLSTMCell(nn.Module):
    """One step of a (peephole) convolutional LSTM, equations in :mod:`lstmkit.nn.convlstm`.

    Parameters: ``weight_ih`` ``(4C, C_in, kY, kX)``, ``weight_hh`` ``(4C, C, kY, kX)`` with gate
    blocks ``i, f, g, o``; ``bias`` ``(4C,)``; with peepholes ``weight_ch`` ``(3, C, Y, X)`` (rows
    ``i, f, o``), which is why ``frame_size`` must be given.

    Args:
        input_channels: ``C_in``.
        hidden_channels: ``C``.
        kernel_size: convolution kernel, int or ``(kY, kX)``.
        bias: whether there is a bias.
        peephole: add Hadamard peepholes (Shi et al. 2015).
        frame_size: ``(Y, X)``, required with ``peephole``.

    Example:
        >>> cell = ConvLSTMCell(2, 4, 3)
        >>> h, c = cell(torch.randn(1, 2, 8, 8))
        >>> h.shape
        torch.Size([1, 4, 8, 8])
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int | Sequence[int] = 3,
                 bias: bool = True, peephole: bool = False, frame_size: Sequence[int] | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.input_channels = check_size("input_channels", input_channels)
        self.hidden_channels = check_size("hidden_channels", hidden_channels)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.bias_enabled = check_bool("bias", bias)
        self.peephole = check_bool("peephole", peephole)
        if peephole and frame_size is None:
            raise ConfigError("peephole=True needs frame_size=(height, width): the Hadamard peephole "
                              "weights have one value per position")
        self.frame_size = None if frame_size is None else _pair("frame_size", frame_size)
        factory = {"device": device, "dtype": dtype}
        gates = 4 * hidden_channels
        self.weight_ih = nn.Parameter(torch.empty(gates, input_channels, *self.kernel_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_channels, *self.kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(gates, **factory)) if bias else None
        self.weight_ch = (nn.Parameter(torch.empty(3, hidden_channels, *self.frame_size, **factory))
                          if peephole else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Convolutions as ``nn.Conv2d`` initialises them; peepholes start at zero."""
        for weight in (self.weight_ih, self.weight_hh):
            nn.init.kaiming_uniform_(weight, a=5 ** 0.5)
        if self.bias is not None:
            fan_in = (self.input_channels + self.hidden_channels) * self.kernel_size[0] * self.kernel_size[1]
            nn.init.uniform_(self.bias, -fan_in ** -0.5, fan_in ** -0.5)
        if self.weight_ch is not None:
            nn.init.zeros_(self.weight_ch)

    def input_projection(self, x: Tensor) -> Tensor:
        """``W_x * X + b`` for a batch of frames ``(N, C_in, Y, X)`` -> ``(N, 4C, Y, X)``."""
        return F.conv2d(x, self.weight_ih, self.bias, padding="same")

    def step(self, xw: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """One step from the input projection ``xw`` ``(B, 4C, Y, X)`` and the state."""
        z = xw + F.conv2d(h, self.weight_hh, padding="same")
        i, f, g, o = z.chunk(4, 1)
        if self.weight_ch is not None:
            p_i, p_f, p_o = self.weight_ch
            i, f = i + p_i * c, f + p_f * c
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        if self.weight_ch is not None:
            o = o + p_o * c
        return o.sigmoid() * c.tanh(), c

    def check_frames(self, x: Tensor, what: str) -> None:
        check_tensor_like_params(self, what, x)
        if x.shape[-3] != self.input_channels:
            raise ShapeError(f"ConvLSTM expected {what} with {self.input_channels} channels, got "
                             f"{x.shape[-3]} (shape {tuple(x.shape)})")
        if self.frame_size is not None and tuple(x.shape[-2:]) != self.frame_size:
            raise ShapeError(f"ConvLSTM with peepholes was built for frames of {self.frame_size} but "
                             f"{what} has frames of {tuple(x.shape[-2:])}")

    def initial_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shape = (x.shape[0], self.hidden_channels, *x.shape[-2:])
        return x.new_zeros(shape), x.new_zeros(shape)

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 4:
            raise ShapeError(f"ConvLSTMCell expected frames (B, C, Y, X), got shape {tuple(x.shape)}")
        self.check_frames(x, "input")
        if hx is None:
            hx = self.initial_state(x)
        else:
            shape = (x.shape[0], self.hidden_channels, *x.shape[-2:])
            hx = check_state(self, hx, (shape, shape), ("h", "c"))  # type: ignore[assignment]
        return self.step(self.input_projection(x), *hx)


class ConvLSTM(nn.Module):
    """A stack of convolutional LSTM layers over a sequence of frames.

    Args:
        input_channels: channels of the input frames.
        hidden_channels: channels of each layer's state, an int or one per layer.
        kernel_size: an int or pair, or one per layer.
        num_layers: stacked layers (inferred from a list ``hidden_channels`` when omitted).
        bias: whether the convolutions have a bias.
        batch_first: ``(B, T, C, Y, X)`` instead of ``(T, B, C, Y, X)``.
        peephole: Hadamard peepholes (needs ``frame_size``).
        frame_size: ``(Y, X)`` of the frames, for the peepholes.

    Inputs: ``input`` ``(T, B, C_in, Y, X)`` and optionally ``hx``, a list of ``(h, c)`` per layer.

    Outputs: ``output`` ``(T, B, C_last, Y, X)``, every hidden state of the last layer; and the
    list of each layer's last ``(h, c)``.

    Example:
        >>> model = ConvLSTM(1, [8, 4], kernel_size=3, batch_first=True)
        >>> out, states = model(torch.randn(2, 5, 1, 16, 16))
        >>> out.shape, len(states), states[-1][0].shape
        (torch.Size([2, 5, 4, 16, 16]), 2, torch.Size([2, 4, 16, 16]))
    """

    def __init__(self, input_channels: int, hidden_channels: int | Sequence[int],
                 kernel_size: int | Sequence[int] | Sequence[Sequence[int]] = 3,
                 num_layers: int | None = None, bias: bool = True, batch_first: bool = False,
                 peephole: bool = False, frame_size: Sequence[int] | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if num_layers is None:
            num_layers = 1 if isinstance(hidden_channels, int) else len(hidden_channels)
        self.num_layers = check_size("num_layers", num_layers)
        channels = self._per_layer("hidden_channels", hidden_channels, lambda v: isinstance(v, int))
        kernels = self._per_layer("kernel_size", kernel_size,
                                  lambda v: isinstance(v, int) or (len(v) == 2 and all(isinstance(k, int) for k in v)))
        self.batch_first = check_bool("batch_first", batch_first)
        self.cells = nn.ModuleList(
            ConvLSTMCell(input_channels if k == 0 else channels[k - 1], channels[k], kernels[k], bias,
                         peephole, frame_size, device, dtype)
            for k in range(self.num_layers)
        )

    def _per_layer(self, name: str, value, is_single) -> list:
        if is_single(value):
            return [value] * self.num_layers
        values = list(value)
        if len(values) != self.num_layers:
            raise ConfigError(f"{name} has {len(values)} entries but num_layers={self.num_layers}; "
                              f"give one value or one per layer")
        return values

    def forward(self, input: Tensor, hx: Sequence[tuple[Tensor, Tensor]] | None = None
                ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        if not isinstance(input, Tensor) or input.dim() != 5:
            layout = "(B, T, C, Y, X)" if self.batch_first else "(T, B, C, Y, X)"
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ShapeError(f"ConvLSTM expected input of shape {layout}, got {got}")
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, C, Y, X)
        if hx is not None and len(hx) != self.num_layers:
            raise ShapeError(f"ConvLSTM expected hx with one (h, c) per layer ({self.num_layers}), got {len(hx)}")
        states = []
        for k, cell in enumerate(self.cells):
            cell.check_frames(x, "input" if k == 0 else f"layer {k} input")
            steps, batch = x.shape[:2]
            xw = cell.input_projection(x.flatten(0, 1)).unflatten(0, (steps, batch))  # (T, B, 4C, Y, X)
            if hx is None:
                h, c = cell.initial_state(x[0])
            else:
                shape = (batch, cell.hidden_channels, *x.shape[-2:])
                h, c = check_state(cell, hx[k], (shape, shape), (f"h of layer {k}", f"c of layer {k}"))
            outputs = []
            for t in range(steps):
                h, c = cell.step(xw[t], h, c)
                outputs.append(h)
            x = torch.stack(outputs)
            states.append((h, c))
        return (x.transpose(0, 1) if self.batch_first else x), states
