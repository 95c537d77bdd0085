"""Gate-bias initialisation, converters and the streaming stepper."""

import math

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.errors import ConfigError
from lstmkit.nn import kernels


def _effective(lstm, block, suffix):
    h = lstm.hidden_size
    total = getattr(lstm, "bias_ih" + suffix) + getattr(lstm, "bias_hh" + suffix)
    return total[block * h:(block + 1) * h]


@pytest.mark.parametrize("cell", ["standard", "peephole", "layernorm"])
def test_forget_and_input_bias(cell):
    lstm = lnn.LSTM(3, 8, num_layers=2, bidirectional=True, cell=cell, forget_bias=3.0, input_bias=-3.0)
    for suffix in ("_l0", "_l1", "_l0_reverse", "_l1_reverse"):
        assert torch.equal(_effective(lstm, 1, suffix), torch.full((8,), 3.0))
        assert torch.equal(_effective(lstm, 0, suffix), torch.full((8,), -3.0))
        g = _effective(lstm, 2, suffix)
        assert g.abs().max() <= 2 / math.sqrt(8) and g.std() > 0  # untouched blocks stay random
    lstm.reset_parameters()  # re-initialising keeps the requested biases
    assert torch.equal(_effective(lstm, 1, "_l1"), torch.full((8,), 3.0))


def test_input_bias_on_variants_without_forget_gate():
    for cell in ("vanilla", "cifg"):
        lstm = lnn.LSTM(3, 4, cell=cell, input_bias=-6.0)
        assert torch.equal(_effective(lstm, 0, "_l0"), torch.full((4,), -6.0))


def test_chrono_init():
    t_max = 100
    lstm = lnn.LSTM(3, 512, chrono_init=t_max)
    forget, input_gate = _effective(lstm, 1, "_l0"), _effective(lstm, 0, "_l0")
    torch.testing.assert_close(input_gate, -forget)
    assert forget.min() >= 0 and forget.max() <= math.log(t_max - 1)
    # log of a uniform sample: exp(b_f) is uniform on [1, T_max - 1]
    assert abs(forget.exp().mean().item() - t_max / 2) < 5 * (t_max - 2) / math.sqrt(12 * 512)
    cifg = lnn.LSTM(3, 64, cell="cifg", chrono_init=t_max)
    assert (_effective(cifg, 0, "_l0") <= 0).all()


def test_set_gate_bias_on_a_cell():
    cell = lnn.LSTMCell(3, 4)
    lnn.init.set_gate_bias_(cell, "o", 2.0)
    assert torch.equal((cell.bias_ih + cell.bias_hh)[12:16], torch.full((4,), 2.0))


def test_from_torch_keeps_structure():
    torch_lstm = torch.nn.LSTM(3, 6, 2, batch_first=True, bidirectional=True, proj_size=2)
    ours = lnn.LSTM.from_torch(torch_lstm)
    assert (ours.num_layers, ours.batch_first, ours.bidirectional, ours.proj_size) == (2, True, True, 2)
    with pytest.raises(ConfigError, match="cell='peephole'"):
        lnn.LSTM(3, 6, cell="peephole").to_torch()


@pytest.mark.parametrize("cell", list(lnn.VARIANTS))
@pytest.mark.parametrize("fast", [True, False])
def test_stepper_matches_layer(cell, fast):
    lstm = lnn.LSTM(3, 8, num_layers=2, proj_size=4, cell=cell, dtype=torch.float64).eval()
    x = torch.randn(12, 2, 3, dtype=torch.float64)
    stepper = lnn.Stepper(lstm, batch_size=2, fast=fast)
    assert stepper.is_fast == fast
    outs = torch.stack([stepper.step(x_t) for x_t in x])
    expected, (h, c) = lstm(x)
    torch.testing.assert_close(outs, expected)
    torch.testing.assert_close(stepper.state[0], h)
    torch.testing.assert_close(stepper.state[1], c)


@pytest.mark.parametrize("layer", ["gru", "rnn"])
def test_stepper_for_gru_and_rnn_continues_from_state(layer):
    module = (lnn.GRU(3, 8, num_layers=2) if layer == "gru" else lnn.RNN(3, 8, 2, nonlinearity="relu")).eval()
    x = torch.randn(10, 1, 3)
    full, _ = module(x)
    _, h_half = module(x[:4])
    stepper = module.stepper()
    stepper.reset(h_half)
    rest = torch.stack([stepper.step(x_t[0]) for x_t in x[4:]])
    torch.testing.assert_close(rest, full[4:, 0])
    stepper.reset()
    torch.testing.assert_close(stepper.step(x[0, 0]), full[0, 0])


def test_stepper_applies_zoneout_expectation():
    lstm = lnn.LSTM(3, 8, zoneout=lnn.Zoneout(h=0.2, c=0.5)).train()
    x = torch.randn(6, 1, 3)
    stepper = lstm.stepper()
    outs = torch.stack([stepper.step(x_t) for x_t in x])
    torch.testing.assert_close(outs, lstm.eval()(x)[0])


def test_backend_switch_errors_and_restores():
    with pytest.raises(ValueError, match="unknown backend"):
        kernels.set_backend("cuda")
    with pytest.raises(ValueError, match="cannot run 'peephole'"):
        with kernels.use_backend("native"):
            lnn.LSTM(3, 4, cell="peephole")(torch.randn(2, 1, 3))
    assert kernels.get_backend() == "auto"
