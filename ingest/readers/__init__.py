"""File readers: bytes in, a ``ParsedDocument`` out, or an ``IngestError``.

One module per format; ``read_document`` picks one by the file's content
(``sniff``), the suffix only hinting among text formats. Readers get the bytes
(already read and hashed by the caller) so a file is read once, and the
``ParseLimits`` they must stay within. Scanned PDF pages and images are read
by OCR (``ocr``), which reports its progress to ``on_progress``.
``ingest.reader_process`` runs them in a child process; calling ``read_document``
directly parses in the calling process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import IngestError
from ..limits import ParseLimits
from ..types import ParsedDocument
from .ocr import Progress
from .sniff import sniff_format

Reader = Callable[..., ParsedDocument]  # (source, data, password, limits[, on_progress])

SUFFIX_FORMATS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".tif": "image",
    ".tiff": "image",
}
PAGED_FORMATS = ("pdf", "image")  # formats whose sections have page numbers


def format_of(path: str | Path) -> str | None:
    """The format name for a file suffix, or None when kbqa cannot read it."""
    return SUFFIX_FORMATS.get(Path(path).suffix.lower())


def _reader(fmt: str) -> Reader:
    # Imported lazily: each reader pulls its own parsing library.
    if fmt == "pdf":
        from .pdf import read_pdf

        return read_pdf
    if fmt == "image":
        from .image import read_image

        return read_image
    if fmt == "docx":
        from .docx import read_docx

        return read_docx
    if fmt == "html":
        from .html import read_html

        return read_html
    if fmt == "markdown":
        from .markdown import read_markdown

        return read_markdown
    from .text import read_text

    return read_text


def read_document(
    source: str,
    data: bytes,
    fmt: str | None = None,
    password: str | None = None,
    limits: ParseLimits | None = None,
    on_progress: Progress | None = None,
) -> ParsedDocument:
    """Parse ``data`` (the bytes of ``source``) into sections of text.

    ``fmt`` (default: from the suffix) is a hint: a supported suffix says the
    file is meant as a document, its content says which reader reads it.
    ``on_progress(done, total)`` follows the pages being OCR'd, if any.

    Raises:
        IngestError: unsupported type, empty file, unreadable or textless file,
            or a file over ``limits`` (``LimitExceeded``).
    """
    hint = fmt or format_of(source)
    if hint is None:
        suffix = Path(source).suffix or "(no extension)"
        raise IngestError(source, f"unsupported file type {suffix}")
    if not data:
        raise IngestError(source, "empty file")
    fmt = sniff_format(source, data, hint)
    extra: dict[str, Any] = {"on_progress": on_progress} if fmt in PAGED_FORMATS else {}
    document = _reader(fmt)(source, data, password, limits or ParseLimits(), **extra)
    if not any(section.text.strip() for section in document.sections):
        raise IngestError(source, "no text found in the file")
    return document
