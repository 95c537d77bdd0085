"""The exceptions lstmkit raises.

Every error derives from :class:`LstmkitError` and from the built-in exception a caller would
catch anyway (``ValueError`` for bad values, ``TypeError`` for bad types), so ``except
ValueError`` keeps working while ``except lstmkit.errors.LstmkitError`` catches only ours.
Messages say what was expected, what was received and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "LstmkitError",
    "ConfigError",
    "ShapeError",
    "InputTypeError",
    "DataError",
    "NotFittedError",
    "ModelFileError",
    "TrainingError",
]


class LstmkitError(Exception):
    """Base class of every error raised by lstmkit."""


class ConfigError(LstmkitError, ValueError):
    """An argument to a constructor or function is invalid (``hidden_size=0``, ``dropout=1.5``)."""


class ShapeError(LstmkitError, ValueError):
    """A tensor or array has the wrong shape (feature size, state shape, sequence length)."""


class InputTypeError(LstmkitError, TypeError):
    """An input has the wrong type, dtype or device."""


class DataError(LstmkitError, ValueError):
    """Input data is unusable as given: non-numeric values, NaN, unsorted timestamps, ..."""


class NotFittedError(LstmkitError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (as scikit-learn's ``NotFittedError``)."""


class ModelFileError(LstmkitError, ValueError):
    """A saved model is missing, corrupt, or was written by an incompatible version."""


class TrainingError(LstmkitError, RuntimeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""
