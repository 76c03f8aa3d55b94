"""Plain text, encoding detected rather than assumed."""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

from ...errors import IngestError
from ..limits import CharBudget, ParseLimits
from ..types import ParsedDocument, Section

# kbqa reads Spanish and English: among legacy 8-bit encodings, Western European
# ones come first (the general detector alone read Latin-1 "año" as cp1250 "ańo").
_WESTERN = ["cp1252", "latin_1", "iso8859_15"]
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(source: str, data: bytes) -> str:
    """Decode bytes whose encoding is unknown (UTF-8, UTF-16/32 with BOM, Latin-1, ...)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data, cp_isolation=_WESTERN).best() or from_bytes(data).best()
    if best is None:
        raise IngestError(source, "not text: could not detect a character encoding")
    return str(best)


def read_text(
    source: str, data: bytes, password: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    text = decode_text(source, data)
    CharBudget(source, limits or ParseLimits()).add(len(text))
    if "\x00" in text:
        raise IngestError(source, "binary content, not text")
    return ParsedDocument(source=source, format="text", pages=1, sections=(Section(text, None, 0),))
