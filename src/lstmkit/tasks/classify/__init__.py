"""Sequence classification: texts and numeric series, (bi)LSTM or LSTM-FCN."""

from lstmkit.tasks.classify.estimator import DEFAULT_TRAINING, SequenceClassifier
from lstmkit.tasks.classify.model import ARCHITECTURES, ClassifierConfig, SequenceClassifierNet

__all__ = ["SequenceClassifier", "DEFAULT_TRAINING", "ARCHITECTURES", "ClassifierConfig", "SequenceClassifierNet"]
