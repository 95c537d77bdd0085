"""Where a sequence layer's time loop runs: the dispatcher and its backends.

Backends, tried in this order by ``"auto"``:

* ``"native"``: torch's own fused ``_VF.lstm``/``_VF.gru``/``_VF.rnn_*`` - only for the math
  torch implements (the ``"standard"`` LSTM, GRU, Elman RNN) and no per-step state transition;
* ``"fused"``: lstmkit's C++ kernels (:mod:`lstmkit.nn.kernels.fused`, built on first use) for
  every LSTM variant and the GRU, float32/float64 on the CPU, without zoneout;
* ``"reference"``: the plain-PyTorch loop of :mod:`lstmkit.nn.kernels.reference`, which computes
  every variant and is what every faster path is tested against.

The dispatcher falls back to the reference, never to something else. ``set_backend`` and the
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

__all__ = ["BACKENDS", "LayerSpec", "get_backend", "set_backend", "use_backend", "select_backend",
           "sequence_forward"]

BACKENDS = ("auto", "native", "fused", "reference")
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


def select_backend(spec: LayerSpec, transition: Transition | None, x: Tensor | None = None) -> str:
    """The backend that will run a layer of this structure (on input ``x``, when given)."""
    native_ok = spec.is_torch_native and transition is None
    fused_ok = transition is None and spec.mode in ("LSTM", "GRU") and (x is None or fused.supports(spec, x, None))
    what = spec.variant.name if spec.variant is not None else spec.mode
    if _backend == "native" and not native_ok:
        raise ConfigError(f"backend 'native' cannot run {what!r} layers{' with zoneout' if transition else ''}; "
                          "use backend 'auto'")
    if _backend == "fused" and not fused_ok:
        raise ConfigError(f"backend 'fused' cannot run {what!r} layers{' with zoneout' if transition else ''}"
                          f"{'' if x is None else f' on {x.dtype} {x.device.type} input'}; use backend 'auto'")
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
    backend = select_backend(spec, transition, x)
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
