"""The fused CPU kernels: C++ built on first use, wrapped as autograd functions.

The C++ sources in ``csrc/`` are compiled with ``torch.utils.cpp_extension.load`` the first
time a fused path is needed (about 20 s on 2 cores; cached afterwards under
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``, in a directory named by the
sources' content, the flags, torch's version and the CPU; a reinstall of the same sources reuses
it). A machine that cannot build them (no compiler, no ninja) gets one warning and the
plain-PyTorch reference.
``LSTMKIT_NO_KERNELS=1`` skips the build altogether.

One call of :class:`_LSTMLayer` runs one layer-direction: input projection, recurrence and
gates in C++, and the backward through time in C++ as well (see ``csrc/lstm.cpp``). The same
extension carries the online learner of the 1997 network of ``lstmkit.papers``
(``csrc/lstm1997.cpp``, called by ``Network1997.learn``), whose numpy code is its reference.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from lstmkit.nn.cells import RecurrentWeights
from lstmkit.nn.kernels.reference import State, stack_layers
from lstmkit.nn.kernels.spec import LayerSpec

__all__ = ["load_extension", "available", "supports", "sequence_forward", "make_stepper", "VARIANT_IDS"]

CSRC = Path(__file__).with_name("csrc")
SOURCES = ("module.cpp", "lstm.cpp", "gru.cpp", "lstm1997.cpp")
HEADERS = ("common.h", "lstm_rows.h", "stepper.h", "vmath.h")
VARIANT_IDS = {"standard": 0, "vanilla": 1, "peephole": 2, "cifg": 3, "layernorm": 4}
MODE_IDS = {"GRU": 10, "RNN_TANH": 11, "RNN_RELU": 12}
# -fopenmp: at::parallel_for is an inline "#pragma omp parallel" in torch's headers, ignored
# (so silently serial) without it; it also honours "#pragma omp simd" (vectorised reductions).
# tuples: torch's load() appends to the lists it is given, which changed the build's name after the
# first load
CFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-std=c++17")
LDFLAGS = ("-fopenmp",)

_extension: ModuleType | None = None
_failure: str | None = None
_lock = threading.Lock()


def _build_name() -> str:
    """A name that changes with the sources, the flags and the CPU (the code uses -march=native)."""
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update((CSRC / name).read_bytes())
    digest.update(" ".join(CFLAGS + LDFLAGS).encode())
    digest.update(torch.__version__.encode())
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        digest.update(flags.encode())
    except (OSError, StopIteration):
        pass
    return f"lstmkit_kernels_{digest.hexdigest()[:12]}"


def load_extension() -> ModuleType | None:
    """The compiled kernels, building them on first use; ``None`` (after one warning) if impossible."""
    global _extension, _failure
    if _extension is not None or _failure is not None:
        return _extension
    with _lock:
        if _extension is not None or _failure is not None:
            return _extension
        if os.environ.get("LSTMKIT_NO_KERNELS"):
            _failure = "disabled by LSTMKIT_NO_KERNELS"
            return None
        try:
            from torch.utils.cpp_extension import load

            name = _build_name()
            verbose = bool(os.environ.get("LSTMKIT_KERNELS_VERBOSE"))
            if not _is_built(name):
                print("lstmkit: compiling the fused CPU kernels (first use only, about 20 seconds)...",
                      file=sys.stderr, flush=True)
            from torch.utils.cpp_extension import _get_build_directory

            sources = _sources_in(Path(_get_build_directory(name, verbose=False)) / "sources")
            _extension = load(name=name, sources=sources, extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS),
                              verbose=verbose)
        except Exception as error:  # any build failure means: fall back, loudly, once
            _failure = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
            warnings.warn(
                f"lstmkit could not build its fused CPU kernels ({_failure}); the LSTM variants run on the "
                "plain-PyTorch reference instead, which is correct but several times slower, and the standard "
                "LSTM and the GRU on torch's own path. A C++ "
                "compiler and the 'ninja' package are needed; set LSTMKIT_KERNELS_VERBOSE=1 to see the "
                "build log, or LSTMKIT_NO_KERNELS=1 to skip the build.",
                RuntimeWarning,
                stacklevel=3,
            )
    return _extension


def _sources_in(directory: Path) -> list[str]:
    """The C++ sources and headers copied into ``directory`` (the build's own, named by their
    content), once: ninja rebuilds when a source is newer than its object file, and a reinstalled
    package has new timestamps on the same sources. Copies already there are left untouched, so
    the build stays valid for as long as the content is the same. Each copy is written whole
    (temporary file, then rename), so processes building at the same time see whole files."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in SOURCES + HEADERS:
        target = directory / name
        if not target.exists():
            tmp = directory / f".{name}.tmp-{os.getpid()}-{threading.get_ident()}"
            tmp.write_bytes((CSRC / name).read_bytes())
            os.replace(tmp, target)
    return [str(directory / name) for name in SOURCES]


def _is_built(name: str) -> bool:
    from torch.utils.cpp_extension import _get_build_directory

    try:
        return any(Path(_get_build_directory(name, verbose=False)).glob("*.so"))
    except Exception:
        return False


def available() -> bool:
    """Whether the fused kernels are built and loaded (building them if needed)."""
    return load_extension() is not None


def supports(spec: LayerSpec, x: Tensor, transition: Any) -> bool:
    """Whether the fused kernels compute this layer on these inputs."""
    return (transition is None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and (spec.mode == "LSTM" or spec.mode == "GRU"))


def _optional(w: RecurrentWeights) -> list[Tensor | None]:
    return [w.bias_ih, w.bias_hh, w.weight_hr, w.weight_ch, w.ln_weight_ih, w.ln_weight_hh, w.ln_weight_c,
            w.ln_bias_c]


class _LSTMLayer(torch.autograd.Function):
    """One LSTM layer-direction; ``weights`` in the order of :class:`RecurrentWeights`."""

    @staticmethod
    def forward(ctx, variant: int, sizes: list[int], reverse: bool, x: Tensor, h0: Tensor, c0: Tensor,
                *weights: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        out, h, c, gates, cells, stats = _extension.lstm_forward(variant, x, h0, c0, *weights, sizes, reverse, True)
        ctx.variant, ctx.sizes, ctx.reverse = variant, sizes, reverse
        ctx.present = [w is not None for w in weights]
        ctx.save_for_backward(x, h0, c0, out, gates, cells, stats, *[w for w in weights if w is not None])
        return out, h, c

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_h: Tensor, grad_c: Tensor):
        x, h0, c0, out, gates, cells, stats, *present = ctx.saved_tensors
        it = iter(present)
        weights = [next(it) if p else None for p in ctx.present]
        grads = _extension.lstm_backward(ctx.variant, grad_out, grad_h, grad_c, x, h0, c0, *weights, out, gates,
                                         cells, stats if stats is not None else torch.empty(0), ctx.sizes,
                                         ctx.reverse)
        dx, dh0, dc0, *dweights = grads
        dweights = [g if p else None for g, p in zip(dweights, ctx.present)]
        return (None, None, None, dx, dh0, dc0, *dweights)


class _GRULayer(torch.autograd.Function):
    """One GRU layer-direction."""

    @staticmethod
    def forward(ctx, sizes: list[int], reverse: bool, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor,
                b_ih: Tensor | None, b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
        out, h, gates, hn = _extension.gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, sizes, reverse, True)
        ctx.sizes, ctx.reverse, ctx.bias = sizes, reverse, b_ih is not None
        ctx.save_for_backward(x, h0, w_ih, w_hh, out, gates, hn)
        return out, h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_h: Tensor):
        x, h0, w_ih, w_hh, out, gates, hn = ctx.saved_tensors
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _extension.gru_backward(
            grad_out, grad_h, x, h0, w_ih, w_hh, ctx.bias, out, gates, hn, ctx.sizes, ctx.reverse)
        return None, None, dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def sequence_forward(spec: LayerSpec, x: Tensor, batch_sizes: Sequence[int] | None, hx: State,
                     weights: Sequence[RecurrentWeights], training: bool) -> tuple[Tensor, State]:
    """As :func:`lstmkit.nn.kernels.reference.sequence_forward`, each layer-direction fused.

    Without autograd (``torch.no_grad()``, or nothing requiring grad) the kernels are called
    directly and keep nothing for a backward pass.
    """
    sizes = list(batch_sizes) if batch_sizes is not None else []
    grad = torch.is_grad_enabled() and (x.requires_grad or any(s.requires_grad for s in hx) or any(
        t is not None and t.requires_grad for w in weights for t in w))
    if spec.mode == "LSTM":
        variant = VARIANT_IDS[spec.variant.name]

        def run(index: int, layer_input: Tensor, state: State, w: RecurrentWeights, reverse: bool):
            args = (layer_input.contiguous(), state[0], state[1], w.weight_ih, w.weight_hh, *_optional(w))
            if grad:
                out, h, c = _LSTMLayer.apply(variant, sizes, reverse, *args)
            else:
                out, h, c, *_ = _extension.lstm_forward(variant, *args, sizes, reverse, False)
            return out, (h, c)
    else:

        def run(index: int, layer_input: Tensor, state: State, w: RecurrentWeights, reverse: bool):
            args = (layer_input.contiguous(), state[0], w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh)
            if grad:
                out, h = _GRULayer.apply(sizes, reverse, *args)
            else:
                out, h, *_ = _extension.gru_forward(*args, sizes, reverse, False)
            return out, (h,)

    return stack_layers(spec, x, hx, weights, training, run)


def make_stepper(spec: LayerSpec, weights: Sequence[RecurrentWeights], batch_size: int):
    """The C++ streaming stepper for a unidirectional layer, or ``None`` if kernels are unavailable."""
    if load_extension() is None or spec.mode not in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
        return None
    mode = VARIANT_IDS[spec.variant.name] if spec.mode == "LSTM" else MODE_IDS[spec.mode]
    fields = [[getattr(w, f) for f in RecurrentWeights._fields] for w in weights]
    return _extension.Stepper(mode, fields, batch_size)
