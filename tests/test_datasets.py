"""Built-in datasets: lengths, known values, dtypes, metadata and the unknown-name error."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from lstmkit.data.datasets import DatasetInfo, dataset_info, list_datasets, load_dataset
from lstmkit.errors import ConfigError, InputTypeError


def test_list_datasets_names_and_types():
    infos = list_datasets()
    assert [info.name for info in infos] == ["airline", "sine", "sunspots"]
    assert all(isinstance(info, DatasetInfo) for info in infos)
    assert infos == [dataset_info(info.name) for info in infos]


def test_dataset_info_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset_info("airline").season_length = 4


@pytest.mark.parametrize(
    "name, n_rows, time_dtype, first_time, last_time, first_value, last_value",
    [
        ("airline", 144, "datetime64[ns]", pd.Timestamp("1949-01-01"), pd.Timestamp("1960-12-01"), 112.0, 432.0),
        ("sunspots", 309, "int64", 1700, 2008, 5.0, 2.9),
        ("sine", 1000, "int64", 0, 999, 0.0, np.sin(99.9)),
    ],
)
def test_lengths_ends_and_dtypes(name, n_rows, time_dtype, first_time, last_time, first_value, last_value):
    info = dataset_info(name)
    frame = load_dataset(name)
    assert list(frame.columns) == [info.time_column, info.target]
    assert isinstance(frame.index, pd.RangeIndex) and len(frame) == n_rows
    assert str(frame[info.time_column].dtype) == time_dtype
    assert frame[info.target].dtype == np.float64
    assert frame[info.time_column].iloc[0] == first_time and frame[info.time_column].iloc[-1] == last_time
    assert frame[info.target].iloc[0] == first_value and frame[info.target].iloc[-1] == last_value
    assert not frame.isna().any().any()


def test_airline_known_values_and_monthly_index():
    frame = load_dataset("airline").set_index("month")["passengers"]
    assert frame["1949-02-01"] == 118.0
    assert frame.idxmax() == pd.Timestamp("1960-07-01") and frame.max() == 622.0
    assert frame.sum() == 40363.0  # the series mean is the well-known 280.30
    assert pd.infer_freq(frame.index) == "MS"


def test_sunspots_known_values_and_consecutive_years():
    frame = load_dataset("sunspots")
    assert (np.diff(frame["year"]) == 1).all()
    peak = frame.loc[frame["sunspots"].idxmax()]
    assert peak["year"] == 1957 and peak["sunspots"] == 190.2
    assert frame["sunspots"].min() == 0.0


def test_sine_is_the_documented_generator():
    frame = load_dataset("sine")
    np.testing.assert_array_equal(frame["step"], np.arange(1000))
    np.testing.assert_array_equal(frame["value"], np.sin(0.1 * np.arange(1000)))
    assert "numpy.sin(0.1 * step)" in dataset_info("sine").description


def test_metadata():
    assert dataset_info("airline").season_length == 12 and dataset_info("airline").frequency == "monthly"
    assert dataset_info("sunspots").frequency == "yearly"
    assert all(info.source and info.description for info in list_datasets())


def test_each_load_is_a_fresh_frame():
    frame = load_dataset("airline")
    frame.loc[0, "passengers"] = -1.0
    assert load_dataset("airline")["passengers"].iloc[0] == 112.0


def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(ConfigError, match=r"unknown dataset 'airlines'.*airline, sine, sunspots"):
        load_dataset("airlines")
    with pytest.raises(ValueError, match="unknown dataset 'Sine'"):  # no silent case folding
        dataset_info("Sine")


def test_non_string_name():
    with pytest.raises(InputTypeError, match="must be a str, got int 3"):
        load_dataset(3)
