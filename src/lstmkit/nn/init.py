"""Gate-bias initialisation for LSTM layers and cells.

Long time lags are bridged or not depending on the gate biases at the start of training: a
forget-gate bias of +1 (Jozefowicz et al. 2015), negative input-gate biases (Hochreiter &
Schmidhuber 1997 used -3 and -6), or chrono initialisation (Tallec & Ollivier 2018), which
spreads the forget biases so that the cells' characteristic time scales cover ``[1, T_max]``.

Each function writes the chosen value into ``bias_ih`` and zeroes the same block of ``bias_hh``,
so that the effective bias (their sum) is exactly the value asked for.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lstmkit.errors import ConfigError
from lstmkit.nn.cells import Variant

__all__ = ["set_gate_bias_", "chrono_init_", "apply_gate_bias_init"]


def _variant_of(module: nn.Module) -> Variant:
    variant = getattr(module, "variant", None)
    if not isinstance(variant, Variant):
        raise ConfigError(f"expected an lstmkit LSTM or LSTMCell, got {type(module).__name__}")
    return variant


def _bias_pairs(module: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """``(bias_ih, bias_hh)`` of every layer and direction (or of the cell)."""
    params = dict(module.named_parameters(recurse=False))
    pairs = [(p, params["bias_hh" + name[len("bias_ih"):]]) for name, p in params.items()
             if name.startswith("bias_ih")]
    if not pairs:
        raise ConfigError(f"{type(module).__name__} was built with bias=False: there is no gate bias "
                          "to set; build it with bias=True")
    return pairs


def _block(variant: Variant, gate: str, hidden_size: int) -> slice:
    if gate not in variant.gates:
        hint = " (its forget gate is 1 - i: set the input gate instead)" if variant.name == "cifg" else ""
        raise ConfigError(f"cell={variant.name!r} has gates {', '.join(variant.gates)}, no {gate!r}"
                          f"{hint}")
    k = variant.gates.index(gate)
    return slice(k * hidden_size, (k + 1) * hidden_size)


def set_gate_bias_(module: nn.Module, gate: str, value: float | Tensor) -> None:
    """Set the bias of one gate (``"i"``, ``"f"``, ``"g"`` or ``"o"``) in every layer and direction.

    Args:
        module: an lstmkit ``LSTM`` or ``LSTMCell`` with ``bias=True``.
        gate: the gate's letter, one of the variant's ``gates``.
        value: a number, or a ``(H,)`` tensor for per-unit values.

    Example:
        >>> from lstmkit.nn import LSTM
        >>> lstm = LSTM(2, 4)
        >>> set_gate_bias_(lstm, "f", 1.0)
        >>> (lstm.bias_ih_l0[4:8] + lstm.bias_hh_l0[4:8]).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    variant = _variant_of(module)
    if not isinstance(value, Tensor) and not math.isfinite(value):
        raise ConfigError(f"a gate bias must be a finite number, got {value}")
    block = _block(variant, gate, module.hidden_size)
    with torch.no_grad():
        for bias_ih, bias_hh in _bias_pairs(module):
            bias_ih[block] = value
            bias_hh[block] = 0.0


def chrono_init_(module: nn.Module, max_timescale: float, generator: torch.Generator | None = None) -> None:
    r"""Chrono initialisation (Tallec & Ollivier 2018) for time scales up to ``max_timescale``.

    :math:`b_f \sim \log U(1, T_{max} - 1)` per unit and :math:`b_i = -b_f`; for ``"cifg"``
    (forget gate :math:`1 - i_t`) only :math:`b_i = -b_f`. Variants without a forget gate
    (``"vanilla"``) have no time scale to set and raise.
    """
    variant = _variant_of(module)
    if not (isinstance(max_timescale, (int, float)) and max_timescale > 2):
        raise ConfigError(f"chrono_init needs the longest expected time lag T_max > 2, got {max_timescale!r}")
    if variant.name == "vanilla":
        raise ConfigError("cell='vanilla' has no forget gate, so chrono initialisation does not apply; "
                          "use cell='standard' or set input_bias")
    h = module.hidden_size
    i_block = _block(variant, "i", h)
    for bias_ih, bias_hh in _bias_pairs(module):
        u = torch.empty(h, dtype=bias_ih.dtype).uniform_(1.0, max_timescale - 1, generator=generator)
        forget = u.log().to(bias_ih.device)
        with torch.no_grad():
            bias_ih[i_block] = -forget
            bias_hh[i_block] = 0.0
            if variant.forget_gate:
                f_block = _block(variant, "f", h)
                bias_ih[f_block] = forget
                bias_hh[f_block] = 0.0


def apply_gate_bias_init(module: nn.Module, forget_bias: float | None, input_bias: float | None,
                         chrono_init: float | None) -> None:
    """Apply an LSTM's ``forget_bias``/``input_bias``/``chrono_init`` constructor arguments."""
    if chrono_init is not None and (forget_bias is not None or input_bias is not None):
        raise ConfigError("chrono_init sets both the forget and the input gate biases; pass either "
                          "chrono_init or forget_bias/input_bias, not both")
    if forget_bias is not None:
        set_gate_bias_(module, "f", forget_bias)
    if input_bias is not None:
        set_gate_bias_(module, "i", input_bias)
    if chrono_init is not None:
        chrono_init_(module, chrono_init)
