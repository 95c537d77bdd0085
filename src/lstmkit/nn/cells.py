r"""One time step of every recurrent cell: the math, and the single-step modules.

Shape symbols used throughout :mod:`lstmkit.nn`:

* ``T`` sequence length, ``B`` batch size, ``I`` input features,
* ``H`` hidden (cell) size, ``P`` projection size (``P = H`` when there is no projection),
* ``G`` number of gate blocks of a cell (4 for ``i, f, g, o``; 3 when there is no forget gate).

Weight layout (a public, stable contract): the input-to-hidden weight ``weight_ih`` has shape
``(G*H, I)`` and the hidden-to-hidden weight ``weight_hh`` shape ``(G*H, P)``, with the gate
blocks stacked in the order listed by :attr:`Variant.gates` - ``i, f, g, o`` as in
``torch.nn.LSTM``, or ``i, g, o`` for the variants without a forget gate. Variant extras:

* ``weight_ch`` ``(3, H)``: diagonal peepholes, rows ``i, f, o`` (``"peephole"``);
* ``ln_weight_ih``, ``ln_weight_hh`` ``(G*H,)`` and ``ln_weight_c``, ``ln_bias_c`` ``(H,)``:
  layer-norm gains and the cell's shift (``"layernorm"``; ``bias_ih``/``bias_hh`` act as the
  shifts of the gate normalisations);
* ``weight_hr`` ``(P, H)``: the output projection when ``proj_size > 0``.

The functions here work on whole tensors and are the plain-PyTorch reference that the fused
kernels are tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.errors import ConfigError

__all__ = [
    "Variant",
    "VARIANTS",
    "get_variant",
    "RecurrentWeights",
    "lstm_input_projection",
    "lstm_step",
    "gru_step",
    "rnn_step",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "LAYER_NORM_EPS",
]

LAYER_NORM_EPS = 1e-5


@dataclass(frozen=True)
class Variant:
    """What distinguishes one LSTM variant from another.

    Attributes:
        name: the ``cell=`` string.
        gates: the gate blocks of ``weight_ih``/``weight_hh`` in order (``"ifgo"`` or ``"igo"``).
        forget_gate: whether ``f_t`` is a gate of its own with a bias that can be set.
        peephole: whether the gates see the cell through diagonal weights ``weight_ch``.
        layernorm: whether gate pre-activations and the cell are layer-normalised.
        reference: the paper the variant comes from.
    """

    name: str
    gates: str
    forget_gate: bool
    peephole: bool = False
    layernorm: bool = False
    reference: str = ""

    @property
    def num_gates(self) -> int:
        return len(self.gates)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("standard", "ifgo", True, reference="Gers, Schmidhuber & Cummins 1999"),
        Variant("vanilla", "igo", False, reference="Hochreiter & Schmidhuber 1997"),
        Variant("peephole", "ifgo", True, peephole=True, reference="Gers & Schmidhuber 2000"),
        Variant("cifg", "igo", False, reference="Greff et al. 2017"),
        Variant("layernorm", "ifgo", True, layernorm=True, reference="Ba, Kiros & Hinton 2016"),
    )
}


def get_variant(cell: str | Variant) -> Variant:
    """Look up a variant by its ``cell=`` name, with an error listing the known ones."""
    if isinstance(cell, Variant):
        return cell
    if not isinstance(cell, str) or cell not in VARIANTS:
        known = ", ".join(repr(name) for name in VARIANTS)
        raise ConfigError(f"unknown cell={cell!r}; expected one of {known}")
    return VARIANTS[cell]


class RecurrentWeights(NamedTuple):
    """The parameters of one layer and direction (or of one cell), gathered for the math.

    Biases and the variant extras are ``None`` where the layer has none.
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None = None
    bias_hh: Tensor | None = None
    weight_hr: Tensor | None = None
    weight_ch: Tensor | None = None
    ln_weight_ih: Tensor | None = None
    ln_weight_hh: Tensor | None = None
    ln_weight_c: Tensor | None = None
    ln_bias_c: Tensor | None = None


def _layer_norm(z: Tensor, gain: Tensor | None, shift: Tensor | None) -> Tensor:
    return F.layer_norm(z, z.shape[-1:], gain, shift, LAYER_NORM_EPS)


def lstm_input_projection(x: Tensor, w: RecurrentWeights, variant: Variant) -> Tensor:
    """The input's share of the gate pre-activations, for any number of leading dims.

    It is computed for all time steps at once (one GEMM) before the recurrence runs:
    ``x W_ih^T + b_ih``, or ``LN(x W_ih^T) * ln_weight_ih + b_ih`` for ``"layernorm"``.

    Args:
        x: ``(..., I)``.
        w: the weights.
        variant: the cell variant.

    Returns:
        ``(..., G*H)``.
    """
    if variant.layernorm:
        return _layer_norm(F.linear(x, w.weight_ih), w.ln_weight_ih, w.bias_ih)
    return F.linear(x, w.weight_ih, w.bias_ih)


def lstm_step(
    variant: Variant, xw: Tensor, h: Tensor, c: Tensor, w: RecurrentWeights
) -> tuple[Tensor, Tensor]:
    """One LSTM step given the input projection ``xw`` of this step.

    Args:
        variant: the cell variant.
        xw: ``(B, G*H)`` from :func:`lstm_input_projection`.
        h: ``(B, P)`` previous output.
        c: ``(B, H)`` previous cell.
        w: the weights.

    Returns:
        ``(h_t, c_t)`` of shapes ``(B, P)`` and ``(B, H)``.
    """
    if variant.layernorm:
        z = xw + _layer_norm(F.linear(h, w.weight_hh), w.ln_weight_hh, w.bias_hh)
    else:
        z = xw + F.linear(h, w.weight_hh, w.bias_hh)
    if variant.name == "vanilla":
        i, g, o = z.chunk(3, -1)
        c = c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
    elif variant.name == "cifg":
        i, g, o = z.chunk(3, -1)
        i = i.sigmoid()
        c = (1 - i) * c + i * g.tanh()
        h = o.sigmoid() * c.tanh()
    elif variant.peephole:
        i, f, g, o = z.chunk(4, -1)
        p_i, p_f, p_o = w.weight_ch  # type: ignore[misc]
        c = (f + p_f * c).sigmoid() * c + (i + p_i * c).sigmoid() * g.tanh()
        h = (o + p_o * c).sigmoid() * c.tanh()
    elif variant.layernorm:
        i, f, g, o = z.chunk(4, -1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * _layer_norm(c, w.ln_weight_c, w.ln_bias_c).tanh()
    else:
        i, f, g, o = z.chunk(4, -1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
    if w.weight_hr is not None:
        h = F.linear(h, w.weight_hr)
    return h, c


def gru_step(xw: Tensor, h: Tensor, w: RecurrentWeights) -> Tensor:
    """One GRU step (gate order ``r, z, n`` as ``torch.nn.GRU``); ``xw = x W_ih^T + b_ih``."""
    x_r, x_z, x_n = xw.chunk(3, -1)
    h_r, h_z, h_n = F.linear(h, w.weight_hh, w.bias_hh).chunk(3, -1)
    r = (x_r + h_r).sigmoid()
    z = (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    return (1 - z) * n + z * h


def rnn_step(xw: Tensor, h: Tensor, w: RecurrentWeights, nonlinearity: str) -> Tensor:
    """One Elman step: ``h_t = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``."""
    z = xw + F.linear(h, w.weight_hh, w.bias_hh)
    return z.tanh() if nonlinearity == "tanh" else z.relu()


# --------------------------------------------------------------------------------------------
# Single-step modules


def _factory(device: torch.device | str | None, dtype: torch.dtype | None) -> dict:
    return {"device": device, "dtype": dtype}


class _CellBase(nn.Module):
    input_size: int
    hidden_size: int
    bias: bool

    def _check_input(self, input: Tensor, hx: tuple[Tensor, ...] | None, widths: tuple[int, ...]):
        from lstmkit.nn._checks import check_cell_input

        return check_cell_input(self, input, hx, widths)


class LSTMCell(_CellBase):
    r"""One step of any LSTM variant: a drop-in for ``torch.nn.LSTMCell``.

    With :math:`z_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}` split into gate blocks:

    ``"standard"`` (forget gate, Gers et al. 1999; the math of ``torch.nn.LSTMCell``):

    .. math::
        i_t = \sigma(z^i_t),\ f_t = \sigma(z^f_t),\ g_t = \tanh(z^g_t),\ o_t = \sigma(z^o_t) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t,\qquad h_t = o_t \odot \tanh(c_t)

    ``"vanilla"`` (Hochreiter & Schmidhuber 1997, no forget gate; blocks ``i, g, o``):

    .. math:: c_t = c_{t-1} + i_t \odot g_t,\qquad h_t = o_t \odot \tanh(c_t)

    ``"peephole"`` (Gers & Schmidhuber 2000; diagonal peepholes :math:`p_i, p_f, p_o` =
    ``weight_ch``):

    .. math::
        i_t = \sigma(z^i_t + p_i \odot c_{t-1}),\ f_t = \sigma(z^f_t + p_f \odot c_{t-1}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t,\
        o_t = \sigma(z^o_t + p_o \odot c_t),\ h_t = o_t \odot \tanh(c_t)

    ``"cifg"`` (coupled input and forget gate, Greff et al. 2017; blocks ``i, g, o``):

    .. math:: c_t = (1 - i_t) \odot c_{t-1} + i_t \odot g_t,\qquad h_t = o_t \odot \tanh(c_t)

    ``"layernorm"`` (Ba et al. 2016; :math:`\mathrm{LN}` normalises over the last dimension):

    .. math::
        z_t = \gamma_{ih} \mathrm{LN}(W_{ih} x_t) + b_{ih}
              + \gamma_{hh} \mathrm{LN}(W_{hh} h_{t-1}) + b_{hh} \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t,\qquad
        h_t = o_t \odot \tanh(\gamma_c \mathrm{LN}(c_t) + \beta_c)

    Args:
        input_size: ``I``.
        hidden_size: ``H``.
        bias: whether the cell has ``bias_ih``/``bias_hh`` (and ``ln_bias_c``).
        device: factory device.
        dtype: factory dtype.
        cell: the variant name, see :data:`VARIANTS`.

    Shape:
        ``input`` ``(B, I)`` or ``(I,)``; ``hx`` a pair ``(h, c)`` of ``(B, H)`` or ``(H,)``,
        zeros when omitted. Returns the pair ``(h_t, c_t)``.

    Example:
        >>> cell = LSTMCell(3, 5, cell="peephole")
        >>> h, c = cell(torch.randn(2, 3))
        >>> h.shape, c.shape, cell.weight_ch.shape
        (torch.Size([2, 5]), torch.Size([2, 5]), torch.Size([3, 5]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        cell: str = "standard",
    ) -> None:
        from lstmkit.nn._checks import check_size

        super().__init__()
        self.variant = get_variant(cell)
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.bias = bias
        for name, shape in lstm_parameter_shapes(self.variant, input_size, hidden_size, 0, bias):
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **_factory(device, dtype))))
        self.reset_parameters()

    @property
    def cell(self) -> str:
        return self.variant.name

    def reset_parameters(self) -> None:
        reset_recurrent_parameters(self, self.hidden_size)

    def weights(self) -> RecurrentWeights:
        return RecurrentWeights(**{n: getattr(self, n, None) for n in RecurrentWeights._fields
                                   if hasattr(self, n)})

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        input, (h, c), batched = self._check_input(input, hx, (self.hidden_size, self.hidden_size))
        w = self.weights()
        h, c = lstm_step(self.variant, lstm_input_projection(input, w, self.variant), h, c, w)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}, cell={self.cell!r}"


class GRUCell(_CellBase):
    r"""One GRU step, the math and parameter layout of ``torch.nn.GRUCell`` (gates ``r, z, n``).

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}),\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})),\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Example:
        >>> GRUCell(3, 5)(torch.randn(2, 3)).shape
        torch.Size([2, 5])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        from lstmkit.nn._checks import check_size

        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.bias = bias
        for name, shape in simple_parameter_shapes(3, input_size, hidden_size, bias):
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **_factory(device, dtype))))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_recurrent_parameters(self, self.hidden_size)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), batched = self._check_input(input, None if hx is None else (hx,), (self.hidden_size,))
        w = RecurrentWeights(self.weight_ih, self.weight_hh, getattr(self, "bias_ih", None),
                             getattr(self, "bias_hh", None))
        h = gru_step(F.linear(input, w.weight_ih, w.bias_ih), h, w)
        return h if batched else h.squeeze(0)


class RNNCell(_CellBase):
    r"""One Elman step, as ``torch.nn.RNNCell``: :math:`h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`.

    ``nonlinearity="relu"`` replaces tanh by ReLU.

    Example:
        >>> RNNCell(3, 5, nonlinearity="relu")(torch.randn(2, 3)).shape
        torch.Size([2, 5])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        from lstmkit.nn._checks import check_size

        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"unknown nonlinearity={nonlinearity!r}; expected 'tanh' or 'relu'")
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.bias = bias
        self.nonlinearity = nonlinearity
        for name, shape in simple_parameter_shapes(1, input_size, hidden_size, bias):
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **_factory(device, dtype))))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_recurrent_parameters(self, self.hidden_size)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), batched = self._check_input(input, None if hx is None else (hx,), (self.hidden_size,))
        w = RecurrentWeights(self.weight_ih, self.weight_hh, getattr(self, "bias_ih", None),
                             getattr(self, "bias_hh", None))
        h = rnn_step(F.linear(input, w.weight_ih, w.bias_ih), h, w, self.nonlinearity)
        return h if batched else h.squeeze(0)


# --------------------------------------------------------------------------------------------
# Parameter shapes and initialisation, shared by the cells and the sequence layers


def lstm_parameter_shapes(
    variant: Variant, input_size: int, hidden_size: int, proj_size: int, bias: bool
) -> list[tuple[str, tuple[int, ...]]]:
    """Names (without layer suffix) and shapes of one LSTM layer-direction's parameters.

    The order is ``torch.nn.LSTM``'s (``weight_ih, weight_hh, bias_ih, bias_hh, weight_hr``)
    followed by the variant's extras.
    """
    gates = variant.num_gates * hidden_size
    out = proj_size or hidden_size
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("weight_ih", (gates, input_size)),
        ("weight_hh", (gates, out)),
    ]
    if bias:
        shapes += [("bias_ih", (gates,)), ("bias_hh", (gates,))]
    if proj_size:
        shapes.append(("weight_hr", (proj_size, hidden_size)))
    if variant.peephole:
        shapes.append(("weight_ch", (3, hidden_size)))
    if variant.layernorm:
        shapes += [("ln_weight_ih", (gates,)), ("ln_weight_hh", (gates,)),
                   ("ln_weight_c", (hidden_size,))]
        if bias:
            shapes.append(("ln_bias_c", (hidden_size,)))
    return shapes


def simple_parameter_shapes(
    num_gates: int, input_size: int, hidden_size: int, bias: bool
) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of a GRU (``num_gates=3``) or Elman RNN (``num_gates=1``) layer."""
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("weight_ih", (num_gates * hidden_size, input_size)),
        ("weight_hh", (num_gates * hidden_size, hidden_size)),
    ]
    if bias:
        shapes += [("bias_ih", (num_gates * hidden_size,)), ("bias_hh", (num_gates * hidden_size,))]
    return shapes


def reset_recurrent_parameters(module: nn.Module, hidden_size: int) -> None:
    """``torch.nn.LSTM``'s initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).

    Layer-norm gains start at 1 and the cell's layer-norm shift at 0, as in ``nn.LayerNorm``.
    """
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for name, param in module.named_parameters(recurse=False):
            if name.startswith("ln_weight"):
                param.fill_(1.0)
            elif name.startswith("ln_bias"):
                param.zero_()
            else:
                param.uniform_(-bound, bound)
