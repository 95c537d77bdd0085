"""Sequence-task benchmarks: a character language model against a hand-written one, and UCR
time-series classification.

1. Character language model on the built-in corpus (the docstrings of Python's standard library;
   the last 10% held out). A hand-written ``Embedding + nn.LSTM + Linear`` model and lstmkit's
   ``LanguageModel`` of the same size (embedding 128, 2 layers of 256, untied output, 32 streams,
   truncated BPTT of 128 steps, Adam 2e-3, gradient clip 0.25) each train for the same wall-clock
   budget, once per seed (``--seeds``, default 3; one run's score moves by up to 0.02 bits per
   character with the seed, as much as the gap the target judges); lstmkit's model without dropout
   (the same model) is the comparison, and with its default dropout (one seed) for information.
   Reported: bits per character on the held-out part and training throughput (characters/s), means
   over the seeds. Target: lstmkit's mean bits per character no worse, throughput >= 0.95x.
2. UCR GunPoint and ItalyPowerDemand (the copies bundled with ``aeon``): ``SequenceClassifier``
   with its defaults, test accuracy. Target: >= 0.97 on each.

Run from the repository root on an otherwise idle machine (about 45 minutes with the defaults):

    python benchmarks/text_bench.py               # tables on stdout
    python benchmarks/text_bench.py --write-doc   # also rewrite its section of docs/benchmarks.md
    python benchmarks/text_bench.py --quick       # a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from lstmkit.data.corpus import docstrings
from lstmkit.data.tokenizers import CharTokenizer
from lstmkit.data.ts_format import read_ts, ucr_path
from lstmkit.tasks.classify import SequenceClassifier
from lstmkit.tasks.lm import LanguageModel
from lstmkit.tasks.lm.model import batchify
from lstmkit.train import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared _doc helpers
from _doc import DOC, cpu_name, write_section  # noqa: E402

START, END = "<!-- text_bench:start -->", "<!-- text_bench:end -->"


class HandLM(nn.Module):
    """What a user writes: Embedding -> nn.LSTM -> Linear."""

    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden, layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.lstm(self.embedding(x), state)
        return self.decoder(out), state


def hand_written_lm(train_ids: torch.Tensor, vocab: int, budget: float, streams: int, bptt: int, seed: int):
    """Truncated BPTT over parallel streams for ``budget`` seconds; returns the model and characters seen."""
    torch.manual_seed(seed)
    model = HandLM(vocab, 128, 256, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    rows = batchify(train_ids, streams)
    seen, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        state = None
        for s in range(0, rows.shape[1] - 1, bptt):
            x, y = rows[:, s:s + bptt], rows[:, s + 1:s + 1 + bptt]
            x = x[:, : y.shape[1]]
            logits, state = model(x, state)
            state = tuple(t.detach() for t in state)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            optimizer.step()
            seen += y.numel()
            if time.perf_counter() - start >= budget:
                break
    return model, seen, time.perf_counter() - start


def bits_per_character(model: nn.Module, ids: torch.Tensor) -> float:
    model.eval()
    total, state = 0.0, None
    with torch.no_grad():
        rows = ids.view(1, -1)
        for s in range(0, len(ids) - 1, 1024):
            e = min(s + 1024, len(ids) - 1)
            logits, state = model(rows[:, s:e], state)
            total += float(nn.functional.cross_entropy(logits[0], rows[0, s + 1:e + 1], reduction="sum"))
    return total / math.log(2) / (len(ids) - 1)


def lstmkit_lm(text: str, split: int, budget: float, dropout: float, seed: int) -> tuple[float, float]:
    """lstmkit's LanguageModel of the hand-written model's size: held-out bits per character and
    training characters/s."""
    lm = LanguageModel("char", 128, 256, 2, tie_weights=False, bptt=128, streams=32, input_dropout=dropout,
                       hidden_dropout=dropout, output_dropout=dropout,
                       training=TrainConfig(max_epochs=10_000, learning_rate=2e-3, gradient_clip=0.25,
                                            lr_schedule="none", early_stopping_patience=0, max_time=budget,
                                            seed=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm.fit(text)  # holds out the same last 10%
    # the training loop's wall time, its validation passes and checkpoints included (the
    # tokenizer's fit, like the hand-written model's encoding, is outside)
    seconds = lm.fit_result_.seconds
    chars = lm.fit_result_.steps * 32 * 128  # one (streams, bptt) segment per optimiser step
    return lm.evaluate(text[split:])["bits_per_character"], chars / seconds


def _runs(runs: list[tuple[float, float]]) -> tuple[float, float, str]:
    """Mean bits per character, mean throughput, and the bits per character of each seed."""
    bpc = [b for b, _ in runs]
    each = f" ({', '.join(f'{b:.3f}' for b in bpc)})" if len(runs) > 1 else ""
    return statistics.mean(bpc), statistics.mean(r for _, r in runs), each


def language_model(chars: int, budget: float, seeds: int, quiet: bool) -> list[str]:
    text = docstrings(max_chars=chars)
    split = int(len(text) * 0.9)
    tokenizer = CharTokenizer().fit([text[:split]])
    train_ids = torch.tensor(tokenizer.encode(text[:split]))
    held_out = torch.tensor(tokenizer.encode(text[split:]))
    hand_runs: list[tuple[float, float]] = []
    same_runs: list[tuple[float, float]] = []
    # seed by seed, the two models alternate, so that a drift of the machine's speed hits both
    for seed in range(seeds):
        if not quiet:
            print(f"  seed {seed}: hand-written LM for {budget:.0f} s...", flush=True)
        hand, hand_chars, hand_time = hand_written_lm(train_ids, tokenizer.vocab_size, budget, 32, 128, seed=seed)
        hand_runs.append((bits_per_character(hand, held_out), hand_chars / hand_time))
        if not quiet:
            print(f"  seed {seed}: lstmkit LM (dropout 0) for {budget:.0f} s...", flush=True)
        same_runs.append(lstmkit_lm(text, split, budget, 0.0, seed))
    if not quiet:
        print(f"  seed 0: lstmkit LM (its default dropout 0.1) for {budget:.0f} s...", flush=True)
    default_run = lstmkit_lm(text, split, budget, 0.1, 0)
    hand_bpc, hand_rate, hand_each = _runs(hand_runs)
    lines = [
        f"Built-in corpus: {len(text):,} characters of standard-library docstrings (Python "
        f"{platform.python_version()}), last 10% held out; vocabulary {tokenizer.vocab_size}; each model trains for "
        f"{budget:.0f} s of wall time, once per seed (seeds 0-{seeds - 1}, the two models alternating); the table "
        "gives the means over the seeds, each seed's bits per character in brackets. The target compares the same "
        "model (no dropout, like the hand-written one); the row with lstmkit's default dropout (seed 0 only) is for "
        "information.",
        "",
        "| model | seeds | held-out bits per character | training characters/s | x hand-written | target | verdict |",
        "|---|---|---|---|---|---|---|",
        f"| hand-written Embedding + nn.LSTM + Linear | {seeds} | {hand_bpc:.3f}{hand_each} | {hand_rate:,.0f} | 1.00x "
        "| | |",
    ]
    for label, runs, judged in (("same model: dropout 0", same_runs, True),
                                ("its default dropout 0.1", [default_run], False)):
        bpc, rate, each = _runs(runs)
        verdict = ("PASS" if bpc <= hand_bpc and rate >= 0.95 * hand_rate else "MISS") if judged else ""
        target = "mean bpc <= hand-written, throughput >= 0.95x" if judged else ""
        lines.append(f"| lstmkit LanguageModel ({label}) | {len(runs)} | {bpc:.3f}{each} | {rate:,.0f} | "
                     f"{rate / hand_rate:.2f}x | {target} | {verdict} |")
    return lines


def ucr(names: list[str], quick: bool, quiet: bool) -> list[str]:
    lines = ["| dataset | train / test | lstmkit accuracy | published LSTM-FCN | 1-NN DTW | target | verdict |",
             "|---|---|---|---|---|---|---|"]
    published = {"GunPoint": (1.000, 0.907), "ItalyPowerDemand": (0.962, 0.950)}
    for name in names:
        train, test = read_ts(ucr_path(name, "TRAIN")), read_ts(ucr_path(name, "TEST"))
        start = time.perf_counter()
        model = SequenceClassifier(ensemble=1, training=TrainConfig(max_epochs=2)) if quick else SequenceClassifier()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train, train.labels)
        accuracy = model.score(test, test.labels)
        if not quiet:
            print(f"  {name}: {accuracy:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        lstm_fcn, dtw = published[name]
        verdict = "PASS" if accuracy >= 0.97 else "MISS"
        lines.append(f"| {name} | {len(train)} / {len(test)} | {accuracy:.4f} | {lstm_fcn:.3f} | {dtw:.3f} | >= 0.97 "
                     f"| {verdict} |")
    return lines


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of training per language model")
    parser.add_argument("--chars", type=int, default=2_000_000, help="characters of the corpus to use")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per language model (the means are compared)")
    parser.add_argument("--write-doc", action="store_true", help=f"rewrite its section of {DOC.name}")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    budget, chars = (3.0, 30_000) if args.quick else (args.budget, args.chars)
    sections = ["## Sequence tasks (`benchmarks/text_bench.py`)", "",
                f"- command: `python benchmarks/text_bench.py{' --write-doc' if args.write_doc else ''}`",
                f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, 2 threads",
                "", "### Character language model", ""]
    sections += language_model(chars, budget, 1 if args.quick else args.seeds, args.quick)
    sections += ["", "### UCR time-series classification (SequenceClassifier defaults)", ""]
    sections += ucr(["ItalyPowerDemand"] if args.quick else ["GunPoint", "ItalyPowerDemand"], args.quick, args.quick)
    text = "\n".join(sections)
    print(text)
    if args.write_doc and not args.quick:
        write_section(START, END, text)
        print(f"wrote {DOC}")
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
