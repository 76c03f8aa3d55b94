"""GGUF → a transformers model folder that reloads in seconds.

transformers dequantizes a GGUF file on every load (a minute or more for the
0.5B model); saved once as plain weights, the copy loads in 2-8 s.
"""

from __future__ import annotations

from pathlib import Path


def convert_gguf(gguf: Path, out: Path) -> None:
    """Write ``out`` (config, weights, tokenizer) from the verified GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # Saved as plain weights: drop the GGUF quantizer so the copy reloads directly.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
