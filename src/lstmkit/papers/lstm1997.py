"""The network of Hochreiter & Schmidhuber (1997) and its learning rule, for the paper settings.

The 1997 network is not a layer of modern LSTM cells:

* **memory-cell blocks**: the cells of a block share one input gate and one output gate;
* **a fully connected hidden layer**: every cell and every gate sees the current input and the
  previous step's activations of *all* cells and gates (not only the cells' outputs);
* squashing functions ``g(x) = 4 sigmoid(x) - 2`` (range [-2, 2]) for the cell input and
  ``h(x) = 2 sigmoid(x) - 1`` (range [-1, 1]) for the cell output; no forget gate:
  ``s_c(t) = s_c(t - 1) + y_in(t) g(net_c(t))``, ``y_c(t) = y_out(t) h(s_c(t))``;
* sigmoid output units fed by the cells (and, in Exp 2a, directly by the inputs);
* the paper's **truncated gradient**: errors reaching the net inputs of cells and gates are not
  propagated back in time; only the cell state (the constant error carousel) carries error
  backwards. Learning is a form of RTRL: the derivatives of each cell state with respect to its
  cell's and input gate's weights are carried forward, so the weights can change **after every
  time step** (the paper's online learning), with cost independent of the sequence length.

Exp 1's weight count pins the connectivity down: 4 blocks of 1 cell, 7 inputs and 7 outputs give
the paper's 264 weights only with gate-unit recurrence, biased gates, unbiased cells and outputs
(``tests/test_papers_1997.py`` checks this, and 276 for 3 blocks of 2 cells).

:func:`Network1997.learn` is written in numpy on views of the parameters' storage: at batch 1
every step is a handful of operations on vectors of a dozen entries, where torch's per-call
overhead would dominate. :func:`Network1997.forward` (torch, batched) evaluates test sets; the
two agree to float rounding (tested), and a weight change of ``learn`` is minus the learning rate
times autograd's gradient of the same network with the recurrent inputs detached (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit.errors import ConfigError

__all__ = ["Network1997"]


def _per_block(value: float | Sequence[float] | None, blocks: int, name: str) -> list[float] | None:
    """A bias given for every block (a sequence of length ``blocks``) or one value for all."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return [float(value)] * blocks
    values = [float(v) for v in value]
    if len(values) != blocks:
        raise ConfigError(f"{name} has {len(values)} values but the network has {blocks} blocks; give one value "
                          "per block or a single number for all")
    return values


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-x) overflows to inf for x < -709, where 1 / (1 + inf) = 0 is the right value. (The same
    # formula as the runs in docs/papers.md: online learning amplifies any change of rounding, so
    # another formula would not repeat their sequence counts.)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


class Network1997(nn.Module):
    """The 1997 LSTM network (see the module docstring).

    Args:
        inputs: input units.
        outputs: sigmoid output units.
        blocks: memory-cell blocks.
        cells: cells per block.
        init_range: every weight starts uniform in ``[-init_range, init_range]`` (the paper: 0.2
            in Exp 1 and 2, 0.1 from Exp 3 on), except the biases set below.
        input_gate_bias: initial input-gate biases, one per block or one for all (``None``: drawn
            like the weights).
        output_gate_bias: initial output-gate biases, likewise.
        cell_bias: whether the cells have a bias (Exp 1: no; from Exp 4 on every non-input unit
            has one).
        output_bias: whether the output units have a bias.
        shortcut: direct input-to-output connections (Exp 2a).

    Attributes:
        weight: ``(U, I + U + 1)`` net-input weights of the hidden units (cells, then input gates,
            then output gates), from the inputs, the hidden units' previous activations and a bias.
        out_weight: ``(O, C + I)`` output weights from the cells (and the inputs with
            ``shortcut``; without it the input columns stay zero and are never learnt).
        out_bias: ``(O,)`` output biases (zero and never learnt without ``output_bias``).
    """

    def __init__(self, inputs: int, outputs: int, blocks: int, cells: int = 1, init_range: float = 0.1,
                 input_gate_bias: float | Sequence[float] | None = None,
                 output_gate_bias: float | Sequence[float] | None = None, cell_bias: bool = False,
                 output_bias: bool = False, shortcut: bool = False) -> None:
        super().__init__()
        for name, value in (("inputs", inputs), ("outputs", outputs), ("blocks", blocks), ("cells", cells)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not init_range > 0:
            raise ConfigError(f"init_range must be > 0, got {init_range!r}")
        self.inputs, self.outputs, self.blocks, self.cells = inputs, outputs, blocks, cells
        self.n_cells = blocks * cells
        self.units = self.n_cells + 2 * blocks
        self.weight = nn.Parameter(torch.empty(self.units, inputs + self.units + 1, dtype=torch.float64))
        self.out_weight = nn.Parameter(torch.empty(outputs, self.n_cells + inputs, dtype=torch.float64))
        self.out_bias = nn.Parameter(torch.zeros(outputs, dtype=torch.float64))
        # which connections exist (1) and which not (0): zero from the start, and kept zero by learn()
        # and, through gradient hooks, by any torch optimiser
        live = torch.ones_like(self.weight)
        live[: self.n_cells, -1] = float(cell_bias)
        live_out = torch.ones_like(self.out_weight)
        live_out[:, self.n_cells:] = float(shortcut)
        self.register_buffer("_live", live, persistent=False)
        self.register_buffer("_live_out", live_out, persistent=False)
        self.register_buffer("_live_bias", torch.full_like(self.out_bias, float(output_bias)), persistent=False)
        with torch.no_grad():
            self.weight.uniform_(-init_range, init_range)
            self.out_weight.uniform_(-init_range, init_range)
            if output_bias:
                self.out_bias.uniform_(-init_range, init_range)
            self.weight[live == 0] = 0.0
            self.out_weight[live_out == 0] = 0.0
            for offset, value, name in ((self.n_cells, input_gate_bias, "input_gate_bias"),
                                        (self.n_cells + blocks, output_gate_bias, "output_gate_bias")):
                biases = _per_block(value, blocks, name)
                if biases is not None:
                    self.weight[offset:offset + blocks, -1] = torch.tensor(biases, dtype=torch.float64)
        self.register_buffer("_block_of_cell", torch.arange(blocks).repeat_interleave(cells), persistent=False)
        self.weight.register_hook(lambda grad: grad * self._live)
        self.out_weight.register_hook(lambda grad: grad * self._live_out)
        self.out_bias.register_hook(lambda grad: grad * self._live_bias)

    def weight_count(self) -> int:
        """The weights the paper counts: every connection and bias that exists (and is learnt)."""
        return int(self._live.sum() + self._live_out.sum() + self._live_bias.sum())

    # -- torch: evaluation -------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """Sigmoid outputs ``(B, T, O)`` of inputs ``(B, T, I)`` (a float tensor of any dtype)."""
        return self.run(x)[0]

    def run(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """The outputs and the final state ``(activations, cell states)``, starting from ``state``."""
        logits, state = self.logits(x, state)
        return torch.sigmoid(logits), state

    def logits(self, x: Tensor, state: Any = None, truncated: bool = False) -> tuple[Tensor, Any]:
        """The output units' net inputs ``(B, T, O)`` (in ``x``'s dtype) and the final state.

        With ``truncated`` the previous step's activations enter the net inputs detached, so that
        autograd gives the paper's truncated gradient (what :meth:`learn` accumulates, when its
        weights are held fixed over the sequence)."""
        dtype = x.dtype
        x = x.to(torch.float64)
        batch, steps, _ = x.shape
        nc, nb = self.n_cells, self.blocks
        if state is None:
            y, s = x.new_zeros(batch, self.units), x.new_zeros(batch, nc)
        else:
            y, s = state
        w_in, w_rec, bias = self.weight[:, : self.inputs], self.weight[:, self.inputs:-1], self.weight[:, -1]
        from_inputs = x @ w_in.t() + bias  # (B, T, U): the inputs' part of every step at once
        cells = []
        for t in range(steps):
            net = from_inputs[:, t] + (y.detach() if truncated else y) @ w_rec.t()
            g = 4 * torch.sigmoid(net[:, :nc]) - 2
            gates = torch.sigmoid(net[:, nc:])
            y_in = gates[:, :nb][:, self._block_of_cell]
            y_out = gates[:, nb:][:, self._block_of_cell]
            s = s + y_in * g
            y_c = y_out * (2 * torch.sigmoid(s) - 1)
            y = torch.cat([y_c, gates], -1)
            cells.append(y_c)
        features = torch.cat([torch.stack(cells, 1), x], -1)
        logits = features @ self.out_weight.t() + self.out_bias
        return logits.to(dtype), (y, s)

    # -- numpy: online truncated RTRL ----------------------------------------------------------

    def learn(self, x: np.ndarray, targets: np.ndarray, mask: np.ndarray, learning_rate: float) -> np.ndarray:
        """Present one sequence from the zero state and change the weights after every step that
        carries an error signal (gradient descent on half the summed squared error of the sigmoid
        outputs, with the paper's truncated gradient).

        Args:
            x: inputs ``(T, I)``.
            targets: ``(T, O)``.
            mask: ``(T,)``, 1 at the steps with an error signal.
            learning_rate: the step size.

        Returns:
            the outputs ``(T, O)`` as the network produced them while learning.
        """
        nc, nb, cells = self.n_cells, self.blocks, self.cells
        with torch.no_grad():
            weight = self.weight.detach().numpy()  # views: updates change the parameters in place
            out_weight = self.out_weight.detach().numpy()
            out_bias = self.out_bias.detach().numpy()
        x, targets, mask = (np.asarray(a, dtype=np.float64) for a in (x, targets, mask))
        block = self._block_of_cell.cpu().numpy()
        live, live_out, live_bias = (m.cpu().numpy() for m in (self._live, self._live_out, self._live_bias))
        starts = np.arange(0, nc, cells)
        y = np.zeros(self.units)
        s = np.zeros(nc)
        trace_cell = np.zeros((nc, weight.shape[1]))  # d s_c / d (weights into cell c)
        trace_gate = np.zeros((nc, weight.shape[1]))  # d s_c / d (weights into c's input gate)
        outputs = np.empty((len(x), self.outputs))
        for t in range(len(x)):
            source = np.concatenate([x[t], y, (1.0,)])
            net = weight @ source
            squashed = _sigmoid(net[:nc])
            g, g_prime = 4 * squashed - 2, 4 * squashed * (1 - squashed)
            gates = _sigmoid(net[nc:])
            y_in, y_out = gates[:nb][block], gates[nb:][block]
            s = s + y_in * g
            h_squashed = _sigmoid(s)
            h, h_prime = 2 * h_squashed - 1, 2 * h_squashed * (1 - h_squashed)
            y_c = y_out * h
            features = np.concatenate([y_c, x[t]])
            out = _sigmoid(out_weight @ features + out_bias)
            outputs[t] = out
            trace_cell += np.outer(g_prime * y_in, source)
            trace_gate += np.outer(g * y_in * (1 - y_in), source)
            if mask[t]:
                delta = (targets[t] - out) * out * (1 - out)  # minus the error's derivative at the net input
                back = out_weight[:, :nc].T @ delta  # (C,) error reaching each cell's output
                state_error = y_out * h_prime * back
                out_gate_error = gates[nb:] * (1 - gates[nb:]) * np.add.reduceat(h * back, starts)
                step = np.empty_like(weight)
                step[:nc] = state_error[:, None] * trace_cell
                step[nc:nc + nb] = np.add.reduceat(state_error[:, None] * trace_gate, starts, axis=0)
                step[nc + nb:] = np.outer(out_gate_error, source)
                weight += learning_rate * (step * live)
                out_weight += learning_rate * (np.outer(delta, features) * live_out)
                out_bias += learning_rate * (delta * live_bias)
            y = np.concatenate([y_c, gates])
        return outputs
