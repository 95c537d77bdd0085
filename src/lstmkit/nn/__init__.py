"""The LSTM family as PyTorch modules.

Cells compute one time step (:mod:`lstmkit.nn.cells`); sequence layers own the time loop,
directions, stacking, lengths and state (:mod:`lstmkit.nn.rnn`); the loop runs in a backend
chosen by :mod:`lstmkit.nn.kernels`. Regularisers are separate pieces
(:mod:`lstmkit.nn.regularizers`), gate-bias initialisation is in :mod:`lstmkit.nn.init`.
"""

from lstmkit.nn import init, kernels
from lstmkit.nn.cells import VARIANTS, GRUCell, LSTMCell, RNNCell, Variant, get_variant
from lstmkit.nn.convlstm import ConvLSTM, ConvLSTMCell
from lstmkit.nn.regularizers import DropConnect, LockedDropout, Zoneout, weight_drop
from lstmkit.nn.rnn import GRU, LSTM, RNN, RecurrentLayer
from lstmkit.nn.streaming import Stepper

__all__ = [
    "LSTM",
    "GRU",
    "RNN",
    "RecurrentLayer",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "ConvLSTM",
    "ConvLSTMCell",
    "LockedDropout",
    "DropConnect",
    "weight_drop",
    "Zoneout",
    "Stepper",
    "Variant",
    "VARIANTS",
    "get_variant",
    "init",
    "kernels",
]
