"""The tasks of the LSTM papers, as generators of (inputs, targets, mask) batches.

Hochreiter & Schmidhuber (1997), *Long Short-Term Memory*, experiments 1-6; Gers, Schmidhuber &
Cummins (2000), *Learning to forget*, continual embedded Reber grammar; Gers, Schraudolph &
Schmidhuber (2002), *Learning precise timing*, generating timed spikes and measuring spike delays.
Each generator follows the paper's description; where the paper leaves a detail open (or where
lstmkit could not consult it) the choice is stated in the docstring.

Every task returns float tensors ``inputs`` ``(B, T, I)`` and ``targets`` ``(B, T, O)`` with a
``mask`` ``(B, T)`` of the steps that carry an error signal, padded to the longest sequence of the
batch (``lengths`` ``(B,)``). Randomness comes from a ``numpy.random.Generator`` so that a seed
fixes the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lstmkit.errors import ConfigError

__all__ = ["Batch", "REBER_SYMBOLS", "reber_string", "embedded_reber_string", "embedded_reber",
           "continual_reber", "continual_reber_piece", "long_lag", "two_sequence", "adding", "multiplication",
           "temporal_order", "timed_spikes", "spike_delays"]


@dataclass
class Batch:
    """A padded batch: ``inputs`` ``(B, T, I)``, ``targets`` ``(B, T, O)``, ``mask`` ``(B, T)``
    (1 where an error signal is given) and ``lengths`` ``(B,)``."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    lengths: Tensor


def _pad(inputs: list[np.ndarray], targets: list[np.ndarray], masks: list[np.ndarray]) -> Batch:
    lengths = [len(x) for x in inputs]
    T = max(lengths)
    B = len(inputs)
    x = np.zeros((B, T, inputs[0].shape[1]), dtype=np.float32)
    y = np.zeros((B, T, targets[0].shape[1]), dtype=np.float32)
    m = np.zeros((B, T), dtype=np.float32)
    for b, (xi, yi, mi) in enumerate(zip(inputs, targets, masks)):
        x[b, : len(xi)], y[b, : len(yi)], m[b, : len(mi)] = xi, yi, mi
    return Batch(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m), torch.tensor(lengths))


def _sequence(batch: Batch, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sequence of a padded batch, without its padding: inputs, targets, mask."""
    n = int(batch.lengths[row])
    return batch.inputs[row, :n].numpy(), batch.targets[row, :n].numpy(), batch.mask[row, :n].numpy()


def select(batch: Batch, rows: Iterable[int]) -> Batch:
    """The sequences ``rows`` of a padded batch, padded again to the longest of them."""
    inputs, targets, masks = zip(*(_sequence(batch, int(r)) for r in rows))
    return _pad(list(inputs), list(targets), list(masks))


def stack(batches: Iterable[Batch]) -> Batch:
    """Padded batches as one, in order."""
    inputs, targets, masks = zip(*(_sequence(b, r) for b in batches for r in range(len(b.lengths))))
    return _pad(list(inputs), list(targets), list(masks))


def sequence_key(batch: Batch, row: int) -> bytes:
    """What identifies a sequence of a batch: its inputs without padding (two strings of the
    grammar are the same string exactly when their inputs are equal)."""
    return _sequence(batch, row)[0].tobytes()


def _at_the_end(length: int, outputs: int, unit: int, value: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``(length, outputs)`` and mask ``(length,)`` with the error signal at the last step
    only: ``value`` on output ``unit`` there, zeros everywhere else."""
    y = np.zeros((length, outputs), dtype=np.float32)
    y[-1, unit] = value
    m = np.zeros(length, dtype=np.float32)
    m[-1] = 1
    return y, m


# -- Experiment 1: the embedded Reber grammar --------------------------------------------------

REBER_SYMBOLS = "BTPSXVE"
# the Reber graph: node -> [(symbol, next node)]; node 6 emits E and ends the string
_REBER = {0: [("B", 1)], 1: [("T", 2), ("P", 3)], 2: [("S", 2), ("X", 4)], 3: [("T", 3), ("V", 5)],
          4: [("X", 3), ("S", 6)], 5: [("P", 4), ("V", 6)], 6: [("E", -1)]}


def reber_string(rng: np.random.Generator) -> tuple[str, list[str]]:
    """A Reber string and, after each of its symbols, the set of symbols that may follow."""
    node, symbols, allowed = 0, [], []
    while node != -1:
        options = _REBER[node]
        symbol, node = options[rng.integers(len(options))]
        symbols.append(symbol)
        allowed.append("".join(s for s, _ in _REBER[node]) if node != -1 else "")
    return "".join(symbols), allowed


def embedded_reber_string(rng: np.random.Generator) -> tuple[str, list[str]]:
    """``B c <Reber string> c E`` with ``c`` T or P at random: predicting the second-last symbol
    needs the second one, remembered across the inner string."""
    c = "TP"[rng.integers(2)]
    inner, inner_allowed = reber_string(rng)
    string = "B" + c + inner + c + "E"
    allowed = ["TP", "B"] + inner_allowed[:-1] + [c, "E", ""]
    return string, allowed


_SYMBOL_INDEX = {s: i for i, s in enumerate(REBER_SYMBOLS)}
_ALLOWED_ROWS: dict[str, np.ndarray] = {}


def _allowed_row(allowed: str) -> np.ndarray:
    row = _ALLOWED_ROWS.get(allowed)
    if row is None:
        row = np.zeros(len(REBER_SYMBOLS), dtype=np.float32)
        row[[_SYMBOL_INDEX[s] for s in allowed]] = 1
        _ALLOWED_ROWS[allowed] = row
    return row


def _reber_batch(strings: list[tuple[str, list[str]]]) -> Batch:
    eye = np.eye(len(REBER_SYMBOLS), dtype=np.float32)
    inputs, targets, masks = [], [], []
    for string, allowed in strings:
        steps = len(string) - 1  # the last symbol predicts nothing
        inputs.append(eye[[_SYMBOL_INDEX[s] for s in string[:steps]]])
        targets.append(np.stack([_allowed_row(a) for a in allowed[:steps]]))
        masks.append(np.ones(steps, dtype=np.float32))
    return _pad(inputs, targets, masks)


def embedded_reber(rng: np.random.Generator, batch: int) -> Batch:
    """Exp 1: next-symbol prediction on embedded Reber strings. Targets are the possible next
    symbols (several ones where the grammar branches), one-hot inputs of the 7 symbols."""
    return _reber_batch([embedded_reber_string(rng) for _ in range(batch)])


def _back_to_back(rng: np.random.Generator, at_least: int) -> tuple[str, list[str]]:
    """Embedded Reber strings one after the other, at least ``at_least`` symbols, and the possible
    next symbols after each (after a string's final E the next string's B follows for certain)."""
    parts, allowed, length = [], [], 0
    while length < at_least:
        string, string_allowed = embedded_reber_string(rng)
        parts.append(string)
        allowed += string_allowed[:-1] + ["B"]
        length += len(string)
    return "".join(parts), allowed


def _continual_string(rng: np.random.Generator, steps: int) -> tuple[str, list[str]]:
    string, allowed = _back_to_back(rng, steps + 1)
    return string[: steps + 1], allowed[: steps + 1]


def continual_reber(rng: np.random.Generator, steps: int, batch: int = 1) -> Batch:
    """Gers et al. 2000: embedded Reber strings one after the other with no reset, as streams of
    ``steps`` symbols each. After a string's final E the next string's B follows for certain."""
    return _reber_batch([_continual_string(rng, steps) for _ in range(batch)])


def continual_reber_piece(rng: np.random.Generator, steps: int) -> Batch:
    """The next piece of one endless continual stream: whole embedded Reber strings, at least
    ``steps`` symbols, every symbol an input (the last string's E too, whose next symbol is the B
    that starts the next piece). Pieces drawn one after another form one grammatical stream."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"a piece needs at least one symbol: steps must be an integer >= 1, got {steps!r}")
    string, allowed = _back_to_back(rng, steps)
    return _reber_batch([(string + "B", allowed)])


# -- Experiment 2: noise-free and noisy sequences with long time lags --------------------------


def long_lag(rng: np.random.Generator, batch: int, p: int = 100, variant: str = "a") -> Batch:
    """Exp 2a/2b/2c (the 1997 paper's Section 5.2).

    * ``"a"``: ``(y, a_1, ..., a_{p-1}, y)`` or ``(x, a_1, ..., a_{p-1}, x)``, one-hot over p + 1
      symbols; predict every next symbol (the last one needs the first).
    * ``"b"``: as a, but the middle is a random string over ``a_1 .. a_{p-1}``; every next symbol
      carries an error signal, as in 2a ("again, every next sequence element has to be
      predicted"), although only the last one, x or y, is predictable.
    * ``"c"``: ``b, r``, then q = p distractors, then more distractors until an ``e`` (after each
      distractor another follows with probability 9/10, else the ``e``), then the target ``r``
      (x or y) at the step of ``e``: the paper's generator, whose sequences (with the final symbol)
      are q + 4 long at least and q + 13 on average (the paper's own sum for it,
      ``4 + sum_k 0.1 * 0.9^k (q + k)``, is q + 13; the paper prints q + 14). p + 4 input symbols,
      the distractors drawn from the p symbols ``a_1 .. a_p``; the error signal at the end only.
    """
    inputs, targets, masks = [], [], []
    for _ in range(batch):
        first = rng.integers(2)  # 0: x, 1: y
        if variant in ("a", "b"):
            symbols = p + 1  # a_1 .. a_{p-1}, x, y
            middle = list(range(p - 1)) if variant == "a" else list(rng.integers(0, p - 1, size=p - 1))
            sequence = [p - 1 + first] + middle + [p - 1 + first]
            x = np.eye(symbols, dtype=np.float32)[sequence[:-1]]
            y = np.eye(symbols, dtype=np.float32)[sequence[1:]]
            m = np.ones(len(sequence) - 1, dtype=np.float32)
        else:
            symbols = p + 4  # a_1 .. a_p, b, e, x, y
            b, e, r = p, p + 1, p + 2 + first
            extra = int(rng.geometric(0.1)) - 1  # distractors after the first q: P(k) = 0.1 * 0.9^k
            sequence = [b, r] + list(rng.integers(0, p, size=p + extra)) + [e]
            x = np.eye(symbols, dtype=np.float32)[sequence]
            y, m = _at_the_end(len(sequence), 2, first, 1.0)
        inputs.append(x)
        targets.append(y)
        masks.append(m)
    return _pad(inputs, targets, masks)


# -- Experiment 3: noise and signal on the same channel ---------------------------------------


def two_sequence(rng: np.random.Generator, batch: int, T: int = 100, N: int = 3) -> Batch:
    """Exp 3a (Bengio et al.'s two-sequence problem): the first N inputs are 1.0 (class 1) or -1.0
    (class 2), the others Gaussian noise (mean 0, variance 0.2); the target at the end is 1.0 or 0.0.
    Length T (the paper draws it in [T, T + T/10]; so does this generator)."""
    inputs, targets, masks = [], [], []
    for _ in range(batch):
        length = int(rng.integers(T, T + T // 10 + 1))
        label = rng.integers(2)
        x = rng.normal(0.0, np.sqrt(0.2), size=(length, 1)).astype(np.float32)
        x[:N, 0] = 1.0 if label == 0 else -1.0
        y, m = _at_the_end(length, 1, 0, 1.0 if label == 0 else 0.0)
        inputs.append(x)
        targets.append(y)
        masks.append(m)
    return _pad(inputs, targets, masks)


# -- Experiments 4 and 5: adding and multiplication -------------------------------------------


def _marked(rng: np.random.Generator, T: int, low: float, first_default: float, combine) -> tuple:
    length = int(rng.integers(T, T + T // 10 + 1))
    values = rng.uniform(low, 1.0, size=length).astype(np.float32)
    markers = np.zeros(length, dtype=np.float32)
    markers[0] = markers[-1] = -1.0
    first = int(rng.integers(10))
    second = first
    while second == first:
        second = int(rng.integers(T // 2 - 1))
    markers[first] = markers[second] = 1.0
    # "in the rare case where the first pair of the sequence gets marked" its value counts as the
    # neutral element (0 for the sum, 1 for the product); the second mark may land there too
    x1 = first_default if first == 0 else float(values[first])
    x2 = first_default if second == 0 else float(values[second])
    return np.stack([values, markers], 1), combine(x1, x2)


def adding(rng: np.random.Generator, batch: int, T: int = 100) -> Batch:
    """Exp 4: pairs (value in [-1, 1], marker); one of the first 10 pairs and one of the first
    T/2 - 1 are marked with 1.0, the first and last pair with -1.0; the target at the end is
    0.5 + (X1 + X2) / 4 (X1 = 0 when the first pair is the marked one). Length in [T, 1.1 T]."""
    inputs, targets, masks = [], [], []
    for _ in range(batch):
        x, target = _marked(rng, T, -1.0, 0.0, lambda a, b: 0.5 + (a + b) / 4.0)
        y, m = _at_the_end(len(x), 1, 0, target)
        inputs.append(x)
        targets.append(y)
        masks.append(m)
    return _pad(inputs, targets, masks)


def multiplication(rng: np.random.Generator, batch: int, T: int = 100) -> Batch:
    """Exp 5: as Exp 4 with values in [0, 1] and the target X1 * X2 (X1 = 1 when the first pair is
    the marked one)."""
    inputs, targets, masks = [], [], []
    for _ in range(batch):
        x, target = _marked(rng, T, 0.0, 1.0, lambda a, b: a * b)
        y, m = _at_the_end(len(x), 1, 0, target)
        inputs.append(x)
        targets.append(y)
        masks.append(m)
    return _pad(inputs, targets, masks)


# -- Experiment 6: temporal order ------------------------------------------------------------

_ORDER_SYMBOLS = "EBXYabcd"


def temporal_order(rng: np.random.Generator, batch: int, relevant: int = 2) -> Batch:
    """Exp 6a (``relevant=2``, 4 classes) and 6b (``relevant=3``, 8 classes).

    Length in [100, 110]; E first, B last, the relevant symbols (X or Y) at t1 in [10, 20],
    t2 in [50, 60] (6a) or t1 in [10, 20], t2 in [33, 43], t3 in [66, 76] (6b); every other step a
    distractor a, b, c or d. The target at the end is one-hot over the 2^relevant orders.
    """
    windows = {2: [(10, 20), (50, 60)], 3: [(10, 20), (33, 43), (66, 76)]}[relevant]
    classes = 2 ** relevant
    inputs, targets, masks = [], [], []
    for _ in range(batch):
        length = int(rng.integers(100, 111))
        sequence = list(rng.integers(4, 8, size=length))
        sequence[0], sequence[-1] = 0, 1
        label = 0
        for low, high in windows:
            symbol = int(rng.integers(2))  # 0: X, 1: Y
            sequence[int(rng.integers(low, high + 1))] = 2 + symbol
            label = 2 * label + symbol
        x = np.eye(len(_ORDER_SYMBOLS), dtype=np.float32)[sequence]
        y, m = _at_the_end(length, classes, label, 1.0)
        inputs.append(x)
        targets.append(y)
        masks.append(m)
    return _pad(inputs, targets, masks)


# -- Gers, Schraudolph & Schmidhuber 2002: timing -----------------------------------------------


def timed_spikes(rng: np.random.Generator, batch: int, T: int = 10, spikes: int = 10) -> Batch:
    """GTS, generating timed spikes: a single input spike at step 0, then nothing; the output must
    spike (target 1) at steps T, 2T, ..., ``spikes`` * T and stay at 0 everywhere else, so the network
    has to count time by itself, with no external reset or teacher forcing. Every step carries an
    error signal. (The sequences are all alike: ``rng`` is unused.)"""
    length = spikes * T + 1
    x = np.zeros((batch, length, 1), dtype=np.float32)
    x[:, 0, 0] = 1.0
    y = np.zeros((batch, length, 1), dtype=np.float32)
    y[:, T::T, 0] = 1.0
    m = np.ones((batch, length), dtype=np.float32)
    return Batch(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m), torch.full((batch,), length))


def spike_delays(rng: np.random.Generator, batch: int, intervals: tuple[int, ...] = (49, 50),
                 spikes: int = 4) -> Batch:
    """MSD, measuring spike delays: a train of ``spikes`` input spikes ``T`` steps apart, ``T`` drawn
    per sequence from ``intervals``, the first spike after a random offset in ``[0, T)``; at every
    spike from the second on, the output must report the interval, scaled to
    ``(T - min) / (max - min)`` (0 or 1 for two intervals: telling 49 from 50 steps). The error
    signal is given at those spikes only."""
    low, high = min(intervals), max(intervals)
    inputs, targets, masks = [], [], []
    for _ in range(batch):
        T = int(intervals[rng.integers(len(intervals))])
        offset = int(rng.integers(T))
        times = offset + T * np.arange(spikes)
        length = int(times[-1]) + 1
        x = np.zeros((length, 1), dtype=np.float32)
        x[times, 0] = 1.0
        y = np.zeros((length, 1), dtype=np.float32)
        y[times[1:], 0] = (T - low) / (high - low) if high > low else 1.0
        m = np.zeros(length, dtype=np.float32)
        m[times[1:]] = 1
        inputs.append(x)
        targets.append(y)
        masks.append(m)
    return _pad(inputs, targets, masks)
