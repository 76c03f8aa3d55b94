"""Decoding speed of kbqa's LLM with and without the int8 decode copy, side by side.

    python bench/decode.py [--llms NAME,NAME] [--tokens 60] [--repeats 5] [--smoke]

For each LLM, kbqa's own generator (``TransformersGenerator``, the model thread,
greedy) streams a long reply to one fixed prompt, first with
``llm_int8_decode`` on, then off, alternating round by round so that a busy
machine weighs on both alike. Per round: seconds to the first piece, decoding
tokens/s after it (new tokens after the first piece ÷ time from the first piece
to the last) and whether the replies match. Medians and the on ÷ off ratios are
printed and written with the commit, machine and settings. ``--smoke``: the
smallest LLM, 8 tokens, one round.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    add_smoke_flag,
    load_settings,
    resolved_llm,
    use_smoke_models,
    write_result,
)

PROMPT = [
    {
        "role": "user",
        "content": "Write the numbers from one to one hundred in English words, "
        "one per line, and nothing else.",
    }
]


def one_round(generator: Any, tokens: int) -> dict[str, Any]:
    started = time.perf_counter()
    times, pieces = [], []
    for piece in generator.stream(PROMPT, tokens):
        times.append(time.perf_counter())
        pieces.append(piece)
    reply = "".join(pieces)
    count = len(generator.tokenizer(reply, add_special_tokens=False)["input_ids"])
    first = len(generator.tokenizer(pieces[0], add_special_tokens=False)["input_ids"])
    decode_s = times[-1] - times[0]
    return {
        "first_piece_s": round(times[0] - started, 3),
        "total_s": round(times[-1] - started, 3),
        "new_tokens": count,
        "decode_tokens_per_s": round((count - first) / decode_s, 2) if decode_s > 0 else None,
        "reply": reply,
    }


def measure(llm: str, tokens: int, repeats: int, settings: Any) -> dict[str, Any]:
    from kbqa.models.generator import TransformersGenerator
    from kbqa.models.int8_decode import Int8DecodeLinear

    generators = {
        label: TransformersGenerator(
            llm, settings.cache_dir, settings.device, settings.precision, int8_decode=on
        )
        for label, on in (("on", True), ("off", False))
    }
    rounds: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    copy_bytes = 0
    for generator in generators.values():
        generator.load()
        one_round(generator, 4)  # one-time costs, untimed
    for module in generators["on"]._model.modules():
        if isinstance(module, Int8DecodeLinear):
            copy_bytes += module.int8_weight.nbytes + module.scales.nbytes
    for _ in range(repeats):
        for label, generator in generators.items():
            rounds[label].append(one_round(generator, tokens))
    summary = {
        label: {
            key: statistics.median(r[key] for r in rows if r[key] is not None)
            for key in ("first_piece_s", "total_s", "new_tokens", "decode_tokens_per_s")
        }
        for label, rows in rounds.items()
    }
    same = sum(a["reply"] == b["reply"] for a, b in zip(rounds["on"], rounds["off"], strict=True))
    del generators
    gc.collect()
    return {
        "summary": summary,
        "ratio_on_off": {
            key: round(summary["on"][key] / summary["off"][key], 3)
            for key in ("first_piece_s", "total_s", "decode_tokens_per_s")
            if summary["off"][key]
        },
        "same_reply": f"{same}/{repeats}",
        "int8_copy_mib": round(copy_bytes / 2**20, 1),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llms", help="default: the configured one (auto resolved)")
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        use_smoke_models()
        args.tokens, args.repeats = 8, 1
    settings = load_settings()
    from kbqa.models import registry

    named = [n.strip() for n in (args.llms or "auto").split(",") if n.strip()]
    llms = []
    for name in dict.fromkeys(resolved_llm(settings) if n == "auto" else n for n in named):
        if name in registry.MODELS and not registry.installed(name):
            print(f"LLM {name!r} skipped: its model packages are not installed")
        else:
            llms.append(name)
    started = time.perf_counter()
    result: dict[str, Any] = {"tokens": args.tokens, "repeats": args.repeats, "llms": {}}
    for llm in llms:
        run = measure(llm, args.tokens, args.repeats, settings)
        result["llms"][llm] = run
        on, off = run["summary"]["on"], run["summary"]["off"]
        print(
            f"{llm}: decode {on['decode_tokens_per_s']:.1f} tokens/s with the int8 copy, "
            f"{off['decode_tokens_per_s']:.1f} without ({run['ratio_on_off']}); first piece "
            f"{on['first_piece_s']} vs {off['first_piece_s']} s; same reply "
            f"{run['same_reply']}; copy {run['int8_copy_mib']} MiB"
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or (
        Path(tempfile.gettempdir()) / "decode_smoke.json"
        if args.smoke
        else ROOT / "bench" / "results" / "decode.json"
    )
    write_result(out, result, args, settings)


if __name__ == "__main__":
    main()
