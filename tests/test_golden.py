"""Golden values: one and two steps of every variant with constant weights, worked out by hand.

With every weight inside a gate block equal, all hidden units carry the same number, so the
equations can be evaluated with plain Python floats and compared to the layer, the cell, the
stepper and both backends.
"""

import math

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.nn import kernels

INPUT = [[0.5, -1.0], [1.0, 0.25]]  # two steps, I = 2
H = 3
W_IH = {"i": 0.3, "f": -0.2, "g": 0.5, "o": 0.1}  # weight_ih entries per gate block
W_HH = {"i": -0.4, "f": 0.6, "g": 0.2, "o": -0.3}
B_IH = {"i": 0.05, "f": 0.9, "g": -0.1, "o": 0.2}
B_HH = 0.1  # every bias_hh entry
PEEP = {"i": 0.2, "f": -0.3, "o": 0.4}
LN_SHIFT_C = 0.3
W_HR = 0.7  # projection weight entries
EPS = 1e-5


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def layer_norm(values: list[float]) -> list[float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return [(v - mean) / math.sqrt(var + EPS) for v in values]


def expected(cell: str, steps: int, proj: int = 0) -> list[tuple[float, float]]:
    """(h, c) of one unit after each step, from the equations in LSTMCell's docstring."""
    gates = "igo" if cell in ("vanilla", "cifg") else "ifgo"
    h_width = proj or H
    h, c, out = 0.0, 0.0, []
    for x in INPUT[:steps]:
        s = sum(x)
        wx = {k: W_IH[k] * s for k in gates}  # (W_ih x) of one unit in each gate block
        uh = {k: W_HH[k] * h_width * h for k in gates}
        if cell == "layernorm":
            # each gate block has H equal entries, so normalising over G*H = over the G values
            nx = dict(zip(gates, layer_norm([wx[k] for k in gates])))
            nh = dict(zip(gates, layer_norm([uh[k] for k in gates])))
            z = {k: nx[k] + B_IH[k] + nh[k] + B_HH for k in gates}
        else:
            z = {k: wx[k] + uh[k] + B_IH[k] + B_HH for k in gates}
        if cell == "standard":
            c = sigmoid(z["f"]) * c + sigmoid(z["i"]) * math.tanh(z["g"])
            h_cell = sigmoid(z["o"]) * math.tanh(c)
        elif cell == "vanilla":
            c = c + sigmoid(z["i"]) * math.tanh(z["g"])
            h_cell = sigmoid(z["o"]) * math.tanh(c)
        elif cell == "cifg":
            i = sigmoid(z["i"])
            c = (1 - i) * c + i * math.tanh(z["g"])
            h_cell = sigmoid(z["o"]) * math.tanh(c)
        elif cell == "peephole":
            i = sigmoid(z["i"] + PEEP["i"] * c)
            f = sigmoid(z["f"] + PEEP["f"] * c)
            c = f * c + i * math.tanh(z["g"])
            h_cell = sigmoid(z["o"] + PEEP["o"] * c) * math.tanh(c)
        elif cell == "layernorm":
            c = sigmoid(z["f"]) * c + sigmoid(z["i"]) * math.tanh(z["g"])
            # c is equal across units, so LN(c) = 0 and only the shift remains
            h_cell = sigmoid(z["o"]) * math.tanh(0.0 + LN_SHIFT_C)
        h = W_HR * H * h_cell if proj else h_cell
        out.append((h, c))
    return out


def constant_weights(module: torch.nn.Module, gates: str, suffix: str = "") -> None:
    with torch.no_grad():
        for k, gate in enumerate(gates):
            block = slice(k * H, (k + 1) * H)
            getattr(module, "weight_ih" + suffix)[block] = W_IH[gate]
            getattr(module, "weight_hh" + suffix)[block] = W_HH[gate]
            getattr(module, "bias_ih" + suffix)[block] = B_IH[gate]
        getattr(module, "bias_hh" + suffix).fill_(B_HH)
        if hasattr(module, "weight_ch" + suffix):
            for row, gate in enumerate("ifo"):
                getattr(module, "weight_ch" + suffix)[row] = PEEP[gate]
        if hasattr(module, "ln_bias_c" + suffix):
            getattr(module, "ln_bias_c" + suffix).fill_(LN_SHIFT_C)
        if hasattr(module, "weight_hr" + suffix):
            getattr(module, "weight_hr" + suffix).fill_(W_HR)


@pytest.mark.parametrize("cell", list(lnn.VARIANTS))
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("backend", ["auto", "fused", "reference"])
def test_layer_golden(cell, steps, backend):
    lstm = lnn.LSTM(2, H, cell=cell, dtype=torch.float64)
    constant_weights(lstm, lstm.variant.gates, "_l0")
    x = torch.tensor(INPUT[:steps], dtype=torch.float64).unsqueeze(1)  # (T, 1, 2)
    with kernels.use_backend(backend):
        out, (h, c) = lstm(x)
    golden = expected(cell, steps)
    for t, (h_t, _) in enumerate(golden):
        assert out[t, 0].tolist() == pytest.approx([h_t] * H, rel=1e-12, abs=1e-12)
    assert h.flatten().tolist() == pytest.approx([golden[-1][0]] * H, rel=1e-12)
    assert c.flatten().tolist() == pytest.approx([golden[-1][1]] * H, rel=1e-12)


@pytest.mark.parametrize("cell", list(lnn.VARIANTS))
def test_projection_golden(cell):
    lstm = lnn.LSTM(2, H, proj_size=2, cell=cell, dtype=torch.float64)
    constant_weights(lstm, lstm.variant.gates, "_l0")
    out, (h, c) = lstm(torch.tensor(INPUT, dtype=torch.float64).unsqueeze(1))
    golden = expected(cell, 2, proj=2)
    assert out[:, 0].flatten().tolist() == pytest.approx([g[0] for g in golden for _ in range(2)], rel=1e-12)
    assert c.flatten().tolist() == pytest.approx([golden[-1][1]] * H, rel=1e-12)


@pytest.mark.parametrize("cell", list(lnn.VARIANTS))
def test_cell_and_stepper_golden(cell):
    lstm_cell = lnn.LSTMCell(2, H, cell=cell, dtype=torch.float64)
    constant_weights(lstm_cell, lstm_cell.variant.gates)
    layer = lnn.LSTM(2, H, cell=cell, dtype=torch.float64)
    constant_weights(layer, layer.variant.gates, "_l0")
    stepper = layer.stepper()
    state = None
    for x, (h_t, c_t) in zip(INPUT, expected(cell, 2)):
        x = torch.tensor(x, dtype=torch.float64)
        state = lstm_cell(x, state)
        assert state[0].tolist() == pytest.approx([h_t] * H, rel=1e-12)
        assert state[1].tolist() == pytest.approx([c_t] * H, rel=1e-12)
        assert stepper.step(x).tolist() == pytest.approx([h_t] * H, rel=1e-12)


def test_gru_and_rnn_golden_one_step():
    x = [0.5, -1.0]
    gru = lnn.GRU(2, H, dtype=torch.float64)
    with torch.no_grad():
        gru.weight_ih_l0.fill_(0.3)
        gru.weight_hh_l0.fill_(-0.2)
        gru.bias_ih_l0.fill_(0.1)
        gru.bias_hh_l0.fill_(0.05)
    h0 = 0.4
    out, _ = gru(torch.tensor([x], dtype=torch.float64), torch.full((1, H), h0, dtype=torch.float64))
    s = sum(x)
    r = sigmoid(0.3 * s + 0.1 + (-0.2) * H * h0 + 0.05)
    z = sigmoid(0.3 * s + 0.1 + (-0.2) * H * h0 + 0.05)
    n = math.tanh(0.3 * s + 0.1 + r * ((-0.2) * H * h0 + 0.05))
    assert out.flatten().tolist() == pytest.approx([(1 - z) * n + z * h0] * H, rel=1e-12)

    rnn = lnn.RNN(2, H, nonlinearity="relu", bias=False, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.fill_(0.3)
        rnn.weight_hh_l0.fill_(0.5)
    out, _ = rnn(torch.tensor([x, [1.0, 1.0]], dtype=torch.float64))
    h1 = max(0.0, 0.3 * s)
    h2 = max(0.0, 0.3 * 2.0 + 0.5 * H * h1)
    assert out.flatten().tolist() == pytest.approx([h1] * H + [h2] * H, rel=1e-12)
