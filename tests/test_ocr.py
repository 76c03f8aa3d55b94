"""OCR: scanned PDF pages and images are read by Tesseract, and say so all the way to citations.

The fixture ``tests/data/scanned/scanned-es.pdf`` is two pages of Spanish text as a
1-bit scan with no text layer (``make_fixture.py`` there made it).
"""

from __future__ import annotations

import io
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, sample_pdf
from fakes import make_kb

from kbqa.errors import IngestError
from kbqa.ingest.limits import ParseLimits
from kbqa.ingest.reader_process import ParseWorker
from kbqa.ingest.readers import read_document
from kbqa.ingest.readers.ocr import INSTALL_HINT, OcrText, OcrWord, measure_skew
from kbqa.ingest.readers.pdf import text_layer_is_garbage
from kbqa.ingest.readers.sniff import sniff_format
from kbqa.ingest.types import OCR, TEXT_LAYER, DocumentRecord, PageOcr

SCAN = FIXTURES / "scanned" / "scanned-es.pdf"
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason=f"Tesseract is not installed ({INSTALL_HINT})"
)


def _read(path: Path, **limits: float) -> object:
    return read_document(str(path), path.read_bytes(), limits=ParseLimits(**limits))  # type: ignore[arg-type]


def _picture_of_text(lines: list[str], size: tuple[int, int] = (900, 260)):
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.new("L", size, 255)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(34)
    for n, line in enumerate(lines):
        draw.text((30, 30 + 60 * n), line, font=font, fill=0)
    return picture


@pytest.fixture(scope="module")
def scanned_kb(tmp_path_factory: pytest.TempPathFactory):
    """The Spanish scan ingested once (fake embedder), with the OCR progress it reported."""
    if shutil.which("tesseract") is None:
        pytest.skip(f"Tesseract is not installed ({INSTALL_HINT})")
    kb = make_kb(tmp_path_factory.mktemp("ocr-kb"))
    report = kb.add([SCAN])
    assert report.count("added") == 1, report.outcomes
    return kb


# -- reading ------------------------------------------------------------------


@needs_tesseract
def test_scanned_pdf_is_read_in_the_child_with_progress_and_ocr_time_granted():
    """A 3 s file limit would kill the reading of two scanned pages; the OCR grant
    (pages ÷ processes × the per-page limit) lets it finish, and progress is heard."""
    heard: list[tuple[str, int, int]] = []
    limits = ParseLimits(seconds=3.0, ocr_seconds_per_page=60.0)
    with ParseWorker(limits, on_progress=lambda *event: heard.append(event)) as worker:
        document = worker.read(str(SCAN), SCAN.read_bytes(), "pdf")
    assert [s.page for s in document.sections] == [1, 2]
    assert all(s.text_source == OCR for s in document.sections)
    assert [p.page for p in document.ocr_pages] == [1, 2]
    assert all(80 <= p.confidence <= 100 for p in document.ocr_pages)
    page_two = document.sections[1].text
    assert "Common Crawl" in page_two and "50 000 millones" in page_two
    assert "siglas inglesas" in document.sections[0].text
    assert heard[0] == (str(SCAN), 0, 2) and heard[-1] == (str(SCAN), 2, 2)


def test_good_text_layer_is_not_ocrd():
    document = _read(sample_pdf("text/crazyones.pdf"))
    assert document.ocr_pages == ()
    assert all(s.text_source == TEXT_LAYER for s in document.sections)


@pytest.mark.parametrize(
    ("text", "garbage"),
    [
        ("The crazy ones, the misfits, the rebels.", False),
        ("x = f(a) + g(b); return {x: 1}", False),
        ("\ue001\ue002\ue003 \ue004\ue005 ab", True),  # private-use glyphs: no encoding
        ("\x01\x02\x03\x04 \x05\x06 ok", True),
        ("Contents . . . . . . . . . . . . . . . . . . 4", False),  # dot leaders are text
    ],
)
def test_garbage_text_layers_are_told_from_text(text: str, garbage: bool):
    assert text_layer_is_garbage(text) is garbage


def test_no_page_of_the_text_pdfs_would_be_ocrd():
    """Pages with a good text layer are never OCR'd: every page of the text PDFs at hand
    (the shared collection's when present: tables of contents, a UML model, an old OCR)."""
    import pypdfium2 as pdfium

    from kbqa.ingest.readers.pdf import needs_ocr

    pdfs = [ROOT / "corpora" / "introduccion-a-los-llm.pdf", sample_pdf("text/crazyones.pdf")]
    shared = ROOT.parent / "shared" / "data" / "pdfs" / "text"
    pdfs += sorted(shared.glob("*.pdf")) if shared.is_dir() else []
    for path in pdfs:
        document = pdfium.PdfDocument(path.read_bytes())
        for number, page in enumerate(document, start=1):
            text = page.get_textpage().get_text_range()
            assert not needs_ocr(page, text), f"{path.name} page {number}"
        document.close()


def test_without_tesseract_scanned_pages_fail_saying_how_to_install_it(monkeypatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(IngestError) as caught:
        _read(SCAN)
    assert caught.value.reason == (
        "no extractable text (scanned or blank pages); OCR needs Tesseract, which is not "
        f"installed: {INSTALL_HINT}"
    )
    # Pages with text are read as before; the scanned one is named with the hint.
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_page(PdfReader(SCAN).pages[0])
    writer.add_page(PdfReader(sample_pdf("text/crazyones.pdf")).pages[0])
    mixed = io.BytesIO()
    writer.write(mixed)
    document = read_document("mixed.pdf", mixed.getvalue())
    assert [s.page for s in document.sections] == [2]
    assert document.warnings == (
        "1 of 2 pages have no extractable text; OCR needs Tesseract, which is not installed: "
        f"{INSTALL_HINT}: page 1",
    )


@needs_tesseract
def test_a_page_over_its_ocr_time_fails_with_the_setting_named():
    with pytest.raises(IngestError) as caught:
        _read(SCAN, ocr_seconds_per_page=0.01)
    assert caught.value.reason == (
        "no text found: OCR took over 0.01 s (KBQA_OCR_SECONDS_PER_PAGE) (page 1, 2)"
    )


@needs_tesseract
def test_images_are_documents_whatever_their_name(tmp_path: Path):
    from PIL import Image

    png = io.BytesIO()
    _picture_of_text(["Invoice 4711", "Total due: 380 euros"]).save(png, format="PNG")
    document = read_document("invoice.png", png.getvalue())
    assert document.format == "image" and document.pages == 1
    assert "Invoice 4711" in document.sections[0].text
    assert document.sections[0].text_source == OCR and document.ocr_pages[0].page == 1
    assert "380 euros" in document.sections[0].text
    # The content decides: a PNG named .txt is read as an image.
    assert sniff_format("notes.txt", png.getvalue(), "text") == "image"

    tiff = io.BytesIO()  # a two-page fax: each picture is a page
    first, second = _picture_of_text(["Page one"]), _picture_of_text(["Second sheet"])
    first.save(tiff, format="TIFF", save_all=True, append_images=[second])
    faxed = read_document("fax.tiff", tiff.getvalue())
    assert faxed.pages == 2 and [s.page for s in faxed.sections] == [1, 2]
    assert "Second sheet" in faxed.sections[1].text

    broken = io.BytesIO()
    Image.new("L", (10, 10)).save(broken, format="PNG")
    with pytest.raises(IngestError, match="unreadable image"):
        read_document("cut.png", broken.getvalue()[:40])


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded():
    from PIL import Image

    png = io.BytesIO()
    Image.new("1", (3000, 3000)).save(png, format="PNG")  # 9 M pixels, a few kB
    with pytest.raises(IngestError) as caught:
        read_document("big.png", png.getvalue(), limits=ParseLimits(max_page_pixels=1_000_000))
    assert "over the 1,000,000-pixel page picture limit (KBQA_MAX_PAGE_PIXELS)" in str(caught.value)


def test_skew_is_measured_so_that_lines_come_out_level():
    picture = _picture_of_text(["Straight lines of text", "read better when level"] * 2, (900, 400))
    assert abs(measure_skew(picture)) < 0.3
    turned = picture.rotate(-2.0, fillcolor=255, expand=True)
    assert measure_skew(turned) == pytest.approx(2.0, abs=0.3)


# -- the knowledge base, citations and page pictures ------------------------------------


def test_ocr_pages_are_kept_listed_and_cited(scanned_kb):
    (record,) = scanned_kb.documents()
    assert [p.page for p in record.ocr_pages] == [1, 2]
    assert record.ocr_summary().startswith("OCR p. 1-2 of 2, confidence ")
    hit = next(h for h in scanned_kb.search("Common Crawl páginas web", k=5) if h.chunk.page == 2)
    assert hit.chunk.text_source == OCR
    from kbqa.qa.answer import Citation

    assert Citation.from_hit(1, hit).label() == "[1] scanned-es.pdf, p. 2 (OCR)"


def test_knowledge_bases_from_before_ocr_still_open(tmp_path: Path):
    kb = make_kb(tmp_path / "old")
    kb.add([sample_pdf("text/crazyones.pdf")])
    kb.close()
    with sqlite3.connect(tmp_path / "old" / "chunks.sqlite") as db:
        db.execute("DROP TABLE ocr_pages")  # as a KB written before OCR existed
    reopened = make_kb(tmp_path / "old")
    (record,) = reopened.documents()
    assert record.ocr_pages == () and record.ocr_summary() == ""
    assert reopened.search("crazy ones", k=1)[0].chunk.text_source == TEXT_LAYER


def test_ocr_summary_names_the_pages_and_the_least_sure_one():
    pages = tuple(PageOcr(n, c) for n, c in [(1, 91.5), (2, 94.0), (3, 69.6), (5, 95.1)])
    record = DocumentRecord("d", "/x.pdf", "x.pdf", "pdf", 6, 9, 1, "now", None, pages)
    assert record.ocr_summary() == "OCR p. 1-3, 5 of 6, confidence 88 % (lowest 70 %, p. 3)"


def test_marks_go_on_the_boxes_of_the_ocr_words_they_cover():
    from kbqa.app.web.pdfpage import Mark, ocr_mark_boxes

    text = "alpha beta\ngamma delta"
    words = (
        OcrWord(0, 5, (10, 10, 50, 20)),
        OcrWord(6, 10, (60, 10, 90, 20)),
        OcrWord(11, 16, (10, 30, 55, 40)),
        OcrWord(17, 22, (65, 30, 95, 40)),
    )
    ocr = OcrText(text, 90.0, words, (100, 50))
    boxes = ocr_mark_boxes(ocr, (200, 100), "beta\ngamma", [Mark(6, 16), Mark(6, 10, True)])
    assert boxes == [((120, 20, 180, 40), False), ((20, 60, 110, 80), False),
                     ((120, 20, 180, 40), True)]  # fmt: skip
    # Offsets that no longer match: the passage's opening words are searched for.
    assert ocr_mark_boxes(ocr, (100, 50), "gamma  delta", [Mark(0, 3)]) == [
        ((10, 30, 95, 40), False)
    ]


@needs_tesseract
def test_page_picture_of_an_ocr_page_marks_the_passage(scanned_kb):
    from kbqa.app.web.pdfpage import Mark, render_page

    chunk = next(c for c in scanned_kb._store.chunks_of(scanned_kb.documents()[0].doc_id)
                 if c.page == 2)  # fmt: skip
    picture = render_page(SCAN, 2, chunk.text, [Mark(chunk.start, chunk.end)], width_px=600)
    assert picture.marked


# -- end to end with the real models ----------------------------------------------------


@pytest.mark.slow
@needs_tesseract
def test_scanned_spanish_page_end_to_end(tmp_path: Path, default_embedder, default_llm):
    """Ingest the scan, find the passage, answer with a citation naming page 2 (OCR).

    The default LLM: the 135M one answers this Spanish question with gibberish."""
    from kbqa.qa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase.open(tmp_path / "kb", embedder=default_embedder, generator=default_llm)
    assert kb.add([SCAN]).count("added") == 1
    question = "¿Cuántas páginas web tiene Common Crawl?"
    assert kb.search(question, k=1)[0].chunk.page == 2
    answer = kb.ask(question)
    assert not answer.refused, answer.reply
    assert "50" in answer.text
    labels = [c.label() for c in answer.citations]
    assert any("scanned-es.pdf, p. 2 (OCR)" in label for label in labels), labels
