"""File readers: bytes in, a ``ParsedDocument`` out, or an ``IngestError``.

One module per format; ``read_document`` picks one by file suffix. Readers get
the bytes (already read and hashed by the caller) so a file is read once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...errors import IngestError
from ..types import ParsedDocument

Reader = Callable[[str, bytes, "str | None"], ParsedDocument]

SUFFIX_FORMATS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
}


def format_of(path: str | Path) -> str | None:
    """The format name for a file suffix, or None when kbqa cannot read it."""
    return SUFFIX_FORMATS.get(Path(path).suffix.lower())


def _reader(fmt: str) -> Reader:
    # Imported lazily: each reader pulls its own parsing library.
    if fmt == "pdf":
        from .pdf import read_pdf

        return read_pdf
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
    source: str, data: bytes, fmt: str | None = None, password: str | None = None
) -> ParsedDocument:
    """Parse ``data`` (the bytes of ``source``) into sections of text.

    Raises:
        IngestError: unsupported type, empty file, unreadable or textless file.
    """
    fmt = fmt or format_of(source)
    if fmt is None:
        suffix = Path(source).suffix or "(no extension)"
        raise IngestError(source, f"unsupported file type {suffix}")
    if not data:
        raise IngestError(source, "empty file")
    document = _reader(fmt)(source, data, password)
    if not any(section.text.strip() for section in document.sections):
        raise IngestError(source, "no text found in the file")
    return document
