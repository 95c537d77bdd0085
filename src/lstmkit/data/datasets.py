"""Built-in time series that ship inside the package, for examples, tests and benchmarks.

Nothing is downloaded at run time: ``sine`` is generated in code, ``airline`` and ``sunspots`` are
CSV files in ``lstmkit/data/builtin/`` read through :mod:`importlib.resources`, so they load the
same from a source checkout, an editable install or a wheel.

============  =====  ============  ==========  =========  =============
name          rows   time column   target      frequency  season_length
============  =====  ============  ==========  =========  =============
``airline``   144    ``month``     passengers  monthly    12
``sine``      1000   ``step``      ``value``   step       1
``sunspots``  309    ``year``      sunspots    yearly     1
============  =====  ============  ==========  =========  =============

Every frame has exactly two columns, the time column first; the target is always ``float64``.
The time column is ``datetime64[ns]`` for ``airline`` (first day of each month) and ``int64``
for ``sine`` (step index) and ``sunspots`` (calendar year).

Provenance of the files (written once, checked against known values, never regenerated at run
time): ``airline.csv`` holds the values of ``statsforecast.utils.AirPassengers``; ``sunspots.csv``
holds ``statsmodels.datasets.sunspots`` (``YEAR``, ``SUNACTIVITY``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from lstmkit.errors import ConfigError, DataError, InputTypeError

__all__ = ["DatasetInfo", "list_datasets", "dataset_info", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a built-in dataset is and how to read it.

    Attributes:
        name: The name to pass to :func:`load_dataset`.
        description: What the series measures; for generated data, the exact generator.
        time_column: Name of the time column (the first column of the frame).
        target: Name of the value column to forecast.
        frequency: Sampling interval in words: ``"monthly"``, ``"yearly"`` or ``"step"`` (unit
            integer steps with no calendar meaning).
        season_length: Number of observations in one seasonal cycle, as statsforecast's
            ``season_length``; 1 when the series has no fixed integer season.
        source: Where the values come from.
        horizon: The horizon ``lstmkit forecast`` uses when none is given: a year of the
            airline's months, the 20 years the sunspot benchmark holds out, one period of the sine.
        summary: One line for listings.
    """

    name: str
    description: str
    time_column: str
    target: str
    frequency: str
    season_length: int
    source: str
    horizon: int
    summary: str


@dataclass(frozen=True)
class _Dataset:
    info: DatasetInfo
    n_rows: int
    load: Callable[[], pd.DataFrame]


def _read_builtin_csv(filename: str) -> pd.DataFrame:
    resource = resources.files("lstmkit.data") / "builtin" / filename
    with resource.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def _load_airline() -> pd.DataFrame:
    raw = _read_builtin_csv("airline.csv")
    return pd.DataFrame(
        {
            "month": pd.to_datetime(raw["month"], format="%Y-%m-%d").astype("datetime64[ns]"),
            "passengers": raw["passengers"].astype(np.float64),
        }
    )


def _load_sunspots() -> pd.DataFrame:
    raw = _read_builtin_csv("sunspots.csv")
    return pd.DataFrame({"year": raw["year"].astype(np.int64), "sunspots": raw["sunspots"].astype(np.float64)})


def _load_sine() -> pd.DataFrame:
    step = np.arange(1000, dtype=np.int64)
    return pd.DataFrame({"step": step, "value": np.sin(0.1 * step)})


_DATASETS: dict[str, _Dataset] = {
    "airline": _Dataset(
        info=DatasetInfo(
            name="airline",
            description=(
                "Monthly totals of international airline passengers in thousands, January 1949 to "
                "December 1960 (144 values; Box & Jenkins series G). Trend with multiplicative "
                "yearly seasonality; the classic test of seasonal models."
            ),
            time_column="month",
            target="passengers",
            frequency="monthly",
            season_length=12,
            source=(
                "Box, G. E. P. and Jenkins, G. M., Time Series Analysis: Forecasting and Control, "
                "series G; values copied from statsforecast.utils.AirPassengers (identical to R's "
                "datasets::AirPassengers)."
            ),
            horizon=12,
            summary="Monthly airline passengers (thousands), 1949-1960",
        ),
        n_rows=144,
        load=_load_airline,
    ),
    "sine": _Dataset(
        info=DatasetInfo(
            name="sine",
            description=(
                "Noise-free sine wave generated in code: value = numpy.sin(0.1 * step) for "
                "step = 0, 1, ..., 999 (1,000 values, float64). Its period, 2*pi/0.1 = 62.83 "
                "steps, is not an integer, so season_length is 1."
            ),
            time_column="step",
            target="value",
            frequency="step",
            season_length=1,
            source="Generated by lstmkit.data.datasets (no file).",
            horizon=63,
            summary="The seeds' sine wave, numpy.sin(0.1 * step), 1,000 steps",
        ),
        n_rows=1000,
        load=_load_sine,
    ),
    "sunspots": _Dataset(
        info=DatasetInfo(
            name="sunspots",
            description=(
                "Yearly mean sunspot numbers, 1700 to 2008 (309 values). Quasi-periodic with a "
                "cycle of roughly 11 years whose length and amplitude vary, so season_length is 1 "
                "(the usual choice for yearly data)."
            ),
            time_column="year",
            target="sunspots",
            frequency="yearly",
            season_length=1,
            source=(
                "NOAA National Geophysical Data Center, "
                "http://www.ngdc.noaa.gov/stp/solar/solarda3.html (the original sunspot number "
                "series, before the 2015 recalibration); values copied from "
                "statsmodels.datasets.sunspots."
            ),
            horizon=20,
            summary="Yearly mean sunspot numbers, 1700-2008",
        ),
        n_rows=309,
        load=_load_sunspots,
    ),
}


def _lookup(name: str) -> _Dataset:
    if not isinstance(name, str):
        raise InputTypeError(f"dataset name must be a str, got {type(name).__name__} {name!r}")
    if name not in _DATASETS:
        known = ", ".join(sorted(_DATASETS))
        raise ConfigError(f"unknown dataset {name!r}; the built-in datasets are: {known}")
    return _DATASETS[name]


def list_datasets() -> list[DatasetInfo]:
    """Describe every built-in dataset, sorted by name.

    Returns:
        One :class:`DatasetInfo` per dataset.

    Example:
        >>> [info.name for info in list_datasets()]
        ['airline', 'sine', 'sunspots']
    """
    return [_DATASETS[name].info for name in sorted(_DATASETS)]


def dataset_info(name: str) -> DatasetInfo:
    """Describe one built-in dataset without loading it.

    Args:
        name: A name from :func:`list_datasets`.

    Returns:
        The dataset's :class:`DatasetInfo`.

    Raises:
        ConfigError: ``name`` is not a built-in dataset (the message lists the known names).
        InputTypeError: ``name`` is not a string.

    Example:
        >>> info = dataset_info("airline")
        >>> info.time_column, info.target, info.season_length
        ('month', 'passengers', 12)
    """
    return _lookup(name).info


def load_dataset(name: str) -> pd.DataFrame:
    """Load a built-in dataset as a fresh two-column frame: time column, then target.

    Args:
        name: A name from :func:`list_datasets`.

    Returns:
        A :class:`pandas.DataFrame` in time order with a default ``RangeIndex``. The target is
        ``float64``; the time column is ``datetime64[ns]`` (``airline``) or ``int64``
        (``sine``, ``sunspots``). The caller owns the frame and may modify it.

    Raises:
        ConfigError: ``name`` is not a built-in dataset (the message lists the known names).
        InputTypeError: ``name`` is not a string.
        DataError: The packaged file is damaged (wrong row count or missing values).

    Example:
        >>> frame = load_dataset("airline")
        >>> frame.shape
        (144, 2)
        >>> float(frame["passengers"].iloc[0]), str(frame["month"].iloc[-1].date())
        (112.0, '1960-12-01')
    """
    dataset = _lookup(name)
    frame = dataset.load()
    info = dataset.info
    # A damaged installation should fail here, not as a puzzling forecast later.
    if len(frame) != dataset.n_rows or frame.isna().any().any():
        raise DataError(
            f"built-in dataset {name!r} should have {dataset.n_rows} complete rows but has {len(frame)} rows "
            f"and {int(frame.isna().sum().sum())} missing values; the package data is damaged, reinstall lstmkit"
        )
    return frame[[info.time_column, info.target]]
