"""Bad input: each raises a clear lstmkit error naming what was expected and what was received."""

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.errors import ConfigError, InputTypeError, LstmkitError, ShapeError


def test_errors_are_builtin_subclasses():
    assert issubclass(ConfigError, ValueError) and issubclass(ShapeError, ValueError)
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, LstmkitError)


@pytest.mark.parametrize("layer", [lambda: lnn.LSTM(3, 5), lambda: lnn.LSTM(3, 5, cell="cifg"),
                                   lambda: lnn.GRU(3, 5), lambda: lnn.RNN(3, 5)])
def test_wrong_feature_size(layer):
    with pytest.raises(ShapeError, match=r"input_size=3 but the input has 7 features.*\(4, 2, 7\)"):
        layer()(torch.randn(4, 2, 7))


def test_wrong_feature_size_packed_and_cell():
    packed = torch.nn.utils.rnn.pack_sequence([torch.randn(3, 7)])
    with pytest.raises(ShapeError, match="input_size=3 but the input has 7"):
        lnn.LSTM(3, 5)(packed)
    with pytest.raises(ShapeError, match="input_size=3 but the input has 4"):
        lnn.LSTMCell(3, 5, cell="peephole")(torch.randn(2, 4))


def test_wrong_dimensionality():
    with pytest.raises(ShapeError, match=r"\(T, B, I\).*got 4-D"):
        lnn.LSTM(3, 5)(torch.randn(2, 2, 2, 3))
    with pytest.raises(ShapeError, match=r"\(B, T, I\)"):
        lnn.LSTM(3, 5, batch_first=True)(torch.randn(3))
    with pytest.raises(ShapeError, match="no time steps"):
        lnn.LSTM(3, 5)(torch.randn(0, 2, 3))


@pytest.mark.parametrize("h_shape,c_shape,bad", [((1, 2, 4), (1, 2, 5), r"h_0 of shape \(1, 2, 5\), got \(1, 2, 4\)"),
                                                 ((1, 2, 5), (2, 2, 5), r"c_0 of shape \(1, 2, 5\), got \(2, 2, 5\)"),
                                                 ((1, 1, 5), (1, 1, 5), r"h_0 of shape \(1, 2, 5\), got \(1, 1, 5\)")])
def test_wrong_state_shape_is_not_broadcast(h_shape, c_shape, bad):
    with pytest.raises(ShapeError, match=bad):
        lnn.LSTM(3, 5)(torch.randn(4, 2, 3), (torch.zeros(h_shape), torch.zeros(c_shape)))


def test_wrong_state_shape_with_projection_and_unbatched():
    lstm = lnn.LSTM(3, 5, proj_size=2)
    with pytest.raises(ShapeError, match=r"h_0 of shape \(1, 2, 2\), got \(1, 2, 5\)"):
        lstm(torch.randn(4, 2, 3), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5)))
    with pytest.raises(ShapeError, match=r"h_0 of shape \(1, 2\), got \(1, 1, 2\)"):
        lstm(torch.randn(4, 3), (torch.zeros(1, 1, 2), torch.zeros(1, 1, 5)))


def test_state_of_wrong_kind():
    with pytest.raises(InputTypeError, match=r"a tuple \(h_0, c_0\), got Tensor"):
        lnn.LSTM(3, 5)(torch.randn(4, 2, 3), torch.zeros(1, 2, 5))
    with pytest.raises(InputTypeError, match="torch.Tensor"):
        lnn.LSTM(3, 5)([[1.0, 2.0, 3.0]])


def test_mixed_dtypes():
    with pytest.raises(InputTypeError, match=r"torch.float32 parameters but input is torch.float64.*\.to\("):
        lnn.LSTM(3, 5)(torch.randn(4, 2, 3, dtype=torch.float64))
    with pytest.raises(InputTypeError, match="h_0 is torch.float64"):
        lnn.LSTM(3, 5)(torch.randn(4, 2, 3), (torch.zeros(1, 2, 5, dtype=torch.float64), torch.zeros(1, 2, 5)))
    with pytest.raises(InputTypeError, match="float64"):
        lnn.GRUCell(3, 5)(torch.randn(2, 3, dtype=torch.float64))


def test_mixed_devices():
    with pytest.raises(InputTypeError, match="parameters on cpu but input is on meta"):
        lnn.LSTM(3, 5, cell="peephole")(torch.randn(4, 2, 3, device="meta"))
    with pytest.raises(InputTypeError, match="c_0 is on meta"):
        lnn.LSTM(3, 5)(torch.randn(4, 2, 3), (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5, device="meta")))


def test_unknown_cell():
    with pytest.raises(ConfigError, match=r"unknown cell='peep'.*'standard', 'vanilla', 'peephole',"):
        lnn.LSTM(3, 5, cell="peep")
    with pytest.raises(ConfigError, match="unknown cell"):
        lnn.LSTMCell(3, 5, cell="gru")


@pytest.mark.parametrize("kwargs,message", [
    ({"hidden_size": 0}, "hidden_size must be >= 1, got 0"),
    ({"input_size": 0}, "input_size must be >= 1, got 0"),
    ({"input_size": "3"}, "input_size must be an int, got str"),
    ({"num_layers": 0}, "num_layers must be >= 1, got 0"),
    ({"dropout": 1.5}, r"dropout must be a probability in \[0, 1\], got 1.5"),
    ({"dropout": -0.1}, "dropout must be a probability"),
    ({"proj_size": 5}, "proj_size must be smaller than hidden_size=5, got proj_size=5"),
    ({"proj_size": 9}, "proj_size must be smaller than hidden_size=5"),
    ({"proj_size": -1}, "proj_size must be >= 0"),
    ({"bidirectional": 1}, "bidirectional must be True or False"),
    ({"zoneout": 0.1}, "zoneout must be a lstmkit.nn.Zoneout"),
])
def test_invalid_arguments(kwargs, message):
    args = {"input_size": 3, "hidden_size": 5, **kwargs}
    with pytest.raises(ConfigError, match=message):
        lnn.LSTM(**args)


def test_invalid_gate_bias_arguments():
    with pytest.raises(ConfigError, match="cell='vanilla' has gates i, g, o, no 'f'"):
        lnn.LSTM(3, 5, cell="vanilla", forget_bias=1.0)
    with pytest.raises(ConfigError, match="forget gate is 1 - i"):
        lnn.LSTM(3, 5, cell="cifg", forget_bias=1.0)
    with pytest.raises(ConfigError, match="bias=False"):
        lnn.LSTM(3, 5, bias=False, forget_bias=1.0)
    with pytest.raises(ConfigError, match="not both"):
        lnn.LSTM(3, 5, chrono_init=100, forget_bias=1.0)
    with pytest.raises(ConfigError, match="T_max > 2"):
        lnn.LSTM(3, 5, chrono_init=1)
    with pytest.raises(ConfigError, match="no forget gate"):
        lnn.LSTM(3, 5, cell="vanilla", chrono_init=100)
    with pytest.raises(ConfigError, match="finite"):
        lnn.LSTM(3, 5, forget_bias=float("nan"))


def test_invalid_regularizer_arguments():
    with pytest.raises(ConfigError, match=r"p must be a probability in \[0, 1\), got 1"):
        lnn.LockedDropout(1.0)
    with pytest.raises(ConfigError, match="h must be a probability"):
        lnn.Zoneout(h=2)
    with pytest.raises(ConfigError, match="no parameter"):
        lnn.weight_drop(lnn.LSTM(3, 5), names=["weight_hh_l3"])
    with pytest.raises(ConfigError, match="unknown nonlinearity='sigmoid'"):
        lnn.RNN(3, 5, nonlinearity="sigmoid")


def test_stepper_errors():
    with pytest.raises(ConfigError, match="bidirectional layer cannot be stepped"):
        lnn.LSTM(3, 5, bidirectional=True).stepper()
    stepper = lnn.LSTM(3, 5).stepper(batch_size=2)
    with pytest.raises(ShapeError, match=r"one step of shape \(2, 3\), got \(3,\)"):
        stepper.step(torch.randn(3))
    with pytest.raises(ShapeError, match=r"h_0 of shape \(1, 2, 5\)"):
        stepper.reset((torch.zeros(1, 1, 5), torch.zeros(1, 1, 5)))


def test_convlstm_errors():
    with pytest.raises(ConfigError, match="frame_size"):
        lnn.ConvLSTM(1, 4, peephole=True)
    with pytest.raises(ShapeError, match="2 channels, got 3"):
        lnn.ConvLSTM(2, 4)(torch.randn(3, 1, 3, 8, 8))
    with pytest.raises(ShapeError, match=r"built for frames of \(8, 8\) but input has frames of \(6, 6\)"):
        lnn.ConvLSTM(1, 4, peephole=True, frame_size=(8, 8))(torch.randn(3, 1, 1, 6, 6))
    with pytest.raises(ShapeError, match=r"\(T, B, C, Y, X\)"):
        lnn.ConvLSTM(1, 4)(torch.randn(3, 1, 8, 8))
    with pytest.raises(ConfigError, match="hidden_channels has 3 entries but num_layers=2"):
        lnn.ConvLSTM(1, [4, 4, 4], num_layers=2)
