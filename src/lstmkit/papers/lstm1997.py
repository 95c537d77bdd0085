"""The network of Hochreiter & Schmidhuber (1997) and its learning rule, for the paper settings.

The 1997 network is not a layer of modern LSTM cells:

* **memory-cell blocks**: the cells of a block share one input gate and one output gate;
* **a fully connected hidden layer**: every cell and every gate sees the current input and the
  previous step's activations of *all* cells and gates (not only the cells' outputs);
* squashing functions ``g(x) = 4 sigmoid(x) - 2`` (range [-2, 2]) for the cell input and
  ``h(x) = 2 sigmoid(x) - 1`` (range [-1, 1]) for the cell output (Exp 2a: ``g`` the logistic
  sigmoid, range [0, 1], and ``h`` the identity; Gers et al. 2002: both the identity); no forget gate:
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

The same network with the two later additions, learnt by the same truncated RTRL, is the one of the
later papers:

* ``forget_gate`` (Gers, Schmidhuber & Cummins 2000): one forget gate per block,
  ``s_c(t) = y_phi(t) s_c(t - 1) + y_in(t) g(net_c(t))``; every RTRL trace decays by ``y_phi(t)``
  and the forget gate's weights get a trace of their own (``s_c(t - 1) f'(net_phi)`` times the
  source). The forget gates' activations feed the recurrence like the other gates'.
* ``peepholes`` (Gers, Schraudolph & Schmidhuber 2002): every gate also sees the states of its
  block's cells, the input and forget gates ``s_c(t - 1)``, the output gate ``s_c(t)`` (so the
  output gate is computed after the state). The states enter the gates' net inputs as one more
  source, and the truncation treats them like the other sources.
* ``momentum`` (Gers et al. 2002 train with it): every weight change adds ``momentum`` times the
  weight's previous change, ``dw = lr * step + momentum * dw_previous``, carried from one change
  to the next across sequences in the network's ``velocity_*`` buffers.

:func:`Network1997.learn` is written in numpy on views of the parameters' storage: at batch 1
every step is a handful of operations on vectors of a dozen entries, where torch's per-call
overhead would dominate. That numpy code is the reference; by default ``learn`` runs the same
computation in C++ from lstmkit's fused kernels (``lstmkit/nn/kernels/csrc/lstm1997.cpp``), which
removes numpy's per-call overhead too (tens of times faster; the two agree to rounding, tested).
:func:`Network1997.forward` (torch, batched) evaluates test sets; it agrees with ``learn``'s
outputs to float rounding (tested), and a weight change of ``learn`` is minus the learning rate
times autograd's gradient of the same network with the recurrent inputs detached (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit.errors import ConfigError

__all__ = ["G_FUNCTIONS", "H_FUNCTIONS", "Network1997", "OnlineState"]

# the squashing functions of the cell input (g) and output (h), by their ranges: the paper's text uses
# g in [-2, 2] and h in [-1, 1] (Exp 2a: g in [0, 1], h the identity); the caption of its Table 10 names
# the reverse, g in [-1, 1] and h in [-2, 2], which side checks can try. (The order numbers them for
# the C++ learner.)
G_FUNCTIONS = ("[-2,2]", "[0,1]", "identity", "[-1,1]")
H_FUNCTIONS = ("[-1,1]", "identity", "[-2,2]")
# a range [lo, hi] is (hi - lo) sigmoid(x) + lo, with derivative (hi - lo) sigmoid (1 - sigmoid)
_SQUASH_RANGE = {"[-2,2]": (4.0, -2.0), "[0,1]": (1.0, 0.0), "[-1,1]": (2.0, -1.0)}


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


class OnlineState:
    """Where online learning stands inside a stream: the hidden units' activations, the cell states
    and the RTRL traces (the derivatives of the cell states with respect to the weights they
    depend on). :meth:`Network1997.learn` starts from the zero state unless it is given one of these,
    and leaves its final state in it, so that a long stream can be learnt piece by piece."""

    def __init__(self, network: Network1997) -> None:
        nc, nb, cells, sources = network.n_cells, network.blocks, network.cells, network.weight.shape[1]
        self.y = np.zeros(network.units)
        self.s = np.zeros(nc)
        self.trace_cell = np.zeros((nc, sources))  # d s_c / d (weights into cell c)
        self.trace_gate = np.zeros((nc, sources))  # d s_c / d (weights into c's input gate)
        self.trace_forget = np.zeros((nc, sources))  # d s_c / d (weights into c's forget gate)
        # d s_c / d (peephole weight from cell j of c's block to its input gate [0] / forget gate [1])
        self.trace_peep = np.zeros((2, nb, cells, cells))
        self.steps = 0  # steps presented since the zero state
        self.stopped = False  # whether the last learn() stopped at a wrong prediction (``stop_error``)


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
        forget_gate: one forget gate per block (Gers et al. 2000).
        forget_gate_bias: initial forget-gate biases, one per block or one for all (``None``: drawn
            like the weights).
        peepholes: connections from each cell's state to its block's gates (Gers et al. 2002).
        gate_recurrence: whether the gates' previous activations feed the hidden layer like the
            cells' (the 1997 paper's fully connected hidden layer); without it only the cells'
            outputs are fed back (the columns from the gates stay zero and are never learnt).
        cell_recurrence: whether the cells' previous outputs feed the hidden layer; with neither
            this nor ``gate_recurrence`` the hidden units see only the current input (the state's
            own carousel is the only memory).
        gate_bias: whether the gates have biases.
        output_gate: whether the blocks have output gates; without them a cell's output is
            ``h(s_c)`` (the gate held at 1, its weights absent).
        g: the cell input's squashing function: ``"[-2,2]"`` (``4 sigmoid(x) - 2``, the paper's
            usual one), ``"[0,1]"`` (the logistic sigmoid, the paper's Exp 2a), ``"identity"``
            (Gers et al. 2002) or ``"[-1,1]"`` (``2 sigmoid(x) - 1``, the paper's Table 10 caption).
        h: the cell output's squashing function: ``"[-1,1]"`` (``2 sigmoid(x) - 1``),
            ``"identity"`` (the paper's Exp 2a) or ``"[-2,2]"`` (``4 sigmoid(x) - 2``, the Table 10
            caption).
        momentum: the momentum of :meth:`learn`'s weight changes, in ``[0, 1)`` (0: plain gradient
            descent, as in the 1997 and 2000 papers).

    Attributes:
        weight: ``(U, I + U + 1)`` net-input weights of the hidden units (cells, then input gates,
            then output gates, then forget gates), from the inputs, the hidden units' previous
            activations and a bias.
        peephole: ``(3, C)`` weights from each cell's state to its block's input, output and forget
            gate (zero and never learnt without ``peepholes``; the forget row also without
            ``forget_gate``).
        out_weight: ``(O, C + I)`` output weights from the cells (and the inputs with
            ``shortcut``; without it the input columns stay zero and are never learnt).
        out_bias: ``(O,)`` output biases (zero and never learnt without ``output_bias``).
        cells_present: ``False`` holds the memory cells out of the network, the paper's
            sequential network construction (section 4.7, against the abuse problem; Exp 2a adds
            the cell "once the error has stopped decreasing"): their outputs read as 0, so no
            error reaches them and their weights keep their values until the attribute is set
            back to ``True`` (between sequences). Only the input-to-output connections learn
            meanwhile.
    """

    def __init__(self, inputs: int, outputs: int, blocks: int, cells: int = 1, init_range: float = 0.1,
                 input_gate_bias: float | Sequence[float] | None = None,
                 output_gate_bias: float | Sequence[float] | None = None, cell_bias: bool = False,
                 output_bias: bool = False, shortcut: bool = False, forget_gate: bool = False,
                 forget_gate_bias: float | Sequence[float] | None = None, peepholes: bool = False,
                 gate_recurrence: bool = True, cell_recurrence: bool = True, gate_bias: bool = True,
                 output_gate: bool = True, g: str = "[-2,2]", h: str = "[-1,1]", momentum: float = 0.0) -> None:
        super().__init__()
        for name, value in (("inputs", inputs), ("outputs", outputs), ("blocks", blocks), ("cells", cells)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not init_range > 0:
            raise ConfigError(f"init_range must be > 0, got {init_range!r}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}; 0 is plain gradient descent")
        if forget_gate_bias is not None and not forget_gate:
            raise ConfigError(f"a forget-gate bias ({forget_gate_bias!r}) is set but the network has no forget gates; "
                              "give it forget gates (forget_gate=True; in a paper Setting, cell 'forget' or "
                              "'peephole') or leave the bias out")
        given = {name: value for name, value in (("input_gate_bias", input_gate_bias),
                                                 ("output_gate_bias", output_gate_bias),
                                                 ("forget_gate_bias", forget_gate_bias)) if value is not None}
        if given and not gate_bias:
            raise ConfigError(f"gate biases are set ({given}) but the network's gates have none (gate_bias=False); "
                              "leave the biases out or set gate_bias=True")
        if output_gate_bias is not None and not output_gate:
            raise ConfigError(f"an output-gate bias ({output_gate_bias!r}) is set but the network has no output "
                              "gates (output_gate=False); leave the bias out or set output_gate=True")
        for name, value, allowed in (("g", g, G_FUNCTIONS), ("h", h, H_FUNCTIONS)):
            if value not in allowed:
                raise ConfigError(f"unknown squashing function {name}={value!r}; expected one of "
                                  f"{', '.join(repr(a) for a in allowed)}")
        self.inputs, self.outputs, self.blocks, self.cells = inputs, outputs, blocks, cells
        self.g, self.h = g, h
        self.cells_present = True
        self.forget_gate, self.peepholes, self.output_gate = forget_gate, peepholes, output_gate
        self.n_cells = blocks * cells
        self.units = self.n_cells + (3 if forget_gate else 2) * blocks
        self.weight = nn.Parameter(torch.empty(self.units, inputs + self.units + 1, dtype=torch.float64))
        self.out_weight = nn.Parameter(torch.empty(outputs, self.n_cells + inputs, dtype=torch.float64))
        self.out_bias = nn.Parameter(torch.zeros(outputs, dtype=torch.float64))
        self.peephole = nn.Parameter(torch.zeros(3, self.n_cells, dtype=torch.float64))
        # which connections exist (1) and which not (0): zero from the start, and kept zero by learn()
        # and, through gradient hooks, by any torch optimiser
        live = torch.ones_like(self.weight)
        nc = self.n_cells
        live[:nc, -1] = float(cell_bias)
        live[nc:, -1] = float(gate_bias)
        live[:, inputs:inputs + nc] = float(cell_recurrence)
        live[:, inputs + nc:-1] = float(gate_recurrence)
        if not output_gate:  # neither the gate's weights nor its (constant) activation as a source
            live[nc + blocks:nc + 2 * blocks] = 0.0
            live[:, inputs + nc + blocks:inputs + nc + 2 * blocks] = 0.0
        live_out = torch.ones_like(self.out_weight)
        live_out[:, self.n_cells:] = float(shortcut)
        self.register_buffer("_live", live, persistent=False)
        self.register_buffer("_live_out", live_out, persistent=False)
        self.register_buffer("_live_bias", torch.full_like(self.out_bias, float(output_bias)), persistent=False)
        live_peep = torch.full_like(self.peephole, float(peepholes))
        live_peep[1] *= float(output_gate)
        live_peep[2] *= float(forget_gate)
        self.register_buffer("_live_peep", live_peep, persistent=False)
        with torch.no_grad():
            self.weight.uniform_(-init_range, init_range)
            self.out_weight.uniform_(-init_range, init_range)
            if output_bias:
                self.out_bias.uniform_(-init_range, init_range)
            self.weight[live == 0] = 0.0
            self.out_weight[live_out == 0] = 0.0
            if peepholes:
                self.peephole.uniform_(-init_range, init_range).mul_(live_peep)
            for offset, value, name in ((self.n_cells, input_gate_bias, "input_gate_bias"),
                                        (self.n_cells + blocks, output_gate_bias, "output_gate_bias"),
                                        (self.n_cells + 2 * blocks, forget_gate_bias, "forget_gate_bias")):
                biases = _per_block(value, blocks, name)
                if biases is not None:
                    self.weight[offset:offset + blocks, -1] = torch.tensor(biases, dtype=torch.float64)
        self.register_buffer("_block_of_cell", torch.arange(blocks).repeat_interleave(cells), persistent=False)
        self.momentum = float(momentum)
        if self.momentum:  # the previous weight change of every parameter, saved with the network
            for name, parameter in (("weight", self.weight), ("out_weight", self.out_weight),
                                    ("out_bias", self.out_bias), ("peephole", self.peephole)):
                self.register_buffer(f"velocity_{name}", torch.zeros_like(parameter.detach()))
        self.weight.register_hook(lambda grad: grad * self._live)
        self.out_weight.register_hook(lambda grad: grad * self._live_out)
        self.out_bias.register_hook(lambda grad: grad * self._live_bias)
        self.peephole.register_hook(lambda grad: grad * self._live_peep)

    def weight_count(self) -> int:
        """The weights the paper counts: every connection and bias that exists (and is learnt)."""
        return int(self._live.sum() + self._live_out.sum() + self._live_bias.sum() + self._live_peep.sum())

    def _block_sum(self, values: Tensor) -> Tensor:
        """``(B, C)`` per cell -> ``(B, blocks)``: the sum over each block's cells."""
        return values.view(values.shape[0], self.blocks, self.cells).sum(-1)

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

        With ``truncated`` the previous step's activations (and, with peepholes, the states seen by
        the gates) enter the net inputs detached, so that autograd gives the paper's truncated
        gradient (what :meth:`learn` accumulates, when its weights are held fixed over the
        sequence); the cell state itself stays attached: the constant error carousel."""
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
        block = self._block_of_cell
        present = 1.0 if self.cells_present else 0.0
        for t in range(steps):
            net = from_inputs[:, t] + (y.detach() if truncated else y) @ w_rec.t()
            if self.g == "identity":
                g = net[:, :nc]
            else:
                scale, offset = _SQUASH_RANGE[self.g]
                g = scale * torch.sigmoid(net[:, :nc]) + offset
            seen = s.detach() if truncated else s  # the state as the gates see it
            net_in, net_out, net_forget = net[:, nc:nc + nb], net[:, nc + nb:nc + 2 * nb], net[:, nc + 2 * nb:]
            if self.peepholes:
                net_in = net_in + self._block_sum(self.peephole[0] * seen)
            y_in = torch.sigmoid(net_in)
            if self.forget_gate:
                if self.peepholes:
                    net_forget = net_forget + self._block_sum(self.peephole[2] * seen)
                s = torch.sigmoid(net_forget)[:, block] * s + y_in[:, block] * g
            else:  # the 1997 cell: the constant error carousel
                s = s + y_in[:, block] * g
            seen = s.detach() if truncated else s
            if self.peepholes:
                net_out = net_out + self._block_sum(self.peephole[1] * seen)
            gate_out = torch.sigmoid(net_out) if self.output_gate else torch.ones_like(net_out)
            gates = torch.cat([y_in, gate_out, torch.sigmoid(net_forget)], -1)
            y_out = gates[:, nb:2 * nb][:, block]
            if self.h == "identity":
                h = s
            else:
                scale, offset = _SQUASH_RANGE[self.h]
                h = scale * torch.sigmoid(s) + offset
            y_c = y_out * h * present
            y = torch.cat([y_c, gates], -1)
            cells.append(y_c)
        features = torch.cat([torch.stack(cells, 1), x], -1)
        logits = features @ self.out_weight.t() + self.out_bias
        return logits.to(dtype), (y, s)

    # -- numpy: online truncated RTRL ----------------------------------------------------------

    def learn(self, x: np.ndarray, targets: np.ndarray, mask: np.ndarray, learning_rate: float,
              state: OnlineState | None = None, stop_error: float | None = None,
              native: bool | None = None) -> np.ndarray:
        """Present one sequence and change the weights after every step that carries an error
        signal (gradient descent on half the summed squared error of the sigmoid outputs, with the
        paper's truncated gradient; with the network's ``momentum``, each change also adds that
        times the weight's previous change).

        Args:
            x: inputs ``(T, I)``.
            targets: ``(T, O)``.
            mask: ``(T,)``, 1 at the steps with an error signal.
            learning_rate: the step size.
            state: where to start (an :class:`OnlineState`, updated in place to where the sequence
                ends); ``None`` starts from the zero state.
            stop_error: stop after the first step with an error signal at which some output is
                ``stop_error`` or more away from its target (that step's weight change is made):
                Gers et al.'s training streams, which end at the first wrong prediction.
            native: ``None`` (default): the C++ learner of lstmkit's fused kernels where they are
                built, else this method's numpy code; ``True``: the C++ learner (an error if the
                kernels cannot be built); ``False``: numpy, the reference. The two agree to
                rounding; the C++ one is tens of times faster.

        Returns:
            the outputs ``(T', O)`` as the network produced them while learning, ``T' <= T`` the
            steps presented.
        """
        if stop_error is not None and not stop_error > 0:
            raise ConfigError(f"stop_error must be > 0 (an output's distance from its target), got {stop_error!r}")
        expected = ((self.units,), (self.n_cells, self.weight.shape[1]), (2, self.blocks, self.cells, self.cells))
        if state is not None and (state.y.shape, state.trace_cell.shape, state.trace_peep.shape) != expected:
            raise ConfigError(f"the OnlineState was made for another network (activations, traces and peephole "
                              f"traces of shapes {state.y.shape}, {state.trace_cell.shape}, {state.trace_peep.shape}; "
                              f"this network needs {expected[0]}, {expected[1]}, {expected[2]}); make it with "
                              "OnlineState(network)")
        extension = _native_learner(native)
        if extension is not None:
            return self._learn_native(extension, x, targets, mask, learning_rate, state, stop_error)
        nc, nb, cells = self.n_cells, self.blocks, self.cells
        forget, peepholes = self.forget_gate, self.peepholes
        identity_g, identity_h = self.g == "identity", self.h == "identity"
        g_scale, g_offset = _SQUASH_RANGE.get(self.g, (1.0, 0.0))
        h_scale, h_offset = _SQUASH_RANGE.get(self.h, (1.0, 0.0))
        present = 1.0 if self.cells_present else 0.0  # 0: the cells held out (their outputs read as 0)
        with torch.no_grad():
            weight = self.weight.detach().numpy()  # views: updates change the parameters in place
            out_weight = self.out_weight.detach().numpy()
            out_bias = self.out_bias.detach().numpy()
            peephole = self.peephole.detach().numpy()
            momentum = self.momentum
            velocity = {name: getattr(self, f"velocity_{name}").numpy() for name in
                        ("weight", "out_weight", "out_bias", "peephole")} if momentum else {}

        def change(name: str, parameter: np.ndarray, step: np.ndarray) -> None:
            """One weight change, in place: the learning rate times the step, plus (with momentum)
            the momentum times the previous change."""
            if momentum:
                previous = velocity[name]
                previous *= momentum
                previous += learning_rate * step
                parameter += previous
            else:
                parameter += learning_rate * step

        x, targets, mask = (np.asarray(a, dtype=np.float64) for a in (x, targets, mask))
        block = self._block_of_cell.cpu().numpy()
        live, live_out, live_bias, live_peep = (m.cpu().numpy() for m in (self._live, self._live_out, self._live_bias,
                                                                          self._live_peep))
        starts = np.arange(0, nc, cells)
        if state is None:
            state = OnlineState(self)
        state.stopped = False
        # the traces are updated in place; y and s are rebound every step and stored back at the end
        y, s = state.y, state.s
        trace_cell, trace_gate, trace_forget, trace_peep = (state.trace_cell, state.trace_gate, state.trace_forget,
                                                            state.trace_peep)
        outputs = np.empty((len(x), self.outputs))
        presented = len(x)
        for t in range(len(x)):
            source = np.concatenate([x[t], y, (1.0,)])
            net = weight @ source
            if identity_g:
                g, g_prime = net[:nc], np.ones(nc)
            else:
                squashed = _sigmoid(net[:nc])  # scaling by 1, 2 or 4 is exact
                g, g_prime = g_scale * squashed + g_offset, g_scale * (squashed * (1 - squashed))
            s_prev = s
            net_in, net_out = net[nc:nc + nb], net[nc + nb:nc + 2 * nb]
            if peepholes:
                net_in = net_in + np.add.reduceat(peephole[0] * s_prev, starts)
            gate_in = _sigmoid(net_in)
            y_in = gate_in[block]
            if forget:
                net_forget = net[nc + 2 * nb:]
                if peepholes:
                    net_forget = net_forget + np.add.reduceat(peephole[2] * s_prev, starts)
                gate_forget = _sigmoid(net_forget)
                y_forget = gate_forget[block]
                s = y_forget * s_prev + y_in * g
            else:  # the 1997 cell: the constant error carousel
                s = s_prev + y_in * g
            if peepholes:
                net_out = net_out + np.add.reduceat(peephole[1] * s, starts)
            gate_out = _sigmoid(net_out) if self.output_gate else np.ones(nb)
            y_out = gate_out[block]
            gates = np.concatenate([gate_in, gate_out, gate_forget] if forget else [gate_in, gate_out])
            if identity_h:
                h, h_prime = s, np.ones(nc)
            else:
                h_squashed = _sigmoid(s)
                h, h_prime = h_scale * h_squashed + h_offset, h_scale * h_squashed * (1 - h_squashed)
            y_c = y_out * h * present
            features = np.concatenate([y_c, x[t]])
            out = _sigmoid(out_weight @ features + out_bias)
            outputs[t] = out
            if forget:  # the traces decay with the state
                trace_cell *= y_forget[:, None]
                trace_gate *= y_forget[:, None]
                trace_forget *= y_forget[:, None]
                trace_peep *= y_forget.reshape(nb, cells)[None, :, :, None]
            trace_cell += np.outer(g_prime * y_in, source)
            trace_gate += np.outer(g * y_in * (1 - y_in), source)
            if forget:
                trace_forget += np.outer(s_prev * y_forget * (1 - y_forget), source)
            if peepholes:
                seen = s_prev.reshape(nb, 1, cells)
                trace_peep[0] += (g * y_in * (1 - y_in)).reshape(nb, cells, 1) * seen
                if forget:
                    trace_peep[1] += (s_prev * y_forget * (1 - y_forget)).reshape(nb, cells, 1) * seen
            if mask[t]:
                delta = (targets[t] - out) * out * (1 - out)  # minus the error's derivative at the net input
                back = (out_weight[:, :nc].T @ delta) * present  # (C,) error reaching each cell's output
                state_error = y_out * h_prime * back
                out_gate_error = gate_out * (1 - gate_out) * np.add.reduceat(h * back, starts)
                step = np.empty_like(weight)
                step[:nc] = state_error[:, None] * trace_cell
                step[nc:nc + nb] = np.add.reduceat(state_error[:, None] * trace_gate, starts, axis=0)
                step[nc + nb:nc + 2 * nb] = np.outer(out_gate_error, source)
                if forget:
                    step[nc + 2 * nb:] = np.add.reduceat(state_error[:, None] * trace_forget, starts, axis=0)
                change("weight", weight, step * live)
                change("out_weight", out_weight, np.outer(delta, features) * live_out)
                change("out_bias", out_bias, delta * live_bias)
                if peepholes:
                    per_block = state_error.reshape(nb, cells, 1)
                    peep_step = np.stack([(per_block * trace_peep[0]).sum(1).reshape(nc), out_gate_error[block] * s,
                                          (per_block * trace_peep[1]).sum(1).reshape(nc)])
                    change("peephole", peephole, peep_step * live_peep)
            y = np.concatenate([y_c, gates])
            if stop_error is not None and mask[t] and np.abs(targets[t] - out).max() >= stop_error:
                presented = t + 1
                state.stopped = True
                break
        state.y, state.s = y, s
        state.steps += presented
        return outputs[:presented]

    def _learn_native(self, extension: Any, x: np.ndarray, targets: np.ndarray, mask: np.ndarray,
                      learning_rate: float, state: OnlineState | None, stop_error: float | None) -> np.ndarray:
        """:meth:`learn` in C++ (``csrc/lstm1997.cpp`` of lstmkit's fused kernels), on the same
        storage: the parameters, the momentum buffers and ``state`` change in place."""
        if state is None:
            state = OnlineState(self)
        state.stopped = False
        names = ("weight", "out_weight", "out_bias", "peephole")
        parameters = [getattr(self, name).detach() for name in names]
        live = [self._live, self._live_out, self._live_bias, self._live_peep]
        velocities = [getattr(self, f"velocity_{name}") for name in names] if self.momentum else []
        arrays = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) for a in (x, targets, mask)]
        for name in ("y", "s"):  # the learner writes the state in place: it must own writable float64 storage
            value = getattr(state, name)
            if not (value.dtype == np.float64 and value.flags.c_contiguous and value.flags.writeable):
                setattr(state, name, np.array(value, dtype=np.float64))
        own = [torch.from_numpy(a) for a in (state.y, state.s, state.trace_cell, state.trace_gate, state.trace_forget,
                                             state.trace_peep)]
        g_kind = G_FUNCTIONS.index(self.g)
        flags = [self.blocks, self.cells, int(self.forget_gate), int(self.peepholes), int(self.output_gate), g_kind,
                 H_FUNCTIONS.index(self.h), int(self.cells_present)]
        with torch.no_grad():
            outputs, presented, stopped = extension.lstm1997_learn(
                parameters, live, velocities, *arrays, own, flags, float(learning_rate), self.momentum,
                -1.0 if stop_error is None else float(stop_error))
        state.stopped = bool(stopped)
        state.steps += int(presented)
        return outputs.numpy()


def _native_learner(native: bool | None) -> Any:
    """The fused kernels' extension for :meth:`Network1997.learn`, or ``None`` for the numpy code."""
    if native is False:
        return None
    from lstmkit.nn.kernels import fused

    extension = fused.load_extension()
    if extension is None and native:
        raise ConfigError("native=True needs lstmkit's fused CPU kernels, which could not be built here (see the "
                          "warning above); use native=None to fall back to the numpy learner")
    return extension
