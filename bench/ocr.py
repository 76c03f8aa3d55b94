"""OCR quality and speed: character error rate, resolution, deskew, languages, pages/s,
and a question answered from each scanned file.

    python bench/ocr.py [--quick | --smoke] [--out bench/results/ocr.json]

- CER (jiwer, on text with every run of whitespace made one space) of linn.pdf
  against linn.txt, of skew.pdf (the same page turned) against it too, and of
  a Spanish page drawn here from corpora/introduccion-a-los-llm.pdf (DejaVu
  Serif 11 pt at 300 dpi, specks, turned 1°), at 200 and 300 dpi, with
  ``spa+eng``, ``eng`` and ``spa``, with and without deskew. The fixture
  tests/data/scanned/scanned-es.pdf is measured against its known text too.
- Pages per second: every scanned PDF in ../shared/data/pdfs/scanned read as
  ingest reads it (pages OCR'd side by side, one tesseract per core).
- A question per scanned file, asked of a knowledge base holding only that
  file, with the default models (skipped with ``--quick``).

Needs ``pip install -e .[bench]`` (jiwer) and Tesseract. ``--smoke``: the fixture
tests/data/scanned/scanned-es.pdf alone (its CER and its pages/s), no models; a
plain edit distance stands in for jiwer where it is missing, and without Tesseract
the JSON says it skipped. Not a test: run it on a quiet machine (the load average
is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "data" / "scanned"))
from bench.common import add_smoke_flag, skip, write_result  # noqa: E402
from bench.machine import machine  # noqa: E402

SCANNED = ROOT.parent / "shared" / "data" / "pdfs" / "scanned"
FIXTURE = ROOT / "tests" / "data" / "scanned" / "scanned-es.pdf"
LANGUAGE_SETS = ("spa+eng", "eng", "spa")
# Worded close to the page: the answer must be quoted from it (qa/verify.py), and a first
# try with looser wording ("How many tracks does the LinnSequencer record?") was refused
# after the model replied "32 tracks" in words the page does not have (see the docs).
QUESTIONS = {
    "c03-29.pdf": "Where did Miss Watson take him to pray?",
    "francais.pdf": "What should be brought to the blond judge?",
    "linn.pdf": "How many tracks does each sequence contain?",
    "multipage.pdf": "What year of Our Lord was it?",
    "skew.pdf": "How many notes does the disk drive hold per disk?",
}


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def cer(reference: str, hypothesis: str) -> float:
    reference, hypothesis = normalized(reference), normalized(hypothesis)
    try:
        import jiwer
    except ImportError:  # smoke runs without the bench extra: the same measure, slower
        return round(edit_distance(reference, hypothesis) / max(1, len(reference)), 4)
    return round(float(jiwer.cer(reference, hypothesis)), 4)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance in characters (what jiwer's CER counts)."""
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, start=1):
        current = [i]
        for j, other in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            )
        previous = current
    return previous[-1]


def pdf_page(path: Path, dpi: int):  # type: ignore[no-untyped-def]
    import pypdfium2 as pdfium

    from kbqa.ingest.readers.pdf import render_for_ocr

    document = pdfium.PdfDocument(path.read_bytes())
    try:
        return render_for_ocr(document[0], 16_000_000, dpi)
    finally:
        document.close()


def spanish_page(dpi: int) -> tuple[Any, str]:
    """A letter page of Spanish prose from the corpus, drawn as a slightly turned scan."""
    import random
    import textwrap

    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw, ImageFont

    corpus = pdfium.PdfDocument(str(ROOT / "corpora" / "introduccion-a-los-llm.pdf"))
    text = corpus[0].get_textpage().get_text_range().replace("\r\n", "\n")
    corpus.close()
    paragraphs = [" ".join(p.split("\n")) for p in text.split("\n\n")] or [text]
    prose = " ".join(" ".join(paragraphs).split())[:2200]
    size = (int(8.5 * dpi), int(11 * dpi))
    picture = Image.new("L", size, 248)
    draw = ImageDraw.Draw(picture)
    points = dpi * 11 // 72
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", points)
    except OSError:
        font = ImageFont.load_default(points)
    lines = textwrap.wrap(prose, width=78)
    y = dpi
    for line in lines:
        draw.text((dpi, y), line, font=font, fill=30)
        y += int(dpi * 16 / 72)
    rng = random.Random(13)
    for _ in range(3000):
        draw.point((rng.randrange(size[0]), rng.randrange(size[1])), fill=rng.choice((0, 120)))
    return picture.rotate(1.0, Image.Resampling.BICUBIC, fillcolor=248), " ".join(lines)


def quality() -> dict[str, Any]:
    from kbqa.ingest.readers.ocr import recognize

    reference = (SCANNED / "linn.txt").read_text(encoding="utf-8")
    rows = []
    for dpi in (200, 300):
        pictures = {
            "linn.pdf": (*pdf_page(SCANNED / "linn.pdf", dpi), reference),
            "skew.pdf": (*pdf_page(SCANNED / "skew.pdf", dpi), reference),
        }
        spanish, known = spanish_page(dpi)
        pictures["spanish page (drawn)"] = (spanish, dpi, known)
        for name, (picture, rendered_dpi, truth) in pictures.items():
            for languages in LANGUAGE_SETS:
                for deskew in (True, False):
                    if not deskew and (languages != "spa+eng" or name == "linn.pdf"):
                        continue  # deskew is measured where pages are turned, one language set
                    started = time.perf_counter()
                    result = recognize(picture, languages, 120, rendered_dpi, deskew=deskew)
                    seconds = time.perf_counter() - started
                    rows.append(
                        {
                            "page": name,
                            "dpi": dpi,
                            "languages": languages,
                            "deskew": deskew,
                            "skew_degrees": result.skew,
                            "cer": cer(truth, result.text),
                            "confidence": result.confidence,
                            "seconds": round(seconds, 2),
                        }
                    )
                    print(rows[-1], flush=True)
    return {"rows": rows}


def fixture_cer() -> dict[str, Any]:
    from make_fixture import PAGES  # tests/data/scanned/make_fixture.py

    from kbqa.ingest.readers import read_document

    document = read_document(str(FIXTURE), FIXTURE.read_bytes())
    out = {}
    for (title, paragraphs, _), section in zip(PAGES, document.sections, strict=True):
        out[f"page {section.page}"] = cer(" ".join([title, *paragraphs]), section.text)
    return {"scanned-es.pdf": out}


def speed(paths: list[Path] | None = None) -> dict[str, Any]:
    from kbqa.ingest.readers import read_document
    from kbqa.ingest.readers.ocr import workers_for

    files = []
    total_pages = total_seconds = 0.0
    for path in paths or sorted(SCANNED.glob("*.pdf")):
        started = time.perf_counter()
        document = read_document(str(path), path.read_bytes())
        seconds = time.perf_counter() - started
        ocr = len(document.ocr_pages)
        files.append(
            {
                "file": path.name,
                "pages": document.pages,
                "ocr_pages": ocr,
                "confidence": [p.confidence for p in document.ocr_pages],
                "characters": sum(len(s.text) for s in document.sections),
                "seconds": round(seconds, 2),
                "warnings": list(document.warnings),
            }
        )
        total_pages += ocr
        total_seconds += seconds
        print(files[-1], flush=True)
    return {
        "files": files,
        "tesseract_processes": workers_for(6),
        "ocr_pages": int(total_pages),
        "seconds": round(total_seconds, 2),
        "pages_per_second": round(total_pages / total_seconds, 3),
    }


def questions() -> list[dict[str, Any]]:
    # The one-thread limit is for tesseract; torch (imported below) reads it too.
    os.environ.pop("OMP_THREAD_LIMIT", None)
    from kbqa import KnowledgeBase

    results = []
    embedder = generator = None
    with tempfile.TemporaryDirectory(prefix="kbqa-ocr-bench-") as folder:
        for name, question in QUESTIONS.items():
            kb = KnowledgeBase.open(Path(folder) / name, embedder=embedder, generator=generator)
            embedder, generator = kb.embedder, kb.generator  # loaded once, shared
            kb.add([SCANNED / name])
            best = kb.search(question, k=1)[0]
            started = time.perf_counter()
            answer = kb.ask(question)
            results.append(
                {
                    "file": name,
                    "question": question,
                    "answer": answer.text,
                    "refused": answer.refused,
                    "citations": [c.label() for c in answer.citations],
                    "reply": answer.reply,  # the model's words, before the quote check
                    "best_passage": {
                        "page": best.chunk.page,
                        "text_source": best.chunk.text_source,
                        "score": round(best.score, 3),
                        "text": best.chunk.text[:160],
                    },
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            print(results[-1], flush=True)
            kb.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the questions (no models)")
    parser.add_argument(
        "--questions-only", action="store_true", help="ask again; keep the rest of --out"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ocr.json")
    add_smoke_flag(parser)
    args = parser.parse_args()
    # As in the reading process (ingest/reader_child.py): one thread per tesseract process.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    import pytesseract

    if args.smoke:
        try:
            version = str(pytesseract.get_tesseract_version())
        except pytesseract.TesseractNotFoundError:
            skip(args.out, "Tesseract is not installed (Debian: tesseract-ocr)", args)
        result = {"tesseract": version, "fixture_cer": fixture_cer(), "speed": speed([FIXTURE])}
        write_result(args.out, result, args)
        print(f"wrote {args.out}")
        return
    if args.questions_only:
        kept = json.loads(args.out.read_text())
        kept["questions"] = questions()
        args.out.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n")
        return
    results: dict[str, Any] = {
        "tesseract": str(pytesseract.get_tesseract_version()),
        "quality": quality(),
        "fixture_cer": fixture_cer(),
        "speed": speed(),
    }
    if not args.quick:
        results["questions"] = questions()
    results["load_average_after"] = machine()["load_average"]
    write_result(args.out, results, args)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
