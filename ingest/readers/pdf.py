"""PDF: text per page, page numbers kept, passwords supported.

PDFium (pypdfium2) extracts the text: on the 272-page Debian Reference it took
0.26 s where pypdf took 4.7 s, and pypdf glued words together on that file
("Existendosmétodos..."), which ruins retrieval. pypdf (with its crypto extra)
is the fallback for files PDFium refuses to open, since it recovers some
damaged cross-reference tables.

Before either reader sees the file, ``check_streams`` inflates its Flate
streams into nothing, counting, against the decompressed limit: a 1.4 MB PDF
whose one content stream inflates to 400 MB made PDFium take 60 s and 6.4 GB.
Image streams are left out (text extraction never decodes them). Streams the
scan cannot measure (encrypted, or Flate behind another filter) are bounded by
the reading process's memory and time limits instead.

Pages whose text layer is empty, garbage, or only a stamp on a full-page
picture are drawn at ``OCR_DPI`` and read by Tesseract (``ocr.py``), several
pages at once; their sections say ``text_source="ocr"`` and the document lists
them with Tesseract's confidence (``ParsedDocument.ocr_pages``). Pages with a
good text layer are never OCR'd. Without Tesseract, those pages are reported
with the command that installs it, and the rest of the file is read as before.
"""

from __future__ import annotations

import io
import re
import zlib
from typing import TYPE_CHECKING, Any

from ...errors import IngestError
from ..limits import CharBudget, LimitExceeded, ParseLimits
from ..types import OCR, PageOcr, ParsedDocument, Section
from .ocr import OcrText, OcrUnavailable, Progress, recognize_pages, tesseract_languages

if TYPE_CHECKING:
    from PIL import Image

# A page with fewer letters or digits than this has no real text layer (stray marks).
_MIN_LETTERS_PER_PAGE = 3
# A text layer this thin over a picture covering this much of the page is a
# scan with a stamp on it ("Scanned with CamScanner", a page number): OCR'd.
_THIN_TEXT_LETTERS = 40
_SCAN_COVERAGE = 0.5
# A text layer is garbage (a font without a usable encoding) when over this share
# of its visible characters are control, private-use, unassigned or U+FFFD. (Few
# letters is no sign: a table of contents is mostly dot leaders.)
_MAX_JUNK_SHARE = 0.3
# Scans are drawn for Tesseract at 300 dpi (docs/quality.md, "OCR": a Spanish page
# read at 0.05 % character error rate against 0.36 % at 200 dpi, linn.pdf 0.96 %
# against 1.01 %), or less where the page would pass max_page_pixels.
OCR_DPI = 300


def read_pdf(
    source: str,
    data: bytes,
    password: str | None = None,
    limits: ParseLimits | None = None,
    on_progress: Progress | None = None,
) -> ParsedDocument:
    """Text per page: the text layer, or OCR where it is empty or garbage.

    ``on_progress(done, total)`` follows the pages being OCR'd.
    """
    limits = limits or ParseLimits()
    check_streams(source, data, limits)
    budget = CharBudget(source, limits)
    try:
        document = _open_with_pdfium(source, data, password)
    except _PdfiumFormatError as error:
        return _read_without_pdfium(source, data, password, limits, str(error))
    try:
        pages, wanting = _text_layer(document, budget)
        title = (document.get_metadata_dict().get("Title") or "").strip() or None
        if not pages:
            raise IngestError(source, "PDF has no pages")
        recognized: dict[int, OcrText | str] = {}
        unavailable = None
        if wanting:
            try:
                languages = tesseract_languages()
            except OcrUnavailable as error:
                unavailable = str(error)
            else:

                def render(number: int) -> tuple[Image.Image, int]:
                    page = document[number - 1]
                    try:
                        return render_for_ocr(page, limits.max_page_pixels)
                    finally:
                        page.close()

                seconds = limits.ocr_seconds_per_page
                for number, result in recognize_pages(
                    wanting, render, languages, seconds, on_progress
                ):
                    if isinstance(result, OcrText):
                        budget.add(len(result.text), number)
                    recognized[number] = result
    finally:
        document.close()
    return _document(source, pages, title, recognized, wanting, unavailable)


def _read_without_pdfium(
    source: str, data: bytes, password: str | None, limits: ParseLimits, why: str
) -> ParsedDocument:
    """pypdf's text of a file PDFium cannot open (nor draw, so no OCR)."""
    try:
        pages, title = _read_with_pypdf(source, data, password, limits)
    except LimitExceeded:
        raise
    except IngestError:
        raise IngestError(source, f"broken or truncated PDF ({why})") from None
    if not pages:
        raise IngestError(source, "PDF has no pages")
    wanting = [n for n, text in enumerate(pages, start=1) if not _has_text(text)]
    return _document(source, pages, title, {}, wanting, "PDFium cannot draw this file for OCR")


def render_for_ocr(page: Any, max_pixels: int, dpi: int = OCR_DPI) -> tuple[Image.Image, int]:
    """A PDFium page drawn in gray for Tesseract, and its dots per inch.

    The app's page pictures mark OCR'd passages by reading the page again from
    this same picture, so both must draw it the same way.
    """
    width, height = page.get_width(), page.get_height()
    if not (width > 0 and height > 0):
        raise ValueError(f"page has no area ({width:g} × {height:g} pt)")
    scale = dpi / 72
    if width * height * scale * scale > max_pixels:
        scale = (max_pixels / (width * height)) ** 0.5
    while int(width * scale + 1) * int(height * scale + 1) > max_pixels:
        scale *= 0.995  # PDFium rounds the bitmap's sides up
    picture = page.render(scale=scale, grayscale=True).to_pil()
    return picture, max(1, round(scale * 72))


def _has_text(text: str) -> bool:
    return sum(ch.isalnum() for ch in text) >= _MIN_LETTERS_PER_PAGE


def text_layer_is_garbage(text: str) -> bool:
    """Mostly characters that no font encodes as text: not a usable text layer."""
    visible = [ch for ch in text if not ch.isspace()]
    junk = sum(_is_junk(ch) for ch in visible)
    return junk > _MAX_JUNK_SHARE * len(visible)


def _is_junk(ch: str) -> bool:
    import unicodedata

    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs")


def needs_ocr(page: Any, text: str) -> bool:
    """Whether a PDFium page's text layer is empty, garbage, or a stamp on a scan."""
    letters = sum(ch.isalnum() for ch in text)
    if letters < _MIN_LETTERS_PER_PAGE or text_layer_is_garbage(text):
        return True
    return letters < _THIN_TEXT_LETTERS and _picture_coverage(page) >= _SCAN_COVERAGE


def _picture_coverage(page: Any) -> float:
    """The share of the page its largest image covers."""
    import pypdfium2.raw as pdfium_c

    area = page.get_width() * page.get_height()
    largest = 0.0
    for image in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2):
        left, bottom, right, top = image.get_bounds()
        largest = max(largest, max(0.0, right - left) * max(0.0, top - bottom))
    return min(1.0, largest / area) if area > 0 else 0.0


def _document(
    source: str,
    pages: list[str],
    title: str | None,
    recognized: dict[int, OcrText | str],
    wanting: list[int],
    unavailable: str | None,
) -> ParsedDocument:
    """Sections from each page's best text: OCR that found letters, else its text layer."""
    sections = []
    ocr_pages = []
    for number, layer in enumerate(pages, start=1):
        result = recognized.get(number)
        if isinstance(result, OcrText) and _has_text(result.text):
            sections.append(Section(result.text, number, 0, text_source=OCR))
            ocr_pages.append(PageOcr(number, result.confidence))
        elif _has_text(layer):
            sections.append(Section(layer, number, 0))
    read = {s.page for s in sections}
    missing = [n for n in range(1, len(pages) + 1) if n not in read]
    failures = {n: r for n, r in recognized.items() if isinstance(r, str) and n in missing}
    if not sections:
        raise IngestError(source, _no_text_reason(unavailable, failures))
    warnings = []
    if missing:
        why = f"; {unavailable}" if unavailable else ""
        blank = [n for n in missing if n not in failures]
        if blank:
            what = "no text layer, and OCR found none" if wanting and not unavailable else ""
            what = what or "no extractable text"
            warnings.append(
                f"{len(blank)} of {len(pages)} pages have {what}{why}: page {_listed(blank)}"
            )
        for reason in sorted(set(failures.values())):
            failed = [n for n, r in failures.items() if r == reason]
            warnings.append(f"{reason}: page {_listed(failed)}")
    return ParsedDocument(
        source, "pdf", len(pages), tuple(sections), title, tuple(warnings), tuple(ocr_pages)
    )


def _no_text_reason(unavailable: str | None, failures: dict[int, str]) -> str:
    if unavailable:
        return f"no extractable text (scanned or blank pages); {unavailable}"
    if failures:
        reason = next(iter(failures.values()))
        return f"no text found: {reason} (page {_listed(sorted(failures))})"
    return "no text found (blank pages: no text layer, and OCR read none)"


def _listed(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (", ..." if len(numbers) > 10 else "")


class _PdfiumFormatError(Exception):
    pass


# "stream" then its end of line, not the end of "endstream"; the dictionary sits before it.
_STREAM = re.compile(rb"(?<!end)stream(?:\r\n|\n|\r)")
_DICTIONARY_WINDOW = 4096
_FEED = 64 * 1024  # compressed bytes fed to zlib at a time
_OUTPUT_STEP = 1024 * 1024  # inflated bytes produced (and dropped) at a time


def check_streams(source: str, data: bytes, limits: ParseLimits) -> int:
    """The bytes the file's Flate streams (images aside) inflate to, within the limit.

    Raises:
        LimitExceeded: over ``limits.max_decompressed_bytes``.
    """
    budget = limits.max_decompressed_bytes
    total = 0
    view = memoryview(data)
    for match in _STREAM.finditer(data):
        window = data[max(0, match.start() - _DICTIONARY_WINDOW) : match.start()]
        header = window[window.rfind(b"obj") + 1 :]  # from this object's "obj" keyword
        if b"Flate" not in header or re.search(rb"/Subtype\s*/Image", header):
            continue
        total += _inflated_size(view[match.end() :], budget - total)
        if total > budget:
            raise LimitExceeded(source, limits, "max_decompressed_bytes", "a Flate stream")
    return total


def _inflated_size(compressed: memoryview, allowed: int) -> int:
    """How many bytes one zlib stream inflates to, stopping once past ``allowed``."""
    inflater = zlib.decompressobj()
    size = 0
    try:
        for start in range(0, len(compressed), _FEED):
            pending = bytes(compressed[start : start + _FEED])
            while pending:
                size += len(inflater.decompress(pending, _OUTPUT_STEP))
                if size > allowed or inflater.eof:
                    return size
                pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error:
        pass  # not (or not only) Flate data: the reading process's limits bound it
    return size


def _open_with_pdfium(source: str, data: bytes, password: str | None) -> Any:
    import pypdfium2 as pdfium

    # A password given for a batch must not break files that need none.
    attempts = [password, None] if password else [None]
    for attempt in attempts:
        try:
            return pdfium.PdfDocument(data, password=attempt)
        except pdfium.PdfiumError as error:
            message = str(error)
            if "password" not in message.lower():
                raise _PdfiumFormatError(message) from error
            if attempt is attempts[-1]:
                reason = "encrypted: wrong password" if password else "encrypted: password needed"
                raise IngestError(source, reason) from error
    raise AssertionError("unreachable")


def _text_layer(document: Any, budget: CharBudget) -> tuple[list[str], list[int]]:
    """Each page's text layer, and the numbers of the pages that need OCR instead."""
    pages = []
    wanting = []
    for number, page in enumerate(document, start=1):
        textpage = page.get_textpage()
        try:
            budget.add(textpage.count_chars(), number)  # before the text is copied out
            text = textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n")
            pages.append(text)
            if needs_ocr(page, text):
                wanting.append(number)
        finally:
            textpage.close()
            page.close()
    return pages, wanting


def _read_with_pypdf(
    source: str, data: bytes, password: str | None, limits: ParseLimits
) -> tuple[list[str], str | None]:
    from pypdf import PasswordType, PdfReader

    budget = CharBudget(source, limits)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt(password or "") == PasswordType.NOT_DECRYPTED:
            raise IngestError(source, "encrypted: password needed")
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            pages.append(page.extract_text() or "")
            budget.add(len(pages[-1]), number)
        title = reader.metadata.title if reader.metadata else None
    except IngestError:
        raise
    except Exception as error:  # pypdf raises many types on malformed files
        raise IngestError(source, f"unreadable PDF ({type(error).__name__}: {error})") from error
    return pages, title
