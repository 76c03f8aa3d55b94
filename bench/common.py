"""What every benchmark records beside its figures, and what their smoke modes share.

Each script in bench/ writes one JSON file whose top level holds ``commit``,
``machine`` and ``settings`` (``record``), so a figure can be traced to the code,
the hardware and the configuration that produced it.

``--smoke`` (every script): the smallest real input and the smallest models
(``SMOKE_EMBEDDER``, ``SMOKE_LLM``: the test suite's fast models), a few seconds
each, so that ``tests/test_bench_smoke.py`` notices a benchmark that no longer runs.
A smoke run proves the script works, not how fast anything is.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from bench.machine import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data"  # the large public sets, beside the repository
CORPORA = ROOT / "corpora"
SMOKE_EMBEDDER = "all-MiniLM-L6-v2"
SMOKE_LLM = "smollm2-135m-instruct"
# Settings that say what ran and how; secrets and paths to the user's files are left out.
RECORDED_SETTINGS = (
    "embedding_model", "llm_model", "device", "precision", "top_k", "retrieval",
    "answer_style", "answerability", "max_new_tokens", "min_score",
    "chunk_tokens", "chunk_overlap",
)  # fmt: skip


def add_smoke_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest real input and the smallest models, seconds: checks that this "
        "script still runs (tests/test_bench_smoke.py), measures nothing worth keeping",
    )


def use_smoke_models(llm: bool = True) -> None:
    """The test suite's fast models, for this process and the processes it starts."""
    os.environ["KBQA_EMBEDDING_MODEL"] = SMOKE_EMBEDDER
    if llm:
        os.environ["KBQA_LLM_MODEL"] = SMOKE_LLM
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_settings(**overrides: Any) -> Any:
    """kbqa's settings (env ``KBQA_*``), through the public API."""
    import kbqa

    return kbqa.load_settings(**overrides)


def resolved_llm(settings: Any) -> str:
    """The LLM ``settings`` name, ``auto`` resolved as the CLI resolves it."""
    from kbqa.models.registry import choose_generator

    return str(choose_generator(settings.llm_model, settings.device))


def evaluation() -> ModuleType:
    """kbqa's evaluation helpers (load_squad, retrieval_pairs, evaluate_answers, ...)."""
    return importlib.import_module("kbqa.evaluation")


def commit() -> dict[str, Any]:
    """The commit this tree is at, and whether it has uncommitted changes besides
    bench/results/ (which a ``make bench`` run rewrites as it goes)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    sha = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
    return {"sha": sha or None, "dirty": bool(changed)}


def settings_record(settings: Any | None = None) -> dict[str, Any]:
    """The settings that decide what a benchmark measured, ``auto`` LLM resolved."""
    try:
        settings = settings or load_settings()
    except Exception as error:  # noqa: BLE001 - recorded, never fatal to a benchmark
        return {"error": f"{type(error).__name__}: {error}"}
    record = {name: getattr(settings, name, None) for name in RECORDED_SETTINGS}
    try:
        record["llm_model_resolved"] = resolved_llm(settings)
    except Exception as error:  # noqa: BLE001
        record["llm_model_resolved"] = f"unresolved: {error}"
    record["kbqa_env"] = {
        k: v for k, v in sorted(os.environ.items()) if k.startswith("KBQA_") and "KEY" not in k
    }
    return record


def record(args: argparse.Namespace | None = None, settings: Any | None = None) -> dict[str, Any]:
    """``commit``, ``machine``, ``settings`` and the command line: the top of every result."""
    return {
        "commit": commit(),
        "machine": machine(),
        "settings": settings_record(settings),
        "command": " ".join(
            ["python", str(Path(sys.argv[0]).resolve().relative_to(ROOT))] + sys.argv[1:]
        )
        if Path(sys.argv[0]).resolve().is_relative_to(ROOT)
        else " ".join(sys.argv),
        "smoke": bool(getattr(args, "smoke", False)),
    }


def write_result(path: Path, result: dict[str, Any], args: argparse.Namespace | None = None,
                 settings: Any | None = None) -> None:  # fmt: skip
    """``result`` under ``record()``'s keys (its own keys win), as indented JSON."""
    payload = record(args, settings) | result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


def skip(path: Path, reason: str, args: argparse.Namespace | None = None) -> NoReturn:
    """Writes a result that says why nothing was measured, and exits 0."""
    print(f"{Path(sys.argv[0]).name}: skipped: {reason}", file=sys.stderr)
    write_result(path, {"skipped": reason}, args)
    sys.exit(0)


def smoke_texts(count: int = 6) -> list[tuple[str, str]]:
    """``(name, text)`` paragraphs of this repository's Markdown corpora (en and es)."""
    paragraphs = []
    for path in sorted(CORPORA.glob("*.md")):
        for number, part in enumerate(path.read_text(encoding="utf-8").split("\n\n")):
            if len(part.strip()) > 200:
                paragraphs.append((f"{path.stem}-{number}.txt", part.strip()))
    step = max(1, len(paragraphs) // count)
    return paragraphs[::step][:count]
