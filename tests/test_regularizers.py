"""Statistical checks of every dropout kind: the rate, where masks are locked, eval is clean."""

import math

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.errors import ConfigError
from lstmkit.nn import kernels


def _within(rate: float, p: float, n: int, sigmas: float = 5.0) -> bool:
    return abs(rate - p) <= sigmas * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_between_layer_dropout_rate_and_eval(backend):
    p, hidden = 0.3, 1000
    lstm = lnn.LSTM(3, hidden, num_layers=2, dropout=p)
    x = torch.randn(1, 1, 3)
    with kernels.use_backend(backend):
        lstm(x)[0].sum().backward()
    # with one step and one sequence, column j of the second layer's input weight gets no
    # gradient exactly when feature j of the first layer's output was dropped
    dropped = (lstm.weight_ih_l1.grad == 0).all(dim=0).float().mean().item()
    assert _within(dropped, p, hidden)
    lstm.eval()
    with kernels.use_backend(backend):
        first, second = lstm(x)[0], lstm(x)[0]
    assert torch.equal(first, second)
    clean = lnn.LSTM(3, hidden, num_layers=2)
    clean.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(first, clean(x)[0])


@pytest.mark.parametrize("batch_first", [False, True])
def test_locked_dropout_rate_locked_and_scaled(batch_first):
    p = 0.25
    drop = lnn.LockedDropout(p, batch_first=batch_first)
    x = torch.ones(40, 32, 50)  # (T, B, F) or (B, T, F)
    y = drop(x)
    time_dim = 1 if batch_first else 0
    reference = y.select(time_dim, 0).unsqueeze(time_dim)
    assert torch.equal(y, reference.expand_as(y)), "the mask must be the same at every time step"
    mask = reference != 0
    assert _within(1 - mask.float().mean().item(), p, mask.numel())
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    drop.eval()
    assert torch.equal(drop(x), x)


def test_weight_drop_rate_one_mask_per_sequence_and_eval():
    p = 0.4
    lstm = lnn.weight_drop(lnn.LSTM(3, 64, num_layers=2), p=p)
    used = []
    for name in ("weight_hh_l0", "weight_hh_l1"):
        dropconnect = lstm.parametrizations[name][0]
        dropconnect.register_forward_hook(lambda mod, inp, out: used.append(out.detach().clone()))
    x = torch.randn(30, 4, 3)
    out, _ = lstm(x)
    assert len(used) == 2, "each hidden-to-hidden weight is drawn once per forward pass"
    dropped = torch.cat([(w == 0).flatten() for w in used]).float()
    assert _within(dropped.mean().item(), p, dropped.numel())
    # every step used that one dropped weight: rebuild the layer with it and compare
    plain = lnn.LSTM(3, 64, num_layers=2)
    state = {k.replace("parametrizations.", "").replace(".original", ""): v
             for k, v in lstm.state_dict().items()}
    state["weight_hh_l0"], state["weight_hh_l1"] = used
    plain.load_state_dict(state)
    torch.testing.assert_close(out, plain(x)[0])
    used.clear()
    lstm(x)
    assert not torch.equal(used[0], state["weight_hh_l0"]), "a new mask is drawn for the next pass"
    lstm.eval()
    plain.load_state_dict({**state, "weight_hh_l0": lstm.weight_hh_l0, "weight_hh_l1": lstm.weight_hh_l1})
    torch.testing.assert_close(lstm(x)[0], plain(x)[0])
    assert torch.equal(lstm.weight_hh_l0, lstm.parametrizations.weight_hh_l0.original)


def test_weight_drop_refuses_torch_lstm():
    with pytest.raises(ConfigError, match="lstmkit layer"):
        lnn.weight_drop(torch.nn.LSTM(3, 4))


@pytest.mark.parametrize("cell", ["standard", "peephole"])
def test_zoneout_rate_fresh_masks_and_expectation(cell):
    p = 0.3
    lstm = lnn.LSTM(3, 64, cell=cell, zoneout=lnn.Zoneout(h=p, c=p))
    x = torch.randn(40, 16, 3)
    out, _ = lstm(x)
    kept = (out[1:] == out[:-1]).float()  # a zoned-out unit repeats its previous output exactly
    assert _within(kept.mean().item(), p, kept.numel())
    # fresh mask at every step: a unit is not kept at all steps or at none
    per_unit = kept.mean(dim=0)
    assert per_unit.std().item() < 0.2 and ((per_unit > 0) & (per_unit < 1)).float().mean() > 0.9
    # evaluation uses the expectation p * old + (1 - p) * new, checked against the cell
    lstm.eval()
    cell_module = lnn.LSTMCell(3, 64, cell=cell)
    cell_module.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    h = c = torch.zeros(16, 64)
    expected = []
    for x_t in x:
        h_new, c_new = cell_module(x_t, (h, c))
        h, c = p * h + (1 - p) * h_new, p * c + (1 - p) * c_new
        expected.append(h)
    torch.testing.assert_close(lstm(x)[0], torch.stack(expected))


def test_zoneout_on_gru_uses_h():
    gru = lnn.GRU(3, 32, zoneout=lnn.Zoneout(h=0.5))
    out, _ = gru(torch.randn(30, 8, 3))
    kept = (out[1:] == out[:-1]).float().mean().item()
    assert _within(kept, 0.5, out[1:].numel())
