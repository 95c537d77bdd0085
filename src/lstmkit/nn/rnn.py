r"""Sequence layers: the time loop, directions, stacking, lengths and state around a cell.

:class:`LSTM`, :class:`GRU` and :class:`RNN` take the constructor arguments, inputs, outputs and
parameter names of their ``torch.nn`` namesakes, so that a ``state_dict`` moves between the two.
:class:`LSTM` adds ``cell=`` (the variant, see :class:`lstmkit.nn.LSTMCell` for the equations)
and gate-bias initialisation. Where torch's own fused implementation computes exactly the
requested math it is used, unless a layer asks for ``kernel="fastest"`` (see
:mod:`lstmkit.nn.kernels`).

Shapes: ``T`` time, ``B`` batch, ``I`` input features, ``H`` hidden size, ``P`` output size
(``proj_size`` or ``H``), ``L`` layers, ``D`` directions (2 if bidirectional).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from lstmkit.errors import ConfigError, ShapeError
from lstmkit.nn import kernels
from lstmkit.nn._checks import (
    check_bool,
    check_probability,
    check_size,
    check_state,
    check_tensor_like_params,
)
from lstmkit.nn.cells import (
    RecurrentWeights,
    Variant,
    get_variant,
    lstm_parameter_shapes,
    reset_recurrent_parameters,
    simple_parameter_shapes,
)
from lstmkit.nn.init import apply_gate_bias_init
from lstmkit.nn.kernels import LayerSpec
from lstmkit.nn.regularizers import Zoneout

__all__ = ["LSTM", "GRU", "RNN", "RecurrentLayer", "SequenceInput"]

SequenceInput = Tensor | PackedSequence

_NUM_GATES = {"GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


class RecurrentLayer(nn.Module):
    """What :class:`LSTM`, :class:`GRU` and :class:`RNN` share: arguments, parameters, forward.

    Not used directly. Subclasses set ``mode`` and, for LSTM, the variant.
    """

    mode: str
    state_names: tuple[str, ...] = ("h_0",)

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        variant: Variant | None = None,
        zoneout: Zoneout | None = None,
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        self.mode = mode
        self.variant = variant
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dropout = check_probability("dropout", dropout)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.proj_size = check_size("proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ConfigError(
                f"proj_size must be smaller than hidden_size={hidden_size}, got proj_size={proj_size}; "
                "use proj_size=0 for no projection"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} acts between stacked layers, but num_layers=1: it has no effect; "
                "use LockedDropout on the output, or num_layers > 1",
                stacklevel=3,
            )
        if zoneout is not None and not isinstance(zoneout, Zoneout):
            raise ConfigError(f"zoneout must be a lstmkit.nn.Zoneout or None, got {type(zoneout).__name__}")
        self.zoneout = zoneout
        if kernel not in kernels.KERNELS:
            raise ConfigError(f"unknown kernel={kernel!r}; expected one of {', '.join(map(repr, kernels.KERNELS))}")
        self.kernel = kernel

        factory = {"device": device, "dtype": dtype}
        self._weight_names: list[list[str]] = []  # parameter names per layer and direction
        self._fields: list[list[str]] = []  # the matching RecurrentWeights fields
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                layer_input = self.input_size if layer == 0 else self.output_size * self.num_directions
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = self._parameter_shapes(layer_input)
                for name, shape in shapes:
                    self.register_parameter(name + suffix, nn.Parameter(torch.empty(shape, **factory)))
                self._fields.append([name for name, _ in shapes])
                self._weight_names.append([name + suffix for name, _ in shapes])

    def _parameter_shapes(self, layer_input: int) -> list[tuple[str, tuple[int, ...]]]:
        return simple_parameter_shapes(_NUM_GATES[self.mode], layer_input, self.hidden_size, self.bias)

    # -- structure -------------------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """``P``: the size of ``h`` (``proj_size`` when set, else ``hidden_size``)."""
        return self.proj_size or self.hidden_size

    @property
    def spec(self) -> LayerSpec:
        return LayerSpec(self.mode, self.variant, self.num_layers, self.bidirectional, self.bias,
                         self.dropout, self.proj_size, self.hidden_size, self.kernel)

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """The parameters of each layer and direction, as ``torch.nn.LSTM.all_weights``."""
        return [[getattr(self, n) for n in names] for names in self._weight_names]

    def layer_weights(self) -> list[RecurrentWeights]:
        """One :class:`RecurrentWeights` per layer and direction (read afresh on every call, so
        that parametrizations such as :func:`lstmkit.nn.weight_drop` apply)."""
        return [
            RecurrentWeights(**{field: getattr(self, name) for field, name in zip(fields, names)})
            for fields, names in zip(self._fields, self._weight_names)
        ]

    def reset_parameters(self) -> None:
        """``torch.nn.LSTM``'s initialisation, U(-1/sqrt(H), 1/sqrt(H)) for every weight."""
        reset_recurrent_parameters(self, self.hidden_size)

    def flatten_parameters(self) -> None:
        """No-op, kept so that code written for ``torch.nn.LSTM`` runs unchanged."""

    def state_shapes(self, batch: int | None) -> tuple[tuple[int, ...], ...]:
        """The shape of each state component for a batch (``None`` for unbatched input)."""
        lead = (self.num_layers * self.num_directions,) + (() if batch is None else (batch,))
        widths = (self.output_size, self.hidden_size) if self.mode == "LSTM" else (self.hidden_size,)
        return tuple(lead + (w,) for w in widths)

    # -- forward ---------------------------------------------------------------------------

    def _check_features(self, tensor: Tensor, shape_hint: str) -> None:
        if tensor.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__} was built with input_size={self.input_size} but the input has "
                f"{tensor.shape[-1]} features (shape {tuple(tensor.shape)}); pass input of shape "
                f"{shape_hint} or build the layer with input_size={tensor.shape[-1]}"
            )

    def _run(self, input: Tensor | PackedSequence, hx: Any) -> tuple[Tensor | PackedSequence, tuple[Tensor, ...]]:
        owner = type(self).__name__
        if isinstance(input, PackedSequence):
            data, batch_sizes, sorted_indices, unsorted_indices = input
            check_tensor_like_params(self, "input", data)
            self._check_features(data, f"(N, {self.input_size})")
            batch: int | None = int(batch_sizes[0])
        else:
            sorted_indices = unsorted_indices = None
            batch_sizes = None
            check_tensor_like_params(self, "input", input)
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            if input.dim() not in (2, 3):
                raise ShapeError(
                    f"{owner} expected input of shape {layout} or unbatched (T, I), "
                    f"got {input.dim()}-D input of shape {tuple(input.shape)}"
                )
            self._check_features(input, layout.replace("I", str(self.input_size)))
            time_dim = (1 if self.batch_first else 0) if input.dim() == 3 else 0
            if input.shape[time_dim] == 0:
                raise ShapeError(f"{owner} got an input with no time steps (shape {tuple(input.shape)})")
            batch = None
            if input.dim() == 3:
                batch = input.shape[0 if self.batch_first else 1]
            data = input if batch is not None else input.unsqueeze(0 if self.batch_first else 1)

        expected = self.state_shapes(batch)
        if hx is None:
            full = self.state_shapes(batch or 1)
            state = tuple(data.new_zeros(shape) for shape in full)
        else:
            state = check_state(self, hx, expected, self.state_names)
            if batch is None:
                state = tuple(s.unsqueeze(1) for s in state)
            if sorted_indices is not None:
                state = tuple(s.index_select(1, sorted_indices) for s in state)

        output, state = kernels.sequence_forward(
            self.spec, data, batch_sizes, state, self.layer_weights(), self.training,
            self.batch_first, self.zoneout,
        )
        if isinstance(input, PackedSequence):
            output = PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices)
            if unsorted_indices is not None:
                state = tuple(s.index_select(1, unsorted_indices) for s in state)
        elif batch is None:
            output = output.squeeze(0 if self.batch_first else 1)
            state = tuple(s.squeeze(1) for s in state)
        return output, state

    def stepper(self, batch_size: int = 1):
        """A streaming stepper: feed one time step at a time, the state carried between calls.

        See :class:`lstmkit.nn.Stepper`.
        """
        from lstmkit.nn.streaming import Stepper

        return Stepper(self, batch_size)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if self.variant is not None and self.variant.name != "standard":
            parts.append(f"cell={self.variant.name!r}")
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False), ("kernel", "auto")):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)!r}")
        return ", ".join(parts)


class LSTM(RecurrentLayer):
    r"""A multi-layer LSTM of any variant: a drop-in for ``torch.nn.LSTM``.

    Each layer runs the cell chosen by ``cell=`` (equations in :class:`lstmkit.nn.LSTMCell`):
    ``"standard"`` (forget gate; torch's own fused path runs it unless ``kernel="fastest"``),
    ``"vanilla"`` (1997, no forget gate), ``"peephole"``, ``"cifg"`` or ``"layernorm"``. With
    ``proj_size > 0`` every variant's output is projected, :math:`h_t = W_{hr}(o_t \odot \tanh(c_t))`,
    as in ``torch.nn.LSTM``.

    Parameters per layer ``k`` (suffix ``_reverse`` for the reverse direction), gate blocks
    stacked in the order of ``Variant.gates`` (``i, f, g, o`` or ``i, g, o``):
    ``weight_ih_l{k}`` ``(G*H, I or D*P)``, ``weight_hh_l{k}`` ``(G*H, P)``, ``bias_ih_l{k}`` and
    ``bias_hh_l{k}`` ``(G*H,)``, ``weight_hr_l{k}`` ``(P, H)``; peephole: ``weight_ch_l{k}``
    ``(3, H)`` (rows ``i, f, o``); layernorm: ``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}``
    ``(G*H,)``, ``ln_weight_c_l{k}``, ``ln_bias_c_l{k}`` ``(H,)``.

    Args:
        input_size: ``I``.
        hidden_size: ``H``.
        num_layers: stacked layers ``L``.
        bias: whether there are bias vectors.
        batch_first: input and output as ``(B, T, ·)`` instead of ``(T, B, ·)``.
        dropout: dropout on the outputs of every layer but the last, in training.
        bidirectional: add a reverse direction; outputs are concatenated (``D*P`` features).
        proj_size: output projection size ``P`` (0: none), ``< hidden_size``.
        device: factory device.
        dtype: factory dtype.
        cell: the variant.
        forget_bias: initial forget-gate bias (1.0 per Jozefowicz et al. 2015); variants with a
            forget gate only. Written to ``bias_ih`` with ``bias_hh``'s block zeroed.
        input_bias: initial input-gate bias (the 1997 paper used negative values, e.g. -3).
        chrono_init: ``T_max`` of chrono initialisation (Tallec & Ollivier 2018):
            :math:`b_f \sim \log U(1, T_{max} - 1)`, :math:`b_i = -b_f` (for ``"cifg"``, whose
            forget gate is :math:`1 - i_t`, :math:`b_i = -b_f` alone). Excludes the two above.
        zoneout: a :class:`lstmkit.nn.Zoneout` applied to ``h`` and ``c`` after every step.
        kernel: what runs the ``"standard"`` cell, whose math torch also has. ``"auto"``: torch's
            own path, so that the layer is exactly ``torch.nn.LSTM`` (the same numbers, twice
            differentiable, exported as torch's LSTM). ``"fastest"``: lstmkit's fused kernel where
            :func:`lstmkit.nn.kernels.fused_is_faster` measured it faster (small layers on the
            CPU: up to B x H = 2,048 in training), torch's path elsewhere; the numbers agree with
            torch's to rounding, and the fused backward cannot be differentiated again. The
            other variants always run lstmkit's kernels.

    Inputs: ``input, (h_0, c_0)``: ``input`` ``(T, B, I)``, ``(B, T, I)`` or unbatched
    ``(T, I)``, or a ``PackedSequence``; ``h_0`` ``(L*D, B, P)``, ``c_0`` ``(L*D, B, H)``
    (without ``B`` for unbatched input), zeros when omitted.

    Outputs: ``output, (h_n, c_n)``: ``output`` ``(T, B, D*P)`` (a ``PackedSequence`` for
    packed input), the final states as ``h_0``/``c_0``.

    Example:
        >>> lstm = LSTM(4, 8, num_layers=2, cell="peephole", forget_bias=1.0)
        >>> out, (h, c) = lstm(torch.randn(10, 3, 4))
        >>> out.shape, h.shape, c.shape
        (torch.Size([10, 3, 8]), torch.Size([2, 3, 8]), torch.Size([2, 3, 8]))
        >>> _ = LSTM(4, 8).load_state_dict(torch.nn.LSTM(4, 8).state_dict())
    """

    state_names = ("h_0", "c_0")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        cell: str = "standard",
        forget_bias: float | None = None,
        input_bias: float | None = None,
        chrono_init: float | None = None,
        zoneout: Zoneout | None = None,
        kernel: str = "auto",
    ) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype, variant=get_variant(cell),
                         zoneout=zoneout, kernel=kernel)
        self.forget_bias = forget_bias
        self.input_bias = input_bias
        self.chrono_init = chrono_init
        self.reset_parameters()

    @property
    def cell(self) -> str:
        return self.variant.name  # type: ignore[union-attr]

    def _parameter_shapes(self, layer_input: int) -> list[tuple[str, tuple[int, ...]]]:
        return lstm_parameter_shapes(self.variant, layer_input, self.hidden_size, self.proj_size, self.bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        apply_gate_bias_init(self, self.forget_bias, self.input_bias, self.chrono_init)

    def forward(
        self, input: Tensor | PackedSequence, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor | PackedSequence, tuple[Tensor, Tensor]]:
        output, (h, c) = self._run(input, hx)
        return output, (h, c)

    @classmethod
    def from_torch(cls, module: nn.LSTM, **kwargs: Any) -> LSTM:
        """A ``"standard"`` :class:`LSTM` with the structure and weights of a ``torch.nn.LSTM``."""
        param = next(module.parameters())
        layer = cls(module.input_size, module.hidden_size, module.num_layers, module.bias,
                    module.batch_first, float(module.dropout), module.bidirectional, module.proj_size,
                    device=param.device, dtype=param.dtype, **kwargs)
        layer.load_state_dict(module.state_dict())
        return layer

    def to_torch(self) -> nn.LSTM:
        """The equivalent ``torch.nn.LSTM`` (``"standard"`` cell only; other math has no torch twin)."""
        if self.cell != "standard" or self.zoneout is not None:
            raise ConfigError(
                f"only a 'standard' LSTM without zoneout has a torch.nn.LSTM equivalent, this one is "
                f"cell={self.cell!r}{' with zoneout' if self.zoneout is not None else ''}"
            )
        param = next(self.parameters())
        module = nn.LSTM(self.input_size, self.hidden_size, self.num_layers, self.bias,
                         self.batch_first, self.dropout, self.bidirectional, self.proj_size,
                         device=param.device, dtype=param.dtype)
        module.load_state_dict({k: v.detach() for k, v in self.state_dict().items()})
        return module


class GRU(RecurrentLayer):
    r"""A multi-layer GRU, a drop-in for ``torch.nn.GRU`` (gates ``r, z, n``; equations in
    :class:`lstmkit.nn.GRUCell`); the baseline LSTMs are compared with.

    Arguments, inputs, outputs and parameter names as ``torch.nn.GRU``; ``zoneout`` as in
    :class:`LSTM` (acting on ``h``), and ``kernel`` (``"fastest"``: lstmkit's fused GRU where it
    beats torch's, which on the CPU is up to B x H = 16,384).

    Example:
        >>> out, h = GRU(4, 8, batch_first=True)(torch.randn(3, 10, 4))
        >>> out.shape, h.shape
        (torch.Size([3, 10, 8]), torch.Size([1, 3, 8]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None, *,
                 zoneout: Zoneout | None = None, kernel: str = "auto") -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, zoneout=zoneout, kernel=kernel)
        self.reset_parameters()

    def forward(self, input: SequenceInput, hx: Tensor | None = None) -> tuple[SequenceInput, Tensor]:
        output, (h,) = self._run(input, hx)
        return output, h


class RNN(RecurrentLayer):
    r"""A multi-layer Elman RNN, a drop-in for ``torch.nn.RNN``:
    :math:`h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})` (or ReLU).

    Example:
        >>> out, h = RNN(4, 8, nonlinearity="relu")(torch.randn(10, 4))
        >>> out.shape, h.shape
        (torch.Size([10, 8]), torch.Size([1, 8]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None, *,
                 zoneout: Zoneout | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"unknown nonlinearity={nonlinearity!r}; expected 'tanh' or 'relu'")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, zoneout=zoneout)
        self.nonlinearity = nonlinearity
        self.reset_parameters()

    def forward(self, input: SequenceInput, hx: Tensor | None = None) -> tuple[SequenceInput, Tensor]:
        output, (h,) = self._run(input, hx)
        return output, h
