"""The plain-PyTorch reference of every sequence layer: a Python loop over time.

Slow but obviously right: the input projection of all steps in one GEMM, then the cell's step
function from :mod:`lstmkit.nn.cells` at each step. Every faster path is tested against it.

Variable lengths follow ``torch.nn.LSTM``'s PackedSequence convention: sequences sorted by
decreasing length, so at step ``t`` the first ``batch_sizes[t]`` rows are active. A row's state
stops changing after its last step (forward direction) and starts from its initial state at its
last step (reverse direction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.cells import RecurrentWeights, gru_step, lstm_input_projection, lstm_step, rnn_step
from lstmkit.nn.kernels.spec import LayerSpec

__all__ = ["sequence_forward", "stack_layers", "step_function", "input_projection"]

State = tuple[Tensor, ...]
# A state transition maps (new_state, old_state) to the state carried on (zoneout uses it).
Transition = Callable[[State, State], State]


def input_projection(spec: LayerSpec, x: Tensor, w: RecurrentWeights) -> Tensor:
    """The input's share of all pre-activations at once: ``(..., I) -> (..., G*H)``."""
    if spec.mode == "LSTM":
        return lstm_input_projection(x, w, spec.variant)
    return F.linear(x, w.weight_ih, w.bias_ih)


def step_function(spec: LayerSpec) -> Callable[[Tensor, State, RecurrentWeights], State]:
    """``step(xw_t, state, weights) -> new_state``; the output of the step is ``new_state[0]``."""
    if spec.mode == "LSTM":
        variant = spec.variant

        def step(xw: Tensor, state: State, w: RecurrentWeights) -> State:
            return lstm_step(variant, xw, state[0], state[1], w)

    elif spec.mode == "GRU":

        def step(xw: Tensor, state: State, w: RecurrentWeights) -> State:
            return (gru_step(xw, state[0], w),)

    else:
        nonlinearity = "tanh" if spec.mode == "RNN_TANH" else "relu"

        def step(xw: Tensor, state: State, w: RecurrentWeights) -> State:
            return (rnn_step(xw, state[0], w, nonlinearity),)

    return step


def _run_direction(
    step: Callable[[Tensor, State, RecurrentWeights], State],
    xw: Tensor,
    state: State,
    w: RecurrentWeights,
    batch_sizes: Sequence[int] | None,
    reverse: bool,
    transition: Transition | None,
) -> tuple[Tensor, State]:
    """Run one direction of one layer over ``xw`` ``(T, B, G*H)``; returns ``(T, B, P)``, state."""
    steps, batch = xw.shape[0], xw.shape[1]
    outputs: list[Tensor] = [xw] * steps  # placeholders, all overwritten
    for t in reversed(range(steps)) if reverse else range(steps):
        active = batch if batch_sizes is None else batch_sizes[t]
        old = tuple(s[:active] for s in state)
        new = step(xw[t, :active], old, w)
        if transition is not None:
            new = transition(new, old)
        if active < batch:
            state = tuple(torch.cat([n, s[active:]]) for n, s in zip(new, state))
            outputs[t] = F.pad(new[0], (0, 0, 0, batch - active))
        else:
            state = new
            outputs[t] = new[0]
    return torch.stack(outputs), state


# run_direction(index, layer_input (T, B, I), state, weights, reverse) -> (output (T, B, P), state)
RunDirection = Callable[[int, Tensor, State, RecurrentWeights, bool], tuple[Tensor, State]]


def stack_layers(
    spec: LayerSpec,
    x: Tensor,
    hx: State,
    weights: Sequence[RecurrentWeights],
    training: bool,
    run_direction: RunDirection,
) -> tuple[Tensor, State]:
    """Layers and directions around a one-direction runner: concatenation, dropout, final states.

    Args:
        spec: the layer's structure.
        x: ``(T, B, I)``, time-major.
        hx: the initial state, each component ``(L*D, B, ·)``.
        weights: one :class:`RecurrentWeights` per layer and direction, forward first.
        training: whether dropout between layers is active.
        run_direction: runs one layer-direction.

    Returns:
        the last layer's outputs ``(T, B, D*P)`` and the final state, as ``hx``.
    """
    directions = 2 if spec.bidirectional else 1
    finals: list[list[Tensor]] = [[] for _ in hx]
    layer_input = x
    for layer in range(spec.num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            state = tuple(s[index] for s in hx)
            out, state = run_direction(index, layer_input, state, weights[index], direction == 1)
            outputs.append(out)
            for component, final in zip(finals, state):
                component.append(final)
        layer_input = torch.cat(outputs, -1) if directions == 2 else outputs[0]
        if spec.dropout > 0 and training and layer < spec.num_layers - 1:
            layer_input = F.dropout(layer_input, spec.dropout, training=True)
    return layer_input, tuple(torch.stack(component) for component in finals)


def sequence_forward(
    spec: LayerSpec,
    x: Tensor,
    batch_sizes: Sequence[int] | None,
    hx: State,
    weights: Sequence[RecurrentWeights],
    training: bool,
    transition: Transition | None = None,
) -> tuple[Tensor, State]:
    """All layers and directions over a time-major padded batch, as a Python loop over time.

    Args:
        spec: the layer's structure.
        x: ``(T, B, I)``.
        batch_sizes: active rows at each step (non-increasing), or ``None`` for full length.
        hx: the initial state, each component ``(L*D, B, ·)``.
        weights: one :class:`RecurrentWeights` per layer and direction, forward first.
        training: whether dropout between layers is active.
        transition: an optional state transition applied after every step (zoneout).

    Returns:
        the last layer's outputs ``(T, B, D*P)`` (zero at padded steps) and the final state,
        each component ``(L*D, B, ·)``.
    """
    step = step_function(spec)

    def run(index: int, layer_input: Tensor, state: State, w: RecurrentWeights, reverse: bool):
        xw = input_projection(spec, layer_input, w)  # (T, B, G*H), one GEMM for all steps
        return _run_direction(step, xw, state, w, batch_sizes, reverse, transition)

    return stack_layers(spec, x, hx, weights, training, run)
