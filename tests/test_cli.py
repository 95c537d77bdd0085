"""The ``lstmkit`` command: help, datasets, forecast (a run directory), predict, and one-line errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from lstmkit.cli.main import app
from lstmkit.tasks.forecast import LSTMForecaster

runner = CliRunner()
FAST = ["--epochs", "3", "--hidden-size", "4", "--transform", "none", "--ensemble", "1"]
METHODS = {"LSTM", "naive", "seasonal_naive", "auto_ets", "auto_arima"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny networks: a second intra-op thread only waits (and spins for long on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sales_csv(path) -> pd.DataFrame:
    t = np.arange(60)
    frame = pd.DataFrame({"day": pd.date_range("2021-01-01", periods=60, freq="D"),
                          "sales": 20 + np.sin(t / 2) + 0.1 * t, "weekday": (t % 7).astype(float)})
    frame.to_csv(path, index=False)
    return frame


def only_run(runs: Path) -> Path:
    """The one run directory written, with nothing else (no temporary directory) beside it."""
    entries = list(runs.iterdir())
    assert len(entries) == 1 and entries[0].is_dir() and not entries[0].name.startswith("."), entries
    return entries[0]


def assert_failed(result, message: str, runs=None) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    if runs is not None:
        assert not runs.exists() or list(runs.iterdir()) == []


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One forecast run on a small CSV."""
    root = tmp_path_factory.mktemp("cli")
    frame = sales_csv(root / "sales.csv")
    result = runner.invoke(app, ["forecast", "--data", str(root / "sales.csv"), "--target", "sales", "--time", "day",
                                 "--horizon", "4", "--runs", str(root / "runs"), *FAST])
    return result, root, frame


def test_help_of_every_command_shows_examples():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and all(name in result.output for name in ("forecast", "predict", "datasets"))
    for command, example in [("forecast", "lstmkit forecast --data sunspots --horizon 20"),
                             ("predict", "lstmkit predict --model runs/"),
                             ("datasets", "lstmkit forecast --data sunspots --horizon 20")]:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example" in result.output and example in result.output
    assert "--ensemble" in runner.invoke(app, ["forecast", "--help"]).output


def test_python_dash_m_lstmkit():
    done = subprocess.run([sys.executable, "-m", "lstmkit", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout and "forecast" in done.stdout and "datasets" in done.stdout


def test_datasets_lists_the_builtin_ones():
    result = runner.invoke(app, ["datasets"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name, rows, target in (("airline", "144", "passengers"), ("sine", "1000", "value"),
                               ("sunspots", "309", "sunspots")):
        row = next(line for line in lines if f" {name} " in line)
        assert rows in row and target in row  # whole, not cut to fit
        assert any(line.startswith(f"{name}  ") and len(line) > len(name) + 10 for line in lines)  # its description


def test_forecast_writes_a_complete_run_directory(run):
    result, root, frame = run
    assert result.exit_code == 0, result.output
    for method in METHODS:
        assert method in result.output
    assert "MASE" in result.output and "run directory:" in result.output
    directory = only_run(root / "runs")
    assert directory.name.startswith("forecast-sales-")
    assert {"model", "forecast.csv", "test_forecasts.csv", "metrics.json", "forecast.png", "config.json"} <= {
        p.name for p in directory.iterdir()}
    assert sorted(p.name for p in (directory / "model").iterdir()) == ["config.json", "model.safetensors"]

    forecast = pd.read_csv(directory / "forecast.csv", parse_dates=["day"])
    assert forecast.columns.tolist() == ["day", "target", "forecast", "lower_80", "upper_80"]
    assert list(forecast["day"]) == list(pd.date_range("2021-03-02", periods=4, freq="D"))
    test = pd.read_csv(directory / "test_forecasts.csv", parse_dates=["day"])
    assert len(test) == 4 and list(test["day"]) == list(frame["day"][-4:])
    np.testing.assert_allclose(test["actual"], frame["sales"][-4:])

    metrics = json.loads((directory / "metrics.json").read_text())
    assert set(metrics["methods"]) == METHODS
    assert metrics["test_size"] == 4 and metrics["horizon"] == 4 and metrics["chosen_transform"] == "none"
    for scores in metrics["methods"].values():
        assert {"mae", "rmse", "smape", "mase", "coverage_80"} <= set(scores)
        assert np.isfinite(scores["mase"]) and scores["mase"] > 0
    settings = json.loads((directory / "config.json").read_text())
    assert settings["horizon"] == 4 and settings["ensemble"] == 1 and settings["epochs"] == 3
    assert settings["target"] == "sales" and settings["time"] == "day"

    png = (directory / "forecast.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    image = matplotlib.image.imread(directory / "forecast.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    # the saved model is the one that made forecast.csv
    model = LSTMForecaster.load(directory / "model")
    assert model.ensemble == 1 and len(model.network_.members) == 1 and model.hidden_size == 4
    again = model.predict(pd.read_csv(root / "sales.csv"))
    np.testing.assert_allclose(again["forecast"], forecast["forecast"], rtol=1e-6)
    # and without the data it forecasts the same steps after the data (not the held-out ones)
    own = model.predict()
    assert list(pd.to_datetime(own["day"])) == list(forecast["day"])
    np.testing.assert_allclose(own["forecast"], forecast["forecast"], rtol=1e-6)


def test_predict_with_a_run_directory(run, tmp_path):
    _, root, _ = run
    directory = only_run(root / "runs")
    result = runner.invoke(app, ["predict", "--model", str(directory), "--data", str(root / "sales.csv")])
    assert result.exit_code == 0, result.output
    prediction = pd.read_csv(directory / "prediction.csv")
    assert len(prediction) == 4
    pd.testing.assert_frame_equal(prediction, pd.read_csv(directory / "forecast.csv"))
    output = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", "--model", str(directory / "model"), "--data", str(root / "sales.csv"),
                                 "--output", str(output)])
    assert result.exit_code == 0 and str(output) in result.output.replace("\n", "")
    pd.testing.assert_frame_equal(pd.read_csv(output), prediction)


def test_forecast_on_a_builtin_dataset(tmp_path):
    result = runner.invoke(app, ["forecast", "--data", "airline", "--horizon", "6", "--runs", str(tmp_path), *FAST])
    assert result.exit_code == 0, result.output
    directory = only_run(tmp_path)
    assert directory.name.startswith("forecast-airline-")
    forecast = pd.read_csv(directory / "forecast.csv", parse_dates=["month"])
    assert list(forecast["month"]) == list(pd.date_range("1961-01-01", periods=6, freq="MS"))
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["season_length"] == 12 and set(metrics["methods"]) == METHODS


def test_unknown_dataset(tmp_path):
    result = runner.invoke(app, ["forecast", "--data", "nope", "--horizon", "3", "--runs", str(tmp_path / "runs")])
    assert_failed(result, "no file or built-in dataset named 'nope'; built-in datasets: airline, sine, sunspots",
                  tmp_path / "runs")


def test_missing_target_column(run, tmp_path):
    _, root, _ = run
    result = runner.invoke(app, ["forecast", "--data", str(root / "sales.csv"), "--target", "units", "--time", "day",
                                 "--horizon", "4", "--runs", str(tmp_path / "runs"), *FAST])
    assert_failed(result, "target column(s) 'units' not in the data; its columns are 'day', 'sales', 'weekday'",
                  tmp_path / "runs")


def test_non_numeric_column(tmp_path):
    frame = sales_csv(tmp_path / "sales.csv").astype({"sales": object})
    frame.loc[5, "sales"] = "n/a?"
    frame.to_csv(tmp_path / "sales.csv", index=False)
    result = runner.invoke(app, ["forecast", "--data", str(tmp_path / "sales.csv"), "--target", "sales", "--time",
                                 "day", "--horizon", "4", "--runs", str(tmp_path / "runs"), *FAST])
    assert_failed(result, "column 'sales' has non-numeric values, e.g. 'n/a?' at row 5", tmp_path / "runs")


def test_bad_settings_are_one_line_errors(run, tmp_path):
    _, root, _ = run
    base = ["forecast", "--data", str(root / "sales.csv"), "--target", "sales", "--time", "day", "--horizon", "4",
            "--runs", str(tmp_path / "runs")]
    assert_failed(runner.invoke(app, [*base, "--quantiles", "0.1,half,0.9"]),
                  "--quantiles must be numbers separated by commas", tmp_path / "runs")
    assert_failed(runner.invoke(app, [*base, "--epochs", "0"]), "max_epochs must be an integer >= 1, got 0",
                  tmp_path / "runs")
    assert_failed(runner.invoke(app, [*base, "--quantiles", "0.1,0.9"]), "include 0.5", tmp_path / "runs")


def test_file_that_is_not_utf8_gives_the_byte_offset(tmp_path):
    # long enough that pandas decodes it in several chunks: the offset must be in the file, not in a chunk
    head = "t,y\n" + "".join(f"{i},{i}.5\n" for i in range(60_000))
    path = tmp_path / "latin1.csv"
    path.write_bytes(head.encode() + "60000,café\n".encode("latin-1"))
    offset = len(head.encode()) + len("60000,caf")
    result = runner.invoke(app, ["forecast", "--data", str(path), "--horizon", "3", "--runs", str(tmp_path / "runs")])
    assert_failed(result, f"is not UTF-8 text (undecodable byte at offset {offset}); re-save it as UTF-8",
                  tmp_path / "runs")


def test_predict_with_a_corrupt_model(run, tmp_path):
    _, root, _ = run
    model = tmp_path / "model"
    shutil.copytree(only_run(root / "runs") / "model", model)
    (model / "model.safetensors").write_bytes(b"not safetensors at all")
    result = runner.invoke(app, ["predict", "--model", str(model), "--data", str(root / "sales.csv")])
    assert_failed(result, "model.safetensors is not a readable safetensors file")
    assert not (model / "prediction.csv").exists()
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "none"), "--data", str(root / "sales.csv")])
    assert_failed(result, "does not exist; expected an lstmkit model directory")


def test_a_run_directory_appears_whole_or_not_at_all(tmp_path):
    from lstmkit.cli.common import new_run

    with new_run(tmp_path, "demo") as (tmp, final):
        (tmp / "a.txt").write_text("a")
        assert not final.exists() and tmp.name.startswith(".")
    assert (final / "a.txt").read_text() == "a" and not tmp.exists()
    with pytest.raises(RuntimeError), new_run(tmp_path, "demo") as (tmp, second):
        (tmp / "b.txt").write_text("b")
        raise RuntimeError("interrupted")
    assert not tmp.exists() and not second.exists() and second != final
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    """Two processes started together (lstmkit paper in two terminals, say) once both took the
    same temporary directory and one crashed; the directory a run creates is its claim."""
    import lstmkit.cli.common as common

    class Frozen(common.datetime):
        @classmethod
        def now(cls, tz=None):
            return common.datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(common, "datetime", Frozen)
    with common.new_run(tmp_path, "demo") as (first_tmp, first):
        # another process has claimed the next name too, but not yet renamed it
        with common.new_run(tmp_path, "demo") as (second_tmp, second):
            (second_tmp / "b.txt").write_text("b")
        (first_tmp / "a.txt").write_text("a")
    assert first.name == "demo-20260102-030405" and second.name.startswith("demo-20260102-030405-")
    assert (first / "a.txt").read_text() == "a" and (second / "b.txt").read_text() == "b"


def test_a_run_finishing_while_another_claims_its_name_loses_nothing(tmp_path, monkeypatch):
    """Run A renames its directory into place between run B's look at the name and B's claim."""
    import pathlib

    import lstmkit.cli.common as common

    class Frozen(common.datetime):
        @classmethod
        def now(cls, tz=None):
            return common.datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(common, "datetime", Frozen)
    first = common.new_run(tmp_path, "demo")
    first_tmp, first_final = first.__enter__()
    (first_tmp / "a.txt").write_text("a")
    exists = pathlib.Path.exists

    def finish_first_on_the_first_look(self, *args, **kwargs):
        seen = exists(self, *args, **kwargs)
        if self == first_final and not getattr(finish_first_on_the_first_look, "done", False):
            finish_first_on_the_first_look.done = True
            first.__exit__(None, None, None)
        return seen

    monkeypatch.setattr(pathlib.Path, "exists", finish_first_on_the_first_look)
    with common.new_run(tmp_path, "demo") as (second_tmp, second_final):
        monkeypatch.setattr(pathlib.Path, "exists", exists)
        (second_tmp / "b.txt").write_text("b")
    assert finish_first_on_the_first_look.done and second_final != first_final
    assert (first_final / "a.txt").read_text() == "a" and (second_final / "b.txt").read_text() == "b"


def test_every_command_and_group_shows_examples_in_its_help():
    for command in ([], ["forecast"], ["predict"], ["datasets"], ["classify"], ["tag"], ["paper"], ["textgen"],
                    ["textgen", "train"], ["textgen", "sample"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Example" in result.output and "lstmkit " in result.output.split("Example", 1)[1], command


def test_forecast_without_options_runs_the_airline_data_and_keeps_no_checkpoints(tmp_path):
    """The default dataset and its horizon; the settings used are recorded with the defaults filled in;
    the training logs stay, the (pickled) checkpoints of every candidate network go (the model is saved)."""
    result = runner.invoke(app, ["forecast", "--runs", str(tmp_path), "--epochs", "2", "--hidden-size", "4",
                                 "--ensemble", "2"])
    assert result.exit_code == 0, result.output
    directory = only_run(tmp_path)
    settings = json.loads((directory / "config.json").read_text())
    assert (settings["data"], settings["horizon"], settings["target"], settings["time"], settings["season_length"]) \
        == ("airline", 12, "passengers", "month", 12)
    assert settings["quantiles"] == "0.1,0.5,0.9"
    assert len(list((directory / "training").glob("*/logs/metrics.csv"))) == 6  # 3 transforms x 2 seeds
    assert list(directory.rglob("*.ckpt")) == []


def test_forecast_a_file_needs_a_horizon_and_recursive_mode_takes_no_quantiles(run, tmp_path):
    _, root, _ = run
    base = ["forecast", "--data", str(root / "sales.csv"), "--target", "sales", "--time", "day",
            "--runs", str(tmp_path / "runs")]
    assert_failed(runner.invoke(app, base), "--horizon is needed for", tmp_path / "runs")
    assert "greater than or equal to 1" in runner.invoke(app, [*base, "--horizon", "0"]).output
    assert runner.invoke(app, [*base, "--horizon", "0"]).exit_code == 2
    assert_failed(runner.invoke(app, [*base, "--horizon", "4", "--mode", "recursive", "--quantiles", "0.1,0.5,0.9"]),
                  "--mode recursive feeds its point forecast back and gives no intervals", tmp_path / "runs")
    result = runner.invoke(app, [*base, "--horizon", "4", "--mode", "recursive", *FAST])
    assert result.exit_code == 0, result.output
    forecast = pd.read_csv(only_run(tmp_path / "runs") / "forecast.csv")
    assert "lower_80" not in forecast.columns and len(forecast) == 4


def test_a_series_too_short_for_the_comparison_says_what_the_test_part_took(tmp_path):
    pd.DataFrame({"t": range(8), "v": np.arange(8.0)}).to_csv(tmp_path / "short.csv", index=False)
    result = runner.invoke(app, ["forecast", "--data", str(tmp_path / "short.csv"), "--target", "v", "--time", "t",
                                 "--horizon", "4", "--runs", str(tmp_path / "runs"), *FAST])
    assert_failed(result, "the comparison holds out the last 4 steps of every series; a smaller test_size leaves "
                          "more", tmp_path / "runs")


def test_a_wide_table_is_one_global_model_over_its_columns(tmp_path):
    """--wide reads each column as a series: the same run as the long table with a series column."""
    t = np.arange(48)
    wide = pd.DataFrame({"day": pd.date_range("2022-01-01", periods=48, freq="D"),
                         "north": 10 + np.sin(t / 3) + 0.05 * t, "south": 5 + np.cos(t / 4)})
    wide.to_csv(tmp_path / "wide.csv", index=False)
    wide.melt(id_vars="day", var_name="store", value_name="units").to_csv(tmp_path / "long.csv", index=False)
    common = ["--time", "day", "--horizon", "4", *FAST]
    result = runner.invoke(app, ["forecast", "--data", str(tmp_path / "wide.csv"), "--wide", "--runs",
                                 str(tmp_path / "wide"), *common])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["forecast", "--data", str(tmp_path / "long.csv"), "--target", "units", "--series-id",
                               "store", "--runs", str(tmp_path / "long"), *common]).exit_code == 0
    scores = [json.loads((only_run(tmp_path / kind) / "metrics.json").read_text())["methods"]
              for kind in ("wide", "long")]
    assert set(scores[0]) == set(scores[1]) == METHODS
    for method in METHODS:
        np.testing.assert_allclose(pd.Series(scores[0][method]), pd.Series(scores[1][method]), rtol=1e-6)

    directory = only_run(tmp_path / "wide")
    result = runner.invoke(app, ["predict", "--model", str(directory), "--data", str(tmp_path / "wide.csv"), "--wide"])
    assert result.exit_code == 0, result.output
    prediction = pd.read_csv(directory / "prediction.csv")
    assert prediction.groupby("series").size().to_dict() == {"north": 4, "south": 4}
    pd.testing.assert_frame_equal(prediction, pd.read_csv(directory / "forecast.csv"))

    base = ["forecast", "--data", str(tmp_path / "wide.csv"), "--wide", "--runs", str(tmp_path / "bad"), *common]
    assert_failed(runner.invoke(app, [*base, "--series-id", "north"]), "--wide reads one series per column",
                  tmp_path / "bad")
    assert_failed(runner.invoke(app, [*base, "--target", "north,east"]), "--wide: no column(s) ['east']",
                  tmp_path / "bad")


def test_wide_tables_without_a_time_column_and_with_some_columns_only(tmp_path):
    t = np.arange(40)
    pd.DataFrame({"north": 10 + np.sin(t / 3) + 0.05 * t, "south": 5 + np.cos(t / 4), "west": 3 + np.sin(t / 5)}
                 ).to_csv(tmp_path / "wide.csv", index=False)
    result = runner.invoke(app, ["forecast", "--data", str(tmp_path / "wide.csv"), "--wide", "--target", "north,south",
                                 "--horizon", "4", "--runs", str(tmp_path / "runs"), *FAST])
    assert result.exit_code == 0, result.output
    directory = only_run(tmp_path / "runs")
    settings = json.loads((directory / "config.json").read_text())
    assert settings["target"] == "north,south" and settings["time"] is None and settings["wide"] is True
    result = runner.invoke(app, ["predict", "--model", str(directory), "--data", str(tmp_path / "wide.csv"), "--wide"])
    assert result.exit_code == 0, result.output  # west is in the table but not in the model: left out
    prediction = pd.read_csv(directory / "prediction.csv")
    assert prediction.groupby("series").size().to_dict() == {"north": 4, "south": 4}
    assert list(prediction["time"].unique()) == [40, 41, 42, 43]


def test_the_settings_record_what_the_run_used(run):
    _, root, _ = run
    settings = json.loads((only_run(root / "runs") / "config.json").read_text())
    assert settings["test_size"] == 4 and settings["devices"] == 1 and settings["season_length"] == 7
    assert isinstance(settings["window"], int) and settings["window"] > 0


def test_settings_lightning_refuses_are_one_line_errors(run, tmp_path):
    _, root, _ = run
    base = ["forecast", "--data", str(root / "sales.csv"), "--target", "sales", "--time", "day", "--horizon", "4",
            "--runs", str(tmp_path / "runs"), *FAST]
    assert_failed(runner.invoke(app, [*base, "--precision", "17-odd"]), "Lightning cannot train with",
                  tmp_path / "runs")
    assert_failed(runner.invoke(app, [*base, "--devices", "0"]), "devices=0", tmp_path / "runs")
