"""Training one run of an experiment on the shared engine, until the paper's criterion or the budget.

The training stream is an endless supply of fresh random sequences (as in the papers), served in
"epochs" of ``eval_every`` sequences so that the test criterion is checked at regular intervals
(where the paper stops on the training stream, as with Exp 4's "the 2000 most recent sequences
were processed correctly", that rule is checked after every update, and the test set evaluated as
soon as it holds); each sequence is drawn from a generator seeded by its index, so a run is
reproducible. Updates are
per sequence (``batch=1``, the papers' online learning) or per mini-batch; the loss on the sigmoid
output units is the papers' summed squared error in their settings and binary cross-entropy for the
0/1 targets of the modern ones.

Where an experiment has an :class:`~lstmkit.papers.experiments.OnlineStreams` protocol (Gers et
al. 2000), its online learners (the 1997 network) do not see whole sequences: each "sequence" is a
training stream that the network learns from the reset state, piece after piece, until its first
wrong prediction (:meth:`PaperModule._learn_stream`).
"""

from __future__ import annotations

import collections
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

import lstmkit.nn as lnn
from lstmkit.errors import ConfigError, TrainingError
from lstmkit.papers.experiments import Evaluation, Experiment, OnlineStreams, Setting, test_set, training_set
from lstmkit.papers.lstm1997 import Network1997, OnlineState
from lstmkit.papers.tasks import Batch, select
from lstmkit.train import BatchStream, TaskModule, TrainConfig, fit

__all__ = ["PaperNet", "RunResult", "build_network", "run"]

RECENT = 2000  # the papers' window of recent training sequences
FIRST_PIECE, LARGEST_PIECE = 16, 4096  # symbols in the pieces of an online training stream
# the cells of the "lstm1997" model: 1997's, with Gers et al. 2000's forget gates, and with their 2002 peepholes too
CELLS_1997 = ("", "forget", "peephole")
# "once the error has stopped decreasing" (Plateau): windows of sequences, and how many of them in a row
# may fail to lower the best window's mean error by the tolerance
PLATEAU_WINDOW, PLATEAU_PATIENCE, PLATEAU_TOLERANCE = 100, 5, 0.01


class PaperNet(nn.Module):
    """A recurrent layer and sigmoid output units at every step."""

    def __init__(self, setting: Setting, inputs: int, outputs: int) -> None:
        super().__init__()
        if setting.model == "lstm":
            variant = lnn.get_variant(setting.cell)
            self.recurrent: nn.Module = lnn.LSTM(
                inputs, setting.hidden, batch_first=True, cell=setting.cell, input_bias=setting.input_bias,
                forget_bias=setting.forget_bias if variant.forget_gate else None)
        elif setting.model == "gru":
            self.recurrent = lnn.GRU(inputs, setting.hidden, batch_first=True)
        else:
            self.recurrent = lnn.RNN(inputs, setting.hidden, batch_first=True)
        self.head = nn.Linear(setting.hidden, outputs)
        # the 1997 networks' input-to-output connections, where a setting has them
        self.shortcut = nn.Linear(inputs, outputs, bias=False) if setting.shortcut else None

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)[0]

    def run(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """The outputs and the final state, starting from ``state`` (a stream fed piece by piece)."""
        logits, state = self.logits(x, state)
        return torch.sigmoid(logits), state

    def logits(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """The output units' net inputs (before the sigmoid) and the final state."""
        out, state = self.recurrent(x, state)
        logits = self.head(out)
        if self.shortcut is not None:
            logits = logits + self.shortcut(x)
        return logits, state


class Plateau:
    """Whether a training error "has stopped decreasing" (the 1997 paper's words for when Exp 2a's
    cell is added; the rule is lstmkit's reading): the mean error of each ``window`` consecutive
    training sequences is compared with the best window so far, and the error has stopped when
    ``patience`` windows in a row were not below the best by a relative ``tolerance`` (the rule of
    ``torch.optim.lr_scheduler.ReduceLROnPlateau`` in its relative mode, on windows of sequences).
    An error falling steadily but slowly has stopped too: once ``patience`` windows gain less than
    ``tolerance`` on the best together."""

    def __init__(self, window: int = PLATEAU_WINDOW, patience: int = PLATEAU_PATIENCE,
                 tolerance: float = PLATEAU_TOLERANCE) -> None:
        if window < 1 or patience < 1 or not 0 <= tolerance < 1:
            raise ConfigError(f"a plateau needs window >= 1, patience >= 1 and 0 <= tolerance < 1, got window "
                              f"{window}, patience {patience}, tolerance {tolerance}")
        self.window, self.patience, self.tolerance = window, patience, tolerance
        self._errors: list[float] = []
        self.best = math.inf
        self.stale = 0  # windows in a row without enough improvement

    def update(self, error: float) -> bool:
        """Record one sequence's training error; ``True`` once the error has stopped decreasing."""
        self._errors.append(error)
        if len(self._errors) == self.window:
            mean = sum(self._errors) / self.window
            self._errors.clear()
            if mean < self.best * (1 - self.tolerance):
                self.best, self.stale = mean, 0
            else:
                self.stale += 1
        return self.stale >= self.patience


class RecentWindow:
    """The most recent ``size`` training sequences, for the papers' training-stream rule: their mean
    error and how many were wrong, kept up to date as each sequence arrives (the rule is checked
    after every update, so it must not cost a pass over the window)."""

    def __init__(self, size: int = RECENT) -> None:
        self.errors: collections.deque[float] = collections.deque(maxlen=size)
        self.correct: collections.deque[bool] = collections.deque(maxlen=size)
        self.total, self.wrong, self._pushed = 0.0, 0, 0

    def push(self, error: float, correct: bool) -> None:
        if self.full:
            self.total -= self.errors[0]
            self.wrong -= not self.correct[0]
        self.errors.append(error)
        self.correct.append(correct)
        self.total += error
        self.wrong += not correct
        self._pushed += 1
        if self._pushed % self.errors.maxlen == 0:  # the running sum, recomputed exactly now and then
            self.total = math.fsum(self.errors)

    @property
    def full(self) -> bool:
        return len(self.errors) == self.errors.maxlen

    @property
    def mean(self) -> float:
        return self.total / max(1, len(self.errors))


def build_network(setting: Setting, inputs: int, outputs: int) -> nn.Module:
    """The setting's network: a :class:`PaperNet`, or the 1997 network (with the later papers' forget
    gates and peepholes, by ``setting.cell``) for ``"lstm1997"``."""
    if setting.model != "lstm1997":
        if setting.momentum:
            raise ConfigError(f"momentum {setting.momentum:g} is set for a {setting.model!r} network; only the "
                              "1997 network's online learner takes it (the optimiser's settings train the others)")
        return PaperNet(setting, inputs, outputs)
    if setting.batch != 1 or setting.optimizer != "sgd" or setting.clip:
        raise ConfigError(f"the 1997 network learns online with plain gradient descent: batch 1, optimizer 'sgd' "
                          f"and no clipping, got batch {setting.batch}, {setting.optimizer!r}, clip {setting.clip}")
    if setting.cell not in CELLS_1997:
        raise ConfigError(f"unknown cell {setting.cell!r} for the 1997 network; expected one of "
                          f"{', '.join(repr(c) for c in CELLS_1997)} (the 1997 cell, with forget gates, and with "
                          "forget gates and peepholes)")
    return Network1997(inputs, outputs, setting.hidden, setting.cells, setting.init_range,
                       input_gate_bias=setting.input_bias, output_gate_bias=setting.output_gate_bias,
                       cell_bias=setting.cell_bias, output_bias=setting.output_unit_bias, shortcut=setting.shortcut,
                       forget_gate=setting.cell in ("forget", "peephole"), forget_gate_bias=setting.forget_bias,
                       peepholes=setting.cell == "peephole", gate_recurrence=setting.gate_recurrence,
                       cell_recurrence=setting.cell_recurrence, gate_bias=setting.gate_bias,
                       output_gate=setting.output_gate, g=setting.g, h=setting.h, momentum=setting.momentum)


@dataclass
class StreamStart:
    """The start of one training stream of an :class:`OnlineStreams` protocol: the generator its
    pieces are drawn from (the stream itself is made as the network learns, piece by piece)."""

    rng: np.random.Generator


class SequenceStream(torch.utils.data.Dataset):
    """Fresh random sequences of an experiment, or random picks from its fixed training set (an
    experiment with ``train_set_size``), or with ``online`` the starts of training streams; a
    batch's sequences are drawn from a generator seeded by the run's seed and the batch's first
    index."""

    def __init__(self, experiment: Experiment, level: dict, seed: int, per_epoch: int,
                 online: OnlineStreams | None = None) -> None:
        self.experiment, self.level, self.seed, self.per_epoch, self.online = experiment, level, seed, per_epoch, online
        self.pool = training_set(experiment, level, seed) if experiment.train_set_size is not None else None

    def __len__(self) -> int:
        return self.per_epoch

    def __getitems__(self, indices: list[int]) -> Batch | StreamStart:
        rng = np.random.default_rng([self.seed, int(indices[0])])
        if self.online is not None:
            return StreamStart(rng)
        if self.pool is not None:
            return select(self.pool, rng.integers(len(self.pool.lengths), size=len(indices)))
        return self.experiment.make(rng, len(indices), self.level)


class StreamSampler:
    """Indices ``epoch * n ... (epoch + 1) * n - 1``: every epoch new sequences, in order."""

    def __init__(self, size: int) -> None:
        self.size, self.epoch = size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.epoch * self.size, (self.epoch + 1) * self.size))

    def __len__(self) -> int:
        return self.size


class PaperModule(TaskModule):
    """The setting's loss at the error-signal steps (the papers': half the summed squared error;
    modern: binary cross-entropy), the test criterion at every validation, and the training-stream
    rule over the recent sequences (always on the squared error, as in the papers)."""

    def __init__(self, network: PaperNet, config: TrainConfig, experiment: Experiment, test: Batch,
                 loss: str = "squared", construct: bool = False) -> None:
        super().__init__(network, config)
        if loss not in ("squared", "cross-entropy"):
            raise ConfigError(f"unknown loss {loss!r}; expected 'squared' or 'cross-entropy'")
        if construct and (not isinstance(network, Network1997) or experiment.online_streams is not None):
            raise ConfigError("sequential network construction (construct=True) needs the 1997 network learning "
                              f"whole sequences; {experiment.key!r} with a {type(network).__name__} does not; "
                              "leave construct out")
        # sequential network construction: the cells join when the training error stops decreasing
        self.plateau = Plateau() if construct else None
        self.cells_added_at: int | None = None
        if construct:
            network.cells_present = False
        self.experiment, self.test, self.loss = experiment, test, loss
        self.recent = RecentWindow(RECENT)
        self.evaluation: Evaluation | None = None
        self.rule_met = False  # the training-stream rule holds after the latest update
        self.sequences_seen = 0
        self.stream_steps: list[int] = []  # the length of each training stream (OnlineStreams protocol)

    def step_loss(self, batch: Batch) -> Tensor:
        logits, _ = self.network.logits(batch.inputs)
        outputs = torch.sigmoid(logits)
        squared = ((outputs - batch.targets) ** 2).sum(-1) * batch.mask  # (B, T)
        if self.training:
            self._record(outputs.detach(), squared.detach(), batch)
        if self.loss == "cross-entropy":
            entropy = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none").sum(-1)
            return (entropy * batch.mask).sum() / len(batch.lengths)
        return 0.5 * squared.sum() / len(batch.lengths)

    def _record(self, outputs: Tensor, squared: Tensor, batch: Batch) -> None:
        """Count the training sequences, and keep their errors for the training-stream rule."""
        self.sequences_seen += len(batch.lengths)
        if self.experiment.correct is not None:
            per_sequence = squared.sum(-1) / batch.mask.sum(-1).clamp_min(1)
            for error, correct in zip(per_sequence.tolist(), self.experiment.correct(outputs, batch).tolist()):
                self.recent.push(error, correct)

    def _rule_stops(self) -> bool:
        """After an update: whether training stops at the paper's criterion now.

        The papers stop training "once" the rule on the recent training sequences holds, so it is
        checked after every update, not only at the regular test points (where it may no longer
        hold, online learning being noisy). When it starts to hold, the test set is evaluated at
        once; the run succeeds if the test criterion is met too, and otherwise trains on (the rule
        must then stop holding and hold again before the next such evaluation)."""
        rule = self.experiment.train_rule
        if rule is None or not self.recent.full:
            return False
        held, self.rule_met = self.rule_met, rule(self.recent.mean, self.recent.wrong)
        if not self.rule_met or held:
            return False
        self.evaluation = self._evaluate()
        if self.evaluation.success:
            self.trainer.should_stop = True  # Lightning ends the epoch after this step; _Stop records the success
        return self.evaluation.success

    def training_step(self, chunk: list[Batch], chunk_idx: int) -> None:
        if not isinstance(self.network, Network1997):
            timer = getattr(self, "_timer", None)
            for batch in chunk:  # one update at a time, so that the rule is checked after each
                super().training_step([batch], chunk_idx)
                if self._rule_stops() or (timer is not None and timer.time_remaining() <= 0):
                    break
            return None
        # the 1997 network changes its weights inside the sequence, after every step (Network1997.learn);
        # each sequence counts as one optimiser step for Lightning (global_step, hence the checkpoints)
        optimizer = self.optimizers()
        timer = getattr(self, "_timer", None)
        for batch in chunk:
            if isinstance(batch, StreamStart):
                optimizer._on_before_step()
                self._learn_stream(batch.rng, timer)
                optimizer._on_after_step()
                if timer is not None and timer.time_remaining() <= 0:
                    break
                continue
            for b in range(len(batch.lengths)):
                steps = int(batch.lengths[b])
                one = Batch(batch.inputs[b:b + 1, :steps], batch.targets[b:b + 1, :steps], batch.mask[b:b + 1, :steps],
                            batch.lengths[b:b + 1])
                optimizer._on_before_step()
                learnt = self.network.learn(one.inputs[0].numpy(), one.targets[0].numpy(), one.mask[0].numpy(),
                                            self.config.learning_rate)
                optimizer._on_after_step()
                if not np.isfinite(learnt).all():
                    raise TrainingError(f"the 1997 network's outputs became non-finite at epoch {self.current_epoch}; "
                                        "lower the learning rate")
                outputs = torch.from_numpy(learnt).to(one.targets.dtype).unsqueeze(0)
                squared = ((outputs - one.targets) ** 2).sum(-1) * one.mask
                self._record(outputs, squared, one)
                loss = 0.5 * squared.sum()
                self._loss_sum = self._loss_sum + loss
                self._loss_count += 1
                if self.plateau is not None and self.plateau.update(float(loss)):
                    self.plateau, self.network.cells_present = None, True
                    self.cells_added_at = self.sequences_seen
                if self._rule_stops():
                    return None
            if timer is not None and timer.time_remaining() <= 0:
                break
        return None

    def _learn_stream(self, rng: np.random.Generator, timer: Any) -> None:
        """One training stream of the experiment's :class:`OnlineStreams` protocol: from the reset
        network, piece after piece of the endless stream, until the first wrong prediction, the
        cap, or the end of the time budget (a stream cut by the budget still counts as one). The
        pieces double in length from a few strings, so that the short streams of an untrained
        network cost only what they use."""
        online = self.experiment.online_streams
        state = OnlineState(self.network)
        squared, size = 0.0, FIRST_PIECE
        while state.steps < online.cap:
            piece = online.piece(rng, size)
            size = min(2 * size, LARGEST_PIECE)
            steps = min(int(piece.lengths[0]), online.cap - state.steps)
            inputs, targets, mask = (t[0, :steps].numpy() for t in (piece.inputs, piece.targets, piece.mask))
            learnt = self.network.learn(inputs, targets, mask, self.config.learning_rate, state=state,
                                        stop_error=online.stop_error)
            if not np.isfinite(learnt).all():
                raise TrainingError(f"the 1997 network's outputs became non-finite at epoch {self.current_epoch}; "
                                    "lower the learning rate")
            errors = (learnt - targets[: len(learnt)]) * mask[: len(learnt), None]
            squared += float((errors ** 2).sum())
            if state.stopped:  # a wrong prediction ends the stream
                break
            if timer is not None and timer.time_remaining() <= 0:
                break
        self.sequences_seen += 1
        self.stream_steps.append(state.steps)
        self._loss_sum = self._loss_sum + 0.5 * squared
        self._loss_count += 1

    def validation_step(self, chunk, chunk_idx: int) -> None:
        self.evaluation = self._evaluate()
        self.log("val_loss", float(self.evaluation.error), batch_size=1)

    def _evaluate(self) -> Evaluation:
        """The test criterion on the network as it is now (in evaluation mode, as Lightning's
        validation runs it)."""
        training = self.network.training
        self.network.eval()
        try:
            if self.experiment.evaluate_network is not None:
                return self.experiment.evaluate_network(self.network, self.test)
            with torch.no_grad():
                return self.experiment.evaluate(self.network(self.test.inputs), self.test)
        finally:
            self.network.train(training)

    @staticmethod
    def batch_size_of(batch: Batch) -> int:
        return len(batch.lengths)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # the chunks of sequences stay as they are on the CPU: Lightning's generic move rebuilds every
        # Batch (a dataclass) field by field, which cost more than the 1997 network's learning of them
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    @property
    def succeeded(self) -> bool:
        passed = self.evaluation is not None and self.evaluation.success
        return passed and (self.experiment.train_rule is None or self.rule_met)


class _Stop(Callback):
    """Stops at the paper's criterion, and records the learning curve."""

    def __init__(self) -> None:
        self.curve: list[tuple[int, float]] = []
        self.success_at: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, module: PaperModule) -> None:
        seen = module.sequences_seen
        if module.evaluation is not None:
            self.curve.append((seen, module.evaluation.error))
        if module.succeeded and self.success_at is None:
            self.success_at = seen
            trainer.should_stop = True


@dataclass
class RunResult:
    """One run: did it meet the paper's criterion, after how many sequences, at what cost."""

    experiment: str
    level: dict
    setting: str
    seed: int
    success: bool
    sequences: int
    seconds: float
    evaluation: str
    curve: list[tuple[int, float]] = field(default_factory=list)
    budget: float = math.inf  # the run's wall-time budget in seconds


def run(experiment: Experiment, level: dict, setting_key: str, seed: int, max_sequences: int, max_seconds: float,
        eval_every: int) -> RunResult:
    """Train one network until the criterion is met or the budget (sequences or seconds) is spent."""
    setting = experiment.settings[setting_key]
    # the online learners follow the paper's stream protocol where the experiment has one
    online = experiment.online_for(setting)
    if online is not None:
        eval_every = min(eval_every, online.eval_every)
    per_epoch = max(setting.batch, eval_every // setting.batch * setting.batch)
    config = TrainConfig(max_epochs=max(1, math.ceil(max_sequences / per_epoch)), batch_size=setting.batch,
                         optimizer=setting.optimizer, learning_rate=setting.learning_rate, momentum=0.0,
                         lr_schedule="none",
                         gradient_clip=setting.clip, early_stopping_patience=0, seed=seed, loggers=(),
                         max_time=max_seconds, num_threads=1)  # tiny networks: a second thread only costs
    test = test_set(experiment, level, seed)
    L.seed_everything(seed, verbose=False)
    network = build_network(setting, test.inputs.shape[-1], test.targets.shape[-1])
    _warm_up(network, test)
    module = PaperModule(network, config, experiment, test, setting.loss, setting.construct)
    stream = SequenceStream(experiment, level, seed, per_epoch, online)
    stop = _Stop()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmkit-paper-") as scratch:
        # updates per sequence (batch 1) or per mini-batch; many of them per Lightning step
        chunk = max(1, 256 // setting.batch)
        train = BatchStream(stream, setting.batch, False, seed, chunk=chunk, sampler=StreamSampler(per_epoch))
        fit(module, train, BatchStream(_One(), 1, False), Path(scratch), callbacks=[stop])
    seconds = time.perf_counter() - start
    evaluation = module.evaluation
    seen = stop.success_at if stop.success_at is not None else (stop.curve[-1][0] if stop.curve else 0)
    detail = evaluation.detail if evaluation is not None else "not evaluated"
    if setting.construct:
        added = module.cells_added_at
        detail += (f"; the cells added after {added:,} sequences" if added is not None
                   else "; the cells never added (the training error kept decreasing)")
    return RunResult(experiment.key, level, setting_key, seed, stop.success_at is not None, seen, seconds, detail,
                     stop.curve, max_seconds)


def _warm_up(network: PaperNet, test: Batch) -> None:
    """One forward and backward pass on two steps, so that a first-use build of the fused kernels
    (about 20 seconds on 2 cores, once per machine) is not charged to the run's time budget."""
    network(test.inputs[:1, :2]).sum().backward()
    network.zero_grad(set_to_none=True)


class _One(torch.utils.data.Dataset):
    """One placeholder item: validation evaluates the module's own test set."""

    def __len__(self) -> int:
        return 1

    def __getitems__(self, indices: list[int]) -> int:
        return 0
