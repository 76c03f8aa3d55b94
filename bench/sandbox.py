"""What the reading process's sandbox costs: reading with and without it, side by side.

    python bench/sandbox.py [--runs 7] [--scifact-docs 150] [--smoke] [--out FILE]

The sandbox (``ingest/sandbox.py``: seccomp filter, NO_NEW_PRIVS, cleared
environment, the forked OCR helper) only changes the reading process, so this
measures the stage of an ingest that runs there: a fresh ``ParseWorker``
(process start included, where the sandbox is applied) reading every file of
a corpus, the Debian Reference PDF (272 pages) and ``--scifact-docs`` SciFact
abstracts as Markdown files (the same seeded sample as ``bench/ingest.py``),
and, for the fixed cost of one reading process, a one-line file.
Chunking, embedding and storing run in the parent, identical on both sides,
so the ratio here is the most the sandbox can add to an ingest; the result
also gives the added seconds as a share of a whole ingest of the same corpus
(``bench/results/ingest.json``, e5-small on this machine) where that exists.

``--whole-runs N`` (default 5; 0 skips it) also times whole ingests of the
SciFact sample, ``KnowledgeBase.add`` with the configured embedder (loaded
once, before timing), each into a fresh knowledge base: the figure the
overhead target is about.

The two sides alternate run by run (AB, BA, AB, ...), so a load from other
processes on the 2 cores falls on both; medians of ``--runs`` each, and the
median of each pair's ratio.
``KBQA_READER_SANDBOX=0`` turns the sandbox off: for this benchmark only.
``--smoke``: one run each of a repository PDF and 8 short Markdown files, the
whole ingest with the test suite's small embedder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    DATA,
    RESULTS,
    add_smoke_flag,
    load_settings,
    skip,
    smoke_texts,
    use_smoke_models,
    write_result,
)

DEFAULT_OUT = RESULTS / "sandbox.json"
PDF = DATA / "debian-reference-es" / "debian-reference.es.pdf"
SCIFACT = DATA / "beir" / "scifact" / "corpus.jsonl"
SMOKE_PDF = ROOT / "tests" / "data" / "pdfs" / "text" / "crazyones.pdf"
SEED = 0  # bench/ingest.py's sample
WHOLE_INGEST = {"pdf": "debian-es-pdf", "scifact": "scifact-400"}  # ingest.json's corpora


def scifact_files(folder: Path, count: int) -> list[Path]:
    with SCIFACT.open(encoding="utf-8") as lines:
        docs = [json.loads(line) for line in lines]
    docs = random.Random(SEED).sample(docs, min(count, len(docs)))
    for doc in docs:
        text = f"# {doc['title'].strip()}\n\n{doc['text'].strip()}\n"
        (folder / f"{doc['_id']}.md").write_text(text, encoding="utf-8")
    return sorted(folder.glob("*.md"))


def smoke_files(folder: Path) -> list[Path]:
    for name, text in smoke_texts(8):
        (folder / f"{Path(name).stem}.md").write_text(text + "\n", encoding="utf-8")
    return sorted(folder.glob("*.md"))


def read_all(files: list[tuple[str, bytes]], sandbox: bool) -> tuple[float, int]:
    """Seconds to start a reading process and read every file; characters read."""
    from kbqa.ingest.reader_process import ParseWorker

    os.environ["KBQA_READER_SANDBOX"] = "1" if sandbox else "0"
    started = time.perf_counter()
    characters = 0
    with ParseWorker() as worker:
        for name, data in files:
            document = worker.read(name, data)
            characters += sum(len(s.text) for s in document.sections)
    return time.perf_counter() - started, characters


def ingest_whole(folder: Path, sandbox: bool, models: Any, settings: Any, work: Path) -> float:
    """Seconds of ``KnowledgeBase.add([folder])`` into a new knowledge base."""
    from kbqa.qa.knowledge_base import KnowledgeBase

    os.environ["KBQA_READER_SANDBOX"] = "1" if sandbox else "0"
    kb_folder = Path(tempfile.mkdtemp(prefix="kb-", dir=work))
    embedder, generator = models
    kb = KnowledgeBase.open(kb_folder, settings=settings, embedder=embedder, generator=generator)
    started = time.perf_counter()
    report = kb.add([folder])
    seconds = time.perf_counter() - started
    kb.close()
    shutil.rmtree(kb_folder)
    assert report.count("added") > 0, report.outcomes
    return seconds


def measure_whole(folder: Path, files: int, runs: int, work: Path) -> dict[str, Any]:
    from kbqa.qa.knowledge_base import load_models

    settings = load_settings()
    models = load_models(settings)
    models[0].embed_passages(["warm up"])
    ingest_whole(folder, True, models, settings, work)  # warm: caches, first-call costs
    times: dict[bool, list[float]] = {True: [], False: []}
    for run in range(runs):
        for sandbox in (True, False) if run % 2 == 0 else (False, True):
            times[sandbox].append(round(ingest_whole(folder, sandbox, models, settings, work), 3))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {
        "input": "scifact-whole-ingest",
        "files": files,
        "embedding_model": settings.embedding_model,
        "runs": runs,
        "sandbox_s": times[True],
        "plain_s": times[False],
        "sandbox_median_s": round(on, 3),
        "plain_median_s": round(off, 3),
        "ratio": round(on / off, 4),
        "overhead_percent": round(100 * (on / off - 1), 2),
        "paired_ratio_median": round(
            statistics.median(a / b for a, b in zip(times[True], times[False], strict=True)), 4
        ),
        "added_s": round(on - off, 3),
    }


def measure(name: str, files: list[tuple[str, bytes]], runs: int) -> dict[str, Any]:
    times: dict[bool, list[float]] = {True: [], False: []}
    read: dict[bool, int] = {}
    read_all(files, True)  # warm the page cache and imports' bytecode
    for run in range(runs):
        for sandbox in (True, False) if run % 2 == 0 else (False, True):
            seconds, characters = read_all(files, sandbox)
            times[sandbox].append(round(seconds, 4))
            read[sandbox] = characters
    assert read[True] == read[False], f"{name}: the two sides read different text"
    on, off = statistics.median(times[True]), statistics.median(times[False])
    row = {
        "input": name,
        "files": len(files),
        "bytes": sum(len(data) for _, data in files),
        "characters": read[True],
        "runs": runs,
        "sandbox_s": times[True],
        "plain_s": times[False],
        "sandbox_median_s": round(on, 4),
        "plain_median_s": round(off, 4),
        "ratio": round(on / off, 4),
        "overhead_percent": round(100 * (on / off - 1), 2),
        # each run's pair (back to back) as a ratio: less moved by load that comes and goes
        "paired_ratio_median": round(
            statistics.median(a / b for a, b in zip(times[True], times[False], strict=True)), 4
        ),
        "added_s": round(on - off, 4),
    }
    whole = whole_ingest_seconds(WHOLE_INGEST.get(name, ""), len(files))
    if whole:
        row["whole_ingest_s"] = whole
        row["share_of_whole_ingest_percent"] = round(100 * (on - off) / whole, 2)
    return row


def whole_ingest_seconds(corpus: str, files: int) -> float | None:
    """A whole ingest's seconds (ingest.json), scaled to ``files`` files for SciFact."""
    path = RESULTS / "ingest.json"
    if not corpus or not path.is_file():
        return None
    for row in json.loads(path.read_text(encoding="utf-8")).get("results", []):
        if row.get("corpus") == corpus:
            seconds = float(row["ours"]["kbqa_reported_s"])
            if corpus.startswith("scifact-"):
                seconds *= files / int(corpus.split("-")[1])
            return round(seconds, 2)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--scifact-docs", type=int, default=150)
    parser.add_argument("--whole-runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        use_smoke_models(llm=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kbqa-bench-sandbox-") as work:
        texts_folder = Path(work) / "texts"
        texts_folder.mkdir()
        if args.smoke:
            runs, whole_runs = 1, 1
            pdf = SMOKE_PDF
            texts = smoke_files(texts_folder)
        else:
            if not PDF.is_file() or not SCIFACT.is_file():
                skip(args.out, f"needs {PDF} and {SCIFACT} (the shared data sets)", args)
            runs, whole_runs = args.runs, args.whole_runs
            pdf = PDF
            texts = scifact_files(texts_folder, args.scifact_docs)
        inputs = {
            # the fixed cost: a reading process started, sandboxed, one line read, ended
            "start": [("start.md", b"# Start\n\nOne short file.\n")],
            "pdf": [(pdf.name, pdf.read_bytes())],
            "scifact": [(path.name, path.read_bytes()) for path in texts],
        }
        for name, files in inputs.items():
            rows.append(measure(name, files, runs))
        if whole_runs > 0:
            rows.append(measure_whole(texts_folder, len(texts), whole_runs, Path(work)))
    for row in rows:
        print(
            f"{row['input']:22} {row['files']:4} files  sandbox {row['sandbox_median_s']:.3f} s  "
            f"plain {row['plain_median_s']:.3f} s  ratio {row['ratio']:.3f} "
            f"({row['overhead_percent']:+.1f} %, median of {row['runs']}; "
            f"paired {row['paired_ratio_median']:.3f})"
        )
    write_result(args.out, {"rows": rows, "runs": runs}, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
