"""The data types that cross the ingest boundary."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """A run of text from one page (or one heading's span) of a document.

    ``offset`` is where ``text`` starts inside its page's text (or the whole
    document's text for formats without pages), so that chunk spans can be
    reported against what the user sees.
    """

    text: str
    page: int | None
    offset: int
    heading: str | None = None


@dataclass(frozen=True)
class ParsedDocument:
    """What a reader extracts from one file."""

    source: str
    format: str
    pages: int
    sections: tuple[Section, ...]
    title: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """One passage: the unit that is embedded, retrieved and cited.

    ``start``/``end`` are character offsets into the page (or document) text.
    """

    id: str
    doc_id: str
    text: str
    source: str
    page: int | None
    start: int
    end: int
    heading: str | None = None
    ordinal: int = 0

    @staticmethod
    def make_id(doc_id: str, ordinal: int, text: str) -> str:
        digest = hashlib.sha256(f"{doc_id}\x00{ordinal}\x00{text}".encode()).hexdigest()
        return digest[:24]


@dataclass(frozen=True)
class DocumentRecord:
    """One stored document, as listed to users."""

    doc_id: str
    source: str
    name: str
    format: str
    pages: int
    chunks: int
    size_bytes: int
    added_at: str
    title: str | None = None


def display_name(source: str) -> str:
    """The file name shown for a source: a path's last part, or the name after
    a ``scheme:`` prefix (``upload:report.pdf``, ``eval:squad/3-1.txt``)."""
    if not source.startswith("/") and ":" in source:
        source = source.split(":", 1)[1]
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def is_path_source(source: str) -> bool:
    """Sources of files on disk are absolute paths; others carry a scheme."""
    return source.startswith("/")


def document_id(data: bytes) -> str:
    """A document's id is the SHA-256 of its bytes: same bytes, same id."""
    return hashlib.sha256(data).hexdigest()
