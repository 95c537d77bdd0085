"""Language modelling and text generation.

``LanguageModel`` learns the next token of a text (characters by default, words or BPE
subwords) with an AWD-LSTM-style network and truncated BPTT (see :mod:`lstmkit.tasks.lm.model`),
reports perplexity and bits per character, and samples text from a prompt with temperature,
top-k and top-p (nucleus) sampling, optionally streaming each piece as it is produced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

import lstmkit.nn as lnn
from lstmkit.data.tokenizers import CharTokenizer, Tokenizer, make_tokenizer, tokenizer_from_dict
from lstmkit.errors import ConfigError, DataError, ModelFileError
from lstmkit.tasks.base import Estimator, train_module
from lstmkit.tasks.lm.model import LanguageModelNet, LMConfig, LMModule, SegmentDataset, batchify
from lstmkit.train import TrainConfig

__all__ = ["LanguageModel", "LMConfig", "LanguageModelNet", "DEFAULT_TRAINING", "sample_next"]

DEFAULT_TRAINING = TrainConfig(max_epochs=20, batch_size=32, learning_rate=2e-3, lr_schedule="plateau",
                               early_stopping_patience=3, gradient_clip=0.25)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> int:
    """Draw a token id from next-token ``logits`` ``(V,)``.

    ``temperature`` divides the logits (0 means the most probable token); ``top_k`` keeps the k
    most probable tokens; ``top_p`` keeps the smallest set whose probability reaches p.

    Example:
        >>> sample_next(torch.tensor([0.0, 5.0, 1.0]), temperature=0)
        1
    """
    if temperature == 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probabilities = logits.softmax(-1)
    if top_p is not None:
        ordered, order = probabilities.sort(descending=True)
        # keep a token while the mass before it is still below p (the first always stays)
        keep = ordered.cumsum(0) - ordered < top_p
        probabilities = torch.zeros_like(probabilities).scatter(0, order[keep], ordered[keep])
    return int(torch.multinomial(probabilities, 1, generator=generator))


class LanguageModel(Estimator):
    """An LSTM language model: fit on text, evaluate, generate.

    Args:
        tokenizer: ``"char"``, ``"word"`` or ``"bpe"``.
        embedding_dim: token embedding size (and the last layer's size when ``tie_weights``).
        hidden_size: LSTM units of the other layers.
        num_layers: LSTM layers.
        cell: the LSTM variant.
        tie_weights: share the embedding matrix with the output layer.
        bptt: steps per truncated-BPTT segment.
        streams: parallel streams the text is cut into (the batch size).
        embedding_dropout, input_dropout, hidden_dropout, output_dropout, weight_drop: AWD-LSTM
            regularisation (see :mod:`lstmkit.tasks.lm.model`).
        forget_bias: the initial forget-gate bias of the LSTM layers; ``None`` (the default) keeps
            torch's initialisation, as AWD-LSTM does. On the built-in corpus (a character model of
            2 x 256 trained for 300 s, three seeds; ``benchmarks/text_bench.py``) a bias of +1
            (Jozefowicz et al. 2015) ended 0.011 bits per character behind a hand-written
            ``nn.LSTM`` model, torch's initialisation 0.002 ahead of it. A bias of +1 helps where a
            long memory must be kept from the start.
        val_fraction: the end of the text held out for validation.
        tokenizer_options: passed to the tokenizer (``vocab_size`` for BPE, ``min_freq``, ...).
        training: the engine settings (its ``batch_size`` is ignored: ``streams`` sets it).
        run_dir: where checkpoints and logs go.

    Example:
        >>> lm = LanguageModel(embedding_dim=16, num_layers=1, bptt=16, streams=4, input_dropout=0,
        ...                    hidden_dropout=0, output_dropout=0,
        ...                    training=TrainConfig(max_epochs=20, learning_rate=1e-2))
        >>> lm = lm.fit("abcabcabcabc" * 40)
        >>> lm.generate("ab", max_tokens=4, temperature=0)
        'abcabc'
    """

    def __init__(self, tokenizer: str = "char", embedding_dim: int = 128, hidden_size: int = 256, num_layers: int = 2,
                 cell: str = "standard", tie_weights: bool = True, bptt: int = 128, streams: int = 32,
                 embedding_dropout: float = 0.0, input_dropout: float = 0.1, hidden_dropout: float = 0.1,
                 output_dropout: float = 0.1, weight_drop: float = 0.0, forget_bias: float | None = None,
                 val_fraction: float = 0.1,
                 tokenizer_options: dict[str, Any] | None = None, training: TrainConfig | None = None,
                 run_dir: str | Path | None = None) -> None:
        self.tokenizer = tokenizer
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.tie_weights = tie_weights
        self.bptt = bptt
        self.streams = streams
        self.embedding_dropout = embedding_dropout
        self.input_dropout = input_dropout
        self.hidden_dropout = hidden_dropout
        self.output_dropout = output_dropout
        self.weight_drop = weight_drop
        self.forget_bias = forget_bias
        self.val_fraction = val_fraction
        self.tokenizer_options = tokenizer_options
        self.training = training
        self.run_dir = run_dir

    def _validate(self) -> TrainConfig:
        from lstmkit.nn._checks import check_probability, check_size

        lnn.get_variant(self.cell)
        for name in ("embedding_dim", "hidden_size", "num_layers", "bptt", "streams"):
            check_size(name, getattr(self, name))
        for name in ("embedding_dropout", "input_dropout", "hidden_dropout", "output_dropout", "weight_drop",
                     "val_fraction"):
            check_probability(name, getattr(self, name), allow_one=False)
        bias = self.forget_bias
        if bias is not None and (isinstance(bias, bool) or not isinstance(bias, (int, float))
                                 or not math.isfinite(bias)):
            raise ConfigError(f"forget_bias must be a finite number or None (torch's initialisation), got {bias!r}")
        if bias is not None and not lnn.get_variant(self.cell).forget_gate:
            raise ConfigError(f"forget_bias={bias!r} is set but cell={self.cell!r} has no forget gate; leave "
                              "forget_bias=None or choose a cell with one (e.g. 'standard')")
        training = self.training if self.training is not None else DEFAULT_TRAINING
        if not isinstance(training, TrainConfig):
            raise ConfigError(f"training must be a lstmkit.train.TrainConfig, got {type(training).__name__}")
        return training

    @staticmethod
    def _text(text: str | list[str]) -> str:
        if isinstance(text, str):
            joined = text
        elif isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            joined = "\n\n".join(text)
        else:
            raise ConfigError(f"expected a text or a list of texts, got {type(text).__name__}")
        if not joined.strip():
            raise DataError("the text is empty")
        return joined

    def fit(self, text: str | list[str]) -> LanguageModel:
        """Learn from ``text`` (its last ``val_fraction`` validates)."""
        training = self._validate()
        text = self._text(text)
        split = int(len(text) * (1 - self.val_fraction))
        train_text, val_text = text[:split], text[split:]
        self.tokenizer_ = make_tokenizer(self.tokenizer, **(self.tokenizer_options or {})).fit([train_text])
        train_ids = torch.tensor(self.tokenizer_.encode(train_text), dtype=torch.long)
        if len(train_ids) < self.streams * 2:
            raise DataError(f"the training text has {len(train_ids)} tokens, too few for {self.streams} streams; "
                            "give more text or fewer streams")
        config = LMConfig(self.tokenizer_.vocab_size, self.embedding_dim, self.hidden_size, self.num_layers, self.cell,
                          self.tie_weights, float(self.embedding_dropout), float(self.input_dropout),
                          float(self.hidden_dropout), float(self.output_dropout), float(self.weight_drop),
                          None if self.forget_bias is None else float(self.forget_bias))
        L.seed_everything(training.seed, verbose=False)
        network = LanguageModelNet(config)
        train_set = SegmentDataset(batchify(train_ids, self.streams), self.bptt)
        val_set = None
        if val_text:
            val_ids = torch.tensor(self.tokenizer_.encode(val_text), dtype=torch.long)
            if len(val_ids) >= 2 * self.streams:
                val_set = SegmentDataset(batchify(val_ids, self.streams), self.bptt)
        # the dataset yields whole (streams, bptt) batches, in order: the state carries from one to the next
        self.fit_result_ = train_module(LMModule(network, training), train_set, val_set, training, self.run_dir,
                                        val_batch=1, batch_size=1, shuffle=False)
        self.network_ = network.eval()
        self.chars_per_token_ = len(train_text) / len(train_ids)
        return self

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(self, text: str | list[str]) -> dict[str, float]:
        """Cross-entropy (nats per token), perplexity and bits per character on ``text``,
        read as one stream from a zero state."""
        self._check_fitted()
        text = self._text(text)
        ids = torch.tensor(self.tokenizer_.encode(text), dtype=torch.long)
        if len(ids) < 2:
            raise DataError("the text needs at least two tokens to be evaluated")
        total, state = 0.0, None
        with torch.no_grad():
            rows = ids.view(1, -1)
            for start in range(0, len(ids) - 1, 1024):
                stop = min(start + 1024, len(ids) - 1)
                logits, state = self.network_(rows[:, start:stop], state)
                total += float(torch.nn.functional.cross_entropy(logits[0], rows[0, start + 1:stop + 1],
                                                                 reduction="sum"))
        tokens = len(ids) - 1
        # the first character is never predicted: count the characters of the predicted tokens
        predicted_chars = len(text) * tokens / len(ids)
        return {"loss": total / tokens, "perplexity": math.exp(total / tokens),
                "bits_per_character": total / math.log(2) / predicted_chars}

    # -- generation ---------------------------------------------------------------------------

    def generate(self, prompt: str, max_tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None,
                 stream: Callable[[str], None] | None = None) -> str:
        """Continue ``prompt`` by sampling ``max_tokens`` tokens.

        Args:
            prompt: the start (every character must be in the vocabulary of a character model: an
                unknown one is an error naming it and its position).
            max_tokens: tokens to add.
            temperature: > 0 flattens (> 1) or sharpens (< 1) the distribution; 0 is greedy.
            top_k: sample among the k most probable tokens.
            top_p: sample among the smallest set of tokens with probability >= p.
            seed: makes the sample reproducible.
            stream: called with the text of each new token as soon as it is drawn.

        Returns:
            the prompt and its continuation.
        """
        self._check_fitted()
        if not isinstance(prompt, str) or not prompt:
            raise DataError("the prompt must be a non-empty string")
        if temperature < 0 or (top_p is not None and not 0 < top_p <= 1) or (top_k is not None and top_k < 1):
            raise ConfigError(f"expected temperature >= 0, 0 < top_p <= 1 and top_k >= 1; got temperature="
                              f"{temperature}, top_p={top_p}, top_k={top_k}")
        unknown = getattr(self.tokenizer_, "unknown_pieces", lambda _: [])(prompt)
        if unknown:
            piece, offset = unknown[0]
            raise DataError(f"the prompt's {piece!r} at character {offset} is not in the model's vocabulary "
                            f"({len(unknown)} unknown piece(s) in all); the model cannot read it: leave it out")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        ids = self.tokenizer_.encode(prompt)
        if not ids:
            raise DataError(f"the prompt {prompt!r} has no tokens (a {self.tokenizer_.kind} model does not read spaces "
                            "alone); give it some text")
        pieces: list[str] = []
        with torch.no_grad():
            logits, state = self.network_(torch.tensor([ids]))
            for _ in range(max_tokens):
                # <pad> is never a next token in training text: drawing it would add nothing to the text
                step = logits[0, -1].index_fill(0, torch.tensor([self.tokenizer_.pad_id]), float("-inf"))
                token = sample_next(step, temperature, top_k, top_p, generator)
                ids.append(token)
                piece = self._piece(ids)
                pieces.append(piece)
                if stream is not None:
                    stream(piece)
                logits, state = self.network_(torch.tensor([[token]]), state)
        return prompt + "".join(pieces)

    def _piece(self, ids: list[int]) -> str:
        """The text the last token adds (word and BPE decoders join pieces, so decode the tail)."""
        if isinstance(self.tokenizer_, CharTokenizer):
            return self.tokenizer_.decode(ids[-1:])
        before = self.tokenizer_.decode(ids[-9:-1])
        after = self.tokenizer_.decode(ids[-9:])
        return after[len(before):] if after.startswith(before) else " " + self.tokenizer_.decode(ids[-1:])

    # -- save / load --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """A model directory (``config.json`` + ``model.safetensors``), written atomically."""
        from lstmkit import __version__
        from lstmkit.io import save_model_dir

        self._check_fitted()
        params = {k: v for k, v in self.get_params().items() if k not in ("training", "run_dir")}
        config = {"params": params, "training": (self.training or DEFAULT_TRAINING).to_dict(),
                  "network": self.network_.config.to_dict(), "tokenizer": self.tokenizer_.to_dict(),
                  "chars_per_token": self.chars_per_token_}
        state = {k: v for k, v in self.network_.state_dict().items() if k != "decoder.weight" or
                 not self.network_.config.tie_weights}
        return save_model_dir(path, "language-model", config, state, __version__)

    @classmethod
    def load(cls, path: str | Path) -> LanguageModel:
        """Load a model directory written by :meth:`save`; no code in it is run."""
        from lstmkit.io import load_model_dir

        config, tensors = load_model_dir(path, "language-model")
        try:
            # files written before forget_bias existed were initialised with +1
            params = {"forget_bias": 1.0, **config["params"]}
            model = cls(**params, training=TrainConfig.from_dict(config["training"]))
            network = LanguageModelNet(LMConfig(**config["network"]))
            network.load_state_dict(tensors, strict=not network.config.tie_weights)
            missing = set(network.state_dict()) - set(tensors) - {"decoder.weight"}
            if missing:
                raise ValueError(f"missing weights {sorted(missing)}")
            model.network_ = network.eval()
            model.tokenizer_: Tokenizer = tokenizer_from_dict(config["tokenizer"])
            model.chars_per_token_ = float(config["chars_per_token"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ModelFileError(f"{path} does not describe a valid language model ({type(error).__name__}: "
                                 f"{error})") from None
        return model
