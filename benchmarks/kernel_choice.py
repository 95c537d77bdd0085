"""Where lstmkit's fused kernel beats torch's own path for the layers torch also computes.

``torch.nn.LSTM`` (the ``standard`` cell) and ``torch.nn.GRU`` have torch's own CPU path; lstmkit
also computes both with its fused C++ kernels. This script times the two on a grid of shapes, in
float32 on 2 threads: a training step (forward + ``output.sum().backward()``) and inference (forward
under ``torch.no_grad()``), the medians of interleaved rounds, and prints the ratio fused / torch.
It is the measurement behind the rule of ``lstmkit.nn.kernels.fused_is_faster``, which tasks use to
train small layers on the fused kernel (``lstmkit.nn`` layers keep torch's path unless asked).

Run from the repository root on an otherwise idle machine (a few minutes; the kernels build on first
use, about 20 seconds on 2 cores):

    python benchmarks/kernel_choice.py                 # the grid, tables on stdout
    python benchmarks/kernel_choice.py --write-doc     # also rewrite its section of docs/benchmarks.md
    python benchmarks/kernel_choice.py --quick         # two tiny shapes: a smoke run
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch

import lstmkit.nn as lnn
from lstmkit.nn.kernels import fused

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc import cpu_name, write_section  # noqa: E402
from lstm_speed import inference_step, markdown_table, median_seconds, training_step  # noqa: E402

START, END = "<!-- kernel_choice:start -->", "<!-- kernel_choice:end -->"
THREADS = 2
# (T, B, I, H) of one layer: batch and width span what the tasks train (forecasting windows of a few
# series up to text batches); T changes only how often the per-step costs are paid
GRID = [(50, b, i, h) for b, i, h in itertools.product((1, 8, 32, 128), (1, 16, 64), (16, 32, 64, 128, 256))]
LONG = [(200, b, 16, h) for b, h in itertools.product((8, 32), (32, 64, 128))]
# (T, B, I, H, layers, bidirectional): stacked and two-way layers, and the GRU
STACKED = [(50, 32, 16, 64, 2, False), (50, 32, 16, 64, 1, True), (50, 32, 16, 128, 2, True)]
GRU = [(50, b, 16, h) for b, h in itertools.product((8, 32, 128), (32, 64, 128, 256))]
QUICK = [(10, 4, 3, 8), (10, 4, 3, 16)]


def ratios(layer: torch.nn.Module, shape: Sequence[int], rounds: int, seconds: float) -> tuple[float, float, float]:
    """(torch's training step in ms, fused / torch for training, fused / torch for inference)."""
    t, b, i = shape[:3]
    x = torch.randn(b, t, i)
    steps = [training_step(layer, x, "native"), training_step(layer, x, "fused"),
             inference_step(layer, x, "native"), inference_step(layer, x, "fused")]
    train_native, train_fused, infer_native, infer_fused = median_seconds(steps, rounds, seconds)
    return train_native * 1e3, train_fused / train_native, infer_fused / infer_native


def table(rows: list[tuple[str, float, float, float]]) -> str:
    return markdown_table(["layer (T, B, I, H)", "torch train ms", "fused / torch, train", "fused / torch, infer"],
                          [[name, f"{ms:.3g}", f"{train:.2f}x", f"{infer:.2f}x"] for name, ms, train, infer in rows])


def run(quick: bool, rounds: int, seconds: float) -> str:
    torch.manual_seed(0)
    sections = []
    grids = {"standard LSTM, one layer": (QUICK if quick else GRID + LONG, "LSTM"),
             "GRU, one layer": (QUICK if quick else GRU, "GRU")}
    for title, (shapes, mode) in grids.items():
        rows = []
        for shape in shapes:
            t, b, i, h = shape
            layer = lnn.LSTM(i, h, batch_first=True) if mode == "LSTM" else lnn.GRU(i, h, batch_first=True)
            rows.append((f"{mode} {shape}", *ratios(layer, shape, rounds, seconds)))
            print(f"  {rows[-1][0]}: train {rows[-1][2]:.2f}x, infer {rows[-1][3]:.2f}x", flush=True)
        sections.append(f"### {title}\n\n{table(rows)}")
    if not quick:
        rows = []
        for t, b, i, h, layers, bidirectional in STACKED:
            layer = lnn.LSTM(i, h, layers, batch_first=True, bidirectional=bidirectional)
            name = f"LSTM {(t, b, i, h)}, {layers} layers{', bidirectional' if bidirectional else ''}"
            rows.append((name, *ratios(layer, (t, b, i), rounds, seconds)))
            print(f"  {name}: train {rows[-1][2]:.2f}x, infer {rows[-1][3]:.2f}x", flush=True)
        sections.append(f"### Stacked and bidirectional\n\n{table(rows)}")
    return "\n\n".join(sections)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tiny shapes (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    parser.add_argument("--write-doc", action="store_true", help="rewrite this script's section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    if not fused.available():
        print("lstmkit's fused kernels are not available on this machine: nothing to compare", file=sys.stderr)
        return 1
    torch.set_num_threads(THREADS)
    rounds = 1 if args.quick else args.rounds
    command = "python benchmarks/kernel_choice.py" + (" --quick" if args.quick else "")
    header = (f"## Fused kernel or torch's path (`benchmarks/kernel_choice.py`)\n\n"
              f"- command: `{command}{' --write-doc' if args.write_doc else ''}`\n"
              f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
              f"- machine: {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}, "
              f"Python {platform.python_version()}\n"
              f"- float32; median of {rounds} interleaved rounds; below 1.00x the fused kernel is faster")
    body = run(args.quick, rounds, 0.01 if args.quick else 0.2)
    text = f"{header}\n\n{body}\n"
    print(text)
    if args.write_doc:
        write_section(START, END, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
