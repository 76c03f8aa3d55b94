"""Core figures: ingest speed, search latency, answer latency, peak memory.

    python bench/core.py [--quick] [--out bench/results/core.json]

Ingests the 272-page Spanish Debian Reference PDF into a fresh knowledge base,
then times searches and answers over it (medians over repeated runs). Prints a
table and writes JSON with the machine it ran on. Not a test: run it on a quiet
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
PDF = DATA / "debian-reference-es" / "debian-reference.es.pdf"

SEARCHES = [
    "¿Cómo se instala un paquete con apt?",
    "configurar la red",
    "copias de seguridad",
    "¿Qué es sudo?",
    "How do I change the keyboard layout?",
    "systemd services",
    "compilar el núcleo Linux",
    "gestión de usuarios y contraseñas",
]
QUESTIONS = [
    "¿Qué orden muestra el espacio libre en disco?",
    "¿Para qué sirve el fichero /etc/fstab?",
    "¿Qué hace la orden apt-get update?",
    "What does the command chmod do?",
    "¿Cómo se llama el gestor de paquetes de Debian?",
]


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "core.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from qa.knowledge_base import KnowledgeBase
    from qa.settings import load_settings

    settings = load_settings()
    results: dict[str, object] = {
        "machine": machine(),
        "settings": {
            "embedding_model": settings.embedding_model,
            "llm_model": settings.llm_model,
            "top_k": settings.top_k,
            "retrieval": settings.retrieval,
        },
    }

    with tempfile.TemporaryDirectory() as folder:
        kb = KnowledgeBase.open(Path(folder) / "kb", settings=settings)
        kb.embedder.embed_passages(["warm up"])  # model load is not ingest speed
        started = time.perf_counter()
        report = kb.add([PDF])
        seconds = time.perf_counter() - started
        results["ingest"] = {
            "file": PDF.name,
            "pages": report.pages,
            "chunks": report.chunks,
            "seconds": round(seconds, 2),
            "pages_per_s": round(report.pages / seconds, 2),
            "chunks_per_s": round(report.chunks / seconds, 2),
        }
        started = time.perf_counter()
        again = kb.add([PDF])
        results["reingest_unchanged_s"] = round(time.perf_counter() - started, 3)
        assert again.count("unchanged") == 1

        repeats = 3 if args.quick else 10
        latencies = []
        for _ in range(repeats):
            for query in SEARCHES:
                started = time.perf_counter()
                kb.search(query)
                latencies.append((time.perf_counter() - started) * 1000)
        results["search_ms"] = {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(sorted(latencies)[int(0.95 * len(latencies))], 2),
            "n": len(latencies),
            "chunks": report.chunks,
        }

        kb.generator.load()  # type: ignore[attr-defined]
        questions = QUESTIONS[:2] if args.quick else QUESTIONS
        first, total, prompt, refused = [], [], [], 0
        for question in questions:
            answer = kb.ask(question)
            total.append(answer.timings.total_s)
            prompt.append(answer.timings.prompt_tokens)
            refused += answer.refused
            if answer.timings.first_token_s is not None:
                first.append(answer.timings.first_token_s)
        results["answer_s"] = {
            "first_token_p50": round(statistics.median(first), 2) if first else None,
            "total_p50": round(statistics.median(total), 2),
            "prompt_tokens_p50": statistics.median(prompt),
            "questions": len(questions),
            "refused": refused,
        }
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)

    print(json.dumps(results, indent=2, ensure_ascii=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
