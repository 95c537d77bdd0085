"""The 1997 network's online learner: the C++ one against the numpy reference, in the same run.

Two measurements, each with both learners alternating round by round on one thread:
- ``learn`` alone: milliseconds per training sequence of each paper setting's network, on the
  same sequences (the networks start from the same weights);
- a whole paper run (``lstmkit.papers.run``): training sequences per second including the
  generation of the sequences, the test evaluations and the engine's bookkeeping.

Run from the repository root on an otherwise idle machine:

    python benchmarks/lstm1997_speed.py                  # a few minutes
    python benchmarks/lstm1997_speed.py --quick          # seconds: checks that it runs
    python benchmarks/lstm1997_speed.py --write-doc      # and rewrite its docs/benchmarks.md section
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc import DOC, cpu_name, write_section  # noqa: E402

from lstmkit.nn.kernels import fused  # noqa: E402
from lstmkit.papers import EXPERIMENTS, run  # noqa: E402
from lstmkit.papers.runner import build_network  # noqa: E402

START, END = "<!-- lstm1997_speed:start -->", "<!-- lstm1997_speed:end -->"
# one row per kind of network: the 1997 one (Exp 1, 4, 6b), without output gate (Exp 2a), with the
# 2000 paper's forget gates, and with the 2002 paper's peepholes, identity squashing and momentum
ROWS = [("reber", {}), ("lag-2a", {"p": 100}), ("adding", {"T": 100}), ("order-6b", {}),
        ("continual-reber", {"train_steps": 500}), ("timing-gts", {"T": 10})]


def learn_times(key: str, level: dict, sequences: int, rounds: int) -> tuple[float, float, int]:
    """Median milliseconds per sequence of ``learn`` with numpy and with C++, and the steps per sequence."""
    experiment = EXPERIMENTS[key]
    batch = experiment.make(np.random.default_rng(0), sequences, level)
    torch.manual_seed(0)
    network = build_network(experiment.settings["paper"], batch.inputs.shape[-1], batch.targets.shape[-1])
    items = [(batch.inputs[b, :n].numpy(), batch.targets[b, :n].numpy(), batch.mask[b, :n].numpy())
             for b, n in enumerate(batch.lengths.tolist())][:sequences]
    lr = experiment.settings["paper"].learning_rate
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for native in (False, True):
            net = copy.deepcopy(network)
            started = time.perf_counter()
            for x, y, m in items:
                net.learn(x, y, m, lr, native=native)
            times[native].append((time.perf_counter() - started) / len(items) * 1e3)
    steps = int(sum(len(x) for x, _, _ in items) / len(items))
    return statistics.median(times[False]), statistics.median(times[True]), steps


def run_rates(key: str, level: dict, sequences: int, rounds: int) -> tuple[float, float]:
    """Median training sequences per second of a whole paper run with numpy and with C++."""
    import lstmkit.papers.lstm1997 as lstm1997

    rates: dict[bool, list[float]] = {False: [], True: []}
    original = lstm1997.Network1997.learn
    for _ in range(rounds):
        for native in (False, True):
            lstm1997.Network1997.learn = lambda self, *a, _n=native, **k: original(self, *a, **{**k, "native": _n})
            try:
                started = time.perf_counter()
                result = run(EXPERIMENTS[key], level, "paper", 0, max_sequences=sequences, max_seconds=3600,
                             eval_every=1000)
                rates[native].append(result.sequences / (time.perf_counter() - started))
            finally:
                lstm1997.Network1997.learn = original
    return statistics.median(rates[False]), statistics.median(rates[True])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that it runs")
    parser.add_argument("--write-doc", action="store_true", help="rewrite this script's docs/benchmarks.md section")
    args = parser.parse_args(argv)
    if not fused.available():
        print("the fused kernels did not build: there is no C++ learner to time", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    sequences, rounds, run_sequences = (5, 1, 200) if args.quick else (200, 3, 5000)
    lines = ["| network (paper setting) | steps per sequence | numpy ms per sequence | C++ ms per sequence | "
             "C++ speed-up |", "|---|---|---|---|---|"]
    for key, level in ROWS:
        slow, fast, steps = learn_times(key, level, sequences, rounds)
        lines.append(f"| {key} | {steps} | {slow:.3f} | {fast:.3f} | {slow / fast:.1f}x |")
        print(lines[-1], flush=True)
    slow, fast = run_rates("order-6b", {}, run_sequences, rounds)
    whole = (f"A whole `order-6b` paper run of {run_sequences:,} sequences (the test set of 2560 evaluated "
             f"every 1000): {slow:,.0f} sequences/s with numpy, {fast:,.0f} with C++ ({fast / slow:.1f}x).")
    print(whole)
    if args.write_doc:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join([
            "## The 1997 network's online learner (`benchmarks/lstm1997_speed.py`)", "",
            "- command: `python benchmarks/lstm1997_speed.py --write-doc`",
            f"- date: {now}",
            f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, 1 thread", "",
            f"`Network1997.learn` on {sequences} training sequences of each experiment, medians of "
            f"{rounds} rounds, the two learners alternating:", "", *lines, "", whole])
        write_section(START, END, body, DOC)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
