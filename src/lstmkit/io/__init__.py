"""Saving and loading: model directories of safetensors weights and a JSON config, never pickle."""

from lstmkit.io.model_dir import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    atomic_write,
    atomic_write_text,
    load_model_dir,
    save_model_dir,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "CONFIG_FILE", "WEIGHTS_FILE", "save_model_dir", "load_model_dir",
           "atomic_write", "atomic_write_text"]
