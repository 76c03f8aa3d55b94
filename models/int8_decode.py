"""Faster decoding on a CPU: each one-token step reads an int8 copy of the weights.

Decoding one token at a time reads every weight once per token, so on a CPU its
speed is memory bandwidth over weight bytes. bfloat16 weights of the 0.5B decoded
11.7 tokens/s here; an int8 copy (one scale per output row, symmetric) halves the
bytes and decoded 21.3 tokens/s with the same replies on a 40-token probe
(docs/performance.md). The prompt (many rows at once) is compute-bound, and
PyTorch's int8 kernel is 8.6x slower than bfloat16 there, so the prompt keeps the
model's own weights: the int8 copy is extra memory (one byte per weight: 0.5 GB for
the 0.5B), which ``llm_int8_decode = "off"`` gives back.

Why not a quantization library: torchao's and quanto's int8 weight-only layers keep
one int8 copy for every call, so their prompts pay that 8.6x (or a dequantize per
call: 1.3x on the whole first-token time here).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# At most this many rows (tokens x batch) per call take the int8 path: the measured
# crossover against bfloat16 on this CPU was between 4 and 6 rows.
MAX_INT8_ROWS = 4


def int8_decode_supported() -> bool:
    """Whether this torch has the CPU kernel (a private op: absent, nothing changes)."""
    return hasattr(torch, "_weight_int8pack_mm")


class Int8DecodeLinear(nn.Module):
    """A ``Linear`` whose calls of up to ``MAX_INT8_ROWS`` rows use an int8 copy of
    its weight; larger calls use the original layer, which it keeps."""

    int8_weight: torch.Tensor
    scales: torch.Tensor

    def __init__(self, original: nn.Linear) -> None:
        super().__init__()
        self.original = original
        weight = original.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        quantized = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("int8_weight", quantized.contiguous(), persistent=False)
        self.register_buffer("scales", scales.to(original.weight.dtype), persistent=False)

    @property
    def weight(self) -> torch.Tensor:  # what code reading ``layer.weight`` expects
        return self.original.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > MAX_INT8_ROWS or x.dtype != self.scales.dtype or x.device.type != "cpu":
            return self.original(x)
        flat = x.reshape(rows, x.shape[-1]).contiguous()
        out = torch._weight_int8pack_mm(flat, self.int8_weight, self.scales)
        if self.original.bias is not None:
            out = out + self.original.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


def add_int8_decode_weights(model: Any) -> int:
    """Wrap every ``Linear`` of ``model`` in place; returns the bytes the copies take.

    Embedding tables are left alone: a step reads only its token's row of them.
    """
    added = 0
    with torch.no_grad():
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    wrapped = Int8DecodeLinear(child)
                    setattr(parent, name, wrapped)
                    added += wrapped.int8_weight.nbytes + wrapped.scales.nbytes
    return added
