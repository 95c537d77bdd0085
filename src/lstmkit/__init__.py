"""lstmkit: the LSTM family as verified PyTorch layers, and the tasks built on them."""

from lstmkit import errors, nn

__version__ = "0.1.0"

__all__ = ["errors", "nn", "__version__"]
