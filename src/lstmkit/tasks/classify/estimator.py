"""``SequenceClassifier``: many-to-one classification of texts or numeric sequences.

Texts are tokenized (characters, words or BPE); numeric sequences (univariate or multivariate,
equal or unequal length, e.g. the UCR/UEA archive's ``.ts`` files) are standardised per channel.
Batches group sequences of similar length and the LSTM reads them packed, so every sequence's
final state is taken at its own last step. A stratified part of the training data validates
(early stopping, the best checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

import lstmkit.nn as lnn
from lstmkit.data.sequences import BucketSampler, SequenceDataset
from lstmkit.errors import ConfigError, DataError, ModelFileError, ShapeError
from lstmkit.tasks.base import Estimator, stratified_split, train_module
from lstmkit.tasks.classify.model import (
    ARCHITECTURES,
    ClassifierConfig,
    ClassifierEnsemble,
    ClassifierModule,
    SequenceClassifierNet,
)
from lstmkit.tasks.inputs import SequenceEncoder, input_kind
from lstmkit.train import TrainConfig

__all__ = ["SequenceClassifier", "DEFAULT_TRAINING"]

DEFAULT_TRAINING = TrainConfig(max_epochs=500, batch_size=16, learning_rate=1e-3, lr_schedule="plateau",
                               early_stopping_patience=100, gradient_clip=1.0)


class SequenceClassifier(Estimator):
    """Classify whole sequences with an LSTM (or the LSTM-FCN hybrid for numeric series).

    Args:
        architecture: ``"lstm"``, ``"lstm-fcn"`` or ``"auto"`` (LSTM-FCN for numeric series,
            a bidirectional LSTM for tokens).
        cell: the LSTM variant.
        hidden_size: LSTM units.
        num_layers: stacked LSTM layers.
        bidirectional: read both ways (``"lstm"``).
        embedding_dim: token embedding size.
        dropout: dropout before the output layer.
        tokenizer: ``"word"``, ``"char"`` or ``"bpe"`` for text.
        max_length: the length cap (``None``: the longest training sequence, for ``"lstm-fcn"``).
        too_long: ``"error"`` or ``"truncate"`` for sequences over the cap.
        val_fraction: share of each class held out for validation (early stopping and the best
            checkpoint); default 0.2, or 0 below 200 training sequences, where a validation part is
            too small to judge by and too costly to give up (the training loss then decides).
        ensemble: networks trained from consecutive seeds; their probabilities are averaged.
        training: the engine settings.
        run_dir: where checkpoints and logs go (default: a temporary directory).

    Example:
        >>> texts = ["good fine great", "bad awful poor"] * 20
        >>> labels = ["pos", "neg"] * 20
        >>> model = SequenceClassifier(hidden_size=8, training=TrainConfig(max_epochs=30)).fit(texts, labels)
        >>> model.predict(["great good"]).tolist(), model.classes_.tolist()
        (['pos'], ['neg', 'pos'])
    """

    def __init__(self, architecture: str = "auto", cell: str = "standard", hidden_size: int = 64,
                 num_layers: int = 1, bidirectional: bool = True, embedding_dim: int = 64, dropout: float = 0.2,
                 tokenizer: str = "word", max_length: int | None = None, too_long: str = "error",
                 val_fraction: float | None = None, ensemble: int = 3, training: TrainConfig | None = None,
                 run_dir: str | Path | None = None) -> None:
        self.architecture = architecture
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.too_long = too_long
        self.val_fraction = val_fraction
        self.ensemble = ensemble
        self.training = training
        self.run_dir = run_dir

    def _validate(self) -> TrainConfig:
        from lstmkit.nn._checks import check_probability, check_size

        if self.architecture != "auto" and self.architecture not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.architecture!r}; expected 'auto' or one of {ARCHITECTURES}")
        lnn.get_variant(self.cell)
        for name in ("hidden_size", "num_layers", "embedding_dim"):
            check_size(name, getattr(self, name))
        check_probability("dropout", self.dropout, allow_one=False)
        check_size("ensemble", self.ensemble)
        if self.val_fraction is not None:
            check_probability("val_fraction", self.val_fraction, allow_one=False)
        training = self.training if self.training is not None else DEFAULT_TRAINING
        if not isinstance(training, TrainConfig):
            raise ConfigError(f"training must be a lstmkit.train.TrainConfig, got {type(training).__name__}")
        return training

    # -- fit ----------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> SequenceClassifier:
        """Train on sequences ``X`` (texts, token lists or numeric series) and labels ``y``."""
        training = self._validate()
        labels = np.asarray([str(v) for v in y])
        if len(labels) != len(X):
            raise ShapeError(f"{len(X)} sequences but {len(labels)} labels; give one label per sequence")
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise DataError(f"classification needs at least two classes, got only {self.classes_.tolist()}")
        kind = input_kind(X)
        architecture = self.architecture if self.architecture != "auto" else (
            "lstm-fcn" if kind == "numeric" else "lstm")
        self.encoder_ = SequenceEncoder(self.tokenizer, self.max_length, self.too_long)
        self.encoder_.fit(X)
        sequences = self.encoder_.encode(X)
        # lstm-fcn reads a fixed length: the cap, or the longest training series (which becomes the cap,
        # so that a longer series at predict time is an error, never silently cut)
        length = int(self.encoder_.max_length or max(len(s) for s in sequences)) if architecture == "lstm-fcn" else 0
        if architecture == "lstm-fcn":
            self.encoder_.max_length = length
        targets = np.searchsorted(self.classes_, labels)
        fraction = self.val_fraction if self.val_fraction is not None else (0.2 if len(labels) >= 200 else 0.0)
        train_idx, val_idx = stratified_split(targets, fraction, training.seed)
        config = ClassifierConfig(
            "tokens" if kind in ("text", "tokens") else "numeric", self.encoder_.vocab_size, self.encoder_.channels,
            len(self.classes_), architecture, self.embedding_dim, self.hidden_size, self.num_layers,
            self.bidirectional, self.cell, float(self.dropout), length)
        train_set = SequenceDataset([sequences[i] for i in train_idx], targets[train_idx])
        val_set = SequenceDataset([sequences[i] for i in val_idx], targets[val_idx]) if len(val_idx) else None
        network = ClassifierEnsemble(config, self.ensemble)
        self.fit_results_ = []
        for k, member in enumerate(network.members):
            seed = training.seed + k
            L.seed_everything(seed, verbose=False)
            member.load_state_dict(SequenceClassifierNet(config).state_dict())  # initialised from this seed
            sampler = BucketSampler(train_set.lengths, training.batch_size, seed)
            run = None if self.run_dir is None else Path(self.run_dir) / f"member-{k}"
            self.fit_results_.append(train_module(ClassifierModule(member, training.replace(seed=seed)), train_set,
                                                  val_set, training, run, sampler))
        self.network_ = network.eval()
        return self

    # -- predict ------------------------------------------------------------------------------

    def predict_proba(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, n_classes)``, columns in the order of ``classes_``."""
        self._check_fitted()
        sequences = self.encoder_.encode(X)
        dataset = SequenceDataset(sequences)
        out = []
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                padded, lengths, _ = dataset.__getitems__(range(start, min(start + batch_size, len(dataset))))
                out.append(torch.softmax(self.network_(padded, lengths), -1))
        return torch.cat(out).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sequence."""
        probabilities = self.predict_proba(X)  # first: it checks that the model is fitted
        return self.classes_[probabilities.argmax(1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy; labels never seen in training are an error (they cannot be predicted)."""
        self._check_fitted()
        truth = np.asarray([str(v) for v in y])
        unseen = sorted(set(truth.tolist()) - set(self.classes_.tolist()))  # str, not np.str_, in the message
        if unseen:
            raise DataError(f"labels {unseen} were never seen in training (known: {self.classes_.tolist()}); the "
                            "model cannot predict them")
        return float((self.predict(X) == truth).mean())

    # -- save / load --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """A model directory (``config.json`` + ``model.safetensors``), written atomically."""
        from lstmkit import __version__
        from lstmkit.io import save_model_dir

        self._check_fitted()
        params = {k: v for k, v in self.get_params().items() if k not in ("training", "run_dir")}
        config = {"params": params, "training": (self.training or DEFAULT_TRAINING).to_dict(),
                  "network": self.network_.config.to_dict(), "members": len(self.network_.members),
                  "classes": self.classes_.tolist(),
                  "encoder": self.encoder_.to_dict()}
        return save_model_dir(path, "classifier", config, dict(self.network_.state_dict()), __version__)

    @classmethod
    def load(cls, path: str | Path) -> SequenceClassifier:
        """Load a model directory written by :meth:`save`; no code in it is run."""
        from lstmkit.io import load_model_dir

        config, tensors = load_model_dir(path, "classifier")
        try:
            model = cls(**config["params"], training=TrainConfig.from_dict(config["training"]))
            network = ClassifierEnsemble(ClassifierConfig(**config["network"]), int(config["members"]))
            network.load_state_dict(tensors)
            model.network_ = network.eval()
            model.classes_ = np.asarray(config["classes"])
            model.encoder_ = SequenceEncoder.from_dict(config["encoder"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ModelFileError(f"{path} does not describe a valid classifier ({type(error).__name__}: {error})") \
                from None
        return model
