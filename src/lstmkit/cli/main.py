"""The ``lstmkit`` command: thin typer commands over the estimators.

Every command that writes, writes a run directory (model, tables, plot, the settings used)
under a temporary name and renames it into place at the end, so a failed run leaves nothing
half-written.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from lstmkit.cli.common import app, console, errors, fail, new_run
from lstmkit.errors import LstmkitError

__all__ = ["app", "main"]


def read_table(data: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A CSV/Parquet/JSON file, or a built-in dataset by name; with the dataset's defaults."""
    from lstmkit.data import dataset_info, list_datasets, load_dataset

    path = Path(data)
    if path.is_file():
        suffix = path.suffix.lower()
        try:
            if suffix in (".parquet", ".pq"):
                return pd.read_parquet(path), {}
            if suffix == ".json":
                return pd.read_json(path), {}
            return pd.read_csv(path), {}
        except UnicodeDecodeError as error:
            # pandas decodes in chunks: its position is within a chunk, so find the byte in the file
            try:
                path.read_bytes().decode("utf-8")
                offset = error.start
            except UnicodeDecodeError as exact:
                offset = exact.start
            fail(f"{path} is not UTF-8 text (undecodable byte at offset {offset}); re-save it as UTF-8")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
            fail(f"cannot read {path}: {error}")
    names = [info.name for info in list_datasets()]
    if data in names:
        info = dataset_info(data)
        return load_dataset(data), {"target": info.target, "time": info.time_column,
                                    "season_length": info.season_length, "horizon": info.horizon}
    fail(f"no file or built-in dataset named {data!r}; built-in datasets: {', '.join(names)} "
          "(see `lstmkit datasets`)")
    raise AssertionError  # unreachable


def _wide_to_long(table: pd.DataFrame, targets: list[str] | None, time: str | None, series_id: str | None,
                  covariates: str | None) -> tuple[pd.DataFrame, list[str], str]:
    """A wide table (one column per series) in the long layout, with its target and series column."""
    from lstmkit.data.frames import wide_to_long

    if series_id or covariates:
        fail("--wide reads one series per column: it takes no --series-id and no covariates (those need the long "
             "layout, one row per series and time)")
    columns = targets or [c for c in table.columns if c != time]
    missing = [c for c in [*columns, *([time] if time else [])] if c not in table.columns]
    if missing:
        fail(f"--wide: no column(s) {missing} in the table; its columns are {list(map(str, table.columns))}")
    return wide_to_long(table[[*([time] if time else []), *columns]], time, "value", "series"), ["value"], "series"


def _split_list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _metric_table(table: pd.DataFrame, title: str) -> Table:
    view = Table(title=title, show_lines=False)
    view.add_column("method")
    for column in table.columns:
        view.add_column(column.replace("_", " ").upper() if column != "smape" else "sMAPE %", justify="right")
    best = table["mase"].idxmin()
    for method, row in table.iterrows():
        cells = [f"{value:.3f}" if pd.notna(value) else "-" for value in row]
        style = "bold green" if method == best else ("bold" if method == "LSTM" else None)
        view.add_row(str(method), *cells, style=style)
    return view


@app.command()
def forecast(
    data: Annotated[str, typer.Option(help="CSV/Parquet/JSON file, or a built-in dataset name.")] = "airline",
    horizon: Annotated[int | None, typer.Option(min=1, help="Steps to forecast (default for a built-in dataset: "
                                                            "its own, see `lstmkit datasets`).")] = None,
    target: Annotated[str | None, typer.Option(help="Column(s) to forecast, comma-separated.")] = None,
    time: Annotated[str | None, typer.Option(help="Time column (default: the dataset's, else the row order).")] = None,
    series_id: Annotated[str | None, typer.Option(help="Column that tells series apart (many series).")] = None,
    wide: Annotated[bool, typer.Option(help="A wide table: each --target column (default: every column but the "
                                            "time) is one series of a global model.")] = False,
    past_covariates: Annotated[str | None, typer.Option(help="Comma-separated columns known up to the origin.")] = None,
    future_covariates: Annotated[str | None, typer.Option(help="Comma-separated columns known ahead.")] = None,
    future_data: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                     help="Future covariates over the horizon (for the final "
                                                          "forecast).")] = None,
    test_size: Annotated[int | None, typer.Option(help="Held-out steps per series (default: horizon).")] = None,
    window: Annotated[int | None, typer.Option(help="Past steps the network reads (default: automatic).")] = None,
    cell: Annotated[str, typer.Option(help="LSTM variant: standard, vanilla, peephole, cifg, layernorm.")] = "standard",
    hidden_size: Annotated[int, typer.Option(help="LSTM units.")] = 64,
    num_layers: Annotated[int, typer.Option(help="Stacked LSTM layers.")] = 1,
    dropout: Annotated[float, typer.Option(help="Dropout between layers.")] = 0.0,
    transform: Annotated[str, typer.Option(help="auto, none, difference or instance.")] = "auto",
    mode: Annotated[str, typer.Option(help="direct or recursive.")] = "direct",
    quantiles: Annotated[str | None, typer.Option(help="Quantiles to predict, comma-separated ('' for points; "
                                                       "default 0.1,0.5,0.9, none with --mode recursive).")] = None,
    log: Annotated[bool, typer.Option(help="Model the logarithm of the target.")] = False,
    season_length: Annotated[int | None, typer.Option(help="Observations per season (default: inferred).")] = None,
    fill_missing: Annotated[str, typer.Option(help="error or interpolate.")] = "error",
    ensemble: Annotated[int, typer.Option(help="Networks trained from consecutive seeds and averaged.")] = 3,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 32,
    learning_rate: Annotated[float, typer.Option(help="Learning rate (the peak for one-cycle).")] = 3e-3,
    optimizer: Annotated[str, typer.Option(help="adam, adamw or sgd.")] = "adam",
    lr_schedule: Annotated[str, typer.Option(help="plateau, cosine, onecycle or none.")] = "plateau",
    weight_decay: Annotated[float, typer.Option(help="L2 penalty (decoupled for adamw).")] = 0.0,
    gradient_clip: Annotated[float, typer.Option(help="Largest gradient norm (0: no clipping).")] = 1.0,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs (0: off).")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (CPU runs are reproducible).")] = 0,
    accelerator: Annotated[str, typer.Option(help="Lightning's accelerator: cpu, gpu, auto, ...")] = "cpu",
    devices: Annotated[str, typer.Option(help="Lightning's devices: a count (2 trains with DDP), or auto.")] = "1",
    precision: Annotated[str, typer.Option(help="Lightning's precision: 32-true, 64-true, bf16-mixed, ...")] =
    "32-true",
    runs: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = False,
    tensorboard: Annotated[bool, typer.Option(help="Also write TensorBoard logs.")] = False,
) -> None:
    """Train an LSTM forecaster, compare it with the classical methods on a held-out split, and
    write a run directory (model, forecasts, metrics, plot, settings).

    Examples:

      lstmkit forecast                                   # the airline data, 12 months held out

      lstmkit forecast --data sunspots --horizon 20 --cell peephole

      lstmkit forecast --data sales.csv --target units --time date --series-id store --horizon 8

      lstmkit forecast --data stores.csv --time date --wide --horizon 8   # one column per store
    """
    from lstmkit.tasks.forecast import LSTMForecaster
    from lstmkit.tasks.forecast.evaluation import compare
    from lstmkit.tasks.forecast.plot import plot_forecast
    from lstmkit.train import TrainConfig

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in locals().items()
                if k not in ("LSTMForecaster", "compare", "plot_forecast", "TrainConfig")}
    table, defaults = read_table(data)
    if quantiles is None:
        quantiles = "" if mode == "recursive" else "0.1,0.5,0.9"
    try:
        levels = tuple(float(q) for q in _split_list(quantiles))
    except ValueError:
        fail(f"--quantiles must be numbers separated by commas, like 0.1,0.5,0.9; got {quantiles!r}")
    if mode == "recursive" and levels:
        fail("--mode recursive feeds its point forecast back and gives no intervals; leave out --quantiles, or use "
             "--mode direct for intervals")
    if horizon is None:
        if "horizon" not in defaults:
            fail(f"--horizon is needed for {data}: how many steps to forecast (and to hold out for the comparison)")
        horizon = defaults["horizon"]
    targets = _split_list(target) or ([defaults["target"]] if "target" in defaults else None)
    time = time or defaults.get("time")
    # what this run used, the defaults filled in (in the user's terms: a wide table's own columns)
    settings.update(horizon=horizon, target=",".join(targets) if targets else None, time=time, quantiles=quantiles,
                    test_size=test_size or horizon)
    if wide:
        table, targets, series_id = _wide_to_long(table, targets, time, series_id, past_covariates or future_covariates)
        settings["target"] = ",".join(table["series"].unique().astype(str))
        time = time or "time"
    device_count: int | str = int(devices) if devices.isdigit() else devices
    # several processes: spawned from this one, which alone writes the run directory (Lightning's default
    # DDP would start the whole command again in every other process)
    strategy = "ddp_spawn" if device_count != 1 else "auto"
    settings["devices"] = device_count
    try:
        model = LSTMForecaster(
            horizon, window, cell=cell, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
            transform=transform, mode=mode, quantiles=levels, log=log,
            season_length=season_length or defaults.get("season_length"), fill_missing=fill_missing, ensemble=ensemble,
            training=TrainConfig(max_epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                 optimizer=optimizer, lr_schedule=lr_schedule, weight_decay=weight_decay,
                                 gradient_clip=gradient_clip, early_stopping_patience=patience, seed=seed,
                                 progress_bar=progress, accelerator=accelerator, devices=device_count,
                                 strategy=strategy, precision=precision,
                                 loggers=("csv", "tensorboard") if tensorboard else ("csv",)))
        name = Path(data).stem if Path(data).is_file() else data
        with new_run(runs, f"forecast-{name}") as (tmp, final):
            model.run_dir = tmp / "training"
            with console.status("training the LSTM and the baselines..."), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = compare(model, table, targets, time, series_id, _split_list(past_covariates),
                                 _split_list(future_covariates), test_size)
            future_table = pd.read_csv(future_data) if future_data is not None else None
            schema = model.schema_
            if schema.future_covariates and future_table is None:
                future = pd.DataFrame()
                console.print("[yellow]no --future-data: the forecast beyond the data needs the future covariates "
                              "over the horizon; only the test comparison was made[/]")
            else:
                future = model.predict(table, future_covariates=future_table)
            model.run_dir = None
            model.update_history(table)  # the saved model's predict() continues from the end of the data
            model.save(tmp / "model")
            for checkpoints in sorted((tmp / "training").glob("**/checkpoints")):  # the model dir has the weights
                shutil.rmtree(checkpoints)
            lstm_test = result.forecasts[result.forecasts["method"] == "LSTM"]
            lstm_test.drop(columns="method").to_csv(tmp / "test_forecasts.csv", index=False)
            result.forecasts.to_csv(tmp / "test_forecasts_all_methods.csv", index=False)
            if not future.empty:
                future.to_csv(tmp / "forecast.csv", index=False)
            metrics = {"test_size": result.test_size, "horizon": horizon, "season_length": result.season_length,
                       "chosen_transform": model.transform_, "validation_mase": model.scores_,
                       "methods": json.loads(result.table.to_json(orient="index"))}
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
            settings.update(season_length=result.season_length, window=model.window_)
            (tmp / "config.json").write_text(json.dumps(settings, indent=2, default=str), encoding="utf-8")
            time_column = model._time_name
            history = table if time in table.columns else table.rename_axis(time_column).reset_index()
            if schema.time_kind == "datetime":  # dates read from a file stay text until parsed
                history = history.assign(**{time_column: pd.to_datetime(history[time_column])})
            plot_forecast(history, time_column if time is None else time, schema.target[0], lstm_test, future,
                          tmp / "forecast.png", f"{name}: {schema.target[0]}", series_id)
    except LstmkitError as error:
        fail(str(error))
        return
    console.print(_metric_table(result.table, f"{name}: last {result.test_size} steps held out "
                                              f"(MASE season {result.season_length})"))
    verdict = "beats every baseline" if result.lstm_wins else f"does not beat {result.table['mase'].idxmin()}"
    console.print(f"LSTM ({model.cell}, transform {model.transform_!r} chosen on validation) {verdict} on MASE.")
    console.print(f"run directory: [bold]{final}[/]")


@app.command()
def predict(
    model: Annotated[Path, typer.Option(help="A run directory (or its model/ directory).")],
    data: Annotated[str, typer.Option(help="History in the layout used for training (CSV or dataset name).")],
    wide: Annotated[bool, typer.Option(help="The history is a wide table, as in `lstmkit forecast --wide`.")] =
    False,
    future_data: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                     help="Future covariates over the horizon.")] = None,
    output: Annotated[Path | None, typer.Option(help="CSV to write (default: prediction.csv in the run "
                                                     "directory).")] = None,
) -> None:
    """Forecast the horizon after the data with a saved model.

    Example:

      lstmkit predict --model runs/forecast-airline-20261122-120000 --data airline
    """
    from lstmkit.io import atomic_write_text
    from lstmkit.tasks.forecast import LSTMForecaster

    directory = model / "model" if (model / "model").is_dir() else model
    table, _ = read_table(data)
    try:
        forecaster = LSTMForecaster.load(directory)
        if wide:  # the columns of the series the model knows
            time = forecaster.schema_.time
            columns = [str(c) for c in forecaster.series_ids_]
            table, _, _ = _wide_to_long(table, columns, time if time in table.columns else None, None, None)
        future = pd.read_csv(future_data) if future_data is not None else None
        result = forecaster.predict(table, future_covariates=future)
    except LstmkitError as error:
        fail(str(error))
        return
    target = output or (directory.parent / "prediction.csv" if directory.name == "model" else
                        directory / "prediction.csv")
    atomic_write_text(target, result.to_csv(index=False))
    view = Table(title=f"forecast ({forecaster.horizon} steps)")
    for column in result.columns:
        view.add_column(str(column), justify="right")
    for _, row in result.iterrows():
        view.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console.print(view)
    console.print(f"written to [bold]{target}[/]")


@app.command()
def datasets() -> None:
    """List the built-in datasets (they ship with lstmkit; nothing is downloaded).

    Example:

      lstmkit forecast --data sunspots --horizon 20
    """
    from lstmkit.data import list_datasets, load_dataset

    # the short columns never wrap; the descriptions go below the table, where they wrap as text
    # (a description column squeezed to a word per line on an 80-column terminal)
    view = Table(title="built-in datasets")
    for column in ("name", "rows", "time", "target", "frequency", "season", "horizon"):
        view.add_column(column, no_wrap=True)
    notes = Table.grid(padding=(0, 2))
    notes.add_column(no_wrap=True)
    notes.add_column()
    for info in list_datasets():
        view.add_row(info.name, str(len(load_dataset(info.name))), info.time_column, info.target, info.frequency,
                     str(info.season_length), str(info.horizon))
        notes.add_row(info.name, info.summary)
    console.print(view)
    console.print(notes)


from lstmkit.cli import papers, sequences  # noqa: E402,F401  (register classify, tag, textgen and paper)


def main() -> None:
    """Entry point of the ``lstmkit`` script."""
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
