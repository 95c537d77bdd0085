"""Streaming: feed a sequence layer one time step at a time, its state carried between calls.

A :class:`Stepper` is for inference on data that arrives step by step (a sensor, a token
generator, a server): it runs the layer's evaluation-mode math on one step of input and keeps
the state. It reads the layer's weights when it is made; make a new one after further training.

Where the fused kernels are available (and the layer has no zoneout) a step runs in C++ with
every buffer allocated up front. ``step(x)`` returns a new tensor; ``step(x, out=buffer)``
writes into ``buffer`` and allocates nothing at all, for the tightest loops.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.errors import ConfigError, ShapeError
from lstmkit.nn._checks import check_size, check_state, check_tensor_like_params
from lstmkit.nn.kernels import fused
from lstmkit.nn.kernels.reference import input_projection, step_function

__all__ = ["Stepper"]


class Stepper:
    """One-step-at-a-time inference for a unidirectional :class:`~lstmkit.nn.LSTM`, GRU or RNN.

    Args:
        layer: the layer to run (not bidirectional: its reverse direction needs the future).
        batch_size: the number of streams stepped together.
        fast: use the C++ stepper when it is available (``False`` forces the Python reference).

    Example:
        >>> from lstmkit.nn import LSTM
        >>> lstm = LSTM(3, 8, num_layers=2).eval()
        >>> stepper = lstm.stepper()
        >>> x = torch.randn(5, 1, 3)
        >>> outs = torch.stack([stepper.step(x_t) for x_t in x])
        >>> torch.allclose(outs, lstm(x)[0], atol=1e-6)
        True
    """

    def __init__(self, layer, batch_size: int = 1, fast: bool = True) -> None:
        if layer.bidirectional:
            raise ConfigError("a bidirectional layer cannot be stepped: its reverse direction reads the "
                              "sequence from the end; stream with bidirectional=False")
        self.layer = layer
        self.batch_size = check_size("batch_size", batch_size)
        self._spec = layer.spec
        self._step = step_function(self._spec)
        self._weights = [type(w)(*(t.detach() if t is not None else None for t in w))
                         for w in layer.layer_weights()]
        self._native = None
        if fast and layer.zoneout is None and self._weights[0].weight_ih.device.type == "cpu":
            self._native = fused.make_stepper(self._spec, self._weights, self.batch_size)
        self.reset()

    @property
    def is_fast(self) -> bool:
        """Whether steps run in the C++ stepper."""
        return self._native is not None

    @property
    def state(self) -> tuple[Tensor, ...]:
        """The carried state, each component ``(L, B, ·)`` as the layer's ``h_n``/``c_n`` (a copy)."""
        if self._native is not None:
            return tuple(s.clone() for s in self._native.state())
        return tuple(torch.stack(component) for component in zip(*self._state))

    def reset(self, state: tuple[Tensor, ...] | Tensor | None = None) -> None:
        """Start a new stream from zeros, or from ``state`` (shaped as the layer's ``h_0``/``c_0``)."""
        shapes = self.layer.state_shapes(self.batch_size)
        if state is None:
            param = self._weights[0].weight_ih
            components = tuple(param.new_zeros(shape) for shape in shapes)
        else:
            components = check_state(self.layer, state, shapes, self.layer.state_names)
        if self._native is not None:
            for buffer, component in zip(self._native.state(), components):
                buffer.copy_(component)
        else:
            self._state = [tuple(c[k].clone() for c in components) for k in range(self.layer.num_layers)]

    def step(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        """Advance every stream by one step.

        Args:
            x: ``(B, I)``, or ``(I,)`` when ``batch_size`` is 1.
            out: optional contiguous tensor shaped as the result to write it into.

        Returns:
            the last layer's output for this step, ``(B, P)`` (``(P,)`` for ``(I,)`` input).
        """
        if self._native is not None:
            try:
                return self._native.step(x, out)
            except (RuntimeError, TypeError):
                self._check(x, out)  # a clear error for what the C++ side refused
                raise
        result = self._step_reference(x)
        if out is None:
            return result
        self._check(x, out)
        return out.copy_(result)

    def _check(self, x: Tensor, out: Tensor | None = None) -> None:
        check_tensor_like_params(self.layer, "x", x)
        expected = (self.batch_size, self.layer.input_size)
        if tuple(x.shape) != expected and not (x.dim() == 1 and self.batch_size == 1
                                               and x.shape[0] == self.layer.input_size):
            raise ShapeError(f"Stepper expected one step of shape {expected}"
                             f"{' or (' + str(self.layer.input_size) + ',)' if self.batch_size == 1 else ''}, "
                             f"got {tuple(x.shape)}")
        if out is not None:
            shape = (self.layer.output_size,) if x.dim() == 1 else (self.batch_size, self.layer.output_size)
            check_tensor_like_params(self.layer, "out", out)
            if tuple(out.shape) != shape or not out.is_contiguous():
                raise ShapeError(f"Stepper expected out to be a contiguous tensor of shape {shape}, "
                                 f"got {tuple(out.shape)}{'' if out.is_contiguous() else ' (not contiguous)'}")

    @torch.no_grad()
    def _step_reference(self, x: Tensor) -> Tensor:
        self._check(x)
        batched = x.dim() == 2
        out = x if batched else x.unsqueeze(0)
        zoneout = self.layer.zoneout
        for k, w in enumerate(self._weights):
            old = self._state[k]
            new = self._step(input_projection(self._spec, out, w), old, w)
            if zoneout is not None:
                new = zoneout.expectation(new, old)
            self._state[k] = new
            out = new[0]
        return out if batched else out.squeeze(0)
