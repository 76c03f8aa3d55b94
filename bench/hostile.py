"""Hostile inputs against the ingest limits: wall time, the reading process's peak
memory and the parent's growth, for each file in docs/security.md.

    python bench/hostile.py [--out bench/results/hostile.json] [--quick | --smoke]

Each file is ingested beside a good one into a fresh knowledge base (the fake
hash embedder; chunking uses the real embedder's tokenizer when its converted
copy is in the cache, else four characters a token), with the default
``ParseLimits``. The reading process's peak resident memory is read from
/proc (VmHWM) while it runs, so it is known even when the process is killed.
Then the linearity checks: nested HTML and one long line at ×1, ×4, ×16.
A few minutes on 2 cores; nothing here needs the network or a GPU. ``--smoke``: a few
small cases (no bombs), one page picture, the smallest linearity sizes, four
characters a token; seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from hostile import generators as g  # noqa: E402

from bench.common import add_smoke_flag, write_result  # noqa: E402
from kbqa.ingest import reader_process as isolation  # noqa: E402
from kbqa.ingest.chunking import ChunkerSettings, chunk_document  # noqa: E402
from kbqa.ingest.limits import MB, ParseLimits  # noqa: E402
from kbqa.ingest.readers import read_document  # noqa: E402
from kbqa.ingest.types import ParsedDocument, Section  # noqa: E402

GOOD = "A good file about grey herons, which wade in shallow water."


class HashEmbedder:
    """Vectors from hashed words (no model); tokens from a real tokenizer if given."""

    name = "bench-hash-64"
    dimension = 64
    max_tokens = 512

    def __init__(self, count_tokens: Callable[[str], int]) -> None:
        self.count_tokens = count_tokens

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split()[:512]:
                vectors[row, hash(word) % 64] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    embed_queries = embed_passages


def real_token_counter(smoke: bool = False) -> tuple[Callable[[str], int], str]:
    if smoke:
        return (lambda text: len(text) // 4 + 1), "4 characters a token"
    try:
        from kbqa.models.embedder import SentenceTransformerEmbedder
        from kbqa.settings import load_settings

        settings = load_settings()
        embedder = SentenceTransformerEmbedder(settings.embedding_model, settings.cache_dir)
        embedder.count_tokens("warm up")
        return embedder.count_tokens, settings.embedding_model
    except Exception as error:  # noqa: BLE001 - no converted model here: a stand-in
        print(f"(no real tokenizer: {error}; counting 4 characters a token)", file=sys.stderr)
        return (lambda text: len(text) // 4 + 1), "4 characters a token"


class ChildPeak:
    """Peak resident memory (VmHWM) of every reading process started meanwhile."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.peak = 0
        self._stop = threading.Event()
        self._real_start = isolation.ParseWorker._start

    def __enter__(self) -> ChildPeak:
        peak = self
        real_start = self._real_start

        def start(worker: isolation.ParseWorker) -> Any:
            process = real_start(worker)
            peak.pids.append(process.pid)
            return process

        isolation.ParseWorker._start = start  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            for pid in list(self.pids):
                try:
                    with open(f"/proc/{pid}/status") as status:
                        for line in status:
                            if line.startswith("VmHWM:"):
                                self.peak = max(self.peak, int(line.split()[1]) * 1024)
                except OSError:
                    pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        isolation.ParseWorker._start = self._real_start  # type: ignore[method-assign]


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ingest_case(
    name: str,
    files: dict[str, bytes],
    count_tokens: Callable[[str], int],
    limits: ParseLimits | None = None,
) -> dict[str, Any]:
    from kbqa.qa.knowledge_base import AnswerOptions, KnowledgeBase
    from kbqa.qa.prompting import REFUSALS  # noqa: F401 - loads qa as the app does

    with tempfile.TemporaryDirectory() as folder:
        docs = Path(folder, "docs")
        docs.mkdir()
        (docs / "good.txt").write_text(GOOD)
        for file_name, data in files.items():
            (docs / file_name).write_bytes(data)
        kb = KnowledgeBase(
            Path(folder, "kb"),
            HashEmbedder(count_tokens),  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            AnswerOptions(),
            ChunkerSettings(),
            max_file_bytes=50 * MB,
            limits=limits,
        )
        base = rss()
        with ChildPeak() as child:
            started = time.perf_counter()
            report = kb.add([docs])
            seconds = time.perf_counter() - started
        growth = rss() - base
        kb.close()
    outcomes = {Path(o.source).name: o for o in report.outcomes}
    result = {
        "case": name,
        "bytes": sum(len(d) for d in files.values()),
        "seconds": round(seconds, 2),
        "reader_peak_mb": round(child.peak / MB, 1),
        "parent_growth_mb": round(growth / MB, 1),
        "good_file": outcomes["good.txt"].status,
        "outcomes": {
            n: {"status": o.status, "reason": o.reason, "chunks": o.chunks}
            for n, o in outcomes.items()
            if n != "good.txt"
        },
    }
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


def render_case(name: str, data: bytes, width_px: int = 1200) -> dict[str, Any]:
    from kbqa.app.web import pdfpage

    limits = ParseLimits()
    with ChildPeak() as child:
        started = time.perf_counter()
        try:
            picture = pdfpage.render_page(data, 1, "The top", [], width_px=width_px, limits=limits)
            outcome = f"{picture.width} × {picture.height} px, {len(picture.png):,} bytes of PNG"
        except ValueError as error:
            outcome = f"PageRenderError: {error}"
        seconds = time.perf_counter() - started
    pdfpage._close_renderers()
    result = {
        "case": name,
        "bytes": len(data),
        "seconds": round(seconds, 2),
        "reader_peak_mb": round(child.peak / MB, 1),
        "outcome": outcome,
    }
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


def walk_cases(count_tokens: Callable[[str], int]) -> list[dict[str, Any]]:
    """A symbolic link loop in a folder; a hidden document kept by --sync."""
    from kbqa.qa.knowledge_base import AnswerOptions, KnowledgeBase

    results = []
    with tempfile.TemporaryDirectory() as folder:
        docs = Path(folder, "docs")
        docs.mkdir()
        (docs / "good.txt").write_text(GOOD)
        (docs / "loop").symlink_to(docs / "loop")
        (docs / ".hidden.md").write_text("# Hidden\n\nA hidden note about egrets.\n")
        kb = KnowledgeBase(
            Path(folder, "kb"), HashEmbedder(count_tokens), None,  # type: ignore[arg-type]
            AnswerOptions(), ChunkerSettings(), max_file_bytes=50 * MB,
        )  # fmt: skip
        started = time.perf_counter()
        report = kb.add([docs])
        results.append({
            "case": "symbolic link loop in a folder",
            "seconds": round(time.perf_counter() - started, 2),
            "outcomes": {Path(o.source).name: [o.status, o.reason] for o in report.outcomes},
        })  # fmt: skip
        kb.add([docs / ".hidden.md"])
        synced = kb.add([docs], sync=True)
        results.append({
            "case": "kbqa ingest d/.hidden.md, then kbqa ingest --sync d",
            "removed": [o.source for o in synced.outcomes if o.status == "removed"],
            "documents": sorted(d.name for d in kb.documents()),
        })  # fmt: skip
        kb.close()
    for result in results:
        print(json.dumps(result, ensure_ascii=False), flush=True)
    return results


def timed(run: Callable[[int], object], sizes: tuple[int, ...], repeat: int = 3) -> list[float]:
    """Seconds for each size, best of ``repeat``."""
    out = []
    for size in sizes:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            run(size)
            best = min(best, time.perf_counter() - started)
        out.append(round(best, 3))
    return out


def linearity(
    count_tokens: Callable[[str], int], quick: bool, smoke: bool = False
) -> list[dict[str, Any]]:
    rows = []
    base_depth = 500 if smoke else 4_000 if quick else 18_000  # 18,000 divs: the 130 kB
    for tag in ("div", "h1"):
        sizes = (base_depth, 4 * base_depth, 16 * base_depth)

        def read(n: int, tag: str = tag) -> None:
            read_document("n.html", g.nested_html(n, tag))

        seconds = timed(read, sizes, 1 if smoke else 3)
        sized = [len(g.nested_html(n, tag)) for n in sizes]
        rows.append({"input": f"nested <{tag}>", "bytes": sized, "seconds": seconds})
    base = 10_000 if smoke else 100_000 if quick else 250_000
    for spaces in (False, True):
        sizes = (base, 4 * base, 16 * base)

        def chunk(n: int, spaces: bool = spaces) -> None:
            text = g.long_line(n, spaces).decode()
            document = ParsedDocument("l.txt", "text", 1, (Section(text, None, 0),))
            chunk_document("d" * 64, document, count_tokens, ChunkerSettings())

        label = "one line with spaces" if spaces else "one line without spaces"
        rows.append({"input": f"{label}: chunking", "bytes": list(sizes),
                     "seconds": timed(chunk, sizes, 1 if smoke else 3)})  # fmt: skip
    for row in rows:
        s = [float(x) for x in row["seconds"]]
        row["ratios"] = [round(s[1] / max(s[0], 1e-3), 1), round(s[2] / max(s[0], 1e-3), 1)]
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hostile.json")
    parser.add_argument("--quick", action="store_true", help="smaller linearity sizes")
    add_smoke_flag(parser)
    args = parser.parse_args()
    count_tokens, tokenizer = real_token_counter(args.smoke)
    no_scan = ParseLimits(max_decompressed_bytes=100_000 * MB)
    if args.smoke:
        cases = [
            ingest_case("billion-laughs HTML", {"laughs.html": g.billion_laughs_html()},
                        count_tokens),
            ingest_case("nested <h1>, 500 deep", {"h1.html": g.nested_html(500, "h1")},
                        count_tokens),
            ingest_case("PDF named .html", {"report.html": g.pdf()}, count_tokens),
            ingest_case("ELF executable named .txt", {"notes.txt": g.elf_executable()},
                        count_tokens),
        ]  # fmt: skip
        walking = walk_cases(count_tokens)
        pictures = [render_case("page picture, 612 × 200,000 pt", g.tall_page_pdf())]
        rows = linearity(count_tokens, args.quick, smoke=True)
        write_result(args.out, report(tokenizer, cases, walking, pictures, rows), args)
        print(f"wrote {args.out}")
        return

    cases = [
        ingest_case("DOCX zip bomb (1 GB of XML)", {"bomb.docx": g.zip_bomb_docx(1024)},
                    count_tokens),
        ingest_case("DOCX zip bomb lying about its sizes",
                    {"liar.docx": g.zip_bomb_docx(1024, declared_mb=1)}, count_tokens),
        ingest_case("billion-laughs DOCX", {"laughs.docx": g.billion_laughs_docx()}, count_tokens),
        ingest_case("billion-laughs HTML", {"laughs.html": g.billion_laughs_html()}, count_tokens),
        ingest_case("PDF, one 400 MB Flate content stream", {"bomb.pdf": g.flate_bomb_pdf(400)},
                    count_tokens),
        ingest_case("the same PDF with the stream scan off (memory limit)",
                    {"bomb.pdf": g.flate_bomb_pdf(400)}, count_tokens, no_scan),
        ingest_case("the same, scan off, 3 s time limit", {"bomb.pdf": g.flate_bomb_pdf(400)},
                    count_tokens, ParseLimits(max_decompressed_bytes=100_000 * MB, seconds=3)),
        ingest_case("PDF page 612 × 200,000 pt", {"tall.pdf": g.tall_page_pdf()}, count_tokens),
        ingest_case("nested <div>, 130 kB", {"divs.html": g.nested_html(18_000)}, count_tokens),
        ingest_case("nested <h1>, 28 kB", {"h1.html": g.nested_html(4_000, "h1")}, count_tokens),
        ingest_case("one 50 MB line without spaces", {"line.txt": g.long_line(50 * MB)},
                    count_tokens),
        ingest_case("one 4.9 MB line without spaces",
                    {"line.txt": g.long_line(4_900_000)}, count_tokens),
        ingest_case("one 4.9 MB line with spaces",
                    {"line.txt": g.long_line(4_900_000, spaces=True)}, count_tokens),
        ingest_case("PDF named .html", {"report.html": g.pdf()}, count_tokens),
        ingest_case("ELF executable named .txt", {"notes.txt": g.elf_executable()}, count_tokens),
        ingest_case("ZIP that is not a DOCX", {"archive.docx": g.zip_not_docx()}, count_tokens),
    ]  # fmt: skip
    walking = walk_cases(count_tokens)
    pictures = [
        render_case("page picture, 612 × 200,000 pt", g.tall_page_pdf()),
        render_case("page picture, 10 × 200,000 pt", g.tall_page_pdf(10, 200_000)),
        render_case("page picture of the 400 MB Flate PDF", g.flate_bomb_pdf(400)),
    ]
    rows = linearity(count_tokens, args.quick)
    write_result(args.out, report(tokenizer, cases, walking, pictures, rows), args)
    print(f"wrote {args.out}")


def report(
    tokenizer: str,
    cases: list[dict[str, Any]],
    walking: list[dict[str, Any]],
    pictures: list[dict[str, Any]],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "tokenizer": tokenizer,
        "limits": ParseLimits().to_dict(),
        "ingest": cases,
        "walking": walking,
        "pictures": pictures,
        "linearity": rows,
    }


if __name__ == "__main__":
    main()
