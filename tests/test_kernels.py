"""The fused C++ kernels against the plain-PyTorch reference, and the dispatcher around them.

Outputs, final states and every gradient must agree: float64 to 1e-10, float32 loosely (the
kernels' float32 exp/tanh are polynomial approximations, ~1 ulp). The sweep is the family
tests' sweep (bias x batch_first x bidirectional x layers x projection x padded/packed) for
every variant and the GRU.
"""

import itertools
import warnings

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit.nn as lnn
from lstmkit.errors import ShapeError
from lstmkit.nn import kernels
from lstmkit.nn.kernels import fused

LENGTHS = [5, 2, 4]
LAYERS = list(lnn.VARIANTS) + ["GRU"]
SWEEP = [c for c in itertools.product(LAYERS, [True, False], [False, True], [False, True], [1, 2], [0, 3],
                                      ["padded", "packed"]) if not (c[0] == "GRU" and c[5])]


def _make(layer, bias, batch_first, bidirectional, num_layers, proj_size, dtype):
    if layer == "GRU":
        return lnn.GRU(4, 6, num_layers, bias, batch_first, 0.0, bidirectional, dtype=dtype)
    return lnn.LSTM(4, 6, num_layers, bias, batch_first, 0.0, bidirectional, proj_size, dtype=dtype, cell=layer)


def _results(module, backend, x, hx, kind, batch_first):
    module.zero_grad()
    x.grad = None
    for s in hx:
        s.grad = None
    inp = (pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False)
           if kind == "packed" else x)
    with kernels.use_backend(backend):
        out, state = module(inp, hx if len(hx) == 2 else hx[0])
    data = out.data if isinstance(out, PackedSequence) else out
    states = state if isinstance(state, tuple) else (state,)
    gen = torch.Generator().manual_seed(7)
    loss = (data * torch.randn(data.shape, generator=gen, dtype=torch.float64).to(data.dtype)).sum()
    for s in states:
        loss = loss + (s * torch.randn(s.shape, generator=gen, dtype=torch.float64).to(s.dtype)).sum()
    loss.backward()
    found = {"output": data.detach().clone(), "input.grad": x.grad.clone()}
    found.update({f"state{k}": s.detach().clone() for k, s in enumerate(states)})
    found.update({f"hx{k}.grad": s.grad.clone() for k, s in enumerate(hx)})
    found.update({f"{name}.grad": p.grad.clone() for name, p in module.named_parameters()})
    return found


def _case(layer, bias, batch_first, bidirectional, num_layers, proj_size):
    module = _make(layer, bias, batch_first, bidirectional, num_layers, proj_size, torch.float64)
    steps, batch = max(LENGTHS), len(LENGTHS)
    x = torch.randn((batch, steps, 4) if batch_first else (steps, batch, 4), dtype=torch.float64)
    lead = num_layers * (2 if bidirectional else 1)
    hx = [torch.randn(lead, batch, proj_size or 6, dtype=torch.float64)]
    if layer != "GRU":
        hx.append(torch.randn(lead, batch, 6, dtype=torch.float64))
    return module, x, hx


def _leaves(x, hx, dtype):
    return x.detach().to(dtype).clone().requires_grad_(), [h.detach().to(dtype).clone().requires_grad_() for h in hx]


@pytest.mark.parametrize("layer,bias,batch_first,bidirectional,num_layers,proj_size,kind", SWEEP)
def test_fused_matches_reference_float64(layer, bias, batch_first, bidirectional, num_layers, proj_size, kind):
    module, x, hx = _case(layer, bias, batch_first, bidirectional, num_layers, proj_size)
    expected = _results(module, "reference", *_leaves(x, hx, torch.float64), kind, batch_first)
    found = _results(module, "fused", *_leaves(x, hx, torch.float64), kind, batch_first)
    assert found.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(found[name], expected[name], rtol=1e-10, atol=1e-10,
                                   msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("layer,bias,batch_first,bidirectional,num_layers,proj_size,kind", SWEEP[::3])
def test_fused_float32_is_as_accurate_as_the_reference(layer, bias, batch_first, bidirectional, num_layers,
                                                       proj_size, kind):
    """float32 against the float64 truth: within a few times the reference's error, or ~100 ulp of the scale."""
    module, x, hx = _case(layer, bias, batch_first, bidirectional, num_layers, proj_size)
    truth = _results(module, "reference", *_leaves(x, hx, torch.float64), kind, batch_first)
    module.float()
    reference = _results(module, "reference", *_leaves(x, hx, torch.float32), kind, batch_first)
    found = _results(module, "fused", *_leaves(x, hx, torch.float32), kind, batch_first)
    for name, exact in truth.items():
        scale = exact.abs().max().item()
        error_reference = (reference[name].double() - exact).abs().max().item()
        error_fused = (found[name].double() - exact).abs().max().item()
        assert error_fused <= 4 * error_reference + 1e-5 * scale, (name, error_fused, error_reference, scale)


@pytest.mark.parametrize("cell", list(lnn.VARIANTS))
def test_fused_float32_on_a_longer_sequence(cell):
    """Error does not build up over many steps with the approximate float32 functions."""
    lstm = lnn.LSTM(8, 32, cell=cell, proj_size=16, forget_bias=1.0 if cell not in ("vanilla", "cifg") else None)
    x = torch.randn(300, 4, 8)
    with torch.no_grad(), kernels.use_backend("reference"):
        expected, _ = lstm.double()(x.double())
    lstm.float()
    with torch.no_grad(), kernels.use_backend("fused"):
        found, _ = lstm(x)
    torch.testing.assert_close(found.double(), expected, rtol=1e-4, atol=1e-5)


def test_fused_is_chosen_for_variants_and_gru_stays_native():
    x = torch.randn(3, 2, 4)
    assert kernels.select_backend(lnn.LSTM(4, 6, cell="cifg").spec, None, x) == "fused"
    assert kernels.select_backend(lnn.LSTM(4, 6).spec, None, x) == "native"
    assert kernels.select_backend(lnn.GRU(4, 6).spec, None, x) == "native"
    assert kernels.select_backend(lnn.LSTM(4, 6, cell="cifg").spec, lnn.Zoneout(h=0.1), x) == "reference"
    with kernels.use_backend("fused"):
        assert kernels.select_backend(lnn.GRU(4, 6).spec, None, x) == "fused"
        with pytest.raises(ValueError, match="cannot run 'RNN_TANH'"):
            kernels.select_backend(lnn.RNN(4, 6).spec, None, x)
        with pytest.raises(ValueError, match="torch.float16"):
            kernels.select_backend(lnn.LSTM(4, 6, cell="cifg").spec, None, x.half())


def test_fused_with_weight_drop_and_inter_layer_dropout_trains():
    torch.manual_seed(0)
    lstm = lnn.weight_drop(lnn.LSTM(3, 8, num_layers=2, dropout=0.3, cell="peephole"), p=0.3)
    x = torch.randn(10, 4, 3)
    out, _ = lstm(x)
    out.sum().backward()
    assert lstm.parametrizations.weight_hh_l0.original.grad.abs().sum() > 0


def test_backward_twice_with_retain_graph():
    lstm = lnn.LSTM(3, 5, cell="layernorm")
    out, _ = lstm(torch.randn(4, 2, 3))
    out.sum().backward(retain_graph=True)
    first = lstm.weight_hh_l0.grad.clone()
    out.sum().backward()
    torch.testing.assert_close(lstm.weight_hh_l0.grad, 2 * first)


@pytest.mark.parametrize("layer", [*lnn.VARIANTS, "GRU", "RNN"])
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_stepper_matches_layer_and_allocates_one_buffer(layer, batch):
    if layer == "GRU":
        module = lnn.GRU(5, 8, num_layers=2)
    elif layer == "RNN":
        module = lnn.RNN(5, 8, num_layers=2, nonlinearity="relu")
    else:
        module = lnn.LSTM(5, 8, num_layers=2, cell=layer, proj_size=4 if layer != "standard" else 0)
    module.eval()
    x = torch.randn(9, batch, 5)
    expected, state = module(x)
    stepper = module.stepper(batch_size=batch)
    assert stepper.is_fast
    found = torch.stack([stepper.step(x_t if batch > 1 else x_t[0]) for x_t in x]).reshape(expected.shape)
    torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-6)
    stepper.reset()
    buffer = torch.empty(batch, expected.shape[-1])
    for t, x_t in enumerate(x):
        assert stepper.step(x_t, out=buffer) is buffer
        torch.testing.assert_close(buffer, expected[t], rtol=1e-5, atol=1e-6)


def test_fast_stepper_errors_are_clear():
    stepper = lnn.LSTM(3, 4, cell="peephole").stepper()
    assert stepper.is_fast
    with pytest.raises(ShapeError, match=r"one step of shape \(1, 3\)"):
        stepper.step(torch.randn(5))
    with pytest.raises(TypeError, match="float64"):
        stepper.step(torch.randn(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="meta"):
        stepper.step(torch.randn(3, device="meta"))
    with pytest.raises(ShapeError, match=r"out to be a contiguous tensor of shape \(4,\), got \(1, 4\)"):
        stepper.step(torch.randn(3), out=torch.empty(1, 4))


def test_build_failure_warns_once_and_falls_back(monkeypatch):
    import torch.utils.cpp_extension as cpp

    def broken(*args, **kwargs):
        raise OSError("no compiler here")

    monkeypatch.setattr(cpp, "load", broken)
    monkeypatch.setattr(fused, "_extension", None)
    monkeypatch.setattr(fused, "_failure", None)
    monkeypatch.setattr(fused, "_is_built", lambda name: True)
    with pytest.warns(RuntimeWarning, match="could not build its fused CPU kernels.*no compiler here"):
        assert fused.load_extension() is None
    lstm = lnn.LSTM(3, 4, cell="peephole")
    x = torch.randn(5, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert kernels.select_backend(lstm.spec, None, x) == "reference"
        out, _ = lstm(x)
        assert not lstm.stepper().is_fast
    with kernels.use_backend("reference"):
        torch.testing.assert_close(out, lstm(x)[0])


def test_inference_keeps_no_graph_and_matches_training_forward():
    lstm = lnn.LSTM(3, 6, num_layers=2, cell="peephole")
    x = torch.randn(7, 2, 3)
    with torch.no_grad():
        inference, _ = lstm(x)
    assert inference.grad_fn is None
    training, _ = lstm(x)
    assert training.grad_fn is not None
    torch.testing.assert_close(inference, training.detach())
