"""ConvLSTM: with 1x1 kernels it is an LSTM applied at every pixel, which pins down its math."""

import pytest
import torch

import lstmkit.nn as lnn


@pytest.mark.parametrize("peephole", [False, True])
def test_1x1_convlstm_is_a_per_pixel_lstm(peephole):
    conv = lnn.ConvLSTM(3, 5, kernel_size=1, peephole=peephole, frame_size=(1, 1), dtype=torch.float64)
    cell = conv.cells[0]
    if peephole:
        torch.nn.init.uniform_(cell.weight_ch, -1, 1)
    lstm = lnn.LSTM(3, 5, cell="peephole" if peephole else "standard", dtype=torch.float64)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(cell.weight_ih[:, :, 0, 0])
        lstm.weight_hh_l0.copy_(cell.weight_hh[:, :, 0, 0])
        lstm.bias_ih_l0.copy_(cell.bias)
        lstm.bias_hh_l0.zero_()
        if peephole:
            lstm.weight_ch_l0.copy_(cell.weight_ch[:, :, 0, 0])
    x = torch.randn(7, 4, 3, dtype=torch.float64)
    out, [(h, c)] = conv(x[..., None, None])
    expected, (h_ref, c_ref) = lstm(x)
    torch.testing.assert_close(out[..., 0, 0], expected)
    torch.testing.assert_close(h[..., 0, 0], h_ref[0])
    torch.testing.assert_close(c[..., 0, 0], c_ref[0])


def test_stacked_batch_first_and_given_state():
    conv = lnn.ConvLSTM(2, [4, 3], kernel_size=[3, (1, 3)], batch_first=True)
    x = torch.randn(2, 6, 2, 5, 7)
    out, states = conv(x)
    assert out.shape == (2, 6, 3, 5, 7)
    assert [s[0].shape for s in states] == [(2, 4, 5, 7), (2, 3, 5, 7)]
    torch.testing.assert_close(out[:, -1], states[-1][0])
    # running the two halves with the state carried gives the whole
    first, mid = conv(x[:, :3])
    second, last = conv(x[:, 3:], mid)
    torch.testing.assert_close(torch.cat([first, second], 1), out)
    torch.testing.assert_close(last[0][1], states[0][1])


def test_cell_matches_layer_step():
    conv = lnn.ConvLSTM(2, 4, kernel_size=3)
    x = torch.randn(3, 2, 2, 6, 6)
    out, _ = conv(x)
    state = None
    for t in range(3):
        state = conv.cells[0](x[t], state)
    torch.testing.assert_close(state[0], out[-1])
