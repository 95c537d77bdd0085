"""Argument and input validation for :mod:`lstmkit.nn`, in one place.

Every check raises from :mod:`lstmkit.errors` with what was expected, what was received and how
to fix it. Nothing is broadcast or cast silently.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor, nn

from lstmkit.errors import ConfigError, InputTypeError, ShapeError

__all__ = [
    "check_size",
    "check_probability",
    "check_bool",
    "check_tensor_like_params",
    "check_cell_input",
    "check_state",
]


def check_size(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer argument of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_probability(name: str, value: Any, *, allow_one: bool = True) -> float:
    """A probability in [0, 1] (or [0, 1) when ``allow_one`` is false)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a float in [0, 1], got {type(value).__name__} {value!r}")
    upper_ok = value <= 1 if allow_one else value < 1
    if not (0 <= value and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ConfigError(f"{name} must be a probability in {interval}, got {value}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def _reference_param(module: nn.Module) -> Tensor | None:
    # the module's own parameters first: ``parameters()`` builds a generator over every submodule,
    # a cost paid on every forward call of a small layer
    for param in module._parameters.values():
        if param is not None:
            return param
    return next(iter(module.parameters()), None)


def check_tensor_like_params(module: nn.Module, what: str, tensor: Any) -> None:
    """``tensor`` is a Tensor with the dtype and device of ``module``'s parameters."""
    owner = type(module).__name__
    if not isinstance(tensor, Tensor):
        raise InputTypeError(f"{owner} expected {what} to be a torch.Tensor, got {type(tensor).__name__}")
    param = _reference_param(module)
    if param is None:
        return
    if tensor.dtype != param.dtype:
        raise InputTypeError(
            f"{owner} has {param.dtype} parameters but {what} is {tensor.dtype}; convert the input "
            f"with .to({param.dtype}) or the module with .to({tensor.dtype})"
        )
    if tensor.device != param.device:
        raise InputTypeError(
            f"{owner} has parameters on {param.device} but {what} is on {tensor.device}; move one "
            f"of them with .to(device)"
        )


def check_state(
    module: nn.Module,
    state: Any,
    expected: tuple[tuple[int, ...], ...],
    names: tuple[str, ...],
) -> tuple[Tensor, ...]:
    """A recurrent state: a tuple of tensors of exactly the ``expected`` shapes.

    Args:
        module: the owner (its parameters give dtype and device).
        state: what the caller passed: a Tensor when ``expected`` has one entry, else a tuple.
        expected: the shape of each component.
        names: their names for messages (``"h_0"``, ``"c_0"``).
    """
    owner = type(module).__name__
    if len(expected) == 1 and isinstance(state, Tensor):
        state = (state,)
    if not isinstance(state, (tuple, list)) or len(state) != len(expected):
        got = type(state).__name__
        if isinstance(state, (tuple, list)):
            got += f" of length {len(state)}"
        want = f"a tuple ({', '.join(names)})" if len(names) > 1 else f"a Tensor {names[0]}"
        raise InputTypeError(f"{owner} expected the state as {want}, got {got}")
    for tensor, shape, name in zip(state, expected, names):
        check_tensor_like_params(module, name, tensor)
        if tuple(tensor.shape) != tuple(shape):
            raise ShapeError(
                f"{owner} expected {name} of shape {tuple(shape)}, got {tuple(tensor.shape)}"
            )
    return tuple(state)


def check_cell_input(
    module: nn.Module, input: Any, hx: Any, widths: tuple[int, ...]
) -> tuple[Tensor, tuple[Tensor, ...], bool]:
    """Validate a cell's ``(input, hx)``; returns the batched input, the state and ``batched``."""
    owner = type(module).__name__
    check_tensor_like_params(module, "input", input)
    if input.dim() not in (1, 2):
        raise ShapeError(
            f"{owner} expected input of shape (B, {module.input_size}) or ({module.input_size},), "
            f"got {input.dim()}-D {tuple(input.shape)}"
        )
    batched = input.dim() == 2
    if input.shape[-1] != module.input_size:
        raise ShapeError(
            f"{owner} was built with input_size={module.input_size} but the input has "
            f"{input.shape[-1]} features (shape {tuple(input.shape)}); pass input with "
            f"{module.input_size} features or build the cell with input_size={input.shape[-1]}"
        )
    if not batched:
        input = input.unsqueeze(0)
    names = ("h", "c")[: len(widths)]
    if hx is None:
        state = tuple(input.new_zeros(input.shape[0], w) for w in widths)
    else:
        shapes = tuple((input.shape[0], w) if batched else (w,) for w in widths)
        state = check_state(module, hx, shapes, names)
        if not batched:
            state = tuple(s.unsqueeze(0) for s in state)
    return input, state, batched


def as_device(device: torch.device | str | None) -> torch.device | None:
    return None if device is None else torch.device(device)
