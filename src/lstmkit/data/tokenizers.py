"""Tokenizers: characters and words built in, subword BPE through the ``tokenizers`` library.

Every tokenizer maps text to integer ids and back, reserves ``<pad>`` (id 0) and ``<unk>`` (id 1),
and saves to a JSON-serialisable dict (stored in a model's ``config.json``; nothing is pickled).
Text outside the vocabulary becomes ``<unk>`` with ``unknown="replace"`` (the default for
classification and tagging) or raises a :class:`~lstmkit.errors.DataError` naming the first
unknown piece and its position with ``unknown="error"`` (the default for a generation prompt).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from lstmkit.errors import ConfigError, DataError, ModelFileError

__all__ = ["PAD", "UNK", "Tokenizer", "CharTokenizer", "WordTokenizer", "VocabularyTokenizer", "BPETokenizer",
           "tokenizer_from_dict", "make_tokenizer", "TOKENIZERS"]

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class Tokenizer:
    """The interface: ``fit``, ``encode``, ``decode``, ``vocab_size``, ``to_dict``."""

    kind = "abstract"
    pad_id, unk_id = PAD_ID, UNK_ID

    def __init__(self, unknown: str = "replace") -> None:
        if unknown not in ("replace", "error"):
            raise ConfigError(f"unknown must be 'replace' or 'error', got {unknown!r}")
        self.unknown = unknown

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        raise NotImplementedError

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if self.vocab_size <= 2:
            raise ConfigError(f"the {self.kind} tokenizer has no vocabulary yet; call fit(texts) first")


class _VocabTokenizer(Tokenizer):
    """A tokenizer with an explicit piece -> id table (characters or words)."""

    def __init__(self, min_freq: int = 1, max_vocab: int | None = None, unknown: str = "replace") -> None:
        super().__init__(unknown)
        if min_freq < 1:
            raise ConfigError(f"min_freq must be >= 1, got {min_freq}")
        if max_vocab is not None and max_vocab < 3:
            raise ConfigError(f"max_vocab must be >= 3 (two ids are reserved), got {max_vocab}")
        self.min_freq, self.max_vocab = min_freq, max_vocab
        self.pieces: list[str] = [PAD, UNK]
        self._index: dict[str, int] = {PAD: PAD_ID, UNK: UNK_ID}

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def split(self, text: str) -> list[tuple[str, int]]:
        """The pieces of ``text`` with their character offsets."""
        raise NotImplementedError

    def fit(self, texts: Iterable[str]) -> _VocabTokenizer:
        """Build the vocabulary: pieces seen at least ``min_freq`` times, most frequent first
        (ties in code-point order, so that the same texts always give the same ids)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(piece for piece, _ in self.split(text))
        kept = sorted((p for p, n in counts.items() if n >= self.min_freq), key=lambda p: (-counts[p], p))
        if self.max_vocab is not None:
            kept = kept[: self.max_vocab - 2]
        if not kept:
            raise DataError("the texts are empty: there is nothing to build a vocabulary from")
        self.pieces = [PAD, UNK, *kept]
        self._index = {p: i for i, p in enumerate(self.pieces)}
        return self

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        """Ids of the pieces of ``text``; unknown pieces as ``<unk>`` or an error (see module docs)."""
        self._check_fitted()
        mode = unknown or self.unknown
        ids = []
        for piece, offset in self.split(text):
            index = self._index.get(piece)
            if index is None:
                if mode == "error":
                    raise DataError(f"{piece!r} at character {offset} is not in the {self.kind} vocabulary of "
                                    f"{self.vocab_size} pieces; remove it or rephrase")
                index = UNK_ID
            ids.append(index)
        return ids

    def unknown_pieces(self, text: str) -> list[tuple[str, int]]:
        """The pieces of ``text`` outside the vocabulary, with their character offsets."""
        return [(p, o) for p, o in self.split(text) if p not in self._index]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "pieces": self.pieces, "unknown": self.unknown, "min_freq": self.min_freq,
                "max_vocab": self.max_vocab}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _VocabTokenizer:
        tok = cls(data.get("min_freq", 1), data.get("max_vocab"), data.get("unknown", "replace"))
        pieces = list(data["pieces"])
        if pieces[:2] != [PAD, UNK]:
            raise ModelFileError(f"a {cls.kind} vocabulary must start with {PAD}, {UNK}; got {pieces[:2]}")
        tok.pieces = pieces
        tok._index = {p: i for i, p in enumerate(pieces)}
        return tok


class CharTokenizer(_VocabTokenizer):
    """One id per character.

    Example:
        >>> tok = CharTokenizer().fit(["hello"])
        >>> tok.decode(tok.encode("hole")), tok.vocab_size
        ('hole', 6)
    """

    kind = "char"

    def split(self, text: str) -> list[tuple[str, int]]:
        return [(ch, i) for i, ch in enumerate(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.pieces[i] if i > UNK_ID else ("" if i == PAD_ID else "\ufffd") for i in ids)


class WordTokenizer(_VocabTokenizer):
    """Words and punctuation marks (``\\w+`` or a single non-space character), optionally lowercased.

    Example:
        >>> tok = WordTokenizer(lowercase=True).fit(["The cat sat.", "the dog"])
        >>> tok.decode(tok.encode("The bird sat."))
        'the <unk> sat .'
    """

    kind = "word"

    def __init__(self, min_freq: int = 1, max_vocab: int | None = None, unknown: str = "replace",
                 lowercase: bool = True) -> None:
        super().__init__(min_freq, max_vocab, unknown)
        self.lowercase = lowercase

    def split(self, text: str) -> list[tuple[str, int]]:
        source = text.lower() if self.lowercase else text
        return [(m.group(), m.start()) for m in _WORD.finditer(source)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.pieces[i] for i in ids if i != PAD_ID)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        tok = super().from_dict(data)
        tok.lowercase = bool(data.get("lowercase", True))
        return tok  # type: ignore[return-value]


class VocabularyTokenizer(_VocabTokenizer):
    """A vocabulary of whole tokens for input that is already split (``["The", "cat", "sat"]``).

    Example:
        >>> tok = VocabularyTokenizer().fit([["a", "b"], ["b", "c"]])
        >>> tok.encode(["b", "z"])
        [2, 1]
    """

    kind = "vocab"

    def split(self, text: Any) -> list[tuple[str, int]]:  # type: ignore[override]
        return [(str(token), i) for i, token in enumerate(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.pieces[i] for i in ids if i != PAD_ID)


class BPETokenizer(Tokenizer):
    """Byte-pair encoding learnt with the ``tokenizers`` library (byte-level: no text is unknown).

    Args:
        vocab_size: the size of the learnt vocabulary (including the two reserved ids).
        min_frequency: the fewest occurrences of a pair worth merging.

    Example:
        >>> tok = BPETokenizer(vocab_size=300).fit(["the theme of the thesis"] * 5)
        >>> tok.decode(tok.encode("the thesis"))
        'the thesis'
    """

    kind = "bpe"

    def __init__(self, vocab_size: int = 2000, min_frequency: int = 2, unknown: str = "replace") -> None:
        super().__init__(unknown)
        if vocab_size < 260:
            raise ConfigError(f"a byte-level BPE vocabulary needs >= 260 entries (256 bytes + specials), "
                              f"got {vocab_size}")
        self.target_size, self.min_frequency = vocab_size, min_frequency
        self._tok: Any = None

    @property
    def vocab_size(self) -> int:
        return 0 if self._tok is None else self._tok.get_vocab_size()

    def fit(self, texts: Iterable[str]) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tok = HFTokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=self.target_size, min_frequency=self.min_frequency,
                                      special_tokens=[PAD, UNK],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        texts = [t for t in texts if t]
        if not texts:
            raise DataError("the texts are empty: there is nothing to learn a vocabulary from")
        tok.train_from_iterator(texts, trainer=trainer)
        self._tok = tok
        return self

    def encode(self, text: str, unknown: str | None = None) -> list[int]:
        self._check_fitted()
        return list(self._tok.encode(text).ids)

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([i for i in ids if i != PAD_ID])

    def unknown_pieces(self, text: str) -> list[tuple[str, int]]:
        return []  # byte-level: every text is representable

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": self._tok.to_str(), "vocab_size": self.target_size,
                "min_frequency": self.min_frequency, "unknown": self.unknown}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        tok = cls(data["vocab_size"], data["min_frequency"], data.get("unknown", "replace"))
        try:
            tok._tok = HFTokenizer.from_str(data["tokenizer"])
        except Exception as error:  # the library raises its own exception types
            raise ModelFileError(f"the saved BPE tokenizer cannot be read: {error}") from None
        return tok


TOKENIZERS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer,
                                           "vocab": VocabularyTokenizer}


def make_tokenizer(kind: str, **options: Any) -> Tokenizer:
    """A new tokenizer by name (``"char"``, ``"word"`` or ``"bpe"``)."""
    if kind not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {kind!r}; expected one of {', '.join(TOKENIZERS)}")
    return TOKENIZERS[kind](**options)


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with ``to_dict``."""
    kind = data.get("kind")
    if kind not in TOKENIZERS:
        raise ModelFileError(f"unknown saved tokenizer kind {kind!r}; expected one of {', '.join(TOKENIZERS)}")
    return TOKENIZERS[kind].from_dict(data)  # type: ignore[attr-defined]
