"""Variable-length sequences in batches: padding, lengths, bucketing, packing.

A batch of sequences of different lengths is padded to its longest member and carries the true
``lengths``; recurrent layers then read it as a ``PackedSequence`` so that padding is never
computed on and each sequence's final state is taken at its own last step. Losses skip padded
positions (targets there are :data:`IGNORE`). Batching by similar length (bucketing) keeps the
padding small.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit.errors import DataError, ShapeError

__all__ = ["IGNORE", "pad", "pack", "unpack", "SequenceDataset", "BucketSampler", "last_states"]

IGNORE = -100  # target value of padded positions (torch's cross_entropy ignore_index)


def pad(sequences: Sequence[Tensor], value: float = 0) -> tuple[Tensor, Tensor]:
    """Stack ``(L_i, ...)`` tensors into ``(B, max L, ...)`` padded with ``value``; with lengths ``(B,)``.

    Example:
        >>> padded, lengths = pad([torch.tensor([1, 2, 3]), torch.tensor([4])])
        >>> padded.tolist(), lengths.tolist()
        ([[1, 2, 3], [4, 0, 0]], [3, 1])
    """
    if not sequences:
        raise DataError("cannot pad an empty list of sequences")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if (lengths == 0).any():
        raise DataError(f"sequence {int((lengths == 0).nonzero()[0])} of the batch is empty; every sequence needs at "
                        "least one step")
    shape = (len(sequences), int(lengths.max()), *sequences[0].shape[1:])
    out = sequences[0].new_full(shape, value)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out, lengths


def pack(padded: Tensor, lengths: Tensor) -> PackedSequence:
    """``(B, T, ...)`` batch-first padded tensor -> PackedSequence (any order of lengths)."""
    return pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)


def unpack(packed: PackedSequence, total_length: int | None = None) -> Tensor:
    """PackedSequence -> ``(B, T, ...)`` batch-first, zeros at padding, in the original batch order."""
    out, _ = pad_packed_sequence(packed, batch_first=True, total_length=total_length)
    return out


def last_states(h_n: Tensor, num_layers: int, bidirectional: bool) -> Tensor:
    """The top layer's final state of every sequence, both directions concatenated: ``(B, D*P)``.

    With packed input ``h_n`` already holds each sequence's state at its true last step (and, for
    the reverse direction, after reading back to its first step).
    """
    directions = 2 if bidirectional else 1
    top = h_n.view(num_layers, directions, *h_n.shape[1:])[-1]  # (D, B, P)
    return top.transpose(0, 1).reshape(h_n.shape[1], -1)


class SequenceDataset(torch.utils.data.Dataset):
    """Sequences (``(L_i, ...)`` tensors) with one label each, or one label per step.

    A batch (``__getitems__``) is ``(padded, lengths, labels)``: ``labels`` is ``(B,)`` for
    per-sequence labels, or padded ``(B, T)`` with :data:`IGNORE` for per-step labels.

    Args:
        sequences: the inputs.
        labels: per-sequence ``int`` labels, per-step label tensors, or ``None``.
        pad_value: the value padding the inputs.
    """

    def __init__(self, sequences: Sequence[Tensor], labels: Sequence[Any] | Tensor | None = None,
                 pad_value: float = 0) -> None:
        self.sequences = list(sequences)
        self.labels = labels
        self.pad_value = pad_value
        self.per_step = labels is not None and len(labels) > 0 and isinstance(labels[0], Tensor) \
            and labels[0].dim() == 1
        if labels is not None and len(labels) != len(self.sequences):
            raise ShapeError(f"{len(self.sequences)} sequences but {len(labels)} labels; give one label per sequence")
        if self.per_step:
            for i, (s, y) in enumerate(zip(self.sequences, labels)):  # type: ignore[arg-type]
                if len(s) != len(y):
                    raise ShapeError(f"sequence {i} has {len(s)} steps but {len(y)} labels; tagging needs one label "
                                     "per step")
        self.lengths = [len(s) for s in self.sequences]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor, Tensor | None]:
        padded, lengths = pad([self.sequences[i] for i in indices], self.pad_value)
        if self.labels is None:
            return padded, lengths, None
        if self.per_step:
            labels, _ = pad([self.labels[i] for i in indices], IGNORE)  # type: ignore[index]
        else:
            labels = torch.as_tensor([int(self.labels[i]) for i in indices], dtype=torch.long)  # type: ignore[index]
        return padded, lengths, labels

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor | None]:
        return self.__getitems__([index])


class BucketSampler:
    """Shuffled order in which neighbours have similar lengths, so that batches need little padding.

    The indices are shuffled (seeded by ``(seed, epoch)``), cut into pools of ``pool`` batches,
    each pool sorted by length and cut into batches, and the full batches shuffled again (a short
    last batch stays last). As an index sampler it yields a flat order that
    :class:`lstmkit.train.BatchStream` cuts into exactly these batches.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool: int = 50,
                 shuffle: bool = True) -> None:
        self.lengths = torch.as_tensor(list(lengths))
        self.batch_size, self.seed, self.pool, self.shuffle = batch_size, seed, pool, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(torch.argsort(self.lengths, stable=True).tolist())
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator)
        span = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start:start + span]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        short = [b for b in batches if len(b) < self.batch_size]
        full = [b for b in batches if len(b) == self.batch_size]
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()] + short
        return iter(torch.cat(shuffled).tolist() if shuffled else [])

    @property
    def batches(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)
