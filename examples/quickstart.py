"""Quickstart: teach an LSTM the adding problem (Hochreiter & Schmidhuber 1997, Exp 4).

Each input sequence is a row of random values in [-1, 1] with two of them marked; the target is
0.5 + (X1 + X2) / 4 for the marked values X1, X2. The answer depends on steps far apart, which is
what LSTMs are for. The script trains a peephole LSTM and a plain Elman RNN with the same budget
and prints how often each is right (|error| < 0.04, the paper's criterion).

Run: python examples/quickstart.py [--length 30] [--steps 1500]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import lstmkit.nn as lnn


def adding_batch(batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, B, 2) inputs (value, marker) and (B,) targets 0.5 + (X1 + X2) / 4."""
    values = torch.rand(length, batch, generator=generator) * 2 - 1
    first = torch.randint(0, length // 2, (batch,), generator=generator)
    second = torch.randint(length // 2, length, (batch,), generator=generator)
    markers = torch.zeros(length, batch)
    markers[first, torch.arange(batch)] = 1
    markers[second, torch.arange(batch)] = 1
    target = 0.5 + (values * markers).sum(0) / 4
    return torch.stack([values, markers], -1), target


class Regressor(nn.Module):
    def __init__(self, layer: nn.Module, hidden: int) -> None:
        super().__init__()
        self.layer = layer
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.layer(x)
        return self.head(out[-1]).squeeze(-1)


def train(name: str, model: nn.Module, length: int, steps: int) -> None:
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    for _ in range(steps):
        x, y = adding_batch(64, length, generator)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    with torch.no_grad():
        x, y = adding_batch(2560, length, torch.Generator().manual_seed(1))
        error = (model(x) - y).abs()
    print(f"{name:<32} {100 * (error < 0.04).float().mean():6.1f}% correct   "
          f"mean |error| {error.mean():.3f}   ({time.perf_counter() - start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=30, help="sequence length T")
    parser.add_argument("--steps", type=int, default=1500, help="training batches of 64")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"Adding problem, T = {args.length}, {args.steps} batches of 64; predicting 0 gives "
          f"0.5 gives about 16% correct.")
    hidden = 32
    train("lstmkit LSTM (peephole)", Regressor(lnn.LSTM(2, hidden, cell="peephole", forget_bias=1.0), hidden),
          args.length, args.steps)
    train("Elman RNN (baseline)", Regressor(lnn.RNN(2, hidden), hidden), args.length, args.steps)


if __name__ == "__main__":
    main()
