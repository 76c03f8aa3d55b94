"""Which device and float type run the models, and the lock that model loading takes."""

from __future__ import annotations

import logging
import threading
from functools import cache
from pathlib import Path

from ..errors import ModelError

log = logging.getLogger(__name__)

# Held while any model or tokenizer loads. transformers imports its parts lazily
# and that is not thread-safe: the app's warm-up thread loading the embedder while
# an upload counts tokens failed once with "No module named 'sentence_transformers'".
MODEL_LOADING = threading.RLock()


@cache
def pick_device(preference: str = "auto") -> str:
    """``cuda`` when asked for or when ``auto`` finds a GPU, else ``cpu``; logged once."""
    if preference != "auto":
        device = preference
    elif torch_build_is_cpu_only():
        device = "cpu"  # known without importing torch (0.8 s): e.g. an unchanged re-ingest
    else:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    log.info("models run on %s", device)
    return device


def torch_build_is_cpu_only() -> bool:
    """True when the installed torch is a CPU build (its version ends in ``+cpu``), which
    can never see a GPU; read from the package metadata, torch itself not imported."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch").endswith("+cpu")
    except PackageNotFoundError:
        return False


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


@cache
def pick_precision(device: str, preference: str = "auto") -> str:
    """The float type models compute in: ``auto`` takes the fastest that keeps results.

    On a CPU with bfloat16 dot-product instructions (AVX512-BF16 or AMX), bfloat16
    ran embeddings 2.4x and LLM prefill 3.7x faster than float32 here, with
    embeddings at cosine >= 0.998 to float32 (docs/performance.md). Without those
    instructions bfloat16 is emulated and slower, so float32 stays. GPUs take
    bfloat16 where supported, else float16.
    """
    if preference not in PRECISIONS:
        raise ModelError(f"unknown precision {preference!r}: use one of {', '.join(PRECISIONS)}")
    if preference != "auto":
        return preference
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    precision = "bfloat16" if _cpu_has_bf16() else "float32"
    log.info("models compute in %s on %s", precision, device)
    return precision


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay with float32, always correct
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def torch_dtype(precision: str) -> object:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        precision
    ]
