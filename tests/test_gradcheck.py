"""torch.autograd.gradcheck in float64 on every variant, GRU, RNN, ConvLSTM and the cells."""

import pytest
import torch
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit.nn as lnn
from lstmkit.nn import kernels

F64 = torch.float64


def _check(module, *inputs):
    params = [p for p in module.parameters()]
    n = len(inputs)

    def fn(*args):
        with torch.nn.utils.stateless._reparametrize_module(
            module, {name: a for (name, _), a in zip(module.named_parameters(), args[n:])}
        ):
            out, state = module(*args[:n])
        out = out.data if hasattr(out, "batch_sizes") else out
        states = state if isinstance(state, (tuple, list)) else (state,)
        flat = [s for st in states for s in (st if isinstance(st, tuple) else (st,))]
        return (out, *flat)

    args = tuple(inputs) + tuple(p.detach().clone().requires_grad_() for p in params)
    assert gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("cell", list(lnn.VARIANTS))
@pytest.mark.parametrize("backend", ["auto", "fused", "reference"])
def test_lstm_variants(cell, backend):
    lstm = lnn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, cell=cell, dtype=F64)
    x = torch.randn(4, 2, 3, dtype=F64, requires_grad=True)
    with kernels.use_backend(backend):
        _check(lstm, x)


@pytest.mark.parametrize("cell", list(lnn.VARIANTS))
@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_lstm_variants_packed_with_state(cell, backend):
    lstm = lnn.LSTM(3, 4, bidirectional=True, cell=cell, dtype=F64)
    x = torch.randn(4, 3, 3, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, 3, 4, dtype=F64, requires_grad=True)
    c0 = torch.randn(2, 3, 4, dtype=F64, requires_grad=True)

    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x, h0, c0):
            packed = pack_padded_sequence(x, torch.tensor([2, 4, 3]), enforce_sorted=False)
            return self.lstm(packed, (h0, c0))

    with kernels.use_backend(backend):
        _check(Packed(), x, h0, c0)


@pytest.mark.parametrize("cell", list(lnn.VARIANTS))
def test_cells(cell):
    _check(lnn.LSTMCell(3, 4, cell=cell, dtype=F64), torch.randn(2, 3, dtype=F64, requires_grad=True))


@pytest.mark.parametrize("layer,backend", [("gru", "fused"), *[(layer, b) for layer in ("gru", "rnn_tanh", "rnn_relu")
                                                                for b in ("auto", "reference")]])
def test_gru_and_rnn(layer, backend):
    if layer == "gru":
        module = lnn.GRU(3, 4, num_layers=2, bidirectional=True, dtype=F64)
    else:
        module = lnn.RNN(3, 4, num_layers=2, nonlinearity=layer[4:], bidirectional=True, dtype=F64)
    with kernels.use_backend(backend):
        _check(module, torch.randn(4, 2, 3, dtype=F64, requires_grad=True))


@pytest.mark.parametrize("peephole", [False, True])
def test_convlstm(peephole):
    model = lnn.ConvLSTM(2, [3, 2], kernel_size=3, peephole=peephole, frame_size=(4, 4), dtype=F64)
    if peephole:
        for cell in model.cells:  # peepholes start at zero; make their gradient path non-trivial
            torch.nn.init.uniform_(cell.weight_ch, -0.5, 0.5)

    class LastLayer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            out, states = self.model(x)
            return out, tuple(states)

    _check(LastLayer(), torch.randn(3, 1, 2, 4, 4, dtype=F64, requires_grad=True))


def test_zoneout_eval_mode_is_differentiable():
    lstm = lnn.LSTM(3, 4, cell="peephole", zoneout=lnn.Zoneout(h=0.2, c=0.4), dtype=F64).eval()
    _check(lstm, torch.randn(4, 2, 3, dtype=F64, requires_grad=True))
