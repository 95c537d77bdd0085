"""Forecasting benchmarks: the seeds' sine task against a hand-written loop, and lstmkit's defaults
against the classical methods on airline and sunspots.

1. Sine (the seeds' generator, ``sin(0.1 t)`` for t = 0..999, 50-step windows, next value): a
   hand-written ``nn.LSTM(1, 50) + Linear`` loop (Adam 1e-3, batch 32, 20 epochs) and
   ``LSTMForecaster`` of the same size with the same budget, on the same training windows, timed in
   alternating rounds (wall time of fit + test predictions; the ratio of the median times and the median
   of the rounds' ratios); test MSE on the last 200 steps.
   Target: lstmkit's test MSE <= 1e-4 in <= 1.1x the hand-written loop's time.
2. Airline (last 12 months held out) and sunspots (last 20 years held out): ``lstmkit forecast``'s
   defaults over 5 seeds, MASE against naive, seasonal naive, AutoETS and AutoARIMA on the same split.
   Target: lower mean MASE than seasonal naive and than AutoETS.

Run from the repository root on an otherwise idle machine (about 6 minutes):

    python benchmarks/forecast_bench.py               # tables on stdout
    python benchmarks/forecast_bench.py --write-doc   # also rewrite its section of docs/benchmarks.md
    python benchmarks/forecast_bench.py --quick       # a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmkit.data import load_dataset
from lstmkit.nn.kernels import fused
from lstmkit.tasks.forecast import LSTMForecaster
from lstmkit.tasks.forecast.evaluation import compare
from lstmkit.train import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared _doc helpers
from _doc import DOC, cpu_name, write_section  # noqa: E402

START, END = "<!-- forecast_bench:start -->", "<!-- forecast_bench:end -->"


def sine(n: int = 1000) -> np.ndarray:
    """The seeds' data generator."""
    return np.sin(0.1 * np.arange(n))


def hand_written(train: np.ndarray, test_inputs: torch.Tensor, epochs: int, seed: int) -> torch.Tensor:
    """What a careful user writes: nn.LSTM + Linear, Adam, shuffled mini-batches of 32."""
    torch.manual_seed(seed)
    series = torch.tensor(train, dtype=torch.float32)
    x = series.unfold(0, 50, 1)[:-1].unsqueeze(-1)  # (N, 50, 1)
    y = series[50:].unsqueeze(-1)
    lstm, head = nn.LSTM(1, 50, batch_first=True), nn.Linear(50, 1)
    optimizer = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 32):
            idx = order[start:start + 32]
            out, _ = lstm(x[idx])
            loss = nn.functional.mse_loss(head(out[:, -1]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        out, _ = lstm(test_inputs)
        return head(out[:, -1]).squeeze(-1)


def sine_task(rounds: int, epochs: int, quiet: bool) -> list[str]:
    fused.available()  # a first (re)build of the kernels is not timed: it happens once per machine
    values = sine()
    train_end, val_size = 800, 50
    # the hand-written loop trains on exactly lstmkit's training windows (lstmkit keeps the last
    # val_size steps of its training data for validation)
    hand_train = values[:train_end - val_size]
    test_inputs = torch.tensor(np.stack([values[t - 50:t] for t in range(train_end, 1000)]),
                               dtype=torch.float32).unsqueeze(-1)
    actual = values[train_end:]
    times: dict[str, list[float]] = {"hand-written loop": [], "lstmkit LSTMForecaster": []}
    mse: dict[str, float] = {}
    for r in range(rounds):
        start = time.perf_counter()
        pred = hand_written(hand_train, test_inputs, epochs, seed=r)
        times["hand-written loop"].append(time.perf_counter() - start)
        mse["hand-written loop"] = float(((pred.numpy() - actual) ** 2).mean())

        start = time.perf_counter()
        model = LSTMForecaster(horizon=1, window=50, hidden_size=50, transform="none", quantiles=(), ensemble=1,
                               val_size=val_size, training=TrainConfig(max_epochs=epochs, batch_size=32,
                                                                       learning_rate=1e-3, lr_schedule="none",
                                                                       early_stopping_patience=0, seed=r))
        model.fit(values[:train_end])
        result = model.backtest(values, start=train_end)
        times["lstmkit LSTMForecaster"].append(time.perf_counter() - start)
        mse["lstmkit LSTMForecaster"] = float(((result["forecast"] - result["actual"]) ** 2).mean())
        if not quiet:
            print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)
    hand = statistics.median(times["hand-written loop"])
    lines = [
        f"Sine, 50-step windows, next value; {epochs} epochs, batch 32, Adam 1e-3, hidden 50; {rounds} alternating "
        "rounds; test = the last 200 steps (one-step forecasts). Two ratios: of the median times, and the median "
        "of each round's ratio (robust to the machine's speed drifting between rounds); the target needs both.",
        "",
        "| run | median wall time (s) | x hand-written (medians) | x hand-written (median of rounds; min-max) "
        "| test MSE | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, observed in times.items():
        median = statistics.median(observed)
        ratio = median / hand
        paired = [t / h for t, h in zip(observed, times["hand-written loop"])]
        if name.startswith("lstmkit"):
            ok = mse[name] <= 1e-4 and ratio <= 1.1 and statistics.median(paired) <= 1.1
            target, verdict = "MSE <= 1e-4 in <= 1.10x", "PASS" if ok else "MISS"
        else:
            target = verdict = ""
        lines.append(f"| {name} | {median:.2f} | {ratio:.2f}x | {statistics.median(paired):.2f}x; "
                     f"{min(paired):.2f}-{max(paired):.2f} | {mse[name]:.2e} | {target} | {verdict} |")
    return lines


def baseline_task(name: str, horizon: int, seeds: list[int], quiet: bool, quick: bool) -> list[str]:
    frame = load_dataset(name)
    time_column, target = frame.columns
    lstm_rows, lstm_seconds, chosen = [], [], []
    table = None
    for seed in seeds:
        start = time.perf_counter()
        # the CLI's defaults (a tiny budget for the smoke run)
        model = LSTMForecaster(horizon=horizon, ensemble=1 if quick else 3, training=TrainConfig(
            max_epochs=3 if quick else 300, batch_size=32, learning_rate=3e-3, early_stopping_patience=30,
            seed=seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = compare(model, frame, target, time_column)
        lstm_seconds.append(time.perf_counter() - start)
        lstm_rows.append(result.table.loc["LSTM"])
        chosen.append(model.transform_)
        table = result.table
        if not quiet:
            print(f"  {name} seed {seed}: LSTM MASE {lstm_rows[-1]['mase']:.3f} ({model.transform_}), "
                  f"{lstm_seconds[-1]:.1f} s", flush=True)
    assert table is not None
    lstm_mase = [row["mase"] for row in lstm_rows]
    mean = float(np.mean(lstm_mase))
    means = {key: float(np.mean([row[key] for row in lstm_rows])) for key in ("smape", "rmse", "coverage_80")}
    lines = [
        f"**{name}**, last {horizon} steps held out, MASE season {result.season_length}; LSTM = `lstmkit forecast "
        f"--data {name} --horizon {horizon}` defaults, seeds {seeds} (transforms chosen: "
        f"{', '.join(chosen)}; {np.mean(lstm_seconds):.0f} s per run including the baselines).",
        "",
        "| method | MASE | sMAPE % | RMSE | coverage of 80% interval |",
        "|---|---|---|---|---|",
        f"| LSTM (mean of {len(seeds)} seeds; MASE min {min(lstm_mase):.3f}, max {max(lstm_mase):.3f}) | {mean:.3f} "
        f"| {means['smape']:.2f} | {means['rmse']:.2f} | {means['coverage_80']:.2f} |",
    ]
    for method, row in table.drop(index="LSTM").iterrows():
        lines.append(f"| {method} | {row['mase']:.3f} | {row['smape']:.2f} | {row['rmse']:.2f} | "
                     f"{row['coverage_80']:.2f} |")
    beats = [m for m in ("seasonal_naive", "auto_ets") if mean < table.loc[m, "mase"]]
    verdict = "PASS" if len(beats) == 2 else "MISS"
    lines += ["", f"Target: mean LSTM MASE below seasonal naive ({table.loc['seasonal_naive', 'mase']:.3f}) and "
                  f"AutoETS ({table.loc['auto_ets', 'mase']:.3f}): **{verdict}**."]
    return lines


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds of the sine task")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per dataset")
    parser.add_argument("--write-doc", action="store_true", help=f"rewrite its section of {DOC.name}")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.quick:
        rounds, epochs, seeds = 1, 2, [0]
        datasets = [("airline", 12)]
    else:
        rounds, epochs, seeds = args.rounds, 20, [0, 10, 20, 30, 40][:args.seeds]
        datasets = [("airline", 12), ("sunspots", 20)]
    quiet = args.quick
    sections = ["## Forecasting (`benchmarks/forecast_bench.py`)", "",
                f"- command: `python benchmarks/forecast_bench.py{' --write-doc' if args.write_doc else ''}`",
                f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, 2 threads; "
                f"Python {platform.python_version()}",
                "", "### The seeds' sine task", ""]
    sections += sine_task(rounds, epochs, quiet)
    sections += ["", "### Against the classical methods", ""]
    for name, horizon in datasets:
        sections += baseline_task(name, horizon, seeds, quiet, args.quick) + [""]
    text = "\n".join(sections)
    print(text)
    if args.write_doc and not args.quick:
        write_section(START, END, text)
        print(f"wrote {DOC}")
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
