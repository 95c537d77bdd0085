"""Where a sequence layer's time loop runs: the dispatcher and its backends.

Backends, tried in this order by ``"auto"``:

* ``"native"``: torch's own fused ``_VF.lstm``/``_VF.gru``/``_VF.rnn_*`` - only for the math
  torch implements (the ``"standard"`` LSTM, GRU, Elman RNN) and no per-step state transition;
* ``"fused"``: lstmkit's C++ kernels (:mod:`lstmkit.nn.kernels.fused`, built on first use) for
  every LSTM variant and the GRU, float32/float64 on the CPU, without zoneout;
* ``"reference"``: the plain-PyTorch loop of :mod:`lstmkit.nn.kernels.reference`, which computes
  every variant and is what every faster path is tested against.

A layer built with ``kernel="fastest"`` (the tasks build theirs so) runs the standard LSTM and
the GRU on the fused kernels too, where :func:`fused_is_faster` says they beat torch's own path;
elsewhere, and where the kernels are not built, torch's path as with ``"auto"``. The two agree
to rounding, so a seed gives the same run on machines alike in this and slightly different
numbers on one that cannot build the kernels. :func:`prepare` builds them before a timed run.

For the math torch does not have, the dispatcher falls back to the reference, never to something
else. ``set_backend`` and the
``use_backend`` context manager force a backend, for tests and benchmarks; a forced backend that
cannot compute a layer is an error, except that a forced ``"fused"`` on a machine where the
kernels could not be built runs the reference (after the build warning).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.errors import ConfigError
from lstmkit.nn.cells import RecurrentWeights
from lstmkit.nn.kernels import fused, reference
from lstmkit.nn.kernels.reference import State, Transition
from lstmkit.nn.kernels.spec import LayerSpec

__all__ = ["BACKENDS", "KERNELS", "LayerSpec", "get_backend", "set_backend", "use_backend", "select_backend",
           "fused_is_faster", "prepare", "sequence_forward"]

BACKENDS = ("auto", "native", "fused", "reference")
KERNELS = ("auto", "fastest")  # a layer's own choice, see LayerSpec.kernel
_backend = "auto"


def get_backend() -> str:
    """The backend requested for sequence layers (``"auto"`` unless changed)."""
    return _backend


def set_backend(name: str) -> None:
    """Force a backend for every sequence layer: one of :data:`BACKENDS`."""
    global _backend
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; expected one of {', '.join(map(repr, BACKENDS))}")
    _backend = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the block with the given backend, then restore the previous one.

    Example:
        >>> import lstmkit.nn as lnn
        >>> with use_backend("reference"):
        ...     out, _ = lnn.LSTM(2, 3)(torch.randn(4, 1, 2))
    """
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def fused_is_faster(mode: str, batch: int, hidden_size: int, training: bool) -> bool:
    """Whether lstmkit's fused kernel runs a layer that torch also computes (the ``standard`` LSTM,
    the GRU) faster than torch's own CPU path, for ``batch`` rows of ``hidden_size`` units per
    layer and direction, in a training step (``training``) or in inference.

    The rule is the measurement of ``benchmarks/kernel_choice.py`` (docs/benchmarks.md), drawn
    a little inside where the fused kernel was faster so that a layer near the line does not
    lose. Torch's LSTM does the most per call: the fused kernel wins while one step's work is
    small (B x H up to 2,048 in training, 512 in inference), where torch's per-step dispatch and
    autograd nodes cost more than the step's arithmetic. Torch's CPU GRU composes more
    operators, and the fused GRU is faster up to B x H = 16,384 either way (measured up to
    H = 256, where the line is drawn).
    """
    work = batch * hidden_size
    if mode == "GRU":
        return work <= 16_384 and hidden_size <= 256
    if mode == "LSTM":
        return (work <= 2_048 and hidden_size <= 128) if training else (work <= 512 and hidden_size <= 64)
    return False


def _prefers_fused(spec: LayerSpec, batch: int | None) -> bool:
    """A ``kernel="fastest"`` layer at a size the fused kernel computes faster than torch's path
    (the caller has checked that the kernel computes this input); never while tracing or
    compiling, which read torch's path as an ONNX/graph LSTM op."""
    return (spec.kernel == "fastest" and batch is not None and spec.hidden_size > 0
            and not torch.jit.is_tracing() and not _compiling()
            and fused_is_faster(spec.mode, batch, spec.hidden_size, torch.is_grad_enabled()) and fused.available())


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling()) if is_compiling is not None else False


def prepare(module: torch.nn.Module) -> None:
    """Build (or load) the fused kernels now if a recurrent layer of ``module`` may run on them,
    so that the first build (about 20 seconds on 2 cores) is not spent inside a timed or budgeted run."""
    from lstmkit.nn.rnn import RecurrentLayer

    for layer in module.modules():
        if isinstance(layer, RecurrentLayer) and layer.mode in ("LSTM", "GRU") and (
                layer.kernel == "fastest" or not layer.spec.is_torch_native):
            fused.available()
            return


def select_backend(spec: LayerSpec, transition: Transition | None, x: Tensor | None = None,
                   batch: int | None = None) -> str:
    """The backend that will run a layer of this structure (on input ``x`` of ``batch`` rows,
    when given)."""
    native_ok = spec.is_torch_native and transition is None
    fused_ok = transition is None and spec.mode in ("LSTM", "GRU") and (x is None or fused.supports(spec, x, None))
    what = spec.variant.name if spec.variant is not None else spec.mode
    if _backend == "native" and not native_ok:
        raise ConfigError(f"backend 'native' cannot run {what!r} layers{' with zoneout' if transition else ''}; "
                          "use backend 'auto'")
    if _backend == "fused" and not fused_ok:
        raise ConfigError(f"backend 'fused' cannot run {what!r} layers{' with zoneout' if transition else ''}"
                          f"{'' if x is None else f' on {x.dtype} {x.device.type} input'}; use backend 'auto'")
    if _backend == "auto" and native_ok and fused_ok and x is not None and _prefers_fused(spec, batch):
        return "fused"
    if _backend == "native" or (_backend == "auto" and native_ok):
        return "native"
    if _backend in ("auto", "fused") and fused_ok and fused.available():
        return "fused"
    return "reference"


def _flat_weights(weights: Sequence[RecurrentWeights], bias: bool) -> list[Tensor]:
    flat: list[Tensor] = []
    for w in weights:
        flat += [w.weight_ih, w.weight_hh]
        if bias:
            flat += [w.bias_ih, w.bias_hh]  # type: ignore[list-item]
        if w.weight_hr is not None:
            flat.append(w.weight_hr)
    return flat


_NATIVE = {"LSTM": torch._VF.lstm, "GRU": torch._VF.gru, "RNN_TANH": torch._VF.rnn_tanh,
           "RNN_RELU": torch._VF.rnn_relu}


def _native_forward(spec: LayerSpec, x: Tensor, batch_sizes: Tensor | None, hx: State,
                    weights: Sequence[RecurrentWeights], training: bool,
                    batch_first: bool) -> tuple[Tensor, State]:
    fn = _NATIVE[spec.mode]
    flat = _flat_weights(weights, spec.bias)
    state = hx if spec.mode == "LSTM" else hx[0]
    args = (spec.bias, spec.num_layers, spec.dropout, training, spec.bidirectional)
    if batch_sizes is None:
        result = fn(x, state, flat, *args, batch_first)
    else:
        result = fn(x, batch_sizes, state, flat, *args)
    return result[0], tuple(result[1:])


def sequence_forward(
    spec: LayerSpec,
    x: Tensor,
    batch_sizes: Tensor | None,
    hx: State,
    weights: Sequence[RecurrentWeights],
    training: bool,
    batch_first: bool,
    transition: Transition | None = None,
) -> tuple[Tensor, State]:
    """Run a whole (stacked, possibly bidirectional) layer on validated inputs.

    Args:
        spec: the layer's structure.
        x: a batched ``(T, B, I)`` tensor (``(B, T, I)`` when ``batch_first``), or the ``data``
            of a PackedSequence when ``batch_sizes`` is given.
        batch_sizes: the PackedSequence's ``batch_sizes`` or ``None``.
        hx: the initial state, already permuted to the packed order.
        weights: one :class:`RecurrentWeights` per layer and direction.
        training: whether dropout between layers is active.
        batch_first: layout of ``x`` when it is not packed.
        transition: optional per-step state transition (zoneout).

    Returns:
        the output in the layout of ``x`` (packed data when packed) and the final state.
    """
    batch = int(batch_sizes[0]) if batch_sizes is not None else x.shape[0 if batch_first else 1]
    backend = select_backend(spec, transition, x, batch)
    if backend == "native":
        return _native_forward(spec, x, batch_sizes, hx, weights, training, batch_first)

    def run(x: Tensor, sizes: list[int] | None) -> tuple[Tensor, State]:
        if backend == "fused":
            return fused.sequence_forward(spec, x, sizes, hx, weights, training)
        return reference.sequence_forward(spec, x, sizes, hx, weights, training, transition)

    if batch_sizes is not None:
        sizes = batch_sizes.tolist()
        out, state = run(_unpack_data(x, sizes), sizes)
        return _pack_data(out, sizes), state
    out, state = run(x.transpose(0, 1) if batch_first else x, None)
    return (out.transpose(0, 1) if batch_first else out), state


def _unpack_data(data: Tensor, batch_sizes: list[int]) -> Tensor:
    """PackedSequence data ``(N, F)`` -> time-major padded ``(T, B, F)`` (zeros at padding)."""
    width = batch_sizes[0]
    chunks = data.split(batch_sizes)
    return torch.stack([F.pad(chunk, (0, 0, 0, width - len(chunk))) for chunk in chunks])


def _pack_data(padded: Tensor, batch_sizes: list[int]) -> Tensor:
    """Time-major padded ``(T, B, F)`` -> PackedSequence data ``(N, F)``."""
    return torch.cat([padded[t, :size] for t, size in enumerate(batch_sizes)])
