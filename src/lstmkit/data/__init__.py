"""Data: built-in datasets, table validation, windowing."""

from lstmkit.data.datasets import DatasetInfo, dataset_info, list_datasets, load_dataset
from lstmkit.data.frames import Schema, Series, to_series, wide_to_long
from lstmkit.data.windows import WindowDataset, window_origins

__all__ = ["DatasetInfo", "dataset_info", "list_datasets", "load_dataset", "Schema", "Series", "to_series",
           "wide_to_long", "WindowDataset", "window_origins"]
