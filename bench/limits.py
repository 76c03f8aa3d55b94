"""The machine's limits for the LLM: memory bandwidth, matmul throughput, and the
decode and prefill speeds they allow kbqa's default model.

    python bench/limits.py [--quick | --smoke] [--answers bench/results/answer.json]
                           [--out bench/results/limits.json]

Bandwidth: sums (read) and copies (read + write) of a 1 GiB array, far past
the caches, best of several, with numpy (one thread) and torch (its threads).
Throughput: torch.matmul on square matrices in fp32 and bf16, and int8
(torch._int_mm) where this torch has it, at torch's own thread count.
Then the model's weights, read from its safetensors header (nothing loaded):
a decoded token reads every linear layer and lm_head once, so
decode bound = bandwidth ÷ those bytes; a prompt token costs 2 FLOPs per
linear-layer weight, so prefill bound = peak FLOP/s ÷ (2 · those params).
If answer.json exists, the measured rates are shown as fractions of the bounds.
The model is answer.json's LLM, else the configured one (``auto`` resolved as the
CLI resolves it). Runs in well under a minute. ``--smoke``: 64 MiB, 256×256
matrices, one repeat, the smallest LLM, answer.json only if given. Not a test: run
it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    add_smoke_flag,
    load_settings,
    resolved_llm,
    use_smoke_models,
    write_result,
)

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


def best_seconds(work: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` runs after one warm-up: the machine's capability,
    not the noise of whoever else shares the cores."""
    work()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


# -- memory bandwidth ----------------------------------------------------------------


def memory_bandwidth(size_bytes: int, repeats: int) -> dict[str, float]:
    """GB/s (10^9 bytes) read by a sum and moved (read + write) by a copy."""
    import torch

    source = np.ones(size_bytes // 4, dtype=np.float32)  # ones: every page really mapped
    target = np.empty_like(source)
    tensor = torch.from_numpy(source)
    results = {
        "numpy_sum_read": size_bytes / best_seconds(lambda: source.sum(), repeats),
        "numpy_copy_moved": 2
        * size_bytes
        / best_seconds(lambda: np.copyto(target, source), repeats),
        "torch_sum_read": size_bytes / best_seconds(lambda: tensor.sum(), repeats),
    }
    return {name: round(value / 1e9, 1) for name, value in results.items()}


# -- matmul throughput ---------------------------------------------------------------


def matmul_gflops(size: int, repeats: int) -> dict[str, float | None]:
    """GFLOP/s of an ``size``×``size`` matmul (2·n³ FLOPs) per element type."""
    import torch

    flops = 2 * size**3
    generator = torch.Generator().manual_seed(0)
    results: dict[str, float | None] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, generator=generator).to(dtype)
        b = torch.randn(size, size, generator=generator).to(dtype)
        seconds = best_seconds(lambda a=a, b=b: torch.matmul(a, b), repeats)
        results[name] = round(flops / seconds / 1e9, 1)
    results["int8"] = int8_gflops(size, repeats)
    return results


def int8_gflops(size: int, repeats: int) -> float | None:
    """int8 × int8 → int32 through torch._int_mm; None where this torch lacks it on CPU."""
    import torch

    a = torch.randint(-128, 127, (size, size), dtype=torch.int8)
    b = torch.randint(-128, 127, (size, size), dtype=torch.int8)
    try:
        seconds = best_seconds(lambda: torch._int_mm(a, b), repeats)
    except (RuntimeError, AttributeError, NotImplementedError):
        return None
    return round(2 * size**3 / seconds / 1e9, 1)


# -- the model's weights -------------------------------------------------------------


@dataclass(frozen=True)
class ModelWeights:
    stored_params: int  # everything in the checkpoint, as it sits in memory
    layer_linear_params: int  # attention and MLP projections (weights + biases) of all layers
    lm_head_params: int
    embedding_params: int
    other_params: int  # norms: read every token too, but tiny
    tied: bool

    @property
    def tied_params(self) -> int:
        """The published count, lm_head sharing the embedding table."""
        return self.layer_linear_params + self.other_params + self.embedding_params

    @property
    def read_per_token_params(self) -> int:
        """Weights one decoded token reads: every layer's linears, the norms, lm_head.
        The embedding lookup reads one row, so the embedding table does not count."""
        return self.layer_linear_params + self.other_params + self.lm_head_params


def safetensors_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor shapes from the safetensors header: the 8-byte length, then JSON."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def model_weights(folder: Path) -> ModelWeights:
    shapes = safetensors_shapes(folder)
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    embedding = sum(v for k, v in sizes.items() if k.endswith("embed_tokens.weight"))
    stored_head = sizes.get("lm_head.weight", 0)
    config = json.loads((folder / "config.json").read_text())
    # Tied: lm_head multiplies by the embedding table, so its weights are read each token.
    tied = stored_head == 0 or bool(config.get("tie_word_embeddings", False))
    lm_head = embedding if tied else stored_head
    linear = sum(
        v for k, v in sizes.items() if ".layers." in k and k.rsplit(".", 2)[-2].endswith("_proj")
    )
    stored = sum(sizes.values())
    other = stored - linear - embedding - stored_head
    return ModelWeights(stored, linear, lm_head, embedding, other, tied)


# -- bounds and measured fractions ---------------------------------------------------


def peak_for(dtype: str, matmul: dict[str, float | None]) -> float:
    """The matmul peak that applies to weights of ``dtype``; fp16 and other types
    have no measured CPU kernel here, so fp32's stands in."""
    peak = matmul["bf16"] if dtype.partition("+")[0] == "bfloat16" else matmul["fp32"]
    assert peak is not None
    return peak


def bounds(
    weights: ModelWeights, dtype: str, bandwidth_gbs: float, peak_gflops: float
) -> dict[str, float]:
    # "bfloat16+int8 decode": one-token steps read the linears' int8 copy (one byte a
    # weight) and the norms in the model's dtype (models/int8_decode.py).
    dtype, _, decode_copy = dtype.partition("+")
    linear_bytes = DTYPE_BYTES["int8"] if decode_copy else DTYPE_BYTES[dtype]
    bytes_per_token = (
        weights.read_per_token_params - weights.other_params
    ) * linear_bytes + weights.other_params * DTYPE_BYTES[dtype]
    # Prefill: generate computes logits for the last prompt token only, so a prompt
    # token costs the layers' linears; attention (~4·layers·T·hidden per token) is extra.
    flops_per_prompt_token = 2 * (weights.layer_linear_params + weights.other_params)
    return {
        "bandwidth_gb_per_s": bandwidth_gbs,
        "peak_gflop_per_s": peak_gflops,
        "weight_bytes_per_token_gb": round(bytes_per_token / 1e9, 3),
        "decode_bound_tokens_per_s": round(bandwidth_gbs * 1e9 / bytes_per_token, 1),
        "prefill_gflop_per_token": round(flops_per_prompt_token / 1e9, 3),
        "prefill_bound_tokens_per_s": round(peak_gflops * 1e9 / flops_per_prompt_token, 1),
    }


def side_dtypes(answers: dict[str, Any] | None, dtype: str | None) -> dict[str, str]:
    """The dtype each side of answer.json ran in (kbqa may pick bf16, the baseline
    pipeline keeps fp32), or the one given, for kbqa alone."""
    if dtype or not answers:
        return {"ours": dtype or "float32"}
    dtypes = {side: answers[side]["dtype"] for side in ("ours", "baseline") if answers.get(side)}
    if (answers.get("setup", {}).get("int8_decode") or ["off"])[0] == "on" and "ours" in dtypes:
        dtypes["ours"] += "+int8 decode"
    return dtypes


def measured_fractions(
    answers: dict[str, Any], dtypes: dict[str, str], limits: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """Each side's measured decode and prefill rates against the bounds of its dtype."""
    summary = answers["summary"]
    prompt = summary["prompt_tokens"]
    out: dict[str, Any] = {}
    for side, dtype in dtypes.items():
        limit = limits[dtype]
        decode = summary["decode_tokens_per_s"][side]["p50"]
        # Prefill ≈ prompt tokens ÷ first-token time from the generate call (no retrieval).
        first = summary["generation_first_token_s"][side]["p50"]
        prefill = prompt[side]["p50"] / first if first else None
        out[side] = {
            "dtype": dtype,
            "decode_tokens_per_s": decode,
            "decode_fraction_of_bound": fraction(decode, limit["decode_bound_tokens_per_s"]),
            "prefill_tokens_per_s": round(prefill, 1) if prefill else None,
            "prefill_fraction_of_bound": fraction(prefill, limit["prefill_bound_tokens_per_s"]),
        }
    return out


def fraction(measured: float | None, bound: float) -> float | None:
    return round(measured / bound, 2) if measured else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller matrices")
    parser.add_argument(
        "--answers", type=Path, help="default bench/results/answer.json (smoke: none)"
    )
    parser.add_argument("--dtype", help="the LLM's dtype (default: answer.json's, else float32)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "limits.json")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        use_smoke_models()
    elif args.answers is None:
        args.answers = ROOT / "bench" / "results" / "answer.json"

    import torch

    from kbqa.models.registry import local_folder

    started = time.perf_counter()
    answers = (
        json.loads(args.answers.read_text()) if args.answers and args.answers.is_file() else None
    )
    dtypes = side_dtypes(answers, args.dtype)
    settings = load_settings()
    # answer.json labels a run "NAME · int8 decode on|off" when it measured both.
    llm = ((answers or {}).get("ours", {}).get("llm") or "").split(" · ")[0]
    llm = llm or resolved_llm(settings)
    folder = local_folder(llm, "generator", settings.cache_dir)

    repeats = 1 if args.smoke else 3 if args.quick else 5
    size = 256 if args.smoke else 2048 if args.quick else 3072
    bandwidth = memory_bandwidth(64 * 1024**2 if args.smoke else GIB, repeats)
    matmul = matmul_gflops(size, repeats)
    weights = model_weights(folder)
    best_read = max(bandwidth["numpy_sum_read"], bandwidth["torch_sum_read"])
    limits = {
        dtype: bounds(weights, dtype, best_read, peak_for(dtype, matmul))
        for dtype in sorted(set(dtypes.values()) | {"float32", "bfloat16"})
    }

    results: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "bandwidth_gb_per_s": bandwidth,
        "matmul_gflop_per_s": matmul,
        "matmul_size": size,
        "model": {
            "name": llm,
            "folder": str(folder),
            "dtypes": dtypes,
            **weights.__dict__,
            "read_per_token_params": weights.read_per_token_params,
            "tied_params": weights.tied_params,
        },
        "bounds": limits,
        "measured": measured_fractions(answers, dtypes, limits) if answers else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(report(results))
    write_result(args.out, results, args, settings)


def report(results: dict[str, Any]) -> str:
    model, bandwidth = results["model"], results["bandwidth_gb_per_s"]
    matmul = results["matmul_gflop_per_s"]
    lines = [
        f"{'torch threads':<24}{results['torch_threads']}",
        f"{'memory read GB/s':<24}numpy sum {bandwidth['numpy_sum_read']}, torch sum "
        f"{bandwidth['torch_sum_read']}; numpy copy moves {bandwidth['numpy_copy_moved']}",
        f"{'matmul GFLOP/s':<24}fp32 {matmul['fp32']}, bf16 {matmul['bf16']}, int8 "
        f"{matmul['int8'] if matmul['int8'] is not None else 'n/a'} "
        f"(n={results['matmul_size']})",
        f"{'model':<24}{model['name']}: "
        f"{model['stored_params'] / 1e6:.0f}M params stored, "
        + (
            "lm_head tied to the embeddings"
            if model["tied"]
            else f"lm_head stored apart ({model['tied_params'] / 1e6:.0f}M if tied)"
        )
        + f"; {model['read_per_token_params'] / 1e6:.0f}M read per token",
    ]
    for dtype, limit in results["bounds"].items():
        lines += [
            f"{dtype + ' decode bound':<24}{limit['decode_bound_tokens_per_s']} tokens/s "
            f"({limit['weight_bytes_per_token_gb']} GB/token at "
            f"{limit['bandwidth_gb_per_s']} GB/s)",
            f"{dtype + ' prefill bound':<24}{limit['prefill_bound_tokens_per_s']} tokens/s "
            f"({limit['prefill_gflop_per_token']} GFLOP/token at {limit['peak_gflop_per_s']} "
            "GFLOP/s)",
        ]
    for side, measured in (results["measured"] or {}).items():
        lines.append(
            f"measured {side} ({measured['dtype']}): decode "
            f"{measured['decode_tokens_per_s']} tokens/s "
            f"({measured['decode_fraction_of_bound']} of bound), prefill "
            f"{measured['prefill_tokens_per_s']} tokens/s "
            f"({measured['prefill_fraction_of_bound']} of bound)"
        )
    lines.append(f"{results['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
