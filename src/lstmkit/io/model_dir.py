"""Model directories: ``config.json`` + ``model.safetensors``, written atomically, loaded without code.

A model directory holds a JSON document (what the model is: its kind, its settings, the data
layout, the format version) and a safetensors file (its tensors). Loading parses JSON and reads
tensors; nothing in either file is executed, unlike a pickle. A directory is written next to its
destination under a temporary name and renamed into place, so a crash never leaves half a model.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lstmkit.errors import ModelFileError

__all__ = ["FORMAT", "FORMAT_VERSION", "CONFIG_FILE", "WEIGHTS_FILE", "save_model_dir", "load_model_dir",
           "atomic_write", "atomic_write_text"]

FORMAT = "lstmkit-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write a file whole or not at all: ``write`` fills a temporary file in the same directory
    (so that the rename cannot cross file systems), which is flushed to disk and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _is_model_dir(path: Path) -> bool:
    try:
        return json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save_model_dir(path: str | Path, kind: str, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                   version: str) -> Path:
    """Write a model directory atomically, replacing an earlier model at ``path``.

    Args:
        path: the directory to create (or an existing lstmkit model directory to replace).
        kind: what the model is (``"forecaster"``, ...), checked when loading.
        config: JSON-serialisable settings.
        tensors: the weights and any other arrays.
        version: the lstmkit version writing it.

    Raises:
        ModelFileError: ``path`` exists and is not an lstmkit model directory (it is never
            overwritten), or the config cannot be written as JSON.
    """
    path = Path(path)
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or _is_model_dir(path))):
        raise ModelFileError(f"refusing to overwrite {path}: it exists and is not an lstmkit model directory; "
                             "choose another path or remove it first")
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "lstmkit_version": version,
                "saved_at": datetime.now(UTC).isoformat(timespec="seconds"), "config": config}
    try:
        text = json.dumps(document, indent=2, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"the model's settings cannot be saved as JSON: {error}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = path.parent / f".{path.name}.tmp-{tag}"
    old = path.parent / f".{path.name}.old-{tag}"
    tmp.mkdir()
    moved_away = False
    try:
        (tmp / CONFIG_FILE).write_text(text, encoding="utf-8")
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / WEIGHTS_FILE),
                  metadata={"format": "pt", "lstmkit_kind": kind})
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            with open(tmp / name, "rb") as handle:
                os.fsync(handle.fileno())
        if path.exists():
            os.replace(path, old)
            moved_away = True
        os.replace(tmp, path)
        moved_away = False
        _fsync_dir(path.parent)
    except BaseException:
        if moved_away:  # the new model did not take its place: put the old one back
            os.replace(old, path)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_model_dir(path: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a model directory written by :func:`save_model_dir`.

    Returns:
        the settings (the ``config`` part of the JSON) and the tensors.

    Raises:
        ModelFileError: the directory or a file is missing, the JSON is invalid, the format is
            unknown or newer than this lstmkit reads, the kind differs, or the weights are corrupt.
    """
    path = Path(path)
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise ModelFileError(f"{path} {problem}; expected an lstmkit model directory "
                             f"(with {CONFIG_FILE} and {WEIGHTS_FILE})")
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise ModelFileError(f"{path} is not a complete lstmkit model directory: {required.name} is missing")
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ModelFileError(f"{config_path} is not UTF-8 text (byte {error.start}); the file is corrupt") from None
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{config_path} is not valid JSON (line {error.lineno}, column {error.colno}: "
                             f"{error.msg}); the file is corrupt") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(f"{config_path} is not an lstmkit model file (no \"format\": \"{FORMAT}\")")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ModelFileError(
            f"{path} is from another version of lstmkit: it was written in model format {version!r} (by lstmkit "
            f"{document.get('lstmkit_version', '?')}); this lstmkit reads format {FORMAT_VERSION}. Upgrade lstmkit "
            "or retrain the model with this version")
    if document.get("kind") != kind:
        raise ModelFileError(f"{path} holds a {document.get('kind')!r} model, not a {kind!r}")
    if not isinstance(document.get("config"), dict):
        raise ModelFileError(f"{config_path} has no settings (\"config\" is missing or not an object)")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{weights_path} is not a readable safetensors file ({error}); the file is corrupt") \
            from None
    return document["config"], tensors
