"""Speed and memory of lstmkit's LSTM layers against ``torch.nn.LSTM`` and hand-written loops.

Measures, in one run, on the CPU, in float32:

1. Sequence layers at several ``(T, B, I, H)``, 2 threads: a training step (forward +
   ``output.sum().backward()``) and inference (forward under ``torch.no_grad()``), the median of
   interleaved rounds after a warm-up, for ``torch.nn.LSTM`` (the reference every ratio is
   against), every ``lstmkit.nn.LSTM`` variant, the ``standard`` cell on lstmkit's fused kernel
   too (for comparison: by default it runs torch's path), the GRUs (torch, lstmkit native, lstmkit fused)
   and a plain Python-loop LSTM of each variant (what a user writes without lstmkit; checked at
   start-up to compute the same numbers as lstmkit). Each time is also given in GFLOP/s
   (forward ``2*T*B*G*H*(I+H)``, a training step 3x that) and as a share of the GFLOP/s of a
   2048x2048x2048 matrix product measured in the same run (the roof).
2. Streaming, batch 1, input 16, hidden 64 and 256, 1 thread, inference mode: microseconds per
   step of ``torch.nn.LSTM`` on a length-1 sequence, ``torch.nn.LSTMCell`` and lstmkit's stepper.
3. The peak of the bytes torch allocates on the CPU during one training step at T = 1000.

Every lstmkit result stands next to its target, marked PASS or MISS.

Run from the repository root on an otherwise idle machine (the fused kernels build on first
use, about 20 seconds on 2 cores):

    python benchmarks/lstm_speed.py               # everything (a few minutes), tables on stdout
    python benchmarks/lstm_speed.py --write-doc   # also rewrite its section of docs/benchmarks.md
    python benchmarks/lstm_speed.py --quick       # one tiny shape, seconds: a smoke run
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile

import lstmkit.nn as lnn
from lstmkit.nn import kernels
from lstmkit.nn.cells import LAYER_NORM_EPS
from lstmkit.nn.kernels import fused

Shape = tuple[int, int, int, int]  # (T, B, I, H)

SHAPES: tuple[Shape, ...] = ((50, 64, 1, 50), (100, 32, 32, 128), (100, 64, 128, 256), (200, 1, 16, 64))
QUICK_SHAPE: Shape = (10, 4, 3, 8)
MEMORY_SHAPE: Shape = (1000, 32, 32, 128)
QUICK_MEMORY_SHAPE: Shape = (50, *QUICK_SHAPE[1:])  # the profiler's overhead grows with the work
VARIANTS = tuple(lnn.VARIANTS)
SEQUENCE_THREADS = 2
STREAMING_THREADS = 1
STREAMING_INPUT = 16
STREAMING_HIDDEN = (64, 256)
STREAMING_BLOCKS = 20
ROOF_SIZE = 2048
# A round repeats a step until it lasts this long, so that short steps are not timed one by one
MIN_ROUND_SECONDS = 0.2

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared _doc helpers
import _doc  # noqa: E402

DOC_PATH = _doc.DOC
DOC_START = "<!-- lstm_speed:start -->"
DOC_END = "<!-- lstm_speed:end -->"


@dataclass(frozen=True)
class Target:
    """The largest acceptable time ratio to ``torch.nn.LSTM``, for a training step and inference."""

    train: float
    inference: float


SEQUENCE_TARGETS = {
    "standard": Target(1.05, 1.05),
    "vanilla": Target(1.3, 1.2),
    "peephole": Target(1.3, 1.2),
    "cifg": Target(1.3, 1.2),
    "layernorm": Target(1.6, 1.4),
}
STREAMING_TARGET_US = {64: 5.0, 256: 15.0}


@dataclass(frozen=True)
class Check:
    """One result against its target: passes when ``value <= limit``."""

    name: str
    value: float
    limit: float

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    @property
    def mark(self) -> str:
        return "PASS" if self.passed else "MISS"


# --------------------------------------------------------------------------------------------
# The Python loops users write: one GEMM for the inputs of all steps, then a loop over time


class LoopLSTM(nn.Module):
    """The standard LSTM (gates ``i, f, g, o``) as a user writes it in PyTorch.

    Parameters are named as a one-layer ``lstmkit.nn.LSTM``'s, so that
    ``loop.load_state_dict(layer.state_dict())`` gives both the same weights. Subclasses change
    the input and recurrent projections or the cell; the loop stays the same.
    """

    num_gates = 4

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        gates = self.num_gates * hidden_size
        self.hidden_size = hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(gates))
        self.bias_hh_l0 = nn.Parameter(torch.empty(gates))

    def input_projection(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih_l0, self.bias_ih_l0)

    def recurrent_projection(self, h: Tensor) -> Tensor:
        return F.linear(h, self.weight_hh_l0, self.bias_hh_l0)

    def cell(self, z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, g, o = z.chunk(4, -1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        xw = self.input_projection(x)  # (T, B, G*H), one GEMM for every step
        h = c = x.new_zeros(x.shape[1], self.hidden_size)
        outputs = []
        for xw_t in xw:
            h, c = self.cell(xw_t + self.recurrent_projection(h), c)
            outputs.append(h)
        return torch.stack(outputs), (h, c)


class LoopVanillaLSTM(LoopLSTM):
    """Hochreiter & Schmidhuber 1997: no forget gate, gates ``i, g, o``."""

    num_gates = 3

    def cell(self, z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, g, o = z.chunk(3, -1)
        c = c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c


class LoopPeepholeLSTM(LoopLSTM):
    """Gers & Schmidhuber 2000: the gates see the cell through diagonal weights (rows ``i, f, o``)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ch_l0 = nn.Parameter(torch.empty(3, hidden_size))

    def cell(self, z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, g, o = z.chunk(4, -1)
        p_i, p_f, p_o = self.weight_ch_l0
        c = (f + p_f * c).sigmoid() * c + (i + p_i * c).sigmoid() * g.tanh()
        return (o + p_o * c).sigmoid() * c.tanh(), c  # the output gate sees the new cell


class LoopCIFGLSTM(LoopLSTM):
    """Greff et al. 2017: the forget gate is ``1 - i``, gates ``i, g, o``."""

    num_gates = 3

    def cell(self, z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, g, o = z.chunk(3, -1)
        i = i.sigmoid()
        c = (1 - i) * c + i * g.tanh()
        return o.sigmoid() * c.tanh(), c


class LoopLayerNormLSTM(LoopLSTM):
    """Ba, Kiros & Hinton 2016: both projections and the cell layer-normalised.

    The biases are the shifts of the gate normalisations, as in lstmkit.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        gates = self.num_gates * hidden_size
        self.ln_weight_ih_l0 = nn.Parameter(torch.empty(gates))
        self.ln_weight_hh_l0 = nn.Parameter(torch.empty(gates))
        self.ln_weight_c_l0 = nn.Parameter(torch.empty(hidden_size))
        self.ln_bias_c_l0 = nn.Parameter(torch.empty(hidden_size))

    def input_projection(self, x: Tensor) -> Tensor:
        z = F.linear(x, self.weight_ih_l0)
        return F.layer_norm(z, z.shape[-1:], self.ln_weight_ih_l0, self.bias_ih_l0, LAYER_NORM_EPS)

    def recurrent_projection(self, h: Tensor) -> Tensor:
        z = F.linear(h, self.weight_hh_l0)
        return F.layer_norm(z, z.shape[-1:], self.ln_weight_hh_l0, self.bias_hh_l0, LAYER_NORM_EPS)

    def cell(self, z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, g, o = z.chunk(4, -1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        normed = F.layer_norm(c, c.shape[-1:], self.ln_weight_c_l0, self.ln_bias_c_l0, LAYER_NORM_EPS)
        return o.sigmoid() * normed.tanh(), c


LOOPS: dict[str, type[LoopLSTM]] = {
    "standard": LoopLSTM,
    "vanilla": LoopVanillaLSTM,
    "peephole": LoopPeepholeLSTM,
    "cifg": LoopCIFGLSTM,
    "layernorm": LoopLayerNormLSTM,
}


def make_loop(layer: lnn.LSTM) -> LoopLSTM:
    """The Python loop of ``layer``'s variant, holding a copy of ``layer``'s weights."""
    dtype = next(layer.parameters()).dtype
    loop = LOOPS[layer.cell](layer.input_size, layer.hidden_size).to(dtype)
    loop.load_state_dict(layer.state_dict())  # strict: the loop has exactly the layer's parameters
    return loop


def _output_and_gradients(model: nn.Module, x: Tensor) -> list[Tensor]:
    output, (h, c) = model(x)
    params = [p for _, p in sorted(model.named_parameters())]
    batch = x.shape[1]
    return [output, h.reshape(batch, -1), c.reshape(batch, -1), *torch.autograd.grad(output.sum(), [x, *params])]


def check_loops() -> float:
    """The largest difference between each loop and lstmkit's layer of its variant (float64,
    outputs, final states and all gradients); exits if one does not compute the same math."""
    worst = 0.0
    for variant in VARIANTS:
        layer = lnn.LSTM(4, 5, cell=variant, dtype=torch.float64)
        with torch.no_grad():
            for param in layer.parameters():  # layer-norm gains start at 1 and shifts at 0: randomise all
                param.copy_(torch.randn_like(param) * 0.5)
        loop = make_loop(layer)
        x = torch.randn(7, 3, 4, dtype=torch.float64, requires_grad=True)
        pairs = zip(_output_and_gradients(layer, x), _output_and_gradients(loop, x))
        error = max((ours - theirs).abs().max().item() for ours, theirs in pairs)
        if error > 1e-10:
            raise SystemExit(f"the Python loop of cell={variant!r} differs from lstmkit.nn.LSTM by {error:.3g} "
                             "(float64): the comparison would not be of equal math")
        worst = max(worst, error)
    return worst


# --------------------------------------------------------------------------------------------
# Timing


def median_seconds(steps: Sequence[Callable[[], object]], rounds: int, min_round_seconds: float) -> list[float]:
    """The median seconds per call of each step.

    The rounds are interleaved (round 1 of every step, then round 2, ...) so that a slow spell
    on a shared machine slows every step alike instead of one, and the ratios hold.
    """
    repeats = []
    for step in steps:
        step()  # warm-up: first calls allocate, pack weights, fill caches
        start = time.perf_counter()
        step()
        repeats.append(max(1, math.ceil(min_round_seconds / (time.perf_counter() - start))))
    samples: list[list[float]] = [[] for _ in steps]
    for _ in range(rounds):
        for step, count, sample in zip(steps, repeats, samples):
            start = time.perf_counter()
            for _ in range(count):
                step()
            sample.append((time.perf_counter() - start) / count)
    return [statistics.median(sample) for sample in samples]


def training_step(model: nn.Module, x: Tensor, backend: str = "auto") -> Callable[[], None]:
    params = list(model.parameters())

    def step() -> None:
        for param in params:
            param.grad = None  # as optimizer.zero_grad(set_to_none=True) in a training loop
        with kernels.use_backend(backend):
            output, _ = model(x)
            output.sum().backward()

    return step


def inference_step(model: nn.Module, x: Tensor, backend: str = "auto") -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad(), kernels.use_backend(backend):
            model(x)

    return step


def forward_flops(shape: Shape, num_gates: int) -> int:
    steps, batch, input_size, hidden = shape
    return 2 * steps * batch * num_gates * hidden * (input_size + hidden)


def roof_gflops(rounds: int, min_round_seconds: float) -> float:
    """GFLOP/s of a ROOF_SIZE^3 float32 matrix product: what the cores reach on a large GEMM."""
    a, b = torch.randn(ROOF_SIZE, ROOF_SIZE), torch.randn(ROOF_SIZE, ROOF_SIZE)
    [seconds] = median_seconds([lambda: a @ b], rounds, min_round_seconds)
    return 2 * ROOF_SIZE**3 / seconds / 1e9


# --------------------------------------------------------------------------------------------
# 1. Sequence layers


@dataclass
class Candidate:
    """A model timed on one shape; ``backend`` is the lstmkit backend forced while it runs."""

    label: str
    model: nn.Module
    num_gates: int
    runs_on: str
    backend: str = "auto"
    target: Target | None = None


def lstmkit_runs_on(layer: lnn.RecurrentLayer, x: Tensor, backend: str) -> str:
    with kernels.use_backend(backend):
        return kernels.select_backend(layer.spec, layer.zoneout, x)


def sequence_candidates(x: Tensor, hidden_size: int) -> list[Candidate]:
    input_size = x.shape[-1]
    candidates = [Candidate("torch.nn.LSTM", nn.LSTM(input_size, hidden_size), 4, "torch")]
    for variant in VARIANTS:
        layer = lnn.LSTM(input_size, hidden_size, cell=variant)
        gates = layer.variant.num_gates
        candidates += [
            Candidate(f"lstmkit {variant}", layer, gates, lstmkit_runs_on(layer, x, "auto"),
                      target=SEQUENCE_TARGETS[variant]),
            Candidate(f"loop {variant}", make_loop(layer), gates, "Python loop"),
        ]
    # the standard cell on lstmkit's fused kernel instead of torch's path (not the default: see docs)
    fused_standard = lnn.LSTM(input_size, hidden_size)
    candidates.append(Candidate("lstmkit standard (fused)", fused_standard, 4,
                                lstmkit_runs_on(fused_standard, x, "fused"), backend="fused"))
    gru, fused_gru = lnn.GRU(input_size, hidden_size), lnn.GRU(input_size, hidden_size)
    candidates += [
        Candidate("torch.nn.GRU", nn.GRU(input_size, hidden_size), 3, "torch"),
        Candidate("lstmkit GRU", gru, 3, lstmkit_runs_on(gru, x, "auto")),
        Candidate("lstmkit GRU (fused)", fused_gru, 3, lstmkit_runs_on(fused_gru, x, "fused"), backend="fused"),
    ]
    return candidates


def sequence_section(shapes: Sequence[Shape], rounds: int, min_round_seconds: float, roof: float,
                     checks: list[Check]) -> str:
    headers = ["layer", "runs on", "train ms", "x torch", "GF/s", "% roof", "infer ms", "x torch", "GF/s",
               "% roof", "target train / infer", "verdict"]
    parts = [f"### Sequence layers ({SEQUENCE_THREADS} threads, median of {rounds} timed round(s) after a warm-up)\n\n"
             f"Roof: a {ROOF_SIZE}^3 float32 matrix product runs at {roof:.0f} GF/s. A training step "
             "counts 3x the forward's 2·T·B·G·H·(I+H) FLOPs (G = 4; 3 for vanilla, cifg and GRU)."]
    for shape in shapes:
        print(f"timing sequence layers at (T, B, I, H) = {shape}...", file=sys.stderr, flush=True)
        steps, batch, input_size, hidden = shape
        x = torch.randn(steps, batch, input_size)
        candidates = sequence_candidates(x, hidden)
        train_steps = [training_step(c.model, x, c.backend) for c in candidates]
        infer_steps = [inference_step(c.model, x, c.backend) for c in candidates]
        seconds = median_seconds(train_steps + infer_steps, rounds, min_round_seconds)
        train_times, infer_times = seconds[:len(candidates)], seconds[len(candidates):]
        rows = []
        for candidate, train, infer in zip(candidates, train_times, infer_times):
            flops = forward_flops(shape, candidate.num_gates)
            train_gflops, infer_gflops = 3 * flops / train / 1e9, flops / infer / 1e9
            train_ratio, infer_ratio = train / train_times[0], infer / infer_times[0]
            target_text = verdict = ""
            if candidate.target is not None:
                train_check = Check(f"{candidate.label} train {shape}", train_ratio, candidate.target.train)
                infer_check = Check(f"{candidate.label} inference {shape}", infer_ratio, candidate.target.inference)
                checks.extend([train_check, infer_check])
                target_text = f"<= {candidate.target.train:.2f}x / <= {candidate.target.inference:.2f}x"
                verdict = f"{train_check.mark} / {infer_check.mark}"
            rows.append([candidate.label, candidate.runs_on,
                         f"{train * 1e3:.3g}", f"{train_ratio:.2f}x", f"{train_gflops:.3g}",
                         f"{100 * train_gflops / roof:.1f}",
                         f"{infer * 1e3:.3g}", f"{infer_ratio:.2f}x", f"{infer_gflops:.3g}",
                         f"{100 * infer_gflops / roof:.1f}", target_text, verdict])
        parts.append(f"(T, B, I, H) = {shape}\n\n" + markdown_table(headers, rows))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------------------------
# 2. Streaming


def torch_lstm_step(hidden_size: int) -> Callable[[], None]:
    lstm = nn.LSTM(STREAMING_INPUT, hidden_size)
    x = torch.randn(1, 1, STREAMING_INPUT)  # a length-1 sequence
    state = (torch.zeros(1, 1, hidden_size), torch.zeros(1, 1, hidden_size))

    def step() -> None:
        nonlocal state
        _, state = lstm(x, state)

    return step


def torch_cell_step(hidden_size: int) -> Callable[[], None]:
    cell = nn.LSTMCell(STREAMING_INPUT, hidden_size)
    x = torch.randn(1, STREAMING_INPUT)
    state = (torch.zeros(1, hidden_size), torch.zeros(1, hidden_size))

    def step() -> None:
        nonlocal state
        state = cell(x, state)

    return step


class StreamingCandidate(NamedTuple):
    label: str
    runs_on: str
    step: Callable[[], object]
    has_target: bool


def streaming_candidates(hidden_size: int) -> list[StreamingCandidate]:
    """Every way of stepping one input at a time at this hidden size."""
    candidates = [
        StreamingCandidate("torch.nn.LSTM, length-1 sequence", "torch", torch_lstm_step(hidden_size), False),
        StreamingCandidate("torch.nn.LSTMCell", "torch", torch_cell_step(hidden_size), False),
    ]
    x = torch.randn(1, STREAMING_INPUT)
    for variant in ("standard", "peephole", "layernorm"):
        stepper = lnn.LSTM(STREAMING_INPUT, hidden_size, cell=variant).eval().stepper()
        runs_on = "C++ stepper" if stepper.is_fast else "Python reference"
        buffer = torch.empty(1, hidden_size)
        # partial, not a lambda: the call itself is timed, without an extra Python frame
        candidates += [
            StreamingCandidate(f"lstmkit {variant} step(x)", runs_on, functools.partial(stepper.step, x), True),
            StreamingCandidate(f"lstmkit {variant} step(x, out=)", runs_on,
                               functools.partial(stepper.step, x, out=buffer), True),
        ]
    return candidates


def microseconds_per_step(step: Callable[[], object], steps: int) -> float:
    """The median over blocks of consecutive steps, so that one interruption spoils one block."""
    block = max(1, steps // STREAMING_BLOCKS)
    for _ in range(block):
        step()  # warm-up
    samples = []
    for _ in range(max(1, steps // block)):
        start = time.perf_counter()
        for _ in range(block):
            step()
        samples.append((time.perf_counter() - start) / block)
    return statistics.median(samples) * 1e6


def streaming_section(steps: int, checks: list[Check]) -> str:
    print("timing streaming steps...", file=sys.stderr, flush=True)
    results: dict[str, list[float]] = {}
    runs_on: dict[str, str] = {}
    targeted: set[str] = set()
    with torch.inference_mode():
        for hidden in STREAMING_HIDDEN:
            for candidate in streaming_candidates(hidden):
                results.setdefault(candidate.label, []).append(microseconds_per_step(candidate.step, steps))
                runs_on[candidate.label] = candidate.runs_on
                if candidate.has_target:
                    targeted.add(candidate.label)
    limits = [STREAMING_TARGET_US[h] for h in STREAMING_HIDDEN]
    headers = ["step", "runs on", *(f"hidden {h} (us)" for h in STREAMING_HIDDEN), "target (us)", "verdict"]
    rows = []
    for label, times in results.items():
        target_text = verdict = ""
        if label in targeted:
            row_checks = [Check(f"{label} hidden {h}", us, limit)
                          for h, us, limit in zip(STREAMING_HIDDEN, times, limits)]
            checks.extend(row_checks)
            target_text = " / ".join(f"<= {limit:g}" for limit in limits)
            verdict = " / ".join(check.mark for check in row_checks)
        rows.append([label, runs_on[label], *(f"{us:.3g}" for us in times), target_text, verdict])
    return (f"### Streaming (batch 1, input {STREAMING_INPUT}, {STREAMING_THREADS} thread, inference mode, "
            f"median over blocks of {steps} steps)\n\n" + markdown_table(headers, rows))


# --------------------------------------------------------------------------------------------
# 3. Peak memory


def _walk(events: Sequence) -> Iterator:
    for event in events:
        yield event
        yield from _walk(event.children)


def peak_training_bytes(model: nn.Module, x: Tensor) -> int:
    """The peak, above the level before it, of the bytes torch holds on the CPU during one
    training step (activations saved for backward, gradients, temporaries)."""
    step = training_step(model, x)
    step()  # warm-up, so that one-time allocations (packed weights, workspaces) stay out
    model.zero_grad(set_to_none=True)  # the gradients then count as allocated during the step
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # prof.events() folds each allocation into the op that made it, which loses the order of
    # allocations and frees; the profiler's raw event tree (private API, what torch's own memory
    # profiler reads) keeps every one with its time.
    tree = prof.profiler.kineto_results.experimental_event_tree()
    allocations = sorted((e for e in _walk(tree) if e.tag == _EventType.Allocation), key=lambda e: e.start_time_ns)
    level = peak = 0
    for event in allocations:
        level += event.extra_fields.alloc_size  # negative for a free
        peak = max(peak, level)
    return peak


def memory_section(shape: Shape, checks: list[Check]) -> str:
    print(f"measuring peak memory at (T, B, I, H) = {shape}...", file=sys.stderr, flush=True)
    steps, batch, input_size, hidden = shape
    x = torch.randn(steps, batch, input_size)
    models: list[tuple[str, nn.Module]] = [("torch.nn.LSTM", nn.LSTM(input_size, hidden))]
    models += [(f"lstmkit {v}", lnn.LSTM(input_size, hidden, cell=v)) for v in VARIANTS]
    peaks = [peak_training_bytes(model, x) for _, model in models]
    rows = []
    for (label, model), peak in zip(models, peaks):
        ratio = peak / peaks[0]
        runs_on = "torch" if label == "torch.nn.LSTM" else lstmkit_runs_on(model, x, "auto")
        target_text = verdict = ""
        if label != "torch.nn.LSTM":
            check = Check(f"{label} peak memory {shape}", ratio, 1.0)
            checks.append(check)
            target_text, verdict = "<= 1.00x", check.mark
        rows.append([label, runs_on, f"{peak / 2**20:.1f}", f"{peak:,}", f"{ratio:.2f}x", target_text, verdict])
    headers = ["layer", "runs on", "peak MiB", "peak bytes", "x torch", "target", "verdict"]
    return (f"### Peak memory of one training step ((T, B, I, H) = {shape})\n\n"
            "Bytes allocated through torch's CPU allocator, from the profiler's allocation and free "
            "events in time order (`torch.profiler.profile(profile_memory=True)`), peak above the level "
            "before the step; scratch memory a kernel takes outside torch's allocator is not seen.\n\n"
            + markdown_table(headers, rows))


# --------------------------------------------------------------------------------------------
# Report


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (width + 2) for width in widths) + "|",
                      *(line(row) for row in rows)])


def summary(checks: Sequence[Check]) -> str:
    misses = [check for check in checks if not check.passed]
    lines = [f"### Targets: {len(checks) - len(misses)} PASS, {len(misses)} MISS"]
    lines += [f"- MISS {check.name}: {check.value:.3g} > {check.limit:g}" for check in misses]
    return "\n".join(lines)


def replace_section(document: str, body: str) -> str:
    """``document`` with this script's section replaced by ``body`` (appended if absent)."""
    return _doc.replace_section(document, DOC_START, DOC_END, body)


def write_doc(body: str) -> None:
    _doc.write_section(DOC_START, DOC_END, body, DOC_PATH)
    print(f"wrote {DOC_PATH}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Command line


def parse_shape(text: str) -> Shape:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected T,B,I,H as four positive integers such as 100,32,32,128, "
                                         f"got {text!r}")
    return values  # type: ignore[return-value]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: shape {QUICK_SHAPE}, 1 round, 100 streaming steps, "
                             f"{QUICK_MEMORY_SHAPE} for memory")
    parser.add_argument("--rounds", type=int, help="timed rounds per measurement (default 5; 1 with --quick)")
    parser.add_argument("--shapes", type=parse_shape, nargs="+", metavar="T,B,I,H",
                        help="sequence-layer shapes (default: " + " ".join(",".join(map(str, s)) for s in SHAPES) + ")")
    parser.add_argument("--memory-shape", type=parse_shape, metavar="T,B,I,H",
                        help=f"shape of the peak-memory step (default {','.join(map(str, MEMORY_SHAPE))})")
    parser.add_argument("--streaming-steps", type=int, help="steps timed per streaming result (default 2000)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--no-streaming", action="store_true", help="skip the streaming measurement")
    parser.add_argument("--write-doc", action="store_true",
                        help=f"rewrite the section between {DOC_START} and {DOC_END} of docs/benchmarks.md")
    args = parser.parse_args(argv)
    for name in ("rounds", "streaming_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    quick = args.quick
    rounds = args.rounds or (1 if quick else 5)
    min_round_seconds = 0.0 if quick else MIN_ROUND_SECONDS
    shapes = args.shapes or ((QUICK_SHAPE,) if quick else SHAPES)
    memory_shape = args.memory_shape or (QUICK_MEMORY_SHAPE if quick else MEMORY_SHAPE)
    streaming_steps = args.streaming_steps or (100 if quick else 2000)

    kernels_ok = fused.available()  # builds the kernels on first use, before anything is timed
    if not kernels_ok:
        print("WARNING: lstmkit's fused kernels are not available: the variants run on the plain-PyTorch "
              "reference (set LSTMKIT_KERNELS_VERBOSE=1 to see why)", file=sys.stderr)
    loop_error = check_loops()
    threads = torch.get_num_threads()
    sections = [
        f"## LSTM speed and memory (`benchmarks/lstm_speed.py`)\n\n"
        f"- command: `{shlex.join(['python', 'benchmarks/lstm_speed.py', *argv])}`\n"
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
        f"- machine: {_doc.cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
        f"Python {platform.python_version()}\n"
        f"- threads: {SEQUENCE_THREADS} for sequence layers and memory, {STREAMING_THREADS} for streaming\n"
        f"- lstmkit fused kernels: {'available' if kernels_ok else 'NOT AVAILABLE (variants on the reference)'}\n"
        f"- Python loops match lstmkit (float64 outputs, states, gradients): max |difference| {loop_error:.1e}"
    ]
    print(sections[0] + "\n", flush=True)
    checks: list[Check] = []
    try:
        torch.set_num_threads(SEQUENCE_THREADS)
        roof = roof_gflops(rounds, min_round_seconds)
        sections.append(sequence_section(shapes, rounds, min_round_seconds, roof, checks))
        print(sections[-1] + "\n", flush=True)
        if not args.no_streaming:
            torch.set_num_threads(STREAMING_THREADS)
            sections.append(streaming_section(streaming_steps, checks))
            print(sections[-1] + "\n", flush=True)
        if not args.no_memory:
            torch.set_num_threads(SEQUENCE_THREADS)
            sections.append(memory_section(memory_shape, checks))
            print(sections[-1] + "\n", flush=True)
    finally:
        torch.set_num_threads(threads)  # main() also runs inside other processes (the smoke test)
    sections.append(summary(checks))
    print(sections[-1], flush=True)
    if args.write_doc:
        write_doc("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
