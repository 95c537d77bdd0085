"""Parity with torch.nn.LSTM/GRU/RNN: outputs, final states and every gradient, float64, 1e-10.

Run over bias x batch_first x bidirectional x num_layers x proj_size x padded/packed input, on
both the dispatcher's choice and the forced plain-PyTorch reference (which the fused kernels
are later tested against, so it must itself match torch).
"""

import itertools

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit.nn as lnn
from lstmkit.nn import kernels

TOL = {"rtol": 1e-10, "atol": 1e-10}
LENGTHS = [5, 2, 4]  # deliberately unsorted, so packing permutes the batch
SWEEP = list(itertools.product([True, False], [False, True], [False, True], [1, 2], [0, 3],
                               ["padded", "packed"]))


def _inputs(batch_first: bool, kind: str, input_size: int):
    steps, batch = max(LENGTHS), len(LENGTHS)
    shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    if kind == "packed":
        return x, lambda: pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=batch_first,
                                               enforce_sorted=False)
    return x, lambda: x


def _loss(output, state):
    data = output.data if isinstance(output, PackedSequence) else output
    gen = torch.Generator().manual_seed(1)
    total = (data * torch.randn(data.shape, generator=gen, dtype=data.dtype)).sum()
    for s in state if isinstance(state, tuple) else (state,):
        total = total + (s * torch.randn(s.shape, generator=gen, dtype=s.dtype)).sum()
    return total


def _run_and_grad(module, x_leaf, make_input, hx):
    module.zero_grad()
    x_leaf.grad = None
    for s in hx:
        s.grad = None
    out, state = module(make_input(), hx if len(hx) > 1 else hx[0])
    _loss(out, state).backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    grads["input"] = x_leaf.grad.clone()
    for k, s in enumerate(hx):
        grads[f"hx{k}"] = s.grad.clone()
    return out, state, grads


def _compare(ours, theirs):
    out_a, state_a, grads_a = ours
    out_b, state_b, grads_b = theirs
    data_a = out_a.data if isinstance(out_a, PackedSequence) else out_a
    data_b = out_b.data if isinstance(out_b, PackedSequence) else out_b
    torch.testing.assert_close(data_a, data_b, **TOL)
    for a, b in zip(state_a if isinstance(state_a, tuple) else (state_a,),
                    state_b if isinstance(state_b, tuple) else (state_b,)):
        torch.testing.assert_close(a, b, **TOL)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("backend", ["auto", "fused", "reference"])
@pytest.mark.parametrize("bias,batch_first,bidirectional,num_layers,proj_size,kind", SWEEP)
def test_lstm_matches_torch(backend, bias, batch_first, bidirectional, num_layers, proj_size, kind):
    reference = torch.nn.LSTM(4, 6, num_layers, bias, batch_first, 0.0, bidirectional, proj_size,
                              dtype=torch.float64)
    ours = lnn.LSTM.from_torch(reference)
    directions = 2 if bidirectional else 1
    h0 = torch.randn(num_layers * directions, len(LENGTHS), proj_size or 6, dtype=torch.float64,
                     requires_grad=True)
    c0 = torch.randn(num_layers * directions, len(LENGTHS), 6, dtype=torch.float64, requires_grad=True)
    x, inp = _inputs(batch_first, kind, 4)
    theirs = _run_and_grad(reference, x, inp, (h0, c0))
    with kernels.use_backend(backend):
        mine = _run_and_grad(ours, x, inp, (h0, c0))
    _compare(mine, theirs)


@pytest.mark.parametrize("mode,backend", [(m, b) for m in ["GRU", "RNN_TANH", "RNN_RELU"]
                                          for b in ["auto", "reference"] + (["fused"] if m == "GRU" else [])])
@pytest.mark.parametrize("bias,batch_first,bidirectional,num_layers,kind",
                         [(b, bf, bi, n, k) for b, bf, bi, n, _, k in SWEEP if _ == 0])
def test_gru_and_rnn_match_torch(backend, mode, bias, batch_first, bidirectional, num_layers, kind):
    if mode == "GRU":
        reference = torch.nn.GRU(4, 6, num_layers, bias, batch_first, 0.0, bidirectional, dtype=torch.float64)
        ours = lnn.GRU(4, 6, num_layers, bias, batch_first, 0.0, bidirectional, dtype=torch.float64)
    else:
        act = "tanh" if mode == "RNN_TANH" else "relu"
        reference = torch.nn.RNN(4, 6, num_layers, act, bias, batch_first, 0.0, bidirectional, dtype=torch.float64)
        ours = lnn.RNN(4, 6, num_layers, act, bias, batch_first, 0.0, bidirectional, dtype=torch.float64)
    ours.load_state_dict(reference.state_dict())
    directions = 2 if bidirectional else 1
    h0 = torch.randn(num_layers * directions, len(LENGTHS), 6, dtype=torch.float64, requires_grad=True)
    x, inp = _inputs(batch_first, kind, 4)
    theirs = _run_and_grad(reference, x, inp, (h0,))
    with kernels.use_backend(backend):
        mine = _run_and_grad(ours, x, inp, (h0,))
    _compare(mine, theirs)


@pytest.mark.parametrize("backend", ["auto", "fused", "reference"])
def test_unbatched_and_default_state_match_torch(backend):
    reference = torch.nn.LSTM(3, 5, 2, bidirectional=True, proj_size=2, dtype=torch.float64)
    ours = lnn.LSTM.from_torch(reference)
    x = torch.randn(7, 3, dtype=torch.float64)
    expected_out, (expected_h, expected_c) = reference(x)
    with kernels.use_backend(backend):
        out, (h, c) = ours(x)
    assert out.shape == (7, 4) and h.shape == (4, 2) and c.shape == (4, 5)
    torch.testing.assert_close(out, expected_out, **TOL)
    torch.testing.assert_close(h, expected_h, **TOL)
    torch.testing.assert_close(c, expected_c, **TOL)


def test_state_dict_round_trips_both_ways():
    reference = torch.nn.LSTM(3, 5, 2, bidirectional=True, proj_size=2)
    ours = lnn.LSTM(3, 5, 2, bidirectional=True, proj_size=2)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    back = ours.to_torch()
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(back(x)[0], reference(x)[0])
    torch.testing.assert_close(ours(x)[0], reference(x)[0])


def test_standard_runs_torch_native_path():
    spec = lnn.LSTM(3, 5, 2, bidirectional=True, proj_size=2).spec
    assert kernels.select_backend(spec, None) == "native"
    assert kernels.select_backend(lnn.LSTM(3, 5, cell="peephole").spec, None) == "fused"
    assert kernels.select_backend(spec, lnn.Zoneout(h=0.1)) == "reference"


def test_inter_layer_dropout_in_train_only():
    torch.manual_seed(3)
    reference = torch.nn.LSTM(3, 5, 2, dropout=0.5, dtype=torch.float64)
    ours = lnn.LSTM.from_torch(reference).eval()
    reference.eval()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], reference(x)[0], **TOL)
    ours.train()
    assert not torch.allclose(ours(x)[0], reference(x)[0])
