"""From the user's table to validated series: the one place where time-series input is checked.

A table is a pandas DataFrame in *long* form: a time column (or the index), optionally a series
id column for many series, one or more target columns and optional covariate columns. A pandas
Series or a 1-D/2-D array is a single series with integer time steps. Wide tables (one column per
series) become long with :func:`wide_to_long`.

Every problem is reported with the column, the row (0-based position in the table) and the fix:
non-numeric values, missing or infinite values (``fill_missing="interpolate"`` fills gaps of
missing values, never infinities), unsorted or duplicate timestamps, irregular spacing, missing
columns. Nothing is reordered or filled silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lstmkit.errors import ConfigError, DataError, InputTypeError

__all__ = ["Schema", "Series", "to_series", "wide_to_long", "future_times", "season_length_for"]

FILL_MODES = ("error", "interpolate")

# observations per seasonal cycle for common pandas frequencies (first letters of the alias)
_SEASONS = {"H": 24, "h": 24, "D": 7, "B": 5, "C": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "Q": 4, "QS": 4,
            "QE": 4, "BH": 8, "bh": 8}


@dataclass
class Schema:
    """Which columns play which role; saved with a model so that predict reads the same layout.

    Attributes:
        target: the column(s) to forecast (several: a multivariate target).
        time: the time column, or ``None`` for the index / integer steps.
        series_id: the column that tells series apart in a long table, or ``None``.
        past_covariates: columns known only up to the forecast origin.
        future_covariates: columns known over the horizon too (calendar, prices, plans).
        time_kind: ``"datetime"`` or ``"int"``.
        freq: the pandas frequency of datetime series (``"MS"``), or the integer step.
    """

    target: list[str]
    time: str | None = None
    series_id: str | None = None
    past_covariates: list[str] = field(default_factory=list)
    future_covariates: list[str] = field(default_factory=list)
    time_kind: str = "int"
    freq: str | int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(**data)


@dataclass
class Series:
    """One validated series: time stamps and float arrays of shape ``(n, columns)``."""

    id: str
    time: pd.Index
    target: np.ndarray
    past: np.ndarray
    future: np.ndarray

    def __len__(self) -> int:
        return len(self.target)


def _as_frame(data: Any, target: str | Sequence[str] | None,
              other_roles: Sequence[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    if isinstance(data, pd.DataFrame):
        frame = data
        if target is None:
            numeric = [c for c in frame.columns
                       if pd.api.types.is_numeric_dtype(frame[c]) and str(c) not in other_roles]
            if len(numeric) != 1:
                raise ConfigError(
                    f"the data has {len(frame.columns)} columns ({', '.join(map(str, frame.columns))}); "
                    "say which to forecast with target=..."
                )
            targets = [str(numeric[0])]
        else:
            targets = [target] if isinstance(target, str) else [str(t) for t in target]
        return frame, targets
    if isinstance(data, pd.Series):
        name = str(data.name) if data.name is not None else "value"
        return data.rename(name).to_frame(), [name]
    if isinstance(data, (np.ndarray, list, tuple)):
        array = np.asarray(data)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise InputTypeError(f"expected a 1-D or 2-D array (time, targets), got {array.ndim}-D {array.shape}")
        names = [f"value_{k}" for k in range(array.shape[1])] if array.shape[1] > 1 else ["value"]
        return pd.DataFrame(array, columns=names), names
    raise InputTypeError(f"expected a pandas DataFrame, Series or array, got {type(data).__name__}")


def _check_columns(frame: pd.DataFrame, wanted: Sequence[str], role: str) -> None:
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{role} column(s) {', '.join(map(repr, missing))} not in the data; its columns are "
            f"{', '.join(map(repr, map(str, frame.columns)))}"
        )


def _numeric(frame: pd.DataFrame, column: str, rows: np.ndarray) -> np.ndarray:
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        converted = pd.to_numeric(values, errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"column {column!r} has non-numeric values, e.g. {values.iloc[position]!r} at row "
                f"{int(rows[position])}; clean the column or convert it with pd.to_numeric"
            )
        values = converted
    return values.to_numpy(dtype=np.float64)


def _fill(name: str, column: str, values: np.ndarray, rows: np.ndarray, fill_missing: str) -> np.ndarray:
    infinite = np.isinf(values)
    if infinite.any():
        position = int(np.flatnonzero(infinite)[0])
        raise DataError(
            f"column {column!r} of series {name!r} has {int(infinite.sum())} infinite value(s), the first at row "
            f"{int(rows[position])}; infinities are not measurements: remove or replace them"
        )
    missing = np.isnan(values)
    if not missing.any():
        return values
    first = int(np.flatnonzero(missing)[0])
    if fill_missing == "error":
        raise DataError(
            f"column {column!r} of series {name!r} has {int(missing.sum())} missing value(s), the first at row "
            f"{int(rows[first])}; pass fill_missing='interpolate' to fill them linearly, or remove them"
        )
    if missing.all():
        raise DataError(f"column {column!r} of series {name!r} has no values at all; nothing to interpolate from")
    # linear in between, the nearest value at either end
    return pd.Series(values).interpolate(limit_direction="both").to_numpy()


def _time_index(frame: pd.DataFrame, time: str | None, name: str, rows: np.ndarray) -> tuple[pd.Index, str]:
    raw = frame[time] if time is not None else frame.index.to_series()
    label = repr(time) if time is not None else "the index"
    if pd.api.types.is_integer_dtype(raw):
        index: pd.Index = pd.Index(raw.to_numpy(dtype=np.int64))
        kind = "int"
    elif pd.api.types.is_datetime64_any_dtype(raw):
        index = pd.DatetimeIndex(raw)
        kind = "datetime"
    else:
        try:
            index = pd.DatetimeIndex(pd.to_datetime(raw))
        except (ValueError, TypeError) as error:
            raise DataError(f"time column {label} is neither integers nor dates ({error}); give it as dates "
                            "(2024-01-31) or integer steps") from None
        kind = "datetime"
    if index.hasnans:
        position = int(np.flatnonzero(index.isna())[0])
        raise DataError(f"time column {label} of series {name!r} is missing at row {int(rows[position])}")
    order = np.diff(index.asi8 if kind == "datetime" else index.to_numpy())
    if (order == 0).any():
        k = int(np.flatnonzero(order == 0)[0])
        raise DataError(f"series {name!r} has duplicate timestamps: {index[k]} at rows {int(rows[k])} and "
                        f"{int(rows[k + 1])}; aggregate or remove the duplicates")
    if (order < 0).any():
        k = int(np.flatnonzero(order < 0)[0])
        raise DataError(f"time column {label} of series {name!r} is not sorted: row {int(rows[k + 1])} "
                        f"({index[k + 1]}) comes after row {int(rows[k])} ({index[k]}); sort the data by time")
    return index, kind


def _frequency(index: pd.Index, kind: str, name: str, rows: np.ndarray) -> str | int | None:
    if len(index) < 3:
        return None
    if kind == "int":
        diffs = np.diff(index.to_numpy())
        steps = np.unique(diffs)
        if len(steps) != 1:
            k = int(np.flatnonzero(diffs != diffs[0])[0]) + 1
            raise DataError(f"the integer time steps of series {name!r} are not evenly spaced (steps "
                            f"{steps[:5].tolist()}): row {int(rows[k])} ({index[k]}) is {diffs[k - 1]} after the "
                            f"previous row, the first rows are {diffs[0]} apart; fill the gaps first")
        return int(steps[0])
    freq = pd.infer_freq(index)
    if freq is None:
        where = ""
        first = pd.infer_freq(index[:3])
        if first is not None:  # the first row that breaks the spacing of the first three
            expected = pd.date_range(index[0], periods=len(index), freq=first)
            broken = np.flatnonzero(np.asarray(index != expected))
            if len(broken):
                k = int(broken[0])
                where = f"; row {int(rows[k])} ({index[k]}) breaks the {first!r} spacing of the first rows"
        raise DataError(f"the time stamps of series {name!r} are not regularly spaced ({index[0]}, {index[1]}, "
                        f"{index[2]}, ...){where}; resample the data to a fixed frequency first")
    return freq


def to_series(
    data: Any,
    target: str | Sequence[str] | None = None,
    time: str | None = None,
    series_id: str | None = None,
    past_covariates: Sequence[str] = (),
    future_covariates: Sequence[str] = (),
    fill_missing: str = "error",
) -> tuple[list[Series], Schema]:
    """Validate a table and split it into series.

    Args:
        data: a long DataFrame, a Series or an array.
        target: the column(s) to forecast; inferred when the table has exactly one numeric column.
        time: the time column (``None``: the index for DataFrames, integer steps for arrays).
        series_id: the column that tells series apart, for many series in one table.
        past_covariates: columns known only up to the forecast origin.
        future_covariates: columns also known over the horizon.
        fill_missing: ``"error"`` or ``"interpolate"`` (linear; the nearest value at the ends).

    Returns:
        the series, in order of first appearance, and the :class:`Schema`.

    Raises:
        DataError: for the problems listed in the module docstring.
        ConfigError: for contradictory arguments.

    Example:
        >>> frame = pd.DataFrame({"t": [1, 2, 3, 4], "y": [1.0, 2.0, None, 4.0]})
        >>> series, schema = to_series(frame, "y", time="t", fill_missing="interpolate")
        >>> series[0].target[:, 0].tolist(), schema.freq
        ([1.0, 2.0, 3.0, 4.0], 1)
    """
    if fill_missing not in FILL_MODES:
        raise ConfigError(f"fill_missing must be one of {FILL_MODES}, got {fill_missing!r}")
    past, future = [str(c) for c in past_covariates], [str(c) for c in future_covariates]
    keys = [c for c in (time, series_id) if c is not None]
    frame, targets = _as_frame(data, target, keys + past + future)
    roles = {"target": targets, "past covariate": past, "future covariate": future}
    for role, columns in roles.items():
        _check_columns(frame, columns, role)
    if time is not None:
        _check_columns(frame, [time], "time")
    if series_id is not None:
        _check_columns(frame, [series_id], "series id")
    used = targets + past + future + keys
    if len(set(used)) != len(used):
        raise ConfigError(f"a column cannot play two roles: targets {targets}, past covariates {past}, "
                          f"future covariates {future}, time {time!r}, series id {series_id!r}")
    if len(frame) == 0:
        raise DataError("the data has no rows")
    rows = np.arange(len(frame))
    if series_id is not None and frame[series_id].isna().any():
        position = int(np.flatnonzero(frame[series_id].isna().to_numpy())[0])
        raise DataError(f"series id column {series_id!r} is missing at row {position} "
                        f"({int(frame[series_id].isna().sum())} row(s) in all); every row needs its series")
    groups = [(str(key), idx) for key, idx in frame.groupby(series_id, sort=False).indices.items()] \
        if series_id is not None else [("series", rows)]
    series: list[Series] = []
    kinds, freqs = set(), set()
    for name, idx in groups:
        part = frame.iloc[idx]
        index, kind = _time_index(part, time, name, idx)
        freq = _frequency(index, kind, name, idx)
        kinds.add(kind)
        if freq is not None:
            freqs.add(freq)

        blocks = [_block(part, columns, name, idx, fill_missing) for columns in (targets, past, future)]
        series.append(Series(name, index, *blocks))
    if len(kinds) > 1 or len(freqs) > 1:
        raise DataError(f"all series must share one kind of time stamp and frequency, got {sorted(kinds)} and "
                        f"{sorted(map(str, freqs))}")
    schema = Schema(targets, time, series_id, past, future, kinds.pop(), freqs.pop() if freqs else None)
    return series, schema


def _block(part: pd.DataFrame, columns: list[str], name: str, rows: np.ndarray, fill_missing: str) -> np.ndarray:
    """The given columns of one series as a float array ``(n, len(columns))``."""
    values = [_fill(name, c, _numeric(part, c, rows), rows, fill_missing) for c in columns]
    return np.stack(values, axis=1) if values else np.zeros((len(part), 0))


def wide_to_long(frame: pd.DataFrame, time: str | None = None, value_name: str = "value",
                 id_name: str = "series") -> pd.DataFrame:
    """A wide table (one column per series) as a long one with a series id column.

    Example:
        >>> wide = pd.DataFrame({"t": [1, 2], "a": [1.0, 2.0], "b": [3.0, 4.0]})
        >>> wide_to_long(wide, "t").columns.tolist()
        ['t', 'series', 'value']
    """
    time_col = time if time is not None else "time"
    data = frame if time is not None else frame.rename_axis(time_col).reset_index()
    columns = [c for c in data.columns if c != time_col]
    long = data.melt(id_vars=[time_col], value_vars=columns, var_name=id_name, value_name=value_name)
    return long[[time_col, id_name, value_name]]


def future_times(last: Any, freq: str | int | None, kind: str, horizon: int) -> pd.Index:
    """The ``horizon`` time stamps after ``last``."""
    if kind == "datetime":
        return pd.date_range(pd.Timestamp(last), periods=horizon + 1, freq=freq)[1:]
    step = int(freq or 1)
    return pd.Index(np.arange(1, horizon + 1, dtype=np.int64) * step + int(last))


def season_length_for(freq: str | int | None) -> int:
    """Observations per season for a pandas frequency alias (12 for monthly data, ...), else 1."""
    if not isinstance(freq, str):
        return 1
    base = freq.split("-")[0].lstrip("0123456789")
    while base not in _SEASONS and len(base) > 1 and base[0] in "BC":
        base = base[1:]  # business / custom-business months and quarters ("BMS", "CBME") are still months
    return _SEASONS.get(base, _SEASONS.get(base[:1], 1))
