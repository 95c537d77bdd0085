"""Table validation (to_series and friends) and training windows (window_origins, WindowDataset)."""

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit.data.frames import future_times, season_length_for, to_series, wide_to_long
from lstmkit.data.windows import WindowDataset, window_origins
from lstmkit.errors import ConfigError, DataError, InputTypeError


def table(y, t=None, **columns) -> pd.DataFrame:
    y = list(y)
    return pd.DataFrame({"t": list(range(1, len(y) + 1)) if t is None else t, "y": y, **columns})


# -- to_series: one problem at a time -----------------------------------------------------------


def test_non_numeric_values_name_the_column_the_row_and_the_value():
    frame = table([1.0, 2.0, "abc", 4.0, 5.0])
    with pytest.raises(DataError, match=r"column 'y' has non-numeric values, e.g. 'abc' at row 2; .*pd.to_numeric"):
        to_series(frame, "y", time="t")
    with pytest.raises(DataError, match=r"column 'x' has non-numeric values, e.g. 'n/a' at row 4"):
        to_series(table(range(5), x=[1, 2, 3, 4, "n/a"]), "y", time="t", past_covariates=["x"])
    # numbers written as text are numbers
    series, _ = to_series(table(["1.5", "2", "3", "4"]), "y", time="t")
    assert series[0].target[:, 0].tolist() == [1.5, 2.0, 3.0, 4.0]


def test_missing_values_are_an_error_unless_interpolated_linearly_with_the_ends_filled():
    frame = table([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan])
    with pytest.raises(DataError, match=r"column 'y' of series 'series' has 4 missing value\(s\), the first at row 0; "
                                        r"pass fill_missing='interpolate'"):
        to_series(frame, "y", time="t")
    series, _ = to_series(frame, "y", time="t", fill_missing="interpolate")
    assert series[0].target[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    with pytest.raises(DataError, match="no values at all"):
        to_series(table([np.nan] * 4), "y", time="t", fill_missing="interpolate")
    with pytest.raises(ConfigError, match="fill_missing must be one of"):
        to_series(frame, "y", time="t", fill_missing="zero")


@pytest.mark.parametrize("fill_missing", ["error", "interpolate"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_are_never_filled(fill_missing, value):
    frame = table([1.0, 2.0, 3.0, value, 5.0, np.nan])
    with pytest.raises(DataError, match=r"column 'y' of series 'series' has 1 infinite value\(s\), the first at row 3"):
        to_series(frame, "y", time="t", fill_missing=fill_missing)


def test_unsorted_and_duplicate_timestamps_name_the_rows():
    with pytest.raises(DataError, match=r"time column 't' of series 'series' is not sorted: row 3 \(3\) comes after "
                                        r"row 2 \(4\); sort the data by time"):
        to_series(table(range(5), t=[1, 2, 4, 3, 5]), "y", time="t")
    with pytest.raises(DataError, match=r"series 'series' has duplicate timestamps: 2 at rows 1 and 2; aggregate"):
        to_series(table(range(4), t=[1, 2, 2, 3]), "y", time="t")
    dates = pd.to_datetime(["2020-01-01", "2020-02-01", "2020-02-01", "2020-03-01"])
    with pytest.raises(DataError, match=r"duplicate timestamps: 2020-02-01 00:00:00 at rows 1 and 2"):
        to_series(table(range(4), t=dates), "y", time="t")


def test_missing_columns_are_listed_with_the_columns_there_are():
    frame = table(range(4), x=range(4))
    for kwargs, role, name in [({"target": "z"}, "target", "z"), ({"target": "y", "time": "when"}, "time", "when"),
                               ({"target": "y", "series_id": "store"}, "series id", "store"),
                               ({"target": "y", "past_covariates": ["p"]}, "past covariate", "p"),
                               ({"target": "y", "future_covariates": ["f"]}, "future covariate", "f")]:
        with pytest.raises(DataError, match=rf"{role} column\(s\) '{name}' not in the data; its columns are 't', 'y', "
                                            r"'x'"):
            to_series(frame, **kwargs)


def test_irregular_spacing_is_an_error_that_says_where():
    with pytest.raises(DataError, match=r"not evenly spaced \(steps \[1, 2\]\): row 3 \(5\) is 2 after the previous "
                                        r"row.*fill the gaps"):
        to_series(table(range(6), t=[1, 2, 3, 5, 6, 7]), "y", time="t")
    months = pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01", "2020-06-01", "2020-07-01"])
    with pytest.raises(DataError, match=r"not regularly spaced .*row 4 \(2020-06-01 00:00:00\) breaks the 'MS' "
                                        r"spacing.*resample"):
        to_series(table(range(6), t=months), "y", time="t")


def test_a_column_cannot_play_two_roles():
    frame = table(range(5), x=range(5))
    with pytest.raises(ConfigError, match="a column cannot play two roles"):
        to_series(frame, "y", time="t", past_covariates=["y"])
    with pytest.raises(ConfigError, match="a column cannot play two roles"):
        to_series(frame, ["y", "x"], time="t", future_covariates=["x"])
    with pytest.raises(ConfigError, match="a column cannot play two roles.*time 't'"):
        to_series(frame, "t", time="t")
    with pytest.raises(ConfigError, match="a column cannot play two roles.*series id 'x'"):
        to_series(frame, "y", time="t", series_id="x", past_covariates=["x"])


def test_empty_tables_and_unusable_inputs():
    with pytest.raises(DataError, match="the data has no rows"):
        to_series(pd.DataFrame({"t": [], "y": []}), "y", time="t")
    with pytest.raises(DataError, match="the data has no rows"):
        to_series(np.zeros(0))
    with pytest.raises(InputTypeError, match="1-D or 2-D array.*3-D"):
        to_series(np.zeros((2, 3, 4)))
    with pytest.raises(InputTypeError, match="got dict"):
        to_series({"y": [1, 2, 3]})
    with pytest.raises(DataError, match="time column 't' is neither integers nor dates"):
        to_series(table(range(3), t=["a", "b", "c"]), "y", time="t")
    with pytest.raises(DataError, match="time column 't' of series 'series' is missing at row 1"):
        to_series(table(range(3), t=pd.to_datetime(["2020-01-01", None, "2020-01-03"])), "y", time="t")


def test_the_target_is_inferred_only_when_one_numeric_column_is_left():
    frame = table([1.0, 2.0, 3.0])
    _, schema = to_series(frame, time="t")  # the time column is not a candidate
    assert schema.target == ["y"]
    with pytest.raises(ConfigError, match=r"the data has 3 columns \(t, y, x\); say which to forecast with target="):
        to_series(table([1.0, 2.0, 3.0], x=[1.0, 2.0, 3.0]), time="t")
    _, schema = to_series(table([1.0, 2.0, 3.0], x=[1.0, 2.0, 3.0]), time="t", past_covariates=["x"])
    assert schema.target == ["y"]


# -- to_series: many series, time kinds ---------------------------------------------------------


def long_table() -> pd.DataFrame:
    # interleaved rows, "b" first: order of first appearance, not sorted order
    return pd.DataFrame({
        "store": ["b", "a", "b", "a", "b", "a", "b"],
        "t": [1, 1, 2, 2, 3, 3, 4],
        "y": [10.0, 1.0, 20.0, 2.0, 30.0, 3.0, 40.0],
        "price": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        "holiday": [0, 1, 0, 1, 1, 0, 0],
    })


def test_long_tables_split_into_series_in_order_of_first_appearance():
    series, schema = to_series(long_table(), "y", time="t", series_id="store", past_covariates=["price"],
                               future_covariates=["holiday"])
    assert [s.id for s in series] == ["b", "a"]
    b, a = series
    assert b.target[:, 0].tolist() == [10.0, 20.0, 30.0, 40.0] and a.target[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert b.past[:, 0].tolist() == [0.1, 0.3, 0.5, 0.7] and a.future[:, 0].tolist() == [1.0, 1.0, 0.0]
    assert b.target.shape == (4, 1) and b.past.shape == (4, 1) and b.future.shape == (4, 1)
    assert list(b.time) == [1, 2, 3, 4] and len(a) == 3
    assert schema.series_id == "store" and schema.past_covariates == ["price"]
    assert schema.future_covariates == ["holiday"]
    assert schema.time_kind == "int" and schema.freq == 1
    assert schema.to_dict() == type(schema).from_dict(schema.to_dict()).to_dict()


def test_each_series_is_checked_on_its_own_with_rows_of_the_whole_table():
    frame = long_table()
    frame.loc[5, "t"] = 2  # series "a": 1, 2, 2
    with pytest.raises(DataError, match=r"series 'a' has duplicate timestamps: 2 at rows 3 and 5"):
        to_series(frame, "y", time="t", series_id="store")
    frame = long_table()
    frame.loc[4, "y"] = np.nan
    with pytest.raises(DataError, match=r"column 'y' of series 'b' has 1 missing value\(s\), the first at row 4"):
        to_series(frame, "y", time="t", series_id="store")
    frame = long_table()
    frame.loc[6, "t"] = 5  # series "b": 1, 2, 3, 5 while "a" has step 1
    with pytest.raises(DataError, match="series 'b' are not evenly spaced"):
        to_series(frame, "y", time="t", series_id="store")
    frame = long_table().assign(t=[1, 2, 3, 4, 5, 6, 7])  # "b": 1, 3, 5, 7 and "a": 2, 4, 6 - both step 2
    assert to_series(frame, "y", time="t", series_id="store")[1].freq == 2
    frame = long_table().assign(t=[1, 1, 3, 2, 5, 3, 7])  # "b" step 2, "a" step 1
    with pytest.raises(DataError, match="all series must share one kind of time stamp and frequency"):
        to_series(frame, "y", time="t", series_id="store")


def test_rows_without_a_series_id_are_an_error_not_dropped():
    frame = long_table()
    frame.loc[3, "store"] = None
    with pytest.raises(DataError, match=r"series id column 'store' is missing at row 3"):
        to_series(frame, "y", time="t", series_id="store")


def test_datetime_and_integer_time_and_their_frequency():
    months = pd.date_range("2020-01-01", periods=6, freq="MS")
    for t in (months, months.strftime("%Y-%m-%d")):  # datetimes, or dates as text
        series, schema = to_series(table(range(6), t=t), "y", time="t")
        assert schema.time_kind == "datetime" and schema.freq == "MS"
        assert isinstance(series[0].time, pd.DatetimeIndex) and series[0].time[0] == pd.Timestamp("2020-01-01")
    _, schema = to_series(table(range(5), t=[10, 15, 20, 25, 30]), "y", time="t")
    assert schema.time_kind == "int" and schema.freq == 5
    for freq, expected in [("D", "D"), ("h", "h"), ("W-SUN", "W-SUN"), ("QS-OCT", "QS-OCT")]:
        stamps = pd.date_range("2021-01-03", periods=8, freq=freq)
        assert to_series(pd.Series(np.arange(8.0), index=stamps))[1].freq == expected
    # a Series or an array: the index / integer steps
    series, schema = to_series(pd.Series([1.0, 2.0, 3.0], name="sales"))
    assert schema.target == ["sales"] and schema.time is None and schema.time_kind == "int" and schema.freq == 1
    series, schema = to_series(np.arange(12.0).reshape(6, 2))
    assert schema.target == ["value_0", "value_1"] and series[0].target.shape == (6, 2)
    assert series[0].past.shape == (6, 0) and series[0].future.shape == (6, 0)
    assert to_series(np.arange(3.0))[1].target == ["value"]
    assert to_series(pd.Series([1.0, 2.0]))[1].freq is None  # too short to tell


@pytest.mark.parametrize("freq,season", [
    ("MS", 12), ("ME", 12), ("M", 12), ("BMS", 12), ("CBME", 12), ("QS-OCT", 4), ("QE-DEC", 4), ("BQE", 4),
    ("W-SUN", 52), ("D", 7), ("B", 5), ("h", 24), ("2h", 24), ("bh", 8), ("YS-JAN", 1), ("min", 1), ("s", 1),
    (1, 1), (5, 1), (None, 1),
])
def test_season_length_for_frequencies(freq, season):
    assert season_length_for(freq) == season


def test_wide_to_long():
    wide = pd.DataFrame({"t": [1, 2, 3], "a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})
    long = wide_to_long(wide, "t")
    assert long.columns.tolist() == ["t", "series", "value"]
    assert long["series"].tolist() == ["a"] * 3 + ["b"] * 3
    assert long["t"].tolist() == [1, 2, 3] * 2 and long["value"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    by_index = wide_to_long(wide.set_index("t"), value_name="sales", id_name="store")
    assert by_index.columns.tolist() == ["time", "store", "sales"] and by_index["time"].tolist() == [1, 2, 3] * 2
    series, _ = to_series(long, "value", time="t", series_id="series")
    assert [s.id for s in series] == ["a", "b"] and series[1].target[:, 0].tolist() == [4.0, 5.0, 6.0]


def test_future_times_continue_the_frequency():
    assert list(future_times(pd.Timestamp("2020-11-01"), "MS", "datetime", 3)) == list(
        pd.to_datetime(["2020-12-01", "2021-01-01", "2021-02-01"]))
    assert list(future_times(pd.Timestamp("2021-01-31"), "ME", "datetime", 2)) == list(
        pd.to_datetime(["2021-02-28", "2021-03-31"]))
    assert future_times(100, 5, "int", 3).tolist() == [105, 110, 115]
    assert future_times(7, None, "int", 2).tolist() == [8, 9]


# -- windows ------------------------------------------------------------------------------------


def test_window_origins_exact_indices():
    origins, which = window_origins([6, 5], window=2, horizon=2)
    assert origins.tolist() == [0, 1, 2, 6, 7] and which.tolist() == [0, 0, 0, 1, 1]
    # validation windows: targets in the last 2 steps of each series ([4, 6) and [3, 5))
    origins, which = window_origins([6, 5], 2, 2, first_target=[4, 3])
    assert origins.tolist() == [2, 7] and which.tolist() == [0, 1]
    # training windows: targets before them; the second series is too short for one
    origins, which = window_origins([6, 5], 2, 2, 0, last_target=[4, 3])
    assert origins.tolist() == [0] and which.tolist() == [0]
    origins, which = window_origins([3, 3], 2, 2)
    assert origins.dtype == np.int64 and origins.size == 0 and which.size == 0
    origins, _ = window_origins([10], 3, 1, first_target=np.int64(1))
    assert origins.tolist() == list(range(7))


def test_window_origins_match_a_brute_force_enumeration():
    rng = np.random.default_rng(0)
    for _ in range(30):
        lengths = rng.integers(1, 15, size=rng.integers(1, 4)).tolist()
        window, horizon = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        firsts = [int(rng.integers(0, n + 1)) for n in lengths]
        lasts = [int(rng.integers(f, n + 1)) for f, n in zip(firsts, lengths)]
        expected, offset = [], 0
        for k, n in enumerate(lengths):
            for local in range(n):
                targets = range(local + window, local + window + horizon)
                if targets[-1] < n and targets[0] >= firsts[k] and targets[-1] < lasts[k]:
                    expected.append((offset + local, k))
            offset += n
        origins, which = window_origins(lengths, window, horizon, firsts, lasts)
        assert list(zip(origins.tolist(), which.tolist())) == expected


@pytest.mark.parametrize("n_past,n_future", [(0, 0), (1, 2)])
def test_window_dataset_batches_equal_manual_slices(n_past, n_future):
    n_targets, window, horizon = 2, 4, 3
    width = n_targets + n_past + n_future
    values = torch.arange(30 * width, dtype=torch.float32).reshape(30, width)
    origins, which = window_origins([16, 14], window, horizon)
    dataset = WindowDataset(values, origins, which, window, horizon, n_targets, n_future)
    assert len(dataset) == len(origins) == (16 - 7 + 1) + (14 - 7 + 1)
    picks = [0, 5, len(dataset) - 1, 3]
    inputs, future, targets, series = dataset.__getitems__(picks)
    assert inputs.shape == (4, window, width) and future.shape == (4, horizon, n_future)
    assert targets.shape == (4, horizon, n_targets) and series.tolist() == [int(which[p]) for p in picks]
    for row, p in enumerate(picks):
        o = int(origins[p])
        assert torch.equal(inputs[row], values[o:o + window])
        assert torch.equal(targets[row], values[o + window:o + window + horizon, :n_targets])
        assert torch.equal(future[row], values[o + window:o + window + horizon, width - n_future:])
        one = dataset[p]
        for part, batch_part in zip(one, (inputs, future, targets, series)):
            assert torch.equal(part, batch_part[row])
    assert WindowDataset.collate((inputs, future, targets, series))[0] is inputs
