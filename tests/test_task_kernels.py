"""The tasks train their small standard LSTMs on lstmkit's fused kernel (``kernel="fastest"``),
where ``benchmarks/kernel_choice.py`` measured it faster than torch's own path, and keep torch's
path for layers past that line."""

import numpy as np
import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.data import load_dataset
from lstmkit.nn.kernels import fused
from lstmkit.tasks.classify import SequenceClassifier
from lstmkit.tasks.forecast import LSTMForecaster
from lstmkit.tasks.lm import LanguageModel
from lstmkit.tasks.tag import SequenceTagger
from lstmkit.train import TrainConfig

TWO_EPOCHS = TrainConfig(max_epochs=2)


@pytest.fixture
def fused_calls(monkeypatch):
    """The hidden sizes of the layers run by the fused kernel, training or not."""
    calls: list[tuple[int, bool]] = []
    original = fused.sequence_forward

    def spy(spec, *args, **kwargs):
        calls.append((spec.hidden_size, torch.is_grad_enabled()))
        return original(spec, *args, **kwargs)

    monkeypatch.setattr(fused, "sequence_forward", spy)
    return calls


def _fit(task: str, hidden: int):
    if task == "forecast":
        return LSTMForecaster(horizon=3, hidden_size=hidden, transform="none", ensemble=1, training=TWO_EPOCHS).fit(
            load_dataset("airline"), target="passengers", time="month")
    if task == "classify-series":
        rng = np.random.default_rng(0)
        series = [rng.normal(size=20) + k % 2 for k in range(40)]
        labels = [k % 2 for k in range(40)]
        return SequenceClassifier(hidden_size=hidden, ensemble=1, training=TWO_EPOCHS).fit(series, labels)
    if task == "classify-text":
        return SequenceClassifier(hidden_size=hidden, ensemble=1, training=TWO_EPOCHS).fit(
            ["good fine", "bad poor"] * 10, ["pos", "neg"] * 10)
    if task == "tag":
        texts = ["ab ba", "aa bb"] * 10
        return SequenceTagger(hidden_size=hidden, training=TWO_EPOCHS).fit(texts, [["x" if c == "a" else "y" for c in t]
                                                                                for t in texts])
    return LanguageModel(embedding_dim=8, hidden_size=hidden, num_layers=1, bptt=8, streams=4,
                         training=TWO_EPOCHS).fit("abcabcabc" * 20)


TASKS = ["forecast", "classify-series", "classify-text", "tag", "lm"]


@pytest.mark.parametrize("task", TASKS)
def test_small_task_networks_train_on_the_fused_kernel(task, fused_calls):
    model = _fit(task, hidden=8)
    layers = [m for m in model.network_.modules() if isinstance(m, lnn.RecurrentLayer)]
    assert layers and all(layer.kernel == "fastest" for layer in layers)
    assert any(training for _, training in fused_calls), "no training step ran on the fused kernel"


@pytest.mark.parametrize("task", ["forecast", "tag"])
def test_large_task_networks_keep_torchs_path(task, fused_calls):
    _fit(task, hidden=300)  # over the line in training and in inference
    assert fused_calls == []
