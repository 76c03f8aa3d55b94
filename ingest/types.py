"""The data types that cross the ingest boundary: what readers return (``ParsedDocument``),
what is stored (``Chunk``, ``DocumentRecord``), and what an ingest engine takes and
reports (``InputFile``, ``FileOutcome``, ``IngestReport``, the ``DocumentSink`` it fills)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np

# How a page's text was obtained: the file's own text (a PDF's text layer, or a
# text format), or optical character recognition of its picture (ingest/readers/ocr.py).
TEXT_LAYER = "text"
OCR = "ocr"


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
    text_source: str = TEXT_LAYER  # or OCR


@dataclass(frozen=True)
class PageOcr:
    """A page whose text came from OCR, and how sure Tesseract was of it.

    Pages of a document without one were read from its text layer.
    ``confidence`` is the mean of Tesseract's word confidences, 0 to 100.
    """

    page: int
    confidence: float


@dataclass(frozen=True)
class ParsedDocument:
    """What a reader extracts from one file."""

    source: str
    format: str
    pages: int
    sections: tuple[Section, ...]
    title: str | None = None
    warnings: tuple[str, ...] = ()
    ocr_pages: tuple[PageOcr, ...] = ()


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
    text_source: str = TEXT_LAYER  # or OCR: the page's text was recognized from its picture

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
    ocr_pages: tuple[PageOcr, ...] = ()  # pages read by OCR; the others by their text
    tags: tuple[str, ...] = ()  # given by the user (`kbqa tag`, `ingest --tag`)

    def ocr_summary(self) -> str:
        """``OCR p. 1-3, 5 of 6, confidence 91 % (lowest 70 %, p. 3)``; ``""`` without OCR."""
        if not self.ocr_pages:
            return ""
        confidences = [p.confidence for p in self.ocr_pages]
        mean = sum(confidences) / len(confidences)
        where = "" if self.pages <= 1 else f" p. {_ranges([p.page for p in self.ocr_pages])}"
        where += f" of {self.pages}" if where else ""
        summary = f"OCR{where}, confidence {mean:.0f} %"
        if len(self.ocr_pages) > 1:
            lowest = min(self.ocr_pages, key=lambda p: p.confidence)
            summary += f" (lowest {lowest.confidence:.0f} %, p. {lowest.page})"
        return summary


def _ranges(numbers: list[int]) -> str:
    """``1-3, 5`` for [1, 2, 3, 5]."""
    parts: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(parts)


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


# -- what an ingest engine takes and reports ------------------------------------------

Status = Literal["added", "updated", "unchanged", "removed", "failed"]


class DocumentSink(Protocol):
    """What ingest needs from a store (``index.store.KnowledgeBaseStore`` is one)."""

    def documents(self) -> list[DocumentRecord]: ...

    def document_by_source(self, source: str) -> DocumentRecord | None: ...

    def document_by_id(self, doc_id: str) -> DocumentRecord | None: ...

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None: ...

    def remove_document(self, doc_id: str) -> bool: ...


@dataclass(frozen=True)
class InputFile:
    """A file to ingest: a path on disk, or bytes with a trusted display name.

    ``source`` identifies the document across runs (an absolute path, or
    ``scheme:<name>`` such as ``upload:report.pdf``); it is never used to open anything.
    """

    source: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def name(self) -> str:
        return display_name(self.source)

    def size(self) -> int:
        return len(self.data) if self.data is not None else os.stat(self.path or "").st_size

    def read(self, limit: int | None = None) -> bytes:
        """The bytes; with ``limit``, at most ``limit + 1`` of them (a file may grow)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        if limit is None:
            return self.path.read_bytes()
        with open(self.path, "rb") as handle:
            return handle.read(limit + 1)


@dataclass(frozen=True)
class FileOutcome:
    source: str
    status: Status
    reason: str | None = None
    doc_id: str | None = None
    pages: int = 0
    chunks: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestReport:
    outcomes: tuple[FileOutcome, ...] = ()
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def pages(self) -> int:
        return sum(o.pages for o in self.outcomes if o.status in ("added", "updated"))

    @property
    def chunks(self) -> int:
        return sum(o.chunks for o in self.outcomes if o.status in ("added", "updated"))

    def summary(self) -> str:
        counts = ", ".join(
            f"{self.count(s)} {s}" for s in ("added", "updated", "unchanged", "removed", "failed")
        )
        return (
            f"{counts}; {self.pages} pages, {self.chunks} chunks embedded in {self.seconds:.1f} s"
        )
