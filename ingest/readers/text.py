"""Plain text, encoding detected rather than assumed."""

from __future__ import annotations

from charset_normalizer import from_bytes

from ingest.errors import IngestError
from ingest.types import ParsedDocument, Section


def decode_text(source: str, data: bytes) -> str:
    """Decode bytes whose encoding is unknown (UTF-8, Latin-1, UTF-16, ...)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise IngestError(source, "not text: could not detect a character encoding")
    return str(best)


def read_text(source: str, data: bytes, password: str | None = None) -> ParsedDocument:
    text = decode_text(source, data)
    if "\x00" in text:
        raise IngestError(source, "binary content, not text")
    return ParsedDocument(
        source=source, format="text", pages=1, sections=(Section(text, None, 0),)
    )
