"""Readers: every format, every kind of bad input, and chunk spans on a real PDF."""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import sample_pdf, shared_data

from kbqa.errors import IngestError
from kbqa.ingest.readers import read_document
from kbqa.ingest.types import ParsedDocument

DEBIAN_PDF = "debian-reference-es/debian-reference.es.pdf"
NO_TEXT = (
    "no extractable text (scanned or blank pages); OCR needs Tesseract, which is not "
    "installed: apt-get install tesseract-ocr tesseract-ocr-spa tesseract-ocr-eng"
)
BLANK = "no text found (blank pages: no text layer, and OCR read none)"


@pytest.fixture
def no_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without Tesseract: pages that need OCR are named, not read
    (tests/test_ocr.py reads them)."""
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")


SPANISH = "año, canción, información"


def read_path(path: Path, password: str | None = None) -> ParsedDocument:
    return read_document(str(path), path.read_bytes(), password=password)


def reason_for(path: Path | str, data: bytes | None = None, password: str | None = None) -> str:
    """The IngestError reason for a file; fails the test when the file reads fine."""
    source = str(path)
    if data is None:
        data = Path(path).read_bytes()
    with pytest.raises(IngestError) as caught:
        read_document(source, data, password=password)
    assert caught.value.source == source
    assert str(caught.value) == f"{source}: {caught.value.reason}"  # names the file
    return caught.value.reason


def whole_text(document: ParsedDocument) -> str:
    return "\n".join(section.text for section in document.sections)


def assert_offsets_match_joined_text(document: ParsedDocument) -> None:
    """Paged-less formats: each section sits at its offset in the blank-line-joined text."""
    joined = "\n\n".join(section.text for section in document.sections)
    for section in document.sections:
        assert joined[section.offset : section.offset + len(section.text)] == section.text


def build_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("Preamble before any heading mentions aardvarks.")
    document.add_heading("Installation Guide", level=1)
    document.add_paragraph("Run the installer with care.")
    document.add_paragraph("Then restart the quokka service.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Setting"
    table.cell(0, 1).text = "Value"
    table.cell(1, 0).text = "zanzibar_port"
    table.cell(1, 1).text = "8443"
    document.add_heading("Usage", level=2)
    document.add_paragraph("Use it every day.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# -- PDF ----------------------------------------------------------------------


def test_pdf_single_page_keeps_page_one_and_text():
    document = read_path(sample_pdf("text/crazyones.pdf"))
    assert document.format == "pdf"
    assert document.pages == 1
    assert [s.page for s in document.sections] == [1]
    assert "crazy ones" in document.sections[0].text
    assert document.warnings == ()


def test_pdf_19_pages_numbered_1_to_19_each_with_text():
    document = read_path(shared_data("pdfs/text/GeoBase_NHNC1_Data_Model_UML_EN.pdf"))
    assert document.pages == 19
    assert [s.page for s in document.sections] == list(range(1, 20))
    assert all(sum(ch.isalpha() for ch in s.text) > 20 for s in document.sections)
    assert "National Hydro Network" in document.sections[0].text
    assert document.warnings == ()


def test_pdf_pages_are_not_merged_or_shuffled():
    document = read_path(shared_data("pdfs/text/Seige_of_Vicksburg_Sample_OCR.pdf"))
    assert [s.page for s in document.sections] == [1, 2, 3, 4, 5, 6]
    assert document.sections[0].text.startswith("THE SIEGE OF VICKSBURG")
    assert len({s.text for s in document.sections}) == 6


# -- DOCX ---------------------------------------------------------------------


def test_docx_headings_become_sections_and_table_cells_appear():
    document = read_document("guide.docx", build_docx())
    assert document.format == "docx"
    assert [s.heading for s in document.sections] == [None, "Installation Guide", "Usage"]
    preamble, install, usage = document.sections
    assert "aardvarks" in preamble.text
    assert install.text.startswith("Installation Guide\n")
    assert "Run the installer with care." in install.text
    assert "quokka" in install.text
    for cell in ("Setting", "Value", "zanzibar_port", "8443"):
        assert cell in install.text
    assert "zanzibar_port" not in usage.text and "Use it every day." in usage.text
    assert_offsets_match_joined_text(document)


def test_docx_garbage_is_a_clear_error():
    reason = reason_for("fake.docx", b"this is not a zip archive at all")
    assert reason.startswith("not a valid .docx file")


# -- HTML ---------------------------------------------------------------------

HTML_PAGE = b"""<!DOCTYPE html>
<html><head><title>Page title</title>
<style>.hidden { color: red; } body { font-family: secretfont; }</style>
<script>var trackingSecret = "do-not-index";</script></head>
<body>
<p>Lead paragraph before headings.</p>
<h1>Getting started</h1>
<p>Install the <b>tool</b> first.</p>
<script>console.log("inline script text");</script>
<h2>Configuration</h2>
<ul><li>Edit the file</li><li>Restart</li></ul>
<noscript>enable javascript please</noscript>
</body></html>"""


def test_html_headings_become_sections_without_script_or_style():
    document = read_document("page.html", HTML_PAGE)
    assert document.format == "html"
    assert document.title == "Page title"
    assert [s.heading for s in document.sections] == [None, "Getting started", "Configuration"]
    lead, started, config = document.sections
    assert lead.text == "Lead paragraph before headings."
    assert started.text.startswith("Getting started\n")
    assert "Install the tool first." in started.text
    assert "Edit the file" in config.text and "Restart" in config.text
    text = whole_text(document)
    for hidden in (
        "trackingSecret",
        "do-not-index",
        "color: red",
        "secretfont",
        "inline script text",
        "enable javascript",
    ):
        assert hidden not in text
    assert_offsets_match_joined_text(document)


def test_html_latin1_page_with_meta_charset_decodes():
    page = (
        '<html><head><meta charset="iso-8859-1"><title>Música</title></head>'
        "<body><h1>Canción</h1><p>Una canción del año con información.</p></body></html>"
    ).encode("latin-1")
    document = read_document("cancion.html", page)
    assert document.title == "Música"
    assert document.sections[0].heading == "Canción"
    assert "Una canción del año con información." in document.sections[0].text
    assert "\ufffd" not in whole_text(document)


# -- Markdown -----------------------------------------------------------------

MARKDOWN = """Intro line before any heading.

# First part

Body of the first part.

```bash
# this is a shell comment, not a heading
echo hi
```

## Second part

Body of the second part.
"""


def test_markdown_sections_per_heading_ignoring_hash_in_code_fence():
    document = read_document("notes.md", MARKDOWN.encode())
    assert document.format == "markdown"
    assert [s.heading for s in document.sections] == [None, "First part", "Second part"]
    first = document.sections[1]
    assert "# this is a shell comment, not a heading" in first.text
    assert "echo hi" in first.text
    assert "Body of the second part." in document.sections[2].text
    assert document.title == "First part"
    # Offsets point into the file's text: spans cited later are exact.
    for section in document.sections:
        assert MARKDOWN[section.offset : section.offset + len(section.text)] == section.text


# -- plain text ---------------------------------------------------------------

SPANISH_PARAGRAPH = (
    "Texto en español: año, canción, información.\n"
    "Otra línea con más información sobre la canción del año y el niño.\n"
)


def test_text_utf8():
    document = read_document("a.txt", SPANISH_PARAGRAPH.encode("utf-8"))
    assert document.format == "text"
    assert document.sections[0].text == SPANISH_PARAGRAPH


def test_text_utf16_with_bom():
    data = SPANISH_PARAGRAPH.encode("utf-16")
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert read_document("a.txt", data).sections[0].text == SPANISH_PARAGRAPH


def test_text_utf8_with_bom_drops_the_bom():
    data = "\ufeff".encode() + SPANISH.encode()
    assert read_document("a.txt", data).sections[0].text == SPANISH


@pytest.mark.parametrize("text", [SPANISH, SPANISH_PARAGRAPH], ids=["short", "paragraph"])
def test_text_latin1(text):
    assert read_document("a.txt", text.encode("latin-1")).sections[0].text == text


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.docx", "empty.html"])
def test_empty_file(name):
    assert reason_for(name, b"") == "empty file"


def test_empty_pdf_from_data():
    assert reason_for(sample_pdf("broken/empty.pdf")) == "empty file"


@pytest.mark.parametrize("name", ["truncated.pdf", "invalid.pdf"])
def test_broken_pdf(name):
    assert reason_for(sample_pdf(f"broken/{name}")).startswith("broken or truncated PDF")


PASSWORDS = {
    "encrypted-file.pdf": ("test", "Example"),
    "crazyones-encrypted-256.pdf": ("password", "crazy ones"),
    "r6-user-password.pdf": ("asdfzxcv", "pdf encryption test"),
    "libreoffice-writer-password.pdf": ("openpassword", "Lorem ipsum"),
}


@pytest.mark.parametrize("name", sorted(PASSWORDS))
def test_encrypted_pdf_without_password(name):
    assert reason_for(sample_pdf(f"encrypted/{name}")) == "encrypted: password needed"


@pytest.mark.parametrize("name", sorted(PASSWORDS))
def test_encrypted_pdf_with_wrong_password(name):
    reason = reason_for(sample_pdf(f"encrypted/{name}"), password="not-it")
    assert reason == "encrypted: wrong password"


@pytest.mark.parametrize("name", sorted(PASSWORDS))
def test_encrypted_pdf_with_right_password(name):
    password, expected = PASSWORDS[name]
    document = read_path(sample_pdf(f"encrypted/{name}"), password=password)
    assert document.pages == 1
    assert [s.page for s in document.sections] == [1]
    assert expected in document.sections[0].text


@pytest.mark.parametrize("password", [None, ""])
def test_encrypted_pdf_with_empty_user_password_opens_without_one(password):
    document = read_path(sample_pdf("encrypted/r2-empty-password.pdf"), password=password)
    assert "pdf encryption test" in document.sections[0].text


@pytest.mark.parametrize(
    "name",
    [
        "scanned/c03-29.pdf",
        "scanned/francais.pdf",
        "scanned/linn.pdf",
        "scanned/skew.pdf",
        "broken/blank.pdf",
        "broken/no_contents.pdf",
        "broken/image-only-git.pdf",
    ],
    ids=lambda name: name.split("/")[-1],
)
def test_pdf_without_text_layer_needs_ocr(name, no_tesseract):
    assert reason_for(sample_pdf(name)) == NO_TEXT


@pytest.mark.parametrize(
    "name", ["broken/blank.pdf", "broken/no_contents.pdf", "broken/image-only-git.pdf"]
)
def test_pdf_of_blank_pages_or_a_logo_has_no_text_even_by_ocr(name):
    import shutil

    if shutil.which("tesseract") is None:
        pytest.skip("Tesseract is not installed")
    assert reason_for(sample_pdf(name)) == BLANK


def test_partly_scanned_pdf_keeps_its_text_page_and_warns_about_the_rest(no_tesseract):
    document = read_path(shared_data("pdfs/scanned/multipage.pdf"))
    assert document.pages == 6
    assert [s.page for s in document.sections] == [4]
    assert document.sections[0].text.strip()
    assert len(document.warnings) == 1
    warning = document.warnings[0]
    assert "5 of 6 pages" in warning
    assert warning.endswith("page 1, 2, 3, 5, 6")


def test_text_page_among_pages_without_text_is_kept_and_the_rest_named(no_tesseract):
    """The same, on a PDF made here: a text page between scanned and blank ones."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    scan = PdfReader(sample_pdf("scanned/linn.pdf")).pages[0]
    text = PdfReader(sample_pdf("text/crazyones.pdf")).pages[0]
    writer.add_page(scan)
    writer.add_blank_page(612, 792)
    writer.add_page(text)
    writer.add_page(scan)
    buffer = io.BytesIO()
    writer.write(buffer)
    document = read_document("mixed.pdf", buffer.getvalue())
    assert document.pages == 4
    assert [s.page for s in document.sections] == [3]
    assert "crazy ones" in document.sections[0].text
    assert len(document.warnings) == 1
    assert "3 of 4 pages" in document.warnings[0]
    assert document.warnings[0].endswith("page 1, 2, 4")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("data.xyz", "unsupported file type .xyz"),
        ("archive.ZIP", "unsupported file type .ZIP"),
        ("Makefile", "unsupported file type (no extension)"),
    ],
)
def test_unsupported_file_type(name, reason):
    assert reason_for(name, b"some bytes") == reason


@pytest.mark.parametrize("name", ["blank.txt", "blank.md", "blank.html"])
def test_whitespace_only_file_has_no_text(name):
    assert reason_for(name, b"  \n\t\n  ") == "no text found in the file"


def test_binary_bytes_named_txt_are_rejected():
    reason = reason_for("image.txt", bytes(range(256)) * 4)
    assert reason in ("binary content, not text", "not text: could not detect a character encoding")


# -- chunking with the real tokenizer -----------------------------------------


@pytest.fixture(scope="module")
def debian_chunks(request: pytest.FixtureRequest):
    from kbqa.ingest.chunking import ChunkerSettings, chunk_document
    from kbqa.ingest.types import document_id

    path = shared_data(DEBIAN_PDF)  # skips before the model is loaded
    real_embedder = request.getfixturevalue("real_embedder")
    data = path.read_bytes()
    document = read_document(str(path), data)
    settings = ChunkerSettings().fitted_to(real_embedder.max_tokens)
    chunks = chunk_document(document_id(data), document, real_embedder.count_tokens, settings)
    pages = {section.page: section.text for section in document.sections}
    return document, chunks, pages


@pytest.mark.slow
def test_debian_chunks_fit_the_embedder_and_spans_are_exact(debian_chunks, request):
    from kbqa.ingest.chunking import SPECIAL_TOKENS_MARGIN

    document, chunks, pages = debian_chunks
    real_embedder = request.getfixturevalue("real_embedder")  # after debian_chunks' skip
    assert real_embedder.max_tokens == 256
    limit = real_embedder.max_tokens - SPECIAL_TOKENS_MARGIN
    assert document.pages == 272
    assert len(pages) > 260  # nearly every page has text
    assert len(chunks) > 1000
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert len({c.id for c in chunks}) == len(chunks)
    too_long = [(c.page, n) for c in chunks if (n := real_embedder.count_tokens(c.text)) > limit]
    assert too_long == []
    for chunk in chunks:
        assert chunk.page is not None and 1 <= chunk.page <= 272
        assert chunk.text.strip()
        assert pages[chunk.page][chunk.start : chunk.end] == chunk.text, (chunk.page, chunk.start)
    assert {c.page for c in chunks} == set(pages)  # no page with text is left out


@pytest.mark.slow
def test_debian_consecutive_chunks_of_a_page_overlap_or_touch(debian_chunks):
    _, chunks, pages = debian_chunks
    overlapping = 0
    for before, after in pairwise(chunks):
        if before.page != after.page:
            continue
        assert after.start > before.start, (after.page, before.start, after.start)
        if after.start <= before.end:
            overlapping += 1
        else:  # touching: only whitespace between them, no text lost
            gap = pages[after.page][before.end : after.start]
            assert not gap.strip(), (after.page, gap)
    assert overlapping > 100  # the 32-token overlap is really there


@pytest.mark.slow
def test_debian_chunk_spans_cover_every_page_in_order(debian_chunks):
    _, chunks, pages = debian_chunks
    problems = []
    for page, text in pages.items():
        spans = [(c.start, c.end) for c in chunks if c.page == page]
        covered = [False] * len(text)
        for start, end in spans:
            covered[start:end] = [True] * (end - start)
        lost = "".join(ch for ch, ok in zip(text, covered, strict=True) if not ok)
        ends = [end for _, end in spans]
        if lost.strip() or ends != sorted(ends):
            problems.append((page, lost.strip()[:60]))
    assert problems == []
