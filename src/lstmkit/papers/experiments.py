"""The experiments' parts: settings, success criteria, training and test data (the experiments
themselves, with the papers' figures, are registered in :mod:`lstmkit.papers.registry`).

A criterion is the paper's, applied to a fixed test set (or, where the paper stops on the
training stream, to the most recent training sequences); nothing here is loosened to make a run
pass. Where lstmkit cannot reproduce a detail of the paper's setup it says so in ``notes`` and the
report prints it.

The 1997 experiments' paper settings use the 1997 network itself
(:class:`lstmkit.papers.lstm1997.Network1997`: memory-cell blocks, a fully connected hidden layer,
the paper's squashing functions, its truncated gradient with weight changes after every step).
Their architectures, initialisations, learning rates and criteria are the paper's, checked against
its text: Section 5 and its summary Tables 10 and 11 (blocks, cells, connectivity, weight count,
initial gate biases, which units carry biases, h, g and the learning rate of every task; test set,
stopping rule and success criterion). ``tests/test_papers_1997.py`` checks every paper setting's
weight count against Table 10. What the paper leaves open (Exp 2a's rule for when the error "has
stopped decreasing") is lstmkit's choice, said so in the experiment's notes.
The Gers et al. 2000 and 2002 rows run the same network and learning rule with those papers'
additions: a forget gate per block, and peepholes from the cells' states to their gates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit.errors import ConfigError
from lstmkit.papers import tasks
from lstmkit.papers.tasks import Batch

__all__ = ["Setting", "Experiment", "Evaluation", "OnlineStreams", "GERS_ERROR", "test_set", "training_set",
           "max_error_below", "reber_steps_correct", "reber_correct", "reber_evaluate", "gers_steps_correct",
           "gers_correct", "continual_evaluate", "continual_evaluate_network", "final_within", "wrong_count",
           "stop_when", "final_max_error_below"]


@dataclass(frozen=True)
class Setting:
    """How a network is built and trained.

    Attributes:
        model: ``"lstm"`` (an :mod:`lstmkit.nn` layer), ``"rnn"`` (Elman, tanh), ``"gru"``, or
            ``"lstm1997"``: the 1997 network of memory-cell blocks, learning online with the
            paper's truncated gradient after every time step
            (:class:`lstmkit.papers.lstm1997.Network1997`; ``batch`` 1 and ``"sgd"`` only).
        cell: the LSTM variant; for ``"lstm1997"``: ``""`` (the 1997 cell), ``"forget"`` (with
            Gers et al. 2000's forget gates) or ``"peephole"`` (forget gates and Gers et al.
            2002's peepholes).
        hidden: recurrent units (the paper's cells); for ``"lstm1997"`` the memory-cell blocks.
        optimizer: ``"sgd"`` (the papers' plain gradient descent) or ``"adam"``.
        learning_rate: the step size.
        batch: sequences per update (1: the papers' online updates).
        clip: gradient-norm clipping (0: none, as in the papers).
        input_bias: initial input-gate bias (the 1997 paper's negative biases); for
            ``"lstm1997"`` one value per block or one for all.
        forget_bias: initial forget-gate bias (variants with a forget gate); for ``"lstm1997"`` one
            value per block or one for all.
        output_gate_bias: ``"lstm1997"`` only: initial output-gate biases, per block or one value.
        cells: ``"lstm1997"`` only: cells per block.
        init_range: ``"lstm1997"`` only: weights start uniform in ``[-init_range, init_range]``.
        cell_bias: ``"lstm1997"`` only: whether the cells have a bias.
        output_unit_bias: ``"lstm1997"`` only: whether the output units have a bias.
        gate_recurrence: ``"lstm1997"`` only: whether the gates' activations are fed back like the
            cells' (the 1997 paper's fully connected hidden layer) or only the cells' outputs.
        cell_recurrence: ``"lstm1997"`` only: whether the cells' outputs are fed back.
        gate_bias: ``"lstm1997"`` only: whether the gates have biases.
        output_gate: ``"lstm1997"`` only: whether the blocks have output gates.
        g: ``"lstm1997"`` only: the cell input's squashing function, one of
            :data:`lstmkit.papers.lstm1997.G_FUNCTIONS` (by its range, or ``"identity"``).
        h: ``"lstm1997"`` only: the cell output's squashing function, one of
            :data:`lstmkit.papers.lstm1997.H_FUNCTIONS`.
        construct: ``"lstm1997"`` only: sequential network construction (the 1997 paper's remedy
            for the abuse problem, used in its Exp 2a): the memory cells start held out of the
            network and are added once the training error has stopped decreasing
            (:class:`lstmkit.papers.runner.Plateau`).
        momentum: ``"lstm1997"`` only: the momentum of the online weight changes (Gers et al.
            2002); 0 is the 1997 and 2000 papers' plain gradient descent.
        label: the row label in the report.
        shortcut: direct input-to-output connections beside the recurrent layer (the 1997
            networks have them; a 1-cell network cannot predict 100 different symbols without).
        loss: ``"squared"`` (the papers' half summed squared error on the sigmoid outputs) or
            ``"cross-entropy"`` (binary cross-entropy of each sigmoid output: what a practitioner
            uses for 0/1 targets; its gradient does not vanish when an output saturates).
    """

    model: str
    cell: str
    hidden: int
    optimizer: str
    learning_rate: float
    batch: int
    clip: float
    input_bias: float | tuple[float, ...] | None = None
    forget_bias: float | tuple[float, ...] | None = None
    label: str = ""
    shortcut: bool = False
    loss: str = "squared"
    output_gate_bias: float | tuple[float, ...] | None = None
    cells: int = 1
    init_range: float = 0.1
    cell_bias: bool = False
    output_unit_bias: bool = False
    gate_recurrence: bool = True
    cell_recurrence: bool = True
    gate_bias: bool = True
    output_gate: bool = True
    g: str = "[-2,2]"
    h: str = "[-1,1]"
    construct: bool = False
    momentum: float = 0.0

    @property
    def description(self) -> str:
        """The row label with the gate-bias initialisation appended (labels never name the biases
        themselves): the report never hides them."""
        parts = [self.label]
        for name, value in (("forget-gate", self.forget_bias), ("input-gate", self.input_bias),
                            ("output-gate", self.output_gate_bias)):
            if isinstance(value, tuple):
                parts.append(f"{name} biases {' '.join(f'{v:+g}' for v in value)}")
            elif value is not None:
                parts.append(f"{name} bias {value:+g}")
        return ", ".join(parts)


@dataclass
class Evaluation:
    """A test of a network: whether it meets the criterion, and the numbers behind it."""

    success: bool
    error: float  # the quantity the criterion bounds (max abs error, fraction wrong, ...)
    detail: str


@dataclass(frozen=True)
class OnlineStreams:
    """Gers et al. 2000's training protocol, for the networks that learn online (``"lstm1997"``):
    the network learns from one endless stream, a weight change after every step; a training stream
    ends at the first wrong prediction (some output ``stop_error`` or more from its target) or after
    ``cap`` symbols, and the next one starts from the reset network. Training streams are what the
    run counts as sequences.

    Attributes:
        piece: ``piece(rng, steps) -> Batch``: the next piece of the endless stream, at least
            ``steps`` symbols (pieces drawn one after another continue it).
        stop_error: an output this far from its target is a wrong prediction.
        cap: the longest training stream, in symbols.
        eval_every: training streams between two tests (the stream lengths grow as the network
            learns, so this is fewer than the other experiments' sequences between tests).
        replaces: the level's settings of the whole-sequence training that this protocol does not
            read (left out of its rows in the report).
    """

    piece: Callable[[np.random.Generator, int], Batch]
    stop_error: float
    cap: int
    eval_every: int
    replaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Experiment:
    """One experiment of a paper.

    Attributes:
        key: the name on the command line.
        title: what it is.
        make: ``make(rng, batch, level) -> Batch`` (its shapes give the network's inputs and outputs).
        evaluate: ``evaluate(outputs, batch) -> Evaluation`` on the test set (outputs are the
            network's sigmoid outputs ``(B, T, O)``).
        test_size: test sequences (the paper's).
        levels: the paper's difficulty settings by profile (``quick``: T = 100 or the smallest).
        paper: the paper's figures, as text, per level.
        settings: ``"paper"`` and ``"modern"`` settings.
        train_rule: for experiments the paper stops on the training stream: a function
            ``rule(mean_error, wrong) -> bool`` of the window of the most recent training sequences
            (their mean error, and how many were wrong); see :func:`stop_when`.
        notes: differences from the paper's setup.
        evaluate_network: where the test set is one long stream, ``evaluate_network(network, test)``
            runs the network over it piece by piece (carrying its state) and may stop at the first
            error; it gives the same result as ``evaluate`` on the whole stream's outputs.
        train_set_size: where the paper trains on a fixed set of sequences (Exp 1: 256), its size:
            training sequences are drawn at random from that set (:func:`training_set`), the test
            sequences are others, and the criterion covers both (:func:`test_set` returns the
            training set followed by the test sequences). ``None``: a fresh stream, as in the
            other experiments.
        online_streams: where the paper's online learners train on one endless stream, reset after
            each error (Gers et al. 2000), that protocol; it applies to the ``"lstm1997"``
            settings (the others learn from whole sequences made by ``make``).
    """

    key: str
    title: str
    make: Callable[[np.random.Generator, int, dict], Batch]
    evaluate: Callable[[Tensor, Batch], Evaluation]
    test_size: int
    levels: dict[str, list[dict]]
    paper: dict[str, str]
    settings: dict[str, Setting]
    correct: Callable[[Tensor, Batch], Tensor] | None = None
    train_rule: Callable[[float, int], bool] | None = None
    notes: str = ""
    evaluate_network: Callable[[nn.Module, Batch], Evaluation] | None = None
    test_make: Callable[[np.random.Generator, dict], Batch] | None = None
    train_set_size: int | None = None
    online_streams: OnlineStreams | None = None

    def online_for(self, setting: Setting) -> OnlineStreams | None:
        """The stream protocol ``setting`` trains with: the experiment's, for the online learners
        (the 1997 network); ``None`` for settings that learn from whole sequences."""
        return self.online_streams if setting.model == "lstm1997" else None

    def level_shown(self, level: dict, setting: Setting) -> dict:
        """``level`` without the settings ``setting``'s training does not read."""
        online = self.online_for(setting)
        return level if online is None else {k: v for k, v in level.items() if k not in online.replaces}

    def __post_init__(self) -> None:
        # the online learners' training streams keep no per-sequence record for a training-stream rule
        if self.online_streams is not None and self.train_rule is not None:
            raise ConfigError(f"experiment {self.key!r} has both online_streams and a train_rule; the stream "
                              "protocol ends on the test criterion alone: drop one of them")


_TEST_SETS: dict[tuple, Batch] = {}
_TRAINING_SETS: dict[tuple, Batch] = {}


def _remember(cache: dict[tuple, Batch], key: tuple, make: Callable[[], Batch]) -> Batch:
    if key not in cache:
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = make()
    return cache[key]


def training_set(experiment: Experiment, level: dict, seed: int) -> Batch:
    """The fixed training set of an experiment with ``train_set_size`` (the same for every setting
    of a seed)."""
    if experiment.train_set_size is None:
        raise ValueError(f"{experiment.key} trains on a fresh stream, not on a fixed set")
    rng = np.random.default_rng([seed, 7_777_777])
    return _remember(_TRAINING_SETS, (experiment.key, repr(sorted(level.items())), seed, experiment.train_set_size),
                     lambda: experiment.make(rng, experiment.train_set_size, level))


def _unseen_test_set(experiment: Experiment, level: dict, seed: int, rng: np.random.Generator) -> Batch:
    """The training set followed by ``test_size`` sequences that are not in it."""
    train = training_set(experiment, level, seed)
    seen = {tasks.sequence_key(train, r) for r in range(len(train.lengths))}
    found: list[Batch] = []
    for _ in range(100 * experiment.test_size):
        if len(found) == experiment.test_size:
            break
        candidate = experiment.make(rng, 1, level)
        key = tasks.sequence_key(candidate, 0)
        if key not in seen:  # (test sequences may repeat among themselves, as in the paper)
            found.append(candidate)
    else:
        raise ConfigError(f"{experiment.key}: found only {len(found)} of {experiment.test_size} test sequences outside "
                          f"the training set of {experiment.train_set_size} in {100 * experiment.test_size} draws; the "
                          "task has too few distinct sequences for a separate test set - lower train_set_size")
    return tasks.stack([train, *found])


def test_set(experiment: Experiment, level: dict, seed: int) -> Batch:
    """The fixed test sequences of an experiment (the same for every setting of a seed, so they are
    made once): ``test_size`` sequences drawn independently of the training stream or, with
    ``train_set_size``, the training set followed by ``test_size`` sequences none of which is in it
    (the paper's protocol: the criterion covers both)."""
    rng = np.random.default_rng([seed, 9_999_991])
    if experiment.train_set_size is not None:
        make = lambda: _unseen_test_set(experiment, level, seed, rng)  # noqa: E731
    elif experiment.test_make is not None:
        make = lambda: experiment.test_make(rng, level)  # noqa: E731
    else:
        make = lambda: experiment.make(rng, experiment.test_size, level)  # noqa: E731
    key = (experiment.key, repr(sorted(level.items())), seed, experiment.test_size, experiment.train_set_size)
    return _remember(_TEST_SETS, key, make)


# -- criteria ---------------------------------------------------------------------------------


def _final(outputs: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
    index = batch.lengths - 1
    rows = torch.arange(len(index))
    return outputs[rows, index], batch.targets[rows, index]


def max_error_below(threshold: float) -> Callable[[Tensor, Batch], Evaluation]:
    def evaluate(outputs: Tensor, batch: Batch) -> Evaluation:
        error = ((outputs - batch.targets).abs() * batch.mask.unsqueeze(-1)).amax().item()
        return Evaluation(error < threshold, error, f"max |error| {error:.3f} (criterion < {threshold})")

    return evaluate


def final_max_error_below(threshold: float) -> Callable[[Tensor, Batch], Evaluation]:
    """The 1997 paper's ABS(threshold) (its Table 11): the absolute error of every output unit at
    each sequence's end below ``threshold``, for every test sequence (Exp 2b, whose random middles
    carry error signals but cannot be predicted)."""

    def evaluate(outputs: Tensor, batch: Batch) -> Evaluation:
        predicted, target = _final(outputs, batch)
        error = (predicted - target).abs().amax().item()
        return Evaluation(error < threshold, error,
                          f"max |error| at the sequence ends {error:.3f} (criterion < {threshold})")

    return evaluate


def reber_steps_correct(outputs: Tensor, batch: Batch) -> Tensor:
    """Per step ``(B, T)``: the possible next symbols are exactly the most active outputs (the
    1997 paper's "the k most active output units", k the number of possible symbols)."""
    k = batch.targets.sum(-1).long()  # (B, T) number of possible next symbols
    order = outputs.argsort(-1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(outputs.shape[-1]).expand_as(order))
    predicted = ranks < k.unsqueeze(-1)  # the k most active outputs
    return (predicted == batch.targets.bool()).all(-1) | (batch.mask == 0)


def reber_correct(outputs: Tensor, batch: Batch) -> Tensor:
    """Per sequence: every step predicted correctly."""
    return reber_steps_correct(outputs, batch).all(-1)


def _consecutive_evaluation(run_length: int, total: int) -> Evaluation:
    # the error on a log scale (1: wrong at once, 0: the whole stream), so that the learning curve
    # shows 10, 100, 1000 ... correct predictions in a row as steps
    return Evaluation(run_length >= total, 1.0 - math.log10(1 + run_length) / math.log10(1 + total),
                      f"{run_length:,} consecutive correct predictions from the start of the test stream "
                      f"(criterion: {total:,})")


GERS_ERROR = 0.49  # Gers et al. 2000 and 2002: a prediction is wrong when an output is this far from its target


def gers_steps_correct(outputs: Tensor, batch: Batch) -> Tensor:
    """Per step ``(B, T)``: every output within 0.49 of its target (Gers et al.'s criterion: each
    possible next symbol's output above 0.51, every other below 0.49)."""
    return ((outputs - batch.targets).abs() < GERS_ERROR).all(-1) | (batch.mask == 0)


def gers_correct(outputs: Tensor, batch: Batch) -> Tensor:
    """Per sequence: every step predicted correctly by Gers et al.'s criterion."""
    return gers_steps_correct(outputs, batch).all(-1)


def continual_evaluate(outputs: Tensor, batch: Batch) -> Evaluation:
    """Gers et al. 2000: the number of correct predictions in a row from the start of one long
    stream; success is the whole stream (10^6 symbols) without an error."""
    ok = gers_steps_correct(outputs, batch)[0]
    wrong = (~ok).nonzero()
    return _consecutive_evaluation(int(wrong[0]) if len(wrong) else len(ok), len(ok))


def continual_evaluate_network(network: nn.Module, batch: Batch, first: int = 1_000,
                                largest: int = 64_000) -> Evaluation:
    """As :func:`continual_evaluate`, running the network piece by piece and stopping at the first
    error. The pieces double from ``first`` to ``largest`` steps, so that a test costs about as
    many steps as the network predicts correctly, not 10^6."""
    total = batch.inputs.shape[1]
    state, done, piece = None, 0, first
    with torch.no_grad():
        while done < total:
            part = Batch(*(t[:, done:done + piece] for t in (batch.inputs, batch.targets, batch.mask)),
                         lengths=batch.lengths)
            outputs, state = network.run(part.inputs, state)
            wrong = (~gers_steps_correct(outputs, part)[0]).nonzero()
            if len(wrong):
                return _consecutive_evaluation(done + int(wrong[0]), total)
            done += part.inputs.shape[1]
            piece = min(2 * piece, largest)
    return _consecutive_evaluation(done, total)


def reber_evaluate(outputs: Tensor, batch: Batch) -> Evaluation:
    ok = reber_correct(outputs, batch)
    wrong = int((~ok).sum())
    return Evaluation(wrong == 0, wrong / len(ok), f"{wrong} of {len(ok)} strings with a wrong prediction")


def final_within(threshold: float) -> Callable[[Tensor, Batch], Tensor]:
    def correct(outputs: Tensor, batch: Batch) -> Tensor:
        predicted, target = _final(outputs, batch)
        return ((predicted - target).abs() < threshold).all(-1)

    return correct


def wrong_count(threshold: float, allowed: int = 0) -> Callable[[Tensor, Batch], Evaluation]:
    correct = final_within(threshold)

    def evaluate(outputs: Tensor, batch: Batch) -> Evaluation:
        ok = correct(outputs, batch)
        wrong = int((~ok).sum())
        predicted, target = _final(outputs, batch)
        mse = float(((predicted - target) ** 2).mean())
        return Evaluation(
            wrong <= allowed, wrong / len(ok), f"{wrong} of {len(ok)} wrong (|error| >= {threshold}), MSE {mse:.4f}"
        )

    return evaluate


def stop_when(max_mse: float | None, max_wrong: int) -> Callable[[float, int], bool]:
    """The papers' training-stream rule, ``rule(mean_error, wrong) -> bool`` on the window of the
    most recent training sequences: their mean squared error below ``max_mse`` (``None``: no
    condition on it) and at most ``max_wrong`` of them wrong. The runner checks it after every
    update, as the papers stop "once" it holds."""

    def rule(mean_error: float, wrong: int) -> bool:
        return (max_mse is None or mean_error < max_mse) and wrong <= max_wrong

    return rule
