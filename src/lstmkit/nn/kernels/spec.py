"""The structure of a sequence layer, as the kernels see it."""

from __future__ import annotations

from dataclasses import dataclass

from lstmkit.nn.cells import Variant

__all__ = ["LayerSpec"]


@dataclass(frozen=True)
class LayerSpec:
    """What a kernel needs to know about a layer besides its weights and inputs.

    Attributes:
        mode: ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"``.
        variant: the LSTM variant (``None`` for GRU and RNN).
        num_layers: stacked layers ``L``.
        bidirectional: whether there is a reverse direction (``D = 2``).
        bias: whether the layer has biases.
        dropout: dropout probability between layers.
        proj_size: LSTM output projection size, 0 for none.
        hidden_size: ``H`` (0 where unknown).
        kernel: the layer's choice for the math torch also computes: ``"auto"`` (torch's own path)
            or ``"fastest"`` (lstmkit's fused kernel where it is measured faster; see
            :func:`lstmkit.nn.kernels.fused_is_faster`).
    """

    mode: str
    variant: Variant | None
    num_layers: int
    bidirectional: bool
    bias: bool
    dropout: float
    proj_size: int = 0
    hidden_size: int = 0
    kernel: str = "auto"

    @property
    def is_torch_native(self) -> bool:
        """Whether ``torch``'s own fused implementation computes exactly this layer."""
        return self.mode != "LSTM" or (self.variant is not None and self.variant.name == "standard")

