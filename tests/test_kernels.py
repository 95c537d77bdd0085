"""The fused C++ kernels against the plain-PyTorch reference, and the dispatcher around them.

Outputs, final states and every gradient must agree: float64 to 1e-10, float32 loosely (the
kernels' float32 exp/tanh are polynomial approximations, ~1 ulp). The sweep is the family
tests' sweep (bias x batch_first x bidirectional x layers x projection x padded/packed) for
every variant and the GRU.
"""

import itertools
import warnings
from pathlib import Path

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


def test_the_build_compiles_copies_that_a_reinstall_leaves_alone(tmp_path, monkeypatch):
    """ninja rebuilds a source newer than its object: the build compiles copies of the sources in its
    own directory (named by their content), which keep their timestamps when the package is
    reinstalled with new ones."""
    import os
    import shutil

    package = tmp_path / "csrc"
    shutil.copytree(fused.CSRC, package)
    monkeypatch.setattr(fused, "CSRC", package)
    build = tmp_path / "build" / "sources"
    sources = fused._sources_in(build)
    assert [Path(s) for s in sources] == [build / name for name in fused.SOURCES]
    names = fused.SOURCES + fused.HEADERS
    assert all((build / n).read_bytes() == (package / n).read_bytes() for n in names)
    stamps = {n: (build / n).stat().st_mtime_ns for n in names}
    later = max(stamps.values()) + 10**10
    for n in names:  # a reinstall: the same sources, newer timestamps
        os.utime(package / n, ns=(later, later))
    fused._sources_in(build)
    assert {n: (build / n).stat().st_mtime_ns for n in names} == stamps
    assert sorted(p.name for p in build.iterdir()) == sorted(names)  # no temporary files left
    if fused.available():  # the real build compiled such copies
        from torch.utils.cpp_extension import _get_build_directory

        monkeypatch.undo()
        assert isinstance(fused.CFLAGS, tuple) and isinstance(fused.LDFLAGS, tuple)  # load() appends to lists
        built = Path(_get_build_directory(fused._build_name(), verbose=False))
        assert (built / "sources" / "lstm.cpp").read_bytes() == (fused.CSRC / "lstm.cpp").read_bytes()


def test_inference_keeps_no_graph_and_matches_training_forward():
    lstm = lnn.LSTM(3, 6, num_layers=2, cell="peephole")
    x = torch.randn(7, 2, 3)
    with torch.no_grad():
        inference, _ = lstm(x)
    assert inference.grad_fn is None
    training, _ = lstm(x)
    assert training.grad_fn is not None
    torch.testing.assert_close(inference, training.detach())


# -- kernel="fastest": the fused kernel for torch's own math, where it was measured faster


def test_fused_is_faster_follows_the_measured_lines():
    faster = kernels.fused_is_faster
    # training: B x H up to 2,048 with H up to 128
    assert faster("LSTM", 32, 64, True) and not faster("LSTM", 32, 65, True)
    assert faster("LSTM", 16, 128, True) and not faster("LSTM", 1, 129, True)
    # inference: B x H up to 512 with H up to 64
    assert faster("LSTM", 8, 64, False) and not faster("LSTM", 9, 64, False) and not faster("LSTM", 1, 65, False)
    assert faster("GRU", 128, 128, True) and faster("GRU", 128, 128, False) and not faster("GRU", 128, 129, True)
    assert not faster("RNN_TANH", 1, 8, True)


@pytest.mark.parametrize("make", [lambda h, **k: lnn.LSTM(3, h, batch_first=True, **k),
                                  lambda h, **k: lnn.GRU(3, h, batch_first=True, **k)], ids=["LSTM", "GRU"])
def test_fastest_layers_take_the_fused_kernel_only_where_it_is_faster(make):
    x = torch.randn(4, 10, 3)
    assert kernels.select_backend(make(16, kernel="fastest").spec, None, x, 4) == "fused"
    assert kernels.select_backend(make(16).spec, None, x, 4) == "native"  # the default stays torch's
    assert kernels.select_backend(make(5000, kernel="fastest").spec, None, x, 4) == "native"
    with torch.no_grad():
        assert kernels.select_backend(make(16, kernel="fastest").spec, None, x, 4) == "fused"
    for forced in ("native", "reference"):  # a forced backend still decides for every layer
        with kernels.use_backend(forced):
            assert kernels.select_backend(make(16, kernel="fastest").spec, None, x, 4) == forced
    assert kernels.select_backend(make(16, kernel="fastest").spec, None, x.to(torch.float16), 4) == "native"


@pytest.fixture
def fused_runs(monkeypatch):
    """The batch sizes of the layer-calls the fused kernel ran (it still computes them)."""
    runs = []
    original = fused.sequence_forward

    def spy(spec, x, sizes, *args):
        runs.append(x.shape[1])  # time-major inside
        return original(spec, x, sizes, *args)

    monkeypatch.setattr(fused, "sequence_forward", spy)
    return runs


def test_fastest_lstm_uses_the_inference_rule_without_gradients(fused_runs):
    lstm = lnn.LSTM(3, 100, kernel="fastest")  # B x H = 400: faster in training, not in inference
    x = torch.randn(6, 4, 3)
    lstm(x)
    assert fused_runs == [4]
    with torch.no_grad():
        lstm(x)
    assert fused_runs == [4]


@pytest.mark.parametrize("layout", ["batch_first", "time_major", "unbatched", "packed"])
def test_fastest_reads_the_batch_not_the_time_axis(layout, fused_runs):
    """Two sequences of 600 steps, H = 16: 2 x 16 is under the line, 600 x 16 over it."""
    lstm = lnn.LSTM(3, 16, batch_first=layout == "batch_first", kernel="fastest")
    hx = (torch.zeros(1, 2, 16), torch.zeros(1, 2, 16))
    if layout == "batch_first":
        lstm(torch.randn(2, 600, 3), hx)
    elif layout == "time_major":
        lstm(torch.randn(600, 2, 3), hx)
    elif layout == "unbatched":
        lstm(torch.randn(600, 3), (hx[0][:, 0], hx[1][:, 0]))
    else:
        lstm(pack_padded_sequence(torch.randn(600, 2, 3), torch.tensor([600, 300]), enforce_sorted=False), hx)
    assert fused_runs == [1 if layout == "unbatched" else 2]
    lstm(torch.randn(200, 60, 3) if layout == "batch_first" else torch.randn(60, 200, 3))  # 200 x 16: over
    assert len(fused_runs) == 1


@pytest.mark.parametrize("kind", ["padded", "packed"])
def test_fastest_lstm_and_gru_match_torch_in_float64(kind, fused_runs):
    """The fused path computes torch's numbers: outputs, final states and every gradient."""
    torch.manual_seed(0)
    for layer, theirs in ((lnn.LSTM(4, 6, 2, bidirectional=True, kernel="fastest"), torch.nn.LSTM),
                          (lnn.GRU(4, 6, 2, bidirectional=True, kernel="fastest"), torch.nn.GRU)):
        layer = layer.double()
        reference = theirs(4, 6, 2, bidirectional=True).double()
        reference.load_state_dict(layer.state_dict())
        x = torch.randn(5, 3, 4, dtype=torch.float64)
        results = []
        for module in (layer, reference):
            module.zero_grad()
            inp = pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False) if kind == "packed" else x
            out, state = module(inp)
            data = out.data if isinstance(out, PackedSequence) else out
            states = state if isinstance(state, tuple) else (state,)
            (data.square().sum() + sum(s.sin().sum() for s in states)).backward()
            results.append([data, *states, *(p.grad for p in module.parameters())])
        assert fused_runs == [3]  # lstmkit's layer (all its layers and directions in one call)
        fused_runs.clear()
        for found, expected in zip(*results):
            torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-10)


def test_fastest_falls_back_to_torch_not_the_reference(monkeypatch):
    monkeypatch.setattr(fused, "available", lambda: False)
    x = torch.randn(5, 2, 3)
    assert kernels.select_backend(lnn.LSTM(3, 4, kernel="fastest").spec, None, x, 2) == "native"
    assert kernels.select_backend(lnn.GRU(3, 4, kernel="fastest").spec, None, x, 2) == "native"


def test_fastest_layers_trace_as_torchs_own_op():
    lstm = lnn.LSTM(3, 4, kernel="fastest")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        traced = torch.jit.trace(lstm, torch.randn(5, 2, 3))
    assert "aten::lstm" in str(traced.graph)


def test_kernel_option_is_checked_and_shown():
    from lstmkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown kernel='fast'; expected one of 'auto', 'fastest'"):
        lnn.LSTM(3, 4, kernel="fast")
    with pytest.raises(ConfigError, match="unknown kernel"):
        lnn.GRU(3, 4, kernel="fused")
    assert "kernel='fastest'" in repr(lnn.LSTM(3, 4, kernel="fastest"))
    assert "kernel" not in repr(lnn.LSTM(3, 4))


def test_fastest_lstm_carries_state_across_calls_as_torch_does(fused_runs):
    """Truncated BPTT as the language model runs it: the state of one piece starts the next,
    detached; outputs and gradients of both pieces match torch.nn.LSTM in float64."""
    torch.manual_seed(0)
    ours = lnn.LSTM(3, 5, 2, batch_first=True, dropout=0.0, kernel="fastest").double()
    theirs = torch.nn.LSTM(3, 5, 2, batch_first=True).double()
    theirs.load_state_dict(ours.state_dict())
    pieces = torch.randn(2, 4, 7, 3, dtype=torch.float64)
    results = []
    for module in (ours, theirs):
        module.zero_grad()
        state, outputs = None, []
        for piece in pieces:
            out, state = module(piece, state)
            out.pow(2).sum().backward()
            state = tuple(s.detach() for s in state)
            outputs.append(out.detach())
        results.append([*outputs, *state, *(p.grad.clone() for p in module.parameters())])
    assert fused_runs == [4, 4]  # both pieces
    for found, expected in zip(*results):
        torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-10)


def test_prepare_builds_the_kernels_only_for_networks_that_may_use_them(monkeypatch):
    asked = []
    monkeypatch.setattr(fused, "available", lambda: asked.append(1) or True)
    for network in (lnn.LSTM(3, 4), torch.nn.Sequential(lnn.RNN(3, 4), torch.nn.Linear(4, 1)), lnn.GRU(3, 4)):
        kernels.prepare(network)
    assert asked == []  # torch's path only: nothing to build
    for network in (lnn.LSTM(3, 4, kernel="fastest"), torch.nn.Sequential(lnn.LSTM(3, 4, cell="peephole")),
                    lnn.GRU(3, 4, kernel="fastest")):
        kernels.prepare(network)
    assert asked == [1, 1, 1]


def test_training_engine_prepares_the_kernels_of_the_network_it_trains(monkeypatch):
    from lstmkit.train import engine

    seen = []
    monkeypatch.setattr(engine.kernels, "prepare", lambda module: seen.append(module))
    from lstmkit.data import load_dataset
    from lstmkit.tasks.forecast import LSTMForecaster
    from lstmkit.train import TrainConfig

    LSTMForecaster(horizon=2, hidden_size=4, transform="none", ensemble=1, training=TrainConfig(max_epochs=1)).fit(
        load_dataset("airline"), target="passengers", time="month")
    assert len(seen) == 1 and any(m.kernel == "fastest" for m in seen[0].modules() if isinstance(m, lnn.LSTM))
