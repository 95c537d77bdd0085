"""Sequence classification networks: a (bi)LSTM head, and the LSTM-FCN hybrid.

* ``"lstm"``: embedding (for tokens) -> (bidirectional) LSTM over the packed batch -> the final
  states at each sequence's true last step -> linear layer.
* ``"lstm-fcn"`` (Karim et al. 2017): two branches read the same series. The LSTM branch sees it
  "dimension-shuffled" (each channel is one step whose features are the ``T`` values); the fully
  convolutional branch is three Conv1d-BatchNorm-ReLU blocks (128, 256, 128 filters; kernels 8, 5,
  3) and a global average pool over the true length. Their features are concatenated before the
  linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lstmkit.nn as lnn
from lstmkit.data.sequences import last_states, pack
from lstmkit.errors import ConfigError
from lstmkit.train import TaskModule, TrainConfig

__all__ = ["ARCHITECTURES", "ClassifierConfig", "SequenceClassifierNet", "ClassifierEnsemble", "ClassifierModule"]

ARCHITECTURES = ("lstm", "lstm-fcn")


@dataclass(frozen=True)
class ClassifierConfig:
    """The network's structure, saved with the model.

    Attributes:
        kind: ``"tokens"`` (ids through an embedding) or ``"numeric"`` (values).
        vocab_size: token vocabulary size (0 for numeric input).
        channels: input channels for numeric input (0 for tokens).
        n_classes: number of classes.
        architecture: ``"lstm"`` or ``"lstm-fcn"``.
        embedding_dim: token embedding size.
        hidden_size: LSTM units.
        num_layers: stacked LSTM layers (``"lstm"``).
        bidirectional: read both ways (``"lstm"``).
        cell: the LSTM variant.
        dropout: dropout before the output layer (and between stacked layers).
        length: the fixed input length of ``"lstm-fcn"`` (its LSTM reads the ``T`` values as features).
    """

    kind: str
    vocab_size: int
    channels: int
    n_classes: int
    architecture: str
    embedding_dim: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    cell: str
    dropout: float
    length: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class SequenceClassifierNet(nn.Module):
    """Sequences in, class logits out. ``forward(padded, lengths)``: ``padded`` ``(B, T)`` token ids or
    ``(B, T, C)`` values, ``lengths`` ``(B,)``; returns ``(B, n_classes)``."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        if config.architecture not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {config.architecture!r}; expected one of {ARCHITECTURES}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0) \
            if config.kind == "tokens" else None
        features = config.embedding_dim if config.kind == "tokens" else config.channels
        if config.architecture == "lstm":
            self.lstm = lnn.LSTM(features, config.hidden_size, config.num_layers, batch_first=True,
                                 dropout=config.dropout if config.num_layers > 1 else 0.0,
                                 bidirectional=config.bidirectional, cell=config.cell, kernel="fastest")
            width = config.hidden_size * (2 if config.bidirectional else 1)
            self.fcn = None
        else:
            if config.length < 1:
                raise ConfigError("lstm-fcn needs the fixed input length")
            self.lstm = lnn.LSTM(config.length, config.hidden_size, batch_first=True, cell=config.cell,
                                 kernel="fastest")
            blocks = []
            for c_in, c_out, k in ((features, 128, 8), (128, 256, 5), (256, 128, 3)):
                blocks += [nn.Conv1d(c_in, c_out, k, padding="same"), nn.BatchNorm1d(c_out), nn.ReLU()]
            self.fcn = nn.Sequential(*blocks)
            width = config.hidden_size + 128
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(width, config.n_classes)

    def forward(self, padded: Tensor, lengths: Tensor) -> Tensor:
        x = self.embedding(padded) if self.embedding is not None else padded  # (B, T, F)
        if self.fcn is None:
            _, (h_n, _) = self.lstm(pack(x, lengths))
            features = last_states(h_n, self.config.num_layers, self.config.bidirectional)
        else:
            length = self.config.length
            steps = torch.arange(x.shape[1], device=x.device)
            x = x * (steps[None, :, None] < lengths[:, None, None])  # zero any padding
            x = F.pad(x, (0, 0, 0, max(0, length - x.shape[1])))[:, :length]  # (B, L, F)
            _, (h_n, _) = self.lstm(x.transpose(1, 2))  # dimension shuffle: F steps of L values
            conv = self.fcn(x.transpose(1, 2))  # (B, 128, L)
            mask = (torch.arange(length, device=x.device)[None] < lengths.clamp(max=length)[:, None]).float()
            pooled = (conv * mask[:, None]).sum(-1) / mask.sum(-1, keepdim=True)
            features = torch.cat([h_n[-1], pooled], -1)
        return self.head(self.dropout(features))


class ClassifierEnsemble(nn.Module):
    """The mean class probabilities of networks of one structure trained from different seeds."""

    def __init__(self, config: ClassifierConfig, members: int) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(SequenceClassifierNet(config) for _ in range(members))

    def forward(self, padded: Tensor, lengths: Tensor) -> Tensor:
        """Log of the mean probabilities, so that softmax/argmax read it as logits."""
        probabilities = torch.stack([m(padded, lengths).softmax(-1) for m in self.members]).mean(0)
        return probabilities.clamp_min(1e-12).log()


class ClassifierModule(TaskModule):
    """Cross-entropy training of a :class:`SequenceClassifierNet`; logs validation accuracy."""

    def __init__(self, network: SequenceClassifierNet, config: TrainConfig) -> None:
        super().__init__(network, config)

    def step_loss(self, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        padded, lengths, labels = batch
        return F.cross_entropy(self.network(padded, lengths), labels)

    def validation_metrics(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        padded, lengths, labels = batch
        logits = self.network(padded, lengths)
        return {"val_loss": F.cross_entropy(logits, labels),
                "val_accuracy": (logits.argmax(-1) == labels).float().mean()}
