"""Argument and array validation shared by :mod:`metrics` and :mod:`baselines`, in one place.

Every check raises from :mod:`lstmkit.errors` with what was expected, what was received and how to
fix it. Nothing is reshaped, cast to a lower precision or cleaned silently.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from lstmkit.errors import ConfigError, DataError

__all__ = ["check_int", "as_float_array", "check_finite"]


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer argument of at least ``minimum`` (``bool`` is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def as_float_array(name: str, values: Any) -> np.ndarray:
    """``values`` as a float64 array; refuses anything that is not numeric."""
    array = np.asarray(values)
    numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if not (numeric or array.dtype == object):
        raise DataError(f"{name} must hold numbers, got an array of dtype {array.dtype}; pass numeric values")
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must hold numbers but could not be converted to float64 ({exc})") from exc


def check_finite(name: str, array: np.ndarray) -> None:
    """Every value of ``array`` is finite; the message says how many are not and where the first is."""
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = first[0] if len(first) == 1 else first
        raise DataError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first at index {where}: {array[first]}); "
            "fill or drop missing values before forecasting or scoring"
        )
