r"""The language-model network (AWD-LSTM style) and its training with truncated BPTT.

Merity, Keskar & Socher (2017) regularise an LSTM language model with pieces that lstmkit has as
separate modules; here they are put together:

* embedding dropout: whole rows of the embedding matrix (words) dropped for a forward pass;
* locked (variational) dropout on the embeddings, between layers and on the output;
* weight drop (DropConnect) on every layer's hidden-to-hidden weights;
* tied weights: the output layer reuses the embedding matrix (the last layer's size is the
  embedding size).

Training reads the text as ``B`` parallel streams cut into segments of ``bptt`` steps, in order;
the state at the end of a segment is the start of the next (detached: gradients stop at the
segment boundary). The state starts from zero at each epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lstmkit.nn as lnn
from lstmkit.train import TaskModule, TrainConfig

__all__ = ["LMConfig", "LanguageModelNet", "LMModule", "SegmentDataset", "batchify"]

State = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class LMConfig:
    """The network's structure and regularisation, saved with the model."""

    vocab_size: int
    embedding_dim: int
    hidden_size: int
    num_layers: int
    cell: str
    tie_weights: bool
    embedding_dropout: float
    input_dropout: float
    hidden_dropout: float
    output_dropout: float
    weight_drop: float
    # the LSTM layers' initial forget-gate bias; None keeps torch's initialisation (files written
    # before the option existed were initialised with 1.0)
    forget_bias: float | None = 1.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class LanguageModelNet(nn.Module):
    """Token ids ``(B, T)`` and an optional state -> next-token logits ``(B, T, V)`` and the new state."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        layers = []
        for k in range(config.num_layers):
            last = k == config.num_layers - 1
            size = config.embedding_dim if (last and config.tie_weights) else config.hidden_size
            has_forget_gate = lnn.get_variant(config.cell).forget_gate
            layer = lnn.LSTM(config.embedding_dim if k == 0 else config.hidden_size, size, batch_first=True,
                             cell=config.cell, forget_bias=config.forget_bias if has_forget_gate else None,
                             kernel="fastest")
            if config.weight_drop > 0:
                lnn.weight_drop(layer, config.weight_drop)
            layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self.input_drop = lnn.LockedDropout(config.input_dropout, batch_first=True)
        self.hidden_drop = lnn.LockedDropout(config.hidden_dropout, batch_first=True)
        self.output_drop = lnn.LockedDropout(config.output_dropout, batch_first=True)
        out = config.embedding_dim if config.tie_weights else config.hidden_size
        self.decoder = nn.Linear(out, config.vocab_size)
        if config.tie_weights:
            # the shared matrix is also the output layer: small (AWD-LSTM's uniform +-0.1), so that
            # the first logits are near zero
            self.decoder.weight = self.embedding.weight
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
        # untied, the embedding keeps torch's N(0, 1), the scale of a one-hot input: with +-0.1 the
        # first layer's gates barely see the input and a character model starts measurably slower.
        # The untied output layer keeps torch's initialisation, its bias included.

    def embed(self, tokens: Tensor) -> Tensor:
        weight = self.embedding.weight
        p = self.config.embedding_dropout
        if self.training and p > 0:
            # drop whole words: one Bernoulli per vocabulary row, for this forward pass
            mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
            weight = weight * mask
        return F.embedding(tokens, weight)

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        x = self.input_drop(self.embed(tokens))
        new_state: State = []
        for k, layer in enumerate(self.layers):
            x, (h, c) = layer(x, None if state is None else state[k])
            new_state.append((h, c))
            x = self.hidden_drop(x) if k < len(self.layers) - 1 else self.output_drop(x)
        return self.decoder(x), new_state


def batchify(ids: Tensor, streams: int) -> Tensor:
    """A 1-D token sequence as ``streams`` parallel rows ``(streams, N // streams)`` (the remainder dropped)."""
    usable = (len(ids) // streams) * streams
    return ids[:usable].view(streams, -1)


class SegmentDataset(torch.utils.data.Dataset):
    """Consecutive segments of parallel streams: item ``i`` is the whole batch ``(inputs, targets)``,
    each ``(streams, bptt)``; targets are the inputs shifted by one step. Read in order."""

    def __init__(self, rows: Tensor, bptt: int) -> None:
        self.rows, self.bptt = rows, bptt
        self.starts = list(range(0, rows.shape[1] - 1, bptt))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        (i,) = indices  # one segment per optimiser step
        start = self.starts[i]
        stop = min(start + self.bptt, self.rows.shape[1] - 1)
        return self.rows[:, start:stop], self.rows[:, start + 1:stop + 1]


class LMModule(TaskModule):
    """Next-token cross-entropy with the state carried from segment to segment (truncated BPTT)."""

    def __init__(self, network: LanguageModelNet, config: TrainConfig) -> None:
        super().__init__(network, config)
        self._state: State | None = None

    def _forward(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        inputs, targets = batch
        logits, state = self.network(inputs, self._state)
        self._state = [(h.detach(), c.detach()) for h, c in state]
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def step_loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        return self._forward(batch)

    def on_train_epoch_start(self) -> None:
        self._state = None

    def on_validation_epoch_start(self) -> None:
        self._train_state, self._state = self._state, None

    def on_validation_epoch_end(self) -> None:
        self._state = getattr(self, "_train_state", None)
        super().on_validation_epoch_end()

    @staticmethod
    def batch_size_of(batch: tuple[Tensor, Tensor]) -> int:
        return int(batch[1].numel())  # tokens, so that epoch means are per token
