"""The 1997 network: the paper's connectivity, its equations, and the truncated-RTRL learning rule."""

import dataclasses
import math
import re

import numpy as np
import pytest
import torch

from lstmkit.errors import ConfigError, TrainingError
from lstmkit.papers import EXPERIMENTS, run
from lstmkit.papers.experiments import Setting
from lstmkit.papers.lstm1997 import Network1997, OnlineState
from lstmkit.papers.runner import PaperModule, build_network
from lstmkit.train import TrainConfig


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_weight_counts_are_the_papers():
    # Exp 1 (Table 1): 264 weights for 4 blocks x 1 cell, 276 for 3 x 2 - only with gate units in the
    # recurrence, biased gates and unbiased cells and outputs
    assert Network1997(7, 7, 4, 1).weight_count() == 264
    assert Network1997(7, 7, 3, 2).weight_count() == 276
    assert build_network(EXPERIMENTS["reber"].settings["paper"], 7, 7).weight_count() == 276
    # Exp 4: 93 weights for 2 inputs, 2 blocks x 2 cells, 1 output, every non-input unit biased
    assert build_network(EXPERIMENTS["adding"].settings["paper"], 2, 1).weight_count() == 93
    # Gers et al. 2000: 424 weights for 4 blocks x 2 cells with forget gates - only with the cells'
    # outputs fed back, biased gates, unbiased cells, biased outputs with input-output connections
    cerg = EXPERIMENTS["continual-reber"].settings
    assert build_network(cerg["paper"], 7, 7).weight_count() == 424 == 20 * (7 + 8) + 12 + 7 * (8 + 7 + 1)
    assert build_network(cerg["no-forget"], 7, 7).weight_count() == 16 * (7 + 8) + 8 + 7 * (8 + 7 + 1)
    assert Network1997(7, 7, 4, 2, forget_gate=True).weight_count() == 20 * (7 + 20) + 12 + 7 * 8  # fully connected
    # Exp 2a (Table 2): 10,504 weights at p = 100, one more unit's 101 input weights than RTRL's 10,404
    # (one self-recurrent hidden unit, 101 outputs fed by it and the 101 inputs): one cell and its input
    # gate fed by the inputs only, no output gate, no biases, outputs fed by the cell and the inputs
    lag = build_network(EXPERIMENTS["lag-2a"].settings["paper"], 101, 101)
    assert lag.weight_count() == 10_504 == 101 * (1 + 101) + 2 * 101
    assert 101 * (101 + 1) + (101 + 1) == 10_404
    assert (lag.g, lag.h) == ("[0,1]", "identity")  # the squashing the paper names for Exp 2a
    # Gers et al. 2002 (by a published summary): 17 weights for 1 block of 1 cell with peepholes, the
    # cell and gates fed by the input, the cell's output and a bias, the output unit by the cell and a bias
    for key in ("timing-gts", "timing-msd"):
        timing = EXPERIMENTS[key].settings
        assert build_network(timing["paper"], 1, 1).weight_count() == 17 == 4 * 3 + 3 + 2
        assert build_network(timing["no-peephole"], 1, 1).weight_count() == 14
    assert build_network(EXPERIMENTS["timing-gts"].settings["no-forget"], 1, 1).weight_count() == 11
    # and no other combination of the network's switches gives 424
    import itertools

    switches = ("forget_gate", "gate_recurrence", "cell_bias", "output_bias", "shortcut", "peepholes")
    counts = {values: Network1997(7, 7, 4, 2, **dict(zip(switches, values))).weight_count()
              for values in itertools.product((False, True), repeat=len(switches))}
    assert [v for v, n in counts.items() if n == 424] == [(True, False, False, True, True, False)]


# the 1997 paper's Table 10: blocks, cells per block, inputs, outputs and weights of every task's network
# (at the quick profile's level; Exp 2c at p = 100: its 2c-2 row)
_TABLE_10 = {"reber": (3, 2, 7, 7, 276), "lag-2a": (1, 1, 101, 101, 10_504), "lag-2b": (1, 1, 101, 101, 10_504),
             "lag-2c": (2, 1, 104, 2, 664), "noise-3a": (3, 1, 1, 1, 102), "adding": (2, 2, 2, 1, 93),
             "multiplication": (2, 2, 2, 1, 93), "order-6a": (2, 2, 8, 4, 156), "order-6b": (3, 2, 8, 8, 308)}


@pytest.mark.parametrize("key", sorted(_TABLE_10))
def test_every_1997_paper_setting_is_the_network_of_the_papers_table_10(key):
    blocks, cells, inputs, outputs, weights = _TABLE_10[key]
    experiment = EXPERIMENTS[key]
    batch = experiment.make(np.random.default_rng(0), 2, experiment.levels["quick"][0])
    assert (batch.inputs.shape[-1], batch.targets.shape[-1]) == (inputs, outputs)
    setting = experiment.settings["paper"]
    assert (setting.hidden, setting.cells) == (blocks, cells)
    assert build_network(setting, inputs, outputs).weight_count() == weights


def test_the_1997_paper_settings_initial_gate_biases_and_learning_rates_are_table_10s():
    torch.manual_seed(0)
    # (input-gate biases, output-gate biases, learning rate, initial range); None: drawn like the weights
    table = {"reber": (None, (-1.0, -2.0, -3.0), 0.5, 0.2),
             "noise-3a": ((-1.0, -3.0, -5.0), (-2.0, -4.0, -6.0), 1.0, 0.1),
             "adding": ((-3.0, -6.0), None, 0.5, 0.1), "multiplication": (None, None, 0.1, 0.1),
             "order-6a": ((-2.0, -4.0), None, 0.5, 0.1), "order-6b": ((-2.0, -4.0, -6.0), None, 0.1, 0.1),
             "lag-2c": (None, None, 0.01, 0.2), "lag-2a": (None, None, 1.0, 0.2), "lag-2b": (None, None, 1.0, 0.2)}
    for key, (input_bias, output_bias, rate, spread) in table.items():
        setting = EXPERIMENTS[key].settings["paper"]
        assert (setting.input_bias, setting.output_gate_bias, setting.learning_rate, setting.init_range) == \
            (input_bias, output_bias, rate, spread), key
    # Exp 2c has no bias weights at all; Exp 5's input-gate biases start in +-0.1 like every weight
    assert not EXPERIMENTS["lag-2c"].settings["paper"].gate_bias
    net = build_network(EXPERIMENTS["multiplication"].settings["paper"], 2, 1)
    assert net.weight[4:6, -1].abs().max() <= 0.1  # the two input gates' biases (after the 4 cells)


def test_initialisation_range_and_per_block_biases():
    torch.manual_seed(0)
    net = Network1997(3, 2, 3, 2, init_range=0.2, input_gate_bias=(-1.0, -3.0, -5.0), output_gate_bias=-2.0)
    nc = 6
    assert net.weight[:, :-1].abs().max() <= 0.2 and net.out_weight.abs().max() <= 0.2
    assert net.weight[:, :-1].abs().max() > 0.15  # drawn over the whole range
    assert net.weight[nc:nc + 3, -1].tolist() == [-1.0, -3.0, -5.0]
    assert net.weight[nc + 3:, -1].tolist() == [-2.0, -2.0, -2.0]
    assert torch.all(net.weight[:nc, -1] == 0)  # unbiased cells
    assert torch.all(net.out_weight[:, nc:] == 0) and torch.all(net.out_bias == 0)  # no shortcut, no output bias


def test_forward_follows_the_1997_equations():
    """One block of one cell, one input, one output, weights set by hand; two steps computed here."""
    net = Network1997(1, 1, 1, 1, cell_bias=True, output_bias=True)
    # rows: cell, input gate, output gate; columns: input, y_c(t-1), y_in(t-1), y_out(t-1), bias
    w = [[0.5, 0.3, -0.2, 0.1, 0.05], [1.0, -0.4, 0.2, 0.3, -1.0], [-0.7, 0.6, 0.1, -0.5, 0.2]]
    with torch.no_grad():
        net.weight.copy_(torch.tensor(w, dtype=torch.float64))
        net.out_weight.copy_(torch.tensor([[1.5, 0.0]], dtype=torch.float64))
        net.out_bias.fill_(-0.3)
    xs = [1.0, -0.5]
    y, s, expected = [0.0, 0.0, 0.0], 0.0, []
    for x in xs:
        source = [x, *y, 1.0]
        net_c, net_in, net_out = (sum(a * b for a, b in zip(row, source)) for row in w)
        g = 4 * _sig(net_c) - 2  # range [-2, 2]
        y_in, y_out = _sig(net_in), _sig(net_out)
        s = s + y_in * g  # the constant error carousel: no forget gate
        y_c = y_out * (2 * _sig(s) - 1)  # h has range [-1, 1]
        y = [y_c, y_in, y_out]  # gates feed the recurrence too
        expected.append(_sig(1.5 * y_c - 0.3))
    out = net(torch.tensor(xs, dtype=torch.float64).view(1, 2, 1))
    torch.testing.assert_close(out.view(-1), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def _net(**kwargs) -> Network1997:
    torch.manual_seed(3)
    if kwargs.get("gate_bias", True):
        kwargs.setdefault("input_gate_bias", (-1.0, -2.0))
    return Network1997(4, 3, 2, 2, init_range=0.5, **kwargs)


def _sequence(steps: int = 9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(steps, 4)), rng.uniform(size=(steps, 3))


_CELLS = [{}, {"cell_bias": True, "output_bias": True, "shortcut": True},
          {"forget_gate": True, "forget_gate_bias": (1.0, 2.0)}, {"peepholes": True},
          {"forget_gate": True, "peepholes": True, "cell_bias": True},
          {"forget_gate": True, "gate_recurrence": False, "output_bias": True, "shortcut": True},
          {"output_gate": False, "gate_recurrence": False, "cell_recurrence": False, "gate_bias": False,
           "shortcut": True},
          {"output_gate": False, "forget_gate": True, "peepholes": True, "gate_recurrence": False},
          {"output_gate": False, "gate_recurrence": False, "cell_recurrence": False, "gate_bias": False,
           "shortcut": True, "g": "[0,1]", "h": "identity"},
          {"g": "[0,1]", "h": "identity", "forget_gate": True, "peepholes": True, "output_bias": True},
          {"g": "identity", "h": "identity", "forget_gate": True, "peepholes": True, "gate_recurrence": False,
           "cell_bias": True, "output_bias": True},
          {"g": "[-1,1]", "h": "[-2,2]", "forget_gate": True, "cell_bias": True}]
_IDS = ["1997", "biases", "forget", "peephole-no-forget", "peephole", "gers2000", "exp2a-1997-squashing",
        "no-output-gate", "exp2a", "logistic-identity", "gers2002", "table10-caption"]


@pytest.mark.parametrize("native", [False, True], ids=["numpy", "native"])
@pytest.mark.parametrize("extras", _CELLS, ids=_IDS)
def test_rtrl_step_is_the_truncated_gradient(extras, native):
    """With the error at the last step only, learn() changes the weights once, by exactly minus the
    learning rate times autograd's gradient of the same network with the recurrence detached."""
    net = _net(**extras)
    x, target = _sequence()
    mask = np.zeros(len(x))
    mask[-1] = 1.0
    logits, _ = net.logits(torch.from_numpy(x).unsqueeze(0), truncated=True)
    loss = 0.5 * ((torch.sigmoid(logits[0, -1]) - torch.from_numpy(target[-1])) ** 2).sum()
    loss.backward()
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    net.learn(x, target, mask, learning_rate=0.25, native=native)
    for name, p in net.named_parameters():
        grad = p.grad if p.grad is not None else torch.zeros_like(p)  # the peepholes of a cell without them
        torch.testing.assert_close(p.detach() - before[name], -0.25 * grad, rtol=1e-9, atol=1e-12, msg=name)
    # the truncation is real: the full gradient differs (without any recurrence there is nothing to
    # truncate, and the two agree)
    full = _net(**extras)
    logits, _ = full.logits(torch.from_numpy(x).unsqueeze(0))
    (0.5 * ((torch.sigmoid(logits[0, -1]) - torch.from_numpy(target[-1])) ** 2).sum()).backward()
    recurrent = extras.get("gate_recurrence", True) or extras.get("cell_recurrence", True)
    assert torch.allclose(full.weight.grad, net.weight.grad) != recurrent


@pytest.mark.parametrize("native", [False, True], ids=["numpy", "native"])
@pytest.mark.parametrize("extras", _CELLS[2:], ids=_IDS[2:])
def test_rtrl_accumulates_the_truncated_gradient_over_a_sequence(extras, native):
    """With errors at every step and a tiny learning rate the weights hardly move during the
    sequence, so the summed RTRL changes equal autograd's truncated gradient of the summed error:
    this checks the traces' decay by the forget gate and the peephole traces step after step."""
    net = _net(**extras)
    x, target = _sequence(7)
    logits, _ = net.logits(torch.from_numpy(x).unsqueeze(0), truncated=True)
    (0.5 * ((torch.sigmoid(logits[0]) - torch.from_numpy(target)) ** 2).sum()).backward()
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    lr = 1e-7
    net.learn(x, target, np.ones(len(x)), learning_rate=lr, native=native)
    for name, p in net.named_parameters():
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        torch.testing.assert_close((p.detach() - before[name]) / -lr, grad, rtol=1e-6, atol=1e-8, msg=name)


@pytest.mark.parametrize("extras", _CELLS, ids=_IDS)
def test_a_sequence_learnt_in_pieces_is_the_sequence_learnt_whole(extras):
    """The online state (activations, cell states, RTRL traces) carries over between pieces: one
    stream learnt piece by piece changes the weights exactly as learnt in one go."""
    whole, pieces = _net(**extras), _net(**extras)
    x, target = _sequence(12)
    mask = np.ones(len(x))
    expected = whole.learn(x, target, mask, learning_rate=0.3)
    state = OnlineState(pieces)
    got = [pieces.learn(x[a:b], target[a:b], mask[a:b], learning_rate=0.3, state=state)
           for a, b in ((0, 5), (5, 6), (6, 12))]
    assert state.steps == 12
    np.testing.assert_array_equal(np.concatenate(got), expected)
    for (name, a), b in zip(whole.named_parameters(), pieces.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # without the state every piece starts from zero: a different result
    fresh = _net(**extras)
    for a, b in ((0, 5), (5, 12)):
        fresh.learn(x[a:b], target[a:b], mask[a:b], learning_rate=0.3)
    assert not torch.equal(fresh.weight, whole.weight)


def _same_learning(numpy_net: Network1997, native_net: Network1997, numpy_state: OnlineState | None = None,
                   native_state: OnlineState | None = None) -> None:
    for (name, a), b in zip(numpy_net.state_dict().items(), native_net.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=name)  # parameters and momentum buffers
    if numpy_state is not None:
        for name in ("y", "s", "trace_cell", "trace_gate", "trace_forget", "trace_peep", "steps", "stopped"):
            np.testing.assert_allclose(getattr(native_state, name), getattr(numpy_state, name), rtol=1e-10,
                                       atol=1e-12, err_msg=name)


@pytest.mark.parametrize("extras", _CELLS + [{"forget_gate": True, "peepholes": True, "momentum": 0.9}],
                         ids=_IDS + ["momentum"])
def test_the_native_learner_learns_as_the_numpy_one(extras):
    """The C++ learner (lstmkit's fused kernels) against the numpy reference: several sequences,
    error signals at some steps only, a stream carried across pieces, the cells held out and back:
    the same outputs, weights, momentum buffers and online state, to rounding."""
    from lstmkit.nn.kernels import fused

    assert fused.available(), "the fused kernels did not build"
    reference, native = _net(**extras), _net(**extras)
    for seed in range(3):
        x, target = _sequence(11, seed)
        mask = (np.random.default_rng(seed).random(len(x)) < 0.6).astype(float)
        np.testing.assert_allclose(native.learn(x, target, mask, 0.3, native=True),
                                   reference.learn(x, target, mask, 0.3, native=False), rtol=1e-10, atol=1e-12)
    _same_learning(reference, native)
    reference_state, native_state = OnlineState(reference), OnlineState(native)
    x, target = _sequence(15, 7)
    for a, b in ((0, 4), (4, 15)):
        np.testing.assert_allclose(native.learn(x[a:b], target[a:b], np.ones(b - a), 0.3, state=native_state,
                                                native=True),
                                   reference.learn(x[a:b], target[a:b], np.ones(b - a), 0.3, state=reference_state,
                                                   native=False), rtol=1e-10, atol=1e-12)
    _same_learning(reference, native, reference_state, native_state)
    reference.cells_present = native.cells_present = False
    x, target = _sequence(6, 8)
    np.testing.assert_allclose(native.learn(x, target, np.ones(6), 0.3, native=True),
                               reference.learn(x, target, np.ones(6), 0.3, native=False), rtol=1e-10, atol=1e-12)
    _same_learning(reference, native)


def test_the_native_learner_stops_at_the_first_wrong_prediction_as_the_numpy_one():
    reference, native = _net(forget_gate=True), _net(forget_gate=True)
    x, target = _sequence(20, 2)
    target = (target > 0.5).astype(float)
    states = OnlineState(reference), OnlineState(native)
    expected = reference.learn(x, target, np.ones(20), 0.3, state=states[0], stop_error=0.49, native=False)
    got = native.learn(x, target, np.ones(20), 0.3, state=states[1], stop_error=0.49, native=True)
    assert states[0].stopped and len(expected) < 20
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    _same_learning(reference, native, *states)


def test_native_learning_needs_the_fused_kernels(monkeypatch):
    from lstmkit.nn.kernels import fused

    monkeypatch.setattr(fused, "load_extension", lambda: None)
    net, reference = _net(), _net()
    x, target = _sequence()
    with pytest.raises(ConfigError, match="native=True needs lstmkit's fused CPU kernels, which could not be built "
                                          "here"):
        net.learn(x, target, np.ones(len(x)), 0.3, native=True)
    # the default falls back to the numpy learner
    np.testing.assert_array_equal(net.learn(x, target, np.ones(len(x)), 0.3),
                                  reference.learn(x, target, np.ones(len(x)), 0.3, native=False))


def test_learning_stops_after_the_first_wrong_prediction():
    """Gers et al.'s training streams end at the first output 0.49 or more from its target: learn()
    stops after that step (its weight change made), exactly as if the sequence had ended there."""
    net = _net(forget_gate=True)
    x, _ = _sequence(30)
    with torch.no_grad():
        outputs = net(torch.from_numpy(x).unsqueeze(0))[0].numpy()
    target = outputs.copy()  # the network's own outputs: no error ...
    target[[17, 23], 1] += 0.6  # ... until step 17 (and 23)
    mask = np.ones(len(x))
    stopped = _net(forget_gate=True)
    state = OnlineState(stopped)
    learnt = stopped.learn(x, target, mask, learning_rate=0.5, state=state, stop_error=0.49)
    assert learnt.shape == (18, 3) and state.steps == 18 and state.stopped
    cut = _net(forget_gate=True)
    np.testing.assert_array_equal(cut.learn(x[:18], target[:18], mask[:18], learning_rate=0.5), learnt)
    torch.testing.assert_close(stopped.weight, cut.weight, rtol=0, atol=0)
    # steps without an error signal never stop it; a larger bound lets the whole sequence through
    mask[17] = 0.0
    assert len(_net(forget_gate=True).learn(x, target, mask, 0.5, stop_error=0.49)) == 24
    assert len(_net(forget_gate=True).learn(x, target, np.ones(len(x)), 0.5, stop_error=0.7)) == 30
    for bad in (0.0, -0.1):
        with pytest.raises(ConfigError, match="stop_error must be > 0"):
            net.learn(x, target, mask, 0.5, stop_error=bad)


def test_an_error_exactly_at_the_bound_is_wrong():
    """The bound is "at least stop_error" (Gers et al.: correct means within 0.49): an output exactly
    that far from its target stops learning, one a hair closer does not."""
    x, _ = _sequence(12)
    with torch.no_grad():
        target = _net()(torch.from_numpy(x).unsqueeze(0))[0].numpy()  # the network's own outputs ...
    target[5, 0] += 0.3  # ... except at step 5
    mask = np.ones(len(x))
    learnt = _net().learn(x, target, mask, 0.5)
    distances = np.abs(target - learnt).max(-1)
    assert distances.argmax() == 5 and np.delete(distances, 5).max() < 0.1
    state = OnlineState(_net())
    assert len(_net().learn(x, target, mask, 0.5, state=state, stop_error=float(distances[5]))) == 6 and state.stopped
    state = OnlineState(_net())
    closer = float(np.nextafter(distances[5], np.inf))
    assert len(_net().learn(x, target, mask, 0.5, state=state, stop_error=closer)) == 12 and not state.stopped


def test_an_online_state_of_another_network_is_refused():
    x, target = _sequence(5)
    with pytest.raises(ConfigError, match="OnlineState was made for another network"):
        _net().learn(x, target, np.ones(5), 0.5, state=OnlineState(_net(forget_gate=True)))
    other = Network1997(4, 3, 1, 4, init_range=0.5)  # as many cells, other blocks
    with pytest.raises(ConfigError, match="make it with OnlineState"):
        _net().learn(x, target, np.ones(5), 0.5, state=OnlineState(other))


def _replay(network: Network1997, online, seed: int, length: int, learning_rate: float):
    """Learn the first ``length`` symbols of the training stream drawn with ``seed`` in one go."""
    from lstmkit.papers.runner import FIRST_PIECE, LARGEST_PIECE

    rng, pieces, size = np.random.default_rng(seed), [], FIRST_PIECE
    while sum(int(p.lengths[0]) for p in pieces) < length:
        pieces.append(online.piece(rng, size))
        size = min(2 * size, LARGEST_PIECE)
    inputs = torch.cat([p.inputs for p in pieces], 1)[:, :length]
    targets = torch.cat([p.targets for p in pieces], 1)[:, :length]
    outputs = network.learn(inputs[0].numpy(), targets[0].numpy(), np.ones(length), learning_rate)
    return inputs, targets, outputs


def _cerg_module(experiment):
    from lstmkit.papers.experiments import test_set

    level = {"train_steps": 500, "test_steps": 1000}
    setting = experiment.settings["paper"]
    config = TrainConfig(batch_size=1, optimizer="sgd", learning_rate=setting.learning_rate, momentum=0.0,
                         gradient_clip=0.0, loggers=())
    torch.manual_seed(0)
    return PaperModule(build_network(setting, 7, 7), config, experiment, test_set(experiment, level, 0))


def test_a_continual_reber_training_stream_ends_at_the_first_wrong_prediction():
    """The paper setting of the continual Reber grammar learns on Gers et al.'s protocol: a
    training stream, made piece by piece, runs until the first wrong prediction; replaying the
    same stream through a copy of the network shows that prediction wrong and none before."""
    import copy

    from lstmkit.papers.experiments import gers_steps_correct
    from lstmkit.papers.runner import SequenceStream, StreamStart
    from lstmkit.papers.tasks import Batch

    experiment = EXPERIMENTS["continual-reber"]
    module = _cerg_module(experiment)
    stream = SequenceStream(experiment, {}, 0, 10, experiment.online_streams)
    assert isinstance(stream.__getitems__([3]), StreamStart)
    for i in range(300):
        module._learn_stream(stream.__getitems__([i]).rng, None)
    assert module.sequences_seen == 300 and len(module.stream_steps) == 300
    assert len(set(module.stream_steps)) > 2  # each ends where the network first errs, later as it learns
    before = copy.deepcopy(module.network)
    module._learn_stream(np.random.default_rng(11), None)
    length = module.stream_steps[-1]
    inputs, targets, replay = _replay(before, experiment.online_streams, 11, length, module.config.learning_rate)
    ok = gers_steps_correct(torch.from_numpy(replay).unsqueeze(0),
                             Batch(inputs, targets, torch.ones(1, length), torch.tensor([length])))[0]
    assert not ok[-1] and ok[:-1].all()
    torch.testing.assert_close(before.weight, module.network.weight, rtol=0, atol=0)


def test_a_training_stream_can_end_in_a_later_piece():
    """With a looser bound the untrained network's first wrong prediction comes after the first
    piece: the stream still ends exactly there (the stop is checked in every piece)."""
    import copy
    import dataclasses

    from lstmkit.papers.runner import FIRST_PIECE

    paper = EXPERIMENTS["continual-reber"]
    online = dataclasses.replace(paper.online_streams, stop_error=0.8, cap=5000)
    module = _cerg_module(dataclasses.replace(paper, online_streams=online))
    before = copy.deepcopy(module.network)
    module._learn_stream(np.random.default_rng(0), None)
    (length,) = module.stream_steps
    assert 2 * FIRST_PIECE < length < 5000  # past the first two pieces, before the cap
    inputs, targets, replay = _replay(before, online, 0, length, module.config.learning_rate)
    wrong = (np.abs(replay - targets[0].numpy()) >= 0.8).any(-1)
    assert wrong[-1] and not wrong[:-1].any()
    torch.testing.assert_close(before.weight, module.network.weight, rtol=0, atol=0)


def test_a_training_stream_cut_by_the_time_budget_counts_as_one():
    import dataclasses

    from lstmkit.papers.runner import FIRST_PIECE

    class Timer:  # the budget runs out during the first piece
        def time_remaining(self) -> float:
            return -1.0

    paper = EXPERIMENTS["continual-reber"]
    online = dataclasses.replace(paper.online_streams, stop_error=1.0)  # no prediction is wrong
    module = _cerg_module(dataclasses.replace(paper, online_streams=online))
    module._learn_stream(np.random.default_rng(2), Timer())
    (length,) = module.stream_steps
    assert FIRST_PIECE <= length < 2 * FIRST_PIECE + 40 and module.sequences_seen == 1


def test_an_online_protocol_has_no_training_stream_rule():
    import dataclasses

    from lstmkit.papers.experiments import stop_when

    with pytest.raises(ConfigError, match="both online_streams and a train_rule"):
        dataclasses.replace(EXPERIMENTS["continual-reber"], train_rule=stop_when(0.1, 0))


def test_a_training_stream_runs_across_pieces_up_to_its_cap():
    """Where no prediction is wrong (a bound no output reaches) a stream runs to its cap, across
    pieces of growing length, and learns exactly what the whole stream teaches in one go."""
    import copy
    import dataclasses

    paper = EXPERIMENTS["continual-reber"]
    online = dataclasses.replace(paper.online_streams, stop_error=1.0, cap=200)
    experiment = dataclasses.replace(paper, online_streams=online)
    module = _cerg_module(experiment)
    before = copy.deepcopy(module.network)
    module._learn_stream(np.random.default_rng(4), None)
    assert module.stream_steps == [200]  # pieces of at least 16, 32, 64 and 128 symbols, the last one cut
    _replay(before, online, 4, 200, module.config.learning_rate)
    for a, b in zip(before.parameters(), module.network.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_forward_follows_the_forget_gate_and_peephole_equations():
    """Gers et al. 2000 / 2002: one block of one cell with a forget gate and peepholes; the input and
    forget gates see the previous state, the output gate the new one."""
    net = Network1997(1, 1, 1, 1, cell_bias=True, output_bias=True, forget_gate=True, peepholes=True)
    # rows: cell, input gate, output gate, forget gate; columns: input, y_c, y_in, y_out, y_phi (t-1), bias
    w = [[0.5, 0.3, -0.2, 0.1, 0.4, 0.05], [1.0, -0.4, 0.2, 0.3, -0.1, -1.0], [-0.7, 0.6, 0.1, -0.5, 0.2, 0.2],
         [0.3, 0.2, -0.6, 0.1, 0.5, 1.5]]
    peep_in, peep_out, peep_forget = 0.7, -0.9, 0.4
    with torch.no_grad():
        net.weight.copy_(torch.tensor(w, dtype=torch.float64))
        net.peephole.copy_(torch.tensor([[peep_in], [peep_out], [peep_forget]], dtype=torch.float64))
        net.out_weight.copy_(torch.tensor([[1.5, 0.0]], dtype=torch.float64))
        net.out_bias.fill_(-0.3)
    xs = [1.0, -0.5, 0.25]
    y, s, expected = [0.0, 0.0, 0.0, 0.0], 0.0, []
    for x in xs:
        source = [x, *y, 1.0]
        net_c, net_in, net_out, net_phi = (sum(a * b for a, b in zip(row, source)) for row in w)
        y_in, y_phi = _sig(net_in + peep_in * s), _sig(net_phi + peep_forget * s)  # s(t-1)
        s = y_phi * s + y_in * (4 * _sig(net_c) - 2)
        y_out = _sig(net_out + peep_out * s)  # s(t)
        y_c = y_out * (2 * _sig(s) - 1)
        y = [y_c, y_in, y_out, y_phi]
        expected.append(_sig(1.5 * y_c - 0.3))
    out = net(torch.tensor(xs, dtype=torch.float64).view(1, 3, 1))
    torch.testing.assert_close(out.view(-1), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    with torch.no_grad():
        learnt = net.learn(np.array(xs).reshape(3, 1), np.zeros((3, 1)), np.ones(3), learning_rate=0.0)
    np.testing.assert_allclose(learnt.ravel(), expected, rtol=0, atol=1e-12)


def test_forward_with_the_2002_papers_identity_squashing():
    """g and h the identity: the cell adds the gated net input itself, and its output is the output
    gate times the state."""
    net = Network1997(1, 1, 1, 1, cell_bias=True, output_bias=True, forget_gate=True, gate_recurrence=False,
                      g="identity", h="identity")
    # rows: cell, input gate, output gate, forget gate; columns: input, y_c, (gates: absent), bias
    w = [[0.5, 0.3, 0, 0, 0, 0.05], [1.0, -0.4, 0, 0, 0, 0.0], [-0.7, 0.6, 0, 0, 0, 2.0], [0.3, 0.2, 0, 0, 0, -2.0]]
    with torch.no_grad():
        net.weight.copy_(torch.tensor(w, dtype=torch.float64))
        net.out_weight.copy_(torch.tensor([[1.5, 0.0]], dtype=torch.float64))
        net.out_bias.fill_(-0.3)
    xs = [1.0, 0.0, -0.5]
    y_c, s, expected = 0.0, 0.0, []
    for x in xs:
        net_c, net_in, net_out, net_phi = (row[0] * x + row[1] * y_c + row[-1] for row in w)
        s = _sig(net_phi) * s + _sig(net_in) * net_c
        y_c = _sig(net_out) * s
        expected.append(_sig(1.5 * y_c - 0.3))
    out = net(torch.tensor(xs, dtype=torch.float64).view(1, 3, 1))
    torch.testing.assert_close(out.view(-1), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    learnt = net.learn(np.array(xs).reshape(3, 1), np.zeros((3, 1)), np.ones(3), learning_rate=0.0)
    np.testing.assert_allclose(learnt.ravel(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("native", [False, True], ids=["numpy", "native"])
def test_forward_with_the_table_10_captions_squashing(native):
    """g in [-1, 1] and h in [-2, 2] (the reverse of the text's ranges): hand-computed steps."""
    net = Network1997(1, 1, 1, 1, cell_bias=True, gate_recurrence=False, g="[-1,1]", h="[-2,2]")
    # rows: cell, input gate, output gate; columns: input, y_c, (gates: absent), bias
    w = [[0.8, 0.3, 0, 0, 0.1], [1.0, -0.4, 0, 0, -0.5], [-0.7, 0.6, 0, 0, 1.0]]
    with torch.no_grad():
        net.weight.copy_(torch.tensor(w, dtype=torch.float64))
        net.out_weight.copy_(torch.tensor([[1.5, 0.0]], dtype=torch.float64))  # (no input-output connection)
    xs = [1.0, 2.0, -0.5]
    y_c, s, expected = 0.0, 0.0, []
    for x in xs:
        net_c, net_in, net_out = (row[0] * x + row[1] * y_c + row[-1] for row in w)
        s = s + _sig(net_in) * (2 * _sig(net_c) - 1)
        y_c = _sig(net_out) * (4 * _sig(s) - 2)
        expected.append(_sig(1.5 * y_c))
    out = net(torch.tensor(xs, dtype=torch.float64).view(1, 3, 1))
    torch.testing.assert_close(out.view(-1), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    learnt = net.learn(np.array(xs).reshape(3, 1), np.zeros((3, 1)), np.ones(3), learning_rate=0.0, native=native)
    np.testing.assert_allclose(learnt.ravel(), expected, rtol=0, atol=1e-12)


def _truncated_gradient(net: Network1997, x: np.ndarray, target: np.ndarray) -> dict[str, torch.Tensor]:
    """Autograd's truncated gradient of half the squared error at the sequence's last step."""
    net.zero_grad(set_to_none=True)
    logits, _ = net.logits(torch.from_numpy(x).unsqueeze(0), truncated=True)
    (0.5 * ((torch.sigmoid(logits[0, -1]) - torch.from_numpy(target[-1])) ** 2).sum()).backward()
    grads = {name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for name, p in
             net.named_parameters()}
    net.zero_grad(set_to_none=True)
    return grads


def test_momentum_adds_the_previous_weight_change():
    """With momentum m, the change after the second sequence is -lr times its truncated gradient plus
    m times the first change; the previous changes are kept with the network's state."""
    extras = {"forget_gate": True, "peepholes": True, "cell_bias": True, "output_bias": True}
    net, plain = _net(momentum=0.9, **extras), _net(**extras)
    assert not any(name.startswith("velocity") for name in plain.state_dict())
    (x1, t1), (x2, t2) = _sequence(seed=1), _sequence(seed=2)
    mask = np.zeros(len(x1))
    mask[-1] = 1.0
    start = {name: p.detach().clone() for name, p in net.named_parameters()}
    grad1 = _truncated_gradient(net, x1, t1)
    net.learn(x1, t1, mask, learning_rate=0.25)
    first = {name: p.detach() - start[name] for name, p in net.named_parameters()}
    for name in first:  # the first change has no previous one
        torch.testing.assert_close(first[name], -0.25 * grad1[name], rtol=1e-9, atol=1e-12, msg=name)
        torch.testing.assert_close(net.state_dict()[f"velocity_{name}"], first[name], rtol=1e-12, atol=1e-15)
    middle = {name: p.detach().clone() for name, p in net.named_parameters()}
    grad2 = _truncated_gradient(net, x2, t2)
    net.learn(x2, t2, mask, learning_rate=0.25)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach() - middle[name], -0.25 * grad2[name] + 0.9 * first[name], rtol=1e-9,
                                   atol=1e-12, msg=name)
    assert float((net.weight.detach() - middle["weight"] + 0.25 * grad2["weight"]).abs().max()) > 1e-4  # not 0
    with pytest.raises(ConfigError, match=r"momentum must be in \[0, 1\)"):
        Network1997(1, 1, 1, momentum=1.0)
    with pytest.raises(ConfigError, match="only the 1997 network"):
        build_network(dataclasses.replace(EXPERIMENTS["timing-gts"].settings["modern"], momentum=0.9), 1, 1)


def test_the_2002_paper_settings_are_the_published_summarys():
    for key, momentum in (("timing-gts", 0.999), ("timing-msd", 0.99)):
        for name in ("paper", "no-peephole", "no-forget") if key == "timing-gts" else ("paper", "no-peephole"):
            setting = EXPERIMENTS[key].settings[name]
            assert (setting.learning_rate, setting.momentum, setting.init_range) == (1e-5, momentum, 0.1)
            assert (setting.g, setting.h, setting.gate_recurrence, setting.shortcut) == ("identity", "identity",
                                                                                       False, False)
            net = build_network(setting, 1, 1)
            biases = net.weight.detach()[:, -1].tolist()
            assert biases[1:3] == [0.0, 2.0]  # input gate 0, output gate +2 (after the cell)
            assert biases[3:] == ([-2.0] if name != "no-forget" else [])  # forget gate -2
            assert net.momentum == momentum and "momentum" in setting.description


def test_forget_gates_and_peepholes_add_their_weights():
    base = Network1997(7, 7, 4, 2).weight_count()
    # 4 forget gates, each fed by the 7 inputs, the 20 hidden units and a bias; and the 4 forget gates'
    # activations feed the 16 other hidden units (their feeds among themselves are in the first term)
    assert Network1997(7, 7, 4, 2, forget_gate=True).weight_count() == base + 4 * (7 + 20 + 1) + 16 * 4
    # one peephole from each of 8 cells to each of its block's 3 gates
    assert Network1997(7, 7, 4, 2, forget_gate=True, peepholes=True).weight_count() == \
        Network1997(7, 7, 4, 2, forget_gate=True).weight_count() + 3 * 8
    assert Network1997(1, 1, 1, 1, peepholes=True).weight_count() == Network1997(1, 1, 1, 1).weight_count() + 2
    torch.manual_seed(0)
    net = Network1997(7, 7, 4, 2, forget_gate=True, forget_gate_bias=(0.5, 1.0, 1.5, 2.0))
    assert net.weight[-4:, -1].tolist() == [0.5, 1.0, 1.5, 2.0]
    assert torch.all(net.peephole == 0)


def test_learn_with_learning_rate_zero_reproduces_forward():
    net = _net(shortcut=True)
    x, target = _sequence(12)
    outputs = net.learn(x, target, np.ones(len(x)), learning_rate=0.0)
    with torch.no_grad():
        expected = net(torch.from_numpy(x).unsqueeze(0))[0].numpy()
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=1e-12)


def test_weights_change_after_every_step_with_an_error_signal():
    """Online learning: the output at a step is computed with the weights changed at the steps before."""
    net = _net()
    x, target = _sequence(6)
    start = {name: p.detach().clone() for name, p in net.named_parameters()}
    learnt = net.learn(x, target, np.ones(len(x)), learning_rate=1.0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(start[name])
        fixed = net(torch.from_numpy(x).unsqueeze(0))[0].numpy()
    np.testing.assert_allclose(learnt[0], fixed[0], atol=1e-12)  # nothing learnt before the first output
    assert np.abs(learnt[1:] - fixed[1:]).max() > 1e-4


def test_learn_is_quiet_and_finite_where_net_inputs_are_huge():
    import warnings

    net = _net()
    with torch.no_grad():
        net.weight.mul_(1e4)
    x, target = _sequence()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from the sigmoid
        outputs = net.learn(x, target, np.ones(len(x)), learning_rate=0.1)
    assert np.isfinite(outputs).all()


def test_missing_connections_stay_zero_under_learn_and_under_an_optimiser():
    net = _net()  # no cell biases, no shortcut, no output bias
    x, target = _sequence()
    net.learn(x, target, np.ones(len(x)), learning_rate=1.0)
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    logits, _ = net.logits(torch.from_numpy(x).unsqueeze(0))
    ((torch.sigmoid(logits) - torch.from_numpy(target)) ** 2).sum().backward()
    optimizer.step()
    assert torch.all(net.weight[:4, -1] == 0)
    assert torch.all(net.out_weight[:, 4:] == 0) and torch.all(net.out_bias == 0)
    cells_only = _net(gate_recurrence=False)  # only the cells' outputs fed back
    assert torch.any(cells_only.weight[:, 4:8] != 0) and torch.all(cells_only.weight[:, 8:-1] == 0)
    cells_only.learn(x, target, np.ones(len(x)), learning_rate=1.0)
    logits, _ = cells_only.logits(torch.from_numpy(x).unsqueeze(0))
    ((torch.sigmoid(logits) - torch.from_numpy(target)) ** 2).sum().backward()
    torch.optim.SGD(cells_only.parameters(), lr=1.0).step()
    assert torch.all(cells_only.weight[:, 8:-1] == 0) and torch.any(cells_only.weight[:, 4:8] != 0)


def test_without_an_output_gate_the_cell_outputs_h_of_its_state():
    """One cell, no output gate, no recurrence, no biases: y_c = h(s_c), computed here for two steps."""
    net = Network1997(1, 1, 1, 1, output_gate=False, gate_recurrence=False, cell_recurrence=False, gate_bias=False)
    # rows: cell, input gate, output gate; columns: input, y_c(t-1), y_in(t-1), y_out(t-1), bias
    assert net._live.tolist() == [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    with torch.no_grad():
        net.weight[0, 0], net.weight[1, 0] = 0.8, -0.6
        net.out_weight.copy_(torch.tensor([[1.5, 0.0]], dtype=torch.float64))
    s, expected = 0.0, []
    for x in (1.0, -0.5):
        s = s + _sig(-0.6 * x) * (4 * _sig(0.8 * x) - 2)
        expected.append(_sig(1.5 * (2 * _sig(s) - 1)))
    out = net(torch.tensor([1.0, -0.5], dtype=torch.float64).view(1, 2, 1))
    torch.testing.assert_close(out.view(-1), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def test_exp2a_squashing_is_a_logistic_cell_input_and_an_identity_cell_output():
    """g(x) = sigmoid(x) and h(s) = s (the paper's Exp 2a), computed here for three steps of one cell
    with an input gate only; forward and the online learner (at learning rate 0) agree with it."""
    net = Network1997(1, 1, 1, 1, output_gate=False, gate_recurrence=False, cell_recurrence=False, gate_bias=False,
                      g="[0,1]", h="identity")
    with torch.no_grad():
        net.weight[0, 0], net.weight[1, 0] = 0.8, -0.6
        net.out_weight.copy_(torch.tensor([[1.5, 0.0]], dtype=torch.float64))
    s, expected = 0.0, []
    for x in (1.0, -0.5, 2.0):
        s = s + _sig(-0.6 * x) * _sig(0.8 * x)
        expected.append(_sig(1.5 * s))
    inputs = np.array([[1.0], [-0.5], [2.0]])
    out = net(torch.from_numpy(inputs).view(1, 3, 1))
    torch.testing.assert_close(out.view(-1), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    learnt = net.learn(inputs, np.zeros((3, 1)), np.ones(3), learning_rate=0.0)
    np.testing.assert_allclose(learnt[:, 0], expected, rtol=0, atol=1e-12)
    # the state is unbounded: with g and the gate in [0, 1] it only grows, and h passes it on
    state = net.run(torch.ones(1, 500, 1, dtype=torch.float64))[1][1]
    assert state.item() == pytest.approx(500 * _sig(-0.6) * _sig(0.8))


@pytest.mark.parametrize("extras", _CELLS, ids=_IDS)
def test_cells_held_out_leave_a_logistic_regression_of_the_inputs(extras):
    """Sequential network construction: with ``cells_present`` off the network is its input-to-output
    connections alone, in forward and in learn (an online logistic regression, computed here), and
    the cells' weights keep their values until they join."""
    net = _net(**{**extras, "shortcut": True, "output_bias": True})
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    nc = net.n_cells
    x, target = _sequence()
    net.cells_present = False
    w, b = before["out_weight"][:, nc:].numpy().copy(), before["out_bias"].numpy().copy()
    expected = []
    for t in range(len(x)):
        out = 1 / (1 + np.exp(-(w @ x[t] + b)))
        expected.append(out)
        delta = (target[t] - out) * out * (1 - out)
        w, b = w + 0.5 * np.outer(delta, x[t]), b + 0.5 * delta
    static = 1 / (1 + np.exp(-(x @ before["out_weight"][:, nc:].numpy().T + before["out_bias"].numpy())))
    np.testing.assert_allclose(net(torch.from_numpy(x)[None])[0].detach().numpy(), static, rtol=0, atol=1e-12)
    learnt = net.learn(x, target, np.ones(len(x)), learning_rate=0.5)
    np.testing.assert_allclose(learnt, np.stack(expected), rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.out_weight.detach()[:, nc:].numpy(), w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.out_bias.detach().numpy(), b, rtol=0, atol=1e-12)
    for name in ("weight", "peephole"):
        assert torch.equal(getattr(net, name), before[name]), name  # nothing reached the cells
    assert torch.equal(net.out_weight[:, :nc], before["out_weight"][:, :nc])
    # added: the same weights, now with the cells' outputs read again
    net.cells_present = True
    with torch.no_grad():
        net.out_weight[:, nc:], net.out_bias[:] = torch.from_numpy(w), torch.from_numpy(b)
    shortcut_only = 1 / (1 + np.exp(-(x @ w.T + b)))
    assert np.abs(net(torch.from_numpy(x)[None])[0].detach().numpy() - shortcut_only).max() > 1e-3


def test_a_plateau_is_an_error_that_stopped_decreasing():
    from lstmkit.papers.runner import Plateau

    falling = Plateau(window=10, patience=3, tolerance=0.01)
    assert not any(falling.update(0.97 ** (n // 10)) for n in range(1000))  # 3% lower every window
    flat = Plateau(window=10, patience=3, tolerance=0.01)
    stopped = [flat.update(1.0 - 1e-4 * n) for n in range(100)]  # 0.1% lower a window: stopped
    # the first window sets the best; the next three fail to beat it by 1%: stopped at the 40th sequence
    assert stopped.index(True) == 39 and all(stopped[39:])
    # the runner's rule on an error falling as 1/n, whose window k averages about 1/k: a best window k
    # stays the best for 5 more windows once they gain less than 1% on it, 5/k < 0.01, k > 500
    slowing = Plateau()
    at = next(n for n in range(1, 200_000) if slowing.update(100.0 / n))
    assert 45_000 < at < 55_000
    for bad in ({"window": 0}, {"patience": 0}, {"tolerance": 1.0}, {"tolerance": -0.1}):
        with pytest.raises(ConfigError, match="a plateau needs window >= 1, patience >= 1 and 0 <= tolerance < 1"):
            Plateau(**bad)


def test_the_exp2a_paper_row_adds_its_cell_when_the_error_stops_decreasing(monkeypatch):
    """The runner holds the cell out, adds it at the plateau and says when in the row's detail."""
    import lstmkit.papers.runner as runner

    quick = runner.Plateau
    monkeypatch.setattr(runner, "Plateau", lambda: quick(window=5, patience=2, tolerance=0.5))
    experiment = EXPERIMENTS["lag-2a"]
    result = runner.run(experiment, {"p": 10}, "paper", 0, max_sequences=64, max_seconds=60, eval_every=32)
    assert re.search(r"; the cells added after \d+ sequences$", result.evaluation), result.evaluation
    added = int(re.search(r"after (\d+) sequences", result.evaluation).group(1))
    assert 15 <= added <= 64 and added % 5 == 0
    never = runner.run(experiment, {"p": 10}, "paper", 0, max_sequences=2, max_seconds=60, eval_every=2)
    assert never.evaluation.endswith("; the cells never added (the training error kept decreasing)")
    # construction is for the 1997 network only
    config = TrainConfig(max_epochs=1, batch_size=1, optimizer="sgd", learning_rate=0.5, momentum=0.0,
                         lr_schedule="none", gradient_clip=0.0, early_stopping_patience=0, loggers=())
    modern = build_network(dataclasses.replace(experiment.settings["modern"], construct=True), 11, 11)
    with pytest.raises(ConfigError, match="sequential network construction \\(construct=True\\) needs the 1997 "
                                          "network learning whole sequences; 'lag-2a' with a PaperNet does not"):
        PaperModule(modern, config, experiment, None, construct=True)
    # nor on the continual stream protocol, whose streams restart from the reset network
    cerg = EXPERIMENTS["continual-reber"]
    with pytest.raises(ConfigError, match="needs the 1997 network learning whole sequences; 'continual-reber'"):
        PaperModule(build_network(cerg.settings["paper"], 7, 7), config, cerg, None, construct=True)


def test_absent_gates_recurrence_and_biases_stay_absent_under_learn():
    net = _net(output_gate=False, gate_recurrence=False, cell_recurrence=False, gate_bias=False)
    x, target = _sequence()
    net.learn(x, target, np.ones(len(x)), learning_rate=1.0)
    nc, nb = 4, 2
    assert torch.all(net.weight[nc + nb:nc + 2 * nb] == 0)  # no output-gate weights
    assert torch.all(net.weight[:, 4:-1] == 0) and torch.all(net.weight[:, -1] == 0)  # no recurrence, no bias
    assert torch.any(net.weight[:nc + nb, :4] != 0)  # the cells and input gates learnt from the input
    assert net.weight_count() == (nc + nb) * 4 + 3 * nc


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="gate biases are set .* but the network's gates have none"):
        Network1997(4, 3, 2, input_gate_bias=-1.0, gate_bias=False)
    with pytest.raises(ConfigError, match="an output-gate bias \\(-2.0\\) is set but the network has no output gates"):
        Network1997(4, 3, 2, output_gate_bias=-2.0, output_gate=False)
    with pytest.raises(ConfigError, match="input_gate_bias has 3 values but the network has 2 blocks"):
        Network1997(4, 3, 2, input_gate_bias=(-1.0, -2.0, -3.0))
    with pytest.raises(ConfigError, match="blocks must be a positive integer, got 0"):
        Network1997(4, 3, 0)
    with pytest.raises(ConfigError, match="init_range must be > 0"):
        Network1997(4, 3, 1, init_range=0.0)
    with pytest.raises(ConfigError, match="unknown squashing function g='tanh'; expected one of '\\[-2,2\\]', "
                                          "'\\[0,1\\]'"):
        Network1997(4, 3, 1, g="tanh")
    with pytest.raises(ConfigError, match="unknown squashing function h='linear'; expected one of .*'identity'"):
        build_network(Setting("lstm1997", "", 2, "sgd", 0.5, 1, 0.0, h="linear"), 2, 1)
    with pytest.raises(ConfigError, match="a forget-gate bias \\(1.0\\) is set but the network has no forget gates"):
        Network1997(4, 3, 1, forget_gate_bias=1.0)
    setting = Setting("lstm1997", "", 2, "sgd", 0.5, 32, 0.0)
    with pytest.raises(ConfigError, match="batch 1, optimizer 'sgd' and no clipping, got batch 32"):
        build_network(setting, 2, 1)
    with pytest.raises(ConfigError, match="unknown cell 'standard' for the 1997 network"):
        build_network(Setting("lstm1997", "standard", 2, "sgd", 0.5, 1, 0.0), 2, 1)
    with pytest.raises(ConfigError, match="in a paper Setting, cell 'forget' or 'peephole'"):
        build_network(Setting("lstm1997", "", 2, "sgd", 0.5, 1, 0.0, forget_bias=1.0), 2, 1)


def test_the_later_papers_rows_run_the_1997_network_with_their_additions():
    cerg = EXPERIMENTS["continual-reber"].settings
    with_forget = build_network(cerg["paper"], 7, 7)
    assert with_forget.forget_gate and not with_forget.peepholes
    assert with_forget.weight[-4:, -1].tolist() == [0.5, 1.0, 1.5, 2.0]  # forget-gate biases by block
    assert not with_forget.weight[:, 7 + 8:-1].any()  # no gate recurrence: the gates' columns stay zero
    assert not build_network(cerg["no-forget"], 7, 7).forget_gate
    gts = EXPERIMENTS["timing-gts"].settings
    assert build_network(gts["paper"], 1, 1).peepholes and build_network(gts["paper"], 1, 1).forget_gate
    assert not build_network(gts["no-peephole"], 1, 1).peepholes
    assert not build_network(gts["no-forget"], 1, 1).forget_gate


def _fit_1997(tmp_path, net=None, epochs=2):
    """The runner's set-up on the shared engine, 10 sequences of Exp 3a (T = 20) per epoch."""
    from lstmkit.papers.experiments import test_set
    from lstmkit.papers.runner import SequenceStream, StreamSampler, _One
    from lstmkit.train import BatchStream, fit

    experiment, level = EXPERIMENTS["noise-3a"], {"T": 20, "N": 3}
    test = test_set(experiment, level, 0)
    net = net if net is not None else build_network(experiment.settings["paper"], 1, 1)
    config = TrainConfig(max_epochs=epochs, batch_size=1, optimizer="sgd", learning_rate=1.0, momentum=0.0,
                         lr_schedule="none", gradient_clip=0.0, early_stopping_patience=0, loggers=())
    module = PaperModule(net, config, experiment, test)
    train = BatchStream(SequenceStream(experiment, level, 0, 10), 1, False, chunk=4, sampler=StreamSampler(10))
    return module, fit(module, train, BatchStream(_One(), 1, False), tmp_path)


def test_the_nan_guard_stops_a_1997_run(tmp_path):
    net = build_network(EXPERIMENTS["noise-3a"].settings["paper"], 1, 1)
    with torch.no_grad():
        net.out_weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="non-finite"):
        _fit_1997(tmp_path, net)


def test_each_1997_sequence_is_an_optimiser_step_so_checkpoints_are_written(tmp_path):
    module, result = _fit_1997(tmp_path)
    assert result.steps == module.sequences_seen == 20
    assert result.best_checkpoint is not None and result.best_checkpoint.exists()
    assert result.last_checkpoint is not None and result.last_checkpoint.exists()


def test_paper_settings_learn_with_plain_gradient_descent(monkeypatch):
    """The engine's optimiser adds no momentum to the online learner (TrainConfig's SGD default has
    0.9): the 2002 paper's momentum is the network's own (Network1997.momentum)."""
    import lstmkit.papers.runner as runner

    seen = []
    original = runner.fit
    monkeypatch.setattr(runner, "fit", lambda module, *a, **k: seen.append(module.config) or original(module, *a, **k))
    run(EXPERIMENTS["timing-gts"], {"T": 10}, "paper", seed=0, max_sequences=4, max_seconds=30, eval_every=2)
    assert seen and seen[0].optimizer == "sgd" and seen[0].momentum == 0.0


def _always_met(monkeypatch, window: int, passes_from: int = 1) -> tuple[object, list]:
    """Exp 6a with a training-stream rule that holds as soon as the window of ``window`` sequences
    is full, and a test criterion met from its ``passes_from``-th evaluation on; the list records
    the sequences seen at each evaluation."""
    import lstmkit.papers.runner as runner
    from lstmkit.papers.experiments import Evaluation, stop_when

    monkeypatch.setattr(runner, "RECENT", window)
    evaluated: list[int] = []
    modules: list[PaperModule] = []
    original = runner.fit
    monkeypatch.setattr(runner, "fit", lambda module, *a, **k: modules.append(module) or original(module, *a, **k))

    def evaluate(outputs, batch):
        evaluated.append(modules[0].sequences_seen)
        passed = len(evaluated) >= passes_from
        return Evaluation(passed, 0.0 if passed else 1.0, "passed" if passed else "failed")

    experiment = dataclasses.replace(EXPERIMENTS["order-6a"], train_rule=stop_when(None, window), evaluate=evaluate)
    return experiment, evaluated


@pytest.mark.parametrize("setting, window, expected", [("paper", 5, 5), ("modern", 40, 64)])
def test_the_training_stream_rule_stops_a_run_at_the_update_it_first_holds(monkeypatch, setting, window, expected):
    """The papers stop "once" the rule holds: after the update that makes it hold (the 5th sequence
    online, the 2nd mini-batch of 32), not at the next regular test point (every 100 sequences)."""
    experiment, evaluated = _always_met(monkeypatch, window)
    result = run(experiment, {}, setting, seed=0, max_sequences=400, max_seconds=60, eval_every=100)
    assert result.success and result.sequences == expected and evaluated[0] == expected
    assert result.curve == [(expected, 0.0)]


def test_a_rule_that_holds_with_the_test_failing_trains_on_without_testing_after_every_update(monkeypatch):
    """The test set is evaluated when the rule starts to hold, not after every update while it holds:
    a failed test there leaves the run to the regular test points (here: every 20 sequences)."""
    experiment, evaluated = _always_met(monkeypatch, 5, passes_from=2)
    result = run(experiment, {}, "paper", seed=0, max_sequences=100, max_seconds=60, eval_every=20)
    assert evaluated == [5, 20]
    assert result.success and result.sequences == 20


def test_a_paper_run_of_the_1997_network_counts_its_sequences_and_learns():
    """A short run on the shared engine: sequences are counted one by one and the weights move."""
    result = run(EXPERIMENTS["noise-3a"], {"T": 20, "N": 3}, "paper", seed=0, max_sequences=60, max_seconds=30,
                 eval_every=20)
    assert [seen for seen, _ in result.curve] == [20, 40, 60]
    assert result.sequences == 60 and not result.success


def test_the_1997_side_checks_run(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "paper_side_checks.py"
    spec = importlib.util.spec_from_file_location("paper_side_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        module.main(["reber1997", "--budget", "1.5"])
        module.main(["reber1997", "--budget", "0.5", "--targets", "next", "--start", "0.5"])
        module.main(["lag2c1997", "--budget", "0.5", "--g", "[-1,1]", "--h", "[-2,2]"])
        module.main(["lag1997", "--budget", "11", "--output-bias"])
        module.main(["batch", "reber", "--batch", "8", "--budget", "1", "--seeds", "0"])
        out = capsys.readouterr().out
        module.main(["lag1997", "--budget", "2", "--network", "table", "--construct", "--g", "[0,1]", "--h",
                     "identity"])
        held = capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
    assert "10504 weights, g in [0,1], h identity" in held
    assert "before learning: the cell is held out" in held and "after 1 sequence: the cell is held out" in held
    assert "664 weights, g in [-1,1], h in [-2,2], lr 0.01, seed 0" in out
    assert "max err" in out and "last" in out and "middle" in out
    assert "before learning: cell state at the end of an x-sequence" in out and "input-gate bias -1.00" in out
    assert "reber batch 8 lr 0.003 seed 0: " in out and " sequences, " in out


def test_the_learner_benchmark_runs_and_writes_nothing_without_write_doc(capsys):
    """benchmarks/lstm1997_speed.py --quick: a row with a ratio per network, the whole-run line, and no
    write to docs/benchmarks.md (the timings of a quick run mean nothing)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "lstm1997_speed.py"
    spec = importlib.util.spec_from_file_location("lstm1997_speed", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = module.DOC.read_text()
    assert module.main(["--quick"]) == 0
    output = capsys.readouterr().out
    rows = [line for line in output.splitlines() if re.fullmatch(r"\| [\w-]+ \| \d+ \| [\d.]+ \| [\d.]+ \| "
                                                                 r"[\d.]+x \|", line)]
    assert [row.split("|")[1].strip() for row in rows] == [key for key, _ in module.ROWS]
    assert re.search(r"A whole `order-6b` paper run of 200 sequences .* sequences/s with numpy, [\d,]+ with C\+\+ "
                     r"\([\d.]+x\)", output)
    assert module.DOC.read_text() == before

