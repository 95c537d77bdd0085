"""Turning what users pass (texts, token lists, numeric arrays) into sequences of tensors.

:class:`SequenceEncoder` is fitted on the training inputs and saved with a model (as JSON), so
that prediction reads new inputs exactly as training did:

* text (``str``): a tokenizer (characters, words or BPE) maps it to token ids;
* pre-split tokens (``list[str]``): a vocabulary of whole tokens;
* numbers: ``(N, T)`` or ``(N, T, C)`` arrays, a list of ``(T_i, C)`` arrays (unequal lengths),
  or a :class:`~lstmkit.data.ts_format.TsData`; each channel is standardised with the training
  mean and deviation, missing values (NaN) become 0 after that (the mean).

A length cap guards memory: a longer sequence is an error naming it, or is truncated with
``too_long="truncate"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstmkit.data.tokenizers import Tokenizer, VocabularyTokenizer, make_tokenizer, tokenizer_from_dict
from lstmkit.data.ts_format import TsData
from lstmkit.errors import ConfigError, DataError, InputTypeError, ShapeError

__all__ = ["SequenceEncoder", "input_kind"]


def input_kind(inputs: Any) -> str:
    """``"text"``, ``"tokens"`` or ``"numeric"``."""
    if isinstance(inputs, TsData):
        return "numeric"
    if isinstance(inputs, np.ndarray):
        if inputs.dtype.kind in "fiub":
            return "numeric"
        inputs = inputs.tolist()
    if isinstance(inputs, str):
        raise InputTypeError("expected a list of sequences, got a single string; pass [text] for one text")
    if not isinstance(inputs, Sequence) or len(inputs) == 0:
        raise DataError("expected a non-empty list of sequences")
    first = inputs[0]
    if isinstance(first, str):
        return "text"
    if isinstance(first, (list, tuple)) and first and isinstance(first[0], str):
        return "tokens"
    return "numeric"


class SequenceEncoder:
    """Inputs -> list of tensors (``(L,)`` token ids, or ``(L, C)`` standardised values).

    Args:
        tokenizer: ``"char"``, ``"word"`` or ``"bpe"`` for text.
        max_length: the length cap (``None``: no cap).
        too_long: ``"error"`` or ``"truncate"`` (keep the first ``max_length`` steps).
        tokenizer_options: passed to the tokenizer (``min_freq``, ``vocab_size``, ...).
    """

    def __init__(self, tokenizer: str = "word", max_length: int | None = None, too_long: str = "error",
                 **tokenizer_options: Any) -> None:
        if too_long not in ("error", "truncate"):
            raise ConfigError(f"too_long must be 'error' or 'truncate', got {too_long!r}")
        if max_length is not None and max_length < 1:
            raise ConfigError(f"max_length must be >= 1, got {max_length}")
        self.tokenizer_name, self.max_length, self.too_long = tokenizer, max_length, too_long
        self.tokenizer_options = tokenizer_options
        self.kind: str | None = None
        self.tokenizer: Tokenizer | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, inputs: Any) -> SequenceEncoder:
        self.kind = input_kind(inputs)
        if self.kind == "text":
            self.tokenizer = make_tokenizer(self.tokenizer_name, **self.tokenizer_options).fit(list(inputs))
        elif self.kind == "tokens":
            options = {k: v for k, v in self.tokenizer_options.items() if k in ("min_freq", "max_vocab", "unknown")}
            self.tokenizer = VocabularyTokenizer(**options).fit(list(inputs))
        else:
            arrays = self._arrays(inputs)
            stacked = np.concatenate(arrays)
            self.mean = np.nanmean(stacked, axis=0)
            std = np.nanstd(stacked, axis=0)
            self.std = np.where(std > 1e-12, std, 1.0)
        return self

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size if self.tokenizer is not None else 0

    @property
    def channels(self) -> int:
        return 0 if self.mean is None else len(self.mean)

    # -- encoding -----------------------------------------------------------------------------

    def _arrays(self, inputs: Any) -> list[np.ndarray]:
        if isinstance(inputs, TsData):
            inputs = inputs.series
        if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "fiub":
            if inputs.ndim == 2:
                inputs = inputs[:, :, None]
            if inputs.ndim != 3:
                raise ShapeError(f"numeric inputs must be (N, T) or (N, T, C), got shape {inputs.shape}")
            return [np.asarray(a, dtype=np.float64) for a in inputs]
        arrays = []
        for i, item in enumerate(inputs):
            try:
                a = np.asarray(item, dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"sequence {i} is not numeric (got {type(item).__name__}); pass numbers, texts or "
                                "token lists") from None
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2 or len(a) == 0:
                raise ShapeError(f"sequence {i} must be (T,) or (T, C) with T >= 1, got shape {a.shape}")
            if np.isinf(a).any():
                raise DataError(f"sequence {i} has infinite values")
            arrays.append(a)
        return arrays

    def _cap(self, sequence: Tensor, index: int) -> Tensor:
        if self.max_length is None or len(sequence) <= self.max_length:
            return sequence
        if self.too_long == "truncate":
            return sequence[: self.max_length]
        raise DataError(f"sequence {index} has {len(sequence)} steps, over the cap max_length={self.max_length}; "
                        "raise max_length or pass too_long='truncate'")

    def encode(self, inputs: Any) -> list[Tensor]:
        """The tensors of ``inputs`` (which must be of the kind seen in ``fit``)."""
        if self.kind is None:
            raise ConfigError("the encoder is not fitted")
        kind = input_kind(inputs)
        if kind != self.kind:
            raise InputTypeError(f"the model was fitted on {self.kind} inputs but got {kind} inputs")
        out = []
        if kind in ("text", "tokens"):
            assert self.tokenizer is not None
            for i, item in enumerate(inputs):
                ids = self.tokenizer.encode(item)
                if not ids:
                    raise DataError(f"sequence {i} is empty after tokenisation ({item!r})")
                out.append(self._cap(torch.tensor(ids, dtype=torch.long), i))
            return out
        arrays = self._arrays(inputs)
        for i, a in enumerate(arrays):
            if a.shape[1] != self.channels:
                raise ShapeError(f"sequence {i} has {a.shape[1]} channels; the model was fitted on {self.channels}")
            scaled = np.nan_to_num((a - self.mean) / self.std, nan=0.0)
            out.append(self._cap(torch.tensor(scaled, dtype=torch.float32), i))
        return out

    # -- saving -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer_name": self.tokenizer_name, "max_length": self.max_length,
                "too_long": self.too_long, "tokenizer_options": self.tokenizer_options,
                "tokenizer": self.tokenizer.to_dict() if self.tokenizer is not None else None,
                "mean": None if self.mean is None else self.mean.tolist(),
                "std": None if self.std is None else self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceEncoder:
        encoder = cls(data["tokenizer_name"], data["max_length"], data["too_long"], **data["tokenizer_options"])
        encoder.kind = data["kind"]
        if data["tokenizer"] is not None:
            encoder.tokenizer = tokenizer_from_dict(data["tokenizer"])
        if data["mean"] is not None:
            encoder.mean, encoder.std = np.asarray(data["mean"]), np.asarray(data["std"])
        return encoder
