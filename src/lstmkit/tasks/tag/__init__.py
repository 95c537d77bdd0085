"""Sequence labelling (many-to-many): one tag per step, bidirectional by default.

Inputs are texts (one tag per character), token lists (one tag per token) or numeric series (one
label per time step). The network reads the packed batch with a (bi)LSTM and classifies every
step; padded steps are left out of the loss and of the accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lstmkit.nn as lnn
from lstmkit.data.sequences import IGNORE, BucketSampler, SequenceDataset, pack, unpack
from lstmkit.errors import ConfigError, DataError, ModelFileError, ShapeError
from lstmkit.tasks.base import Estimator, random_split, train_module
from lstmkit.tasks.inputs import SequenceEncoder, input_kind
from lstmkit.train import TaskModule, TrainConfig

__all__ = ["SequenceTagger", "TaggerConfig", "TaggerNet", "DEFAULT_TRAINING"]

DEFAULT_TRAINING = TrainConfig(max_epochs=60, batch_size=32, learning_rate=3e-3, lr_schedule="plateau",
                               early_stopping_patience=8, gradient_clip=1.0)


@dataclass(frozen=True)
class TaggerConfig:
    """The network's structure, saved with the model."""

    kind: str
    vocab_size: int
    channels: int
    n_tags: int
    embedding_dim: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    cell: str
    dropout: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class TaggerNet(nn.Module):
    """``forward(padded, lengths)`` -> per-step tag logits ``(B, T, n_tags)`` (meaningless at padding: the
    output layer's bias)."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0) \
            if config.kind == "tokens" else None
        features = config.embedding_dim if config.kind == "tokens" else config.channels
        self.lstm = lnn.LSTM(features, config.hidden_size, config.num_layers, batch_first=True,
                             dropout=config.dropout if config.num_layers > 1 else 0.0,
                             bidirectional=config.bidirectional, cell=config.cell, kernel="fastest")
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size * (2 if config.bidirectional else 1), config.n_tags)

    def forward(self, padded: Tensor, lengths: Tensor) -> Tensor:
        x = self.embedding(padded) if self.embedding is not None else padded
        out, _ = self.lstm(pack(x, lengths))
        return self.head(self.dropout(unpack(out, total_length=padded.shape[1])))


class TaggerModule(TaskModule):
    """Per-step cross-entropy, padded steps ignored."""

    def step_loss(self, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        padded, lengths, tags = batch
        logits = self.network(padded, lengths)
        return F.cross_entropy(logits.flatten(0, 1), tags.flatten(), ignore_index=IGNORE)

    def validation_metrics(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        padded, lengths, tags = batch
        logits = self.network(padded, lengths)
        real = tags != IGNORE
        return {"val_loss": F.cross_entropy(logits.flatten(0, 1), tags.flatten(), ignore_index=IGNORE),
                "val_accuracy": (logits.argmax(-1)[real] == tags[real]).float().mean()}


class SequenceTagger(Estimator):
    """Tag every step of a sequence with a (bidirectional) LSTM.

    Args:
        cell: the LSTM variant.
        hidden_size: LSTM units per direction.
        num_layers: stacked layers.
        bidirectional: read both ways (the default: a step's tag often depends on what follows).
        embedding_dim: token embedding size.
        dropout: dropout before the output layer (and between stacked layers).
        max_length: the length cap; ``too_long``: ``"error"`` or ``"truncate"``.
        val_fraction: share of the sequences held out for validation.
        training: the engine settings.
        run_dir: where checkpoints and logs go.

    Example:
        >>> texts = ["ab ba", "aa bb"] * 20
        >>> tags = [["A" if c == "a" else "B" if c == "b" else "_" for c in t] for t in texts]
        >>> tagger = SequenceTagger(hidden_size=8, training=TrainConfig(max_epochs=40)).fit(texts, tags)
        >>> tagger.predict(["ba"])
        [['B', 'A']]
    """

    def __init__(self, cell: str = "standard", hidden_size: int = 64, num_layers: int = 1, bidirectional: bool = True,
                 embedding_dim: int = 32, dropout: float = 0.1, max_length: int | None = None,
                 too_long: str = "error", val_fraction: float = 0.1, training: TrainConfig | None = None,
                 run_dir: str | Path | None = None) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.max_length = max_length
        self.too_long = too_long
        self.val_fraction = val_fraction
        self.training = training
        self.run_dir = run_dir

    def _validate(self) -> TrainConfig:
        from lstmkit.nn._checks import check_probability, check_size

        lnn.get_variant(self.cell)
        for name in ("hidden_size", "num_layers", "embedding_dim"):
            check_size(name, getattr(self, name))
        check_probability("dropout", self.dropout, allow_one=False)
        check_probability("val_fraction", self.val_fraction, allow_one=False)
        training = self.training if self.training is not None else DEFAULT_TRAINING
        if not isinstance(training, TrainConfig):
            raise ConfigError(f"training must be a lstmkit.train.TrainConfig, got {type(training).__name__}")
        return training

    def _steps(self, X: Any) -> list[int]:
        """Each input's steps before the length cap (one per character, token or time step)."""
        if self.encoder_.kind in ("text", "tokens"):
            return [len(item) for item in X]
        return [len(a) for a in self.encoder_._arrays(X)]

    def _tag_ids(self, sequences: list[Tensor], tags: Any, steps: list[int]) -> list[Tensor]:
        if len(tags) != len(sequences):
            raise ShapeError(f"{len(sequences)} sequences but {len(tags)} tag sequences; give one per sequence")
        out = []
        for i, (s, t, n) in enumerate(zip(sequences, tags, steps)):
            t = [str(v) for v in t]
            if len(t) != n:
                raise ShapeError(f"sequence {i} has {n} steps but {len(t)} tags; give one tag per "
                                 f"{'character' if self.encoder_.kind == 'text' else 'step'}")
            unseen = sorted(set(t) - set(self.classes_))
            if unseen:
                raise DataError(f"tags {unseen} (sequence {i}) were never seen in training (known: "
                                f"{self.classes_.tolist()}); the model cannot predict them")
            t = t[: len(s)]  # the tags of the steps kept when the sequence was truncated to the cap
            out.append(torch.as_tensor(np.searchsorted(self.classes_, t), dtype=torch.long))
        return out

    def fit(self, X: Any, y: Any) -> SequenceTagger:
        """Train on sequences ``X`` and their per-step tags ``y`` (a list of tag lists)."""
        training = self._validate()
        kind = input_kind(X)
        # texts are tagged per character, so they are read character by character
        self.encoder_ = SequenceEncoder("char", self.max_length, self.too_long).fit(X)
        sequences = self.encoder_.encode(X)
        self.classes_ = np.unique([str(v) for tags in y for v in tags])
        targets = self._tag_ids(sequences, y, self._steps(X))
        train_idx, val_idx = random_split(len(sequences), self.val_fraction, training.seed)
        config = TaggerConfig("tokens" if kind in ("text", "tokens") else "numeric", self.encoder_.vocab_size,
                              self.encoder_.channels, len(self.classes_), self.embedding_dim, self.hidden_size,
                              self.num_layers, self.bidirectional, self.cell, float(self.dropout))
        L.seed_everything(training.seed, verbose=False)
        network = TaggerNet(config)
        train_set = SequenceDataset([sequences[i] for i in train_idx], [targets[i] for i in train_idx])
        val_set = SequenceDataset([sequences[i] for i in val_idx], [targets[i] for i in val_idx]) \
            if len(val_idx) else None
        sampler = BucketSampler(train_set.lengths, training.batch_size, training.seed)
        self.fit_result_ = train_module(TaggerModule(network, training), train_set, val_set, training, self.run_dir,
                                        sampler)
        self.network_ = network.eval()
        return self

    def _logits(self, sequences: list[Tensor], batch_size: int = 256) -> list[Tensor]:
        dataset = SequenceDataset(sequences)
        out: list[Tensor] = []
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                indices = range(start, min(start + batch_size, len(dataset)))
                padded, lengths, _ = dataset.__getitems__(indices)
                logits = self.network_(padded, lengths)
                out += [logits[k, : lengths[k]] for k in range(len(indices))]
        return out

    def predict(self, X: Any) -> list[list[str]]:
        """The most probable tag of every step."""
        self._check_fitted()
        return [self.classes_[row.argmax(-1).numpy()].tolist() for row in self._logits(self.encoder_.encode(X))]

    def score(self, X: Any, y: Any) -> float:
        """Per-step accuracy over all steps."""
        self._check_fitted()
        sequences = self.encoder_.encode(X)
        truth = self._tag_ids(sequences, y, self._steps(X))
        predicted = [row.argmax(-1) for row in self._logits(sequences)]
        correct = sum(int((p == t).sum()) for p, t in zip(predicted, truth))
        return correct / sum(len(t) for t in truth)

    def save(self, path: str | Path) -> Path:
        """A model directory (``config.json`` + ``model.safetensors``), written atomically."""
        from lstmkit import __version__
        from lstmkit.io import save_model_dir

        self._check_fitted()
        params = {k: v for k, v in self.get_params().items() if k not in ("training", "run_dir")}
        config = {"params": params, "training": (self.training or DEFAULT_TRAINING).to_dict(),
                  "network": self.network_.config.to_dict(), "classes": self.classes_.tolist(),
                  "encoder": self.encoder_.to_dict()}
        return save_model_dir(path, "tagger", config, dict(self.network_.state_dict()), __version__)

    @classmethod
    def load(cls, path: str | Path) -> SequenceTagger:
        """Load a model directory written by :meth:`save`; no code in it is run."""
        from lstmkit.io import load_model_dir

        config, tensors = load_model_dir(path, "tagger")
        try:
            model = cls(**config["params"], training=TrainConfig.from_dict(config["training"]))
            network = TaggerNet(TaggerConfig(**config["network"]))
            network.load_state_dict(tensors)
            model.network_ = network.eval()
            model.classes_ = np.asarray(config["classes"])
            model.encoder_ = SequenceEncoder.from_dict(config["encoder"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ModelFileError(f"{path} does not describe a valid tagger ({type(error).__name__}: {error})") from None
        return model
