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
"""

from __future__ import annotations

import io
import re
import zlib

from ...errors import IngestError
from ..limits import CharBudget, LimitExceeded, ParseLimits
from ..types import ParsedDocument, Section

# A page with fewer letters or digits than this has no real text layer (stray marks).
_MIN_LETTERS_PER_PAGE = 3


def read_pdf(
    source: str, data: bytes, password: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    limits = limits or ParseLimits()
    check_streams(source, data, limits)
    try:
        pages, title = _read_with_pdfium(source, data, password, limits)
    except _PdfiumFormatError as error:
        try:
            pages, title = _read_with_pypdf(source, data, password, limits)
        except LimitExceeded:
            raise
        except IngestError:
            raise IngestError(source, f"broken or truncated PDF ({error})") from None

    if not pages:
        raise IngestError(source, "PDF has no pages")
    with_text = [sum(ch.isalnum() for ch in text) >= _MIN_LETTERS_PER_PAGE for text in pages]
    if not any(with_text):
        raise IngestError(source, "no extractable text (scanned or blank pages); OCR needed")
    warnings: tuple[str, ...] = ()
    if not all(with_text):
        missing = [str(n) for n, ok in enumerate(with_text, start=1) if not ok]
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        warnings = (
            f"{len(missing)} of {len(pages)} pages have no extractable text "
            f"(OCR needed): page {shown}",
        )
    sections = tuple(
        Section(text, number, 0)
        for number, (text, ok) in enumerate(zip(pages, with_text, strict=True), start=1)
        if ok
    )
    return ParsedDocument(source, "pdf", len(pages), sections, title, warnings)


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


def _read_with_pdfium(
    source: str, data: bytes, password: str | None, limits: ParseLimits
) -> tuple[list[str], str | None]:
    import pypdfium2 as pdfium

    # A password given for a batch must not break files that need none.
    attempts = [password, None] if password else [None]
    for attempt in attempts:
        try:
            document = pdfium.PdfDocument(data, password=attempt)
            break
        except pdfium.PdfiumError as error:
            message = str(error)
            if "password" not in message.lower():
                raise _PdfiumFormatError(message) from error
            if attempt is attempts[-1]:
                reason = "encrypted: wrong password" if password else "encrypted: password needed"
                raise IngestError(source, reason) from error
    budget = CharBudget(source, limits)
    try:
        pages = []
        for number, page in enumerate(document, start=1):
            textpage = page.get_textpage()
            try:
                budget.add(textpage.count_chars(), number)  # before the text is copied out
                pages.append(textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n"))
            finally:
                textpage.close()
                page.close()
        title = (document.get_metadata_dict().get("Title") or "").strip() or None
    finally:
        document.close()
    return pages, title


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
