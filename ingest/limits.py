"""Budgets for reading one file: what a hostile file may cost, at most.

Every file is read in a child process (``ingest.reader_process``) under these
limits; a file over one fails alone, with a reason that names the limit and the
setting that raises it (docs/security.md has the measurements). Defaults, and why:

- 200 MB decompressed: what a DOCX's zip members and a PDF's Flate streams may
  inflate to. Real documents stay far below (the 272-page Debian Reference PDF
  inflates to 6 MB; media inside a DOCX is already compressed, so it inflates
  to about its size in the 50 MB file), while zip and Flate bombs reach
  1:1000, gigabytes from a file under the 50 MB upload limit.
- 5 M characters per file: about 2,500 pages of prose, twice the longest
  books; every character is chunked and embedded (about 6 minutes for 5 M on
  2 cores at docs/performance.md's 29 chunks/s), so more is never a document
  a user meant to ask about.
- 1 M characters per page: a dense page holds about 5,000; a PDF page with
  200 times that is a generated payload, not text for reading.
- 120 s per file (and again for chunking it): PDFium reads the 272-page
  Debian Reference in under a second; 120 s leaves room for slow machines and
  stops a parser caught in super-linear work.
- 2 GB of address space for the reading process: the largest legal file
  measured, a 50 MB text file, peaks at 121 MB resident; 2 GB is a twelfth of
  a 24 GB machine, so no bomb pushes the user's session into swap.
- 16 M pixels per page picture: a letter page at the app's 1,200 px width is
  1.9 M pixels; 16 M is 8 times that (64 MB as RGBA) and keeps a
  612 × 200,000 pt page from asking for 470 M pixels (1.9 GB per RGBA copy).
  It also bounds the pictures OCR reads (a 9,000 × 9,000 px scan is read at
  16 M pixels, about 133 dpi for its 30-inch page, still legible).
- 60 s of OCR per page: Tesseract read dense 300 dpi letter pages in 4 to
  14 s on 2 cores shared with a load of 6 (docs/quality.md, "OCR"); each page's ``tesseract``
  process is killed past this, and that page fails alone. A file's time limit
  grows by this much for every page OCR needs, divided by the Tesseract
  processes run side by side (``ingest.reader_process``), so a scanned book is
  not cut off at 120 s while every page stays bounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import IngestError

MB = 1024 * 1024

# The setting (environment variable) that raises each limit, named in reasons.
SETTING_NAMES = {
    "max_decompressed_bytes": "KBQA_MAX_DECOMPRESSED_MB",
    "max_chars": "KBQA_MAX_CHARS",
    "max_page_chars": "KBQA_MAX_PAGE_CHARS",
    "seconds": "KBQA_PARSE_SECONDS",
    "memory_bytes": "KBQA_PARSE_MEMORY_MB",
    "max_page_pixels": "KBQA_MAX_PAGE_PIXELS",
    "ocr_seconds_per_page": "KBQA_OCR_SECONDS_PER_PAGE",
}


@dataclass(frozen=True)
class ParseLimits:
    """What reading one file may cost; see the module docstring for the defaults."""

    max_decompressed_bytes: int = 200 * MB
    max_chars: int = 5_000_000
    max_page_chars: int = 1_000_000
    seconds: float = 120.0
    memory_bytes: int = 2048 * MB
    max_page_pixels: int = 16_000_000
    ocr_seconds_per_page: float = 60.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ParseLimits:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def describe(self, field: str) -> str:
        """``the 200 MB decompressed limit (KBQA_MAX_DECOMPRESSED_MB)`` and the like."""
        value = getattr(self, field)
        what = {
            "max_decompressed_bytes": f"{_mb(value)} MB decompressed",
            "max_chars": f"{value:,}-character",
            "max_page_chars": f"{value:,}-character page",
            "seconds": f"{value:g} s time",
            "memory_bytes": f"{_mb(value)} MB memory",
            "max_page_pixels": f"{value:,}-pixel page picture",
            "ocr_seconds_per_page": f"{value:g} s OCR time per page",
        }[field]
        return f"the {what} limit ({SETTING_NAMES[field]})"

    def over(self, field: str) -> str:
        """A failure reason: ``over the 200 MB decompressed limit (KBQA_MAX_DECOMPRESSED_MB)``."""
        return f"over {self.describe(field)}"


def _mb(value: float) -> str:
    return f"{round(value / MB, 2):g}"


class LimitExceeded(IngestError):
    """A file went over one of its ``ParseLimits``; the reason names the limit and setting."""

    def __init__(self, source: str, limits: ParseLimits, field: str, detail: str = "") -> None:
        super().__init__(source, limits.over(field) + (f": {detail}" if detail else ""))
        self.field = field


class CharBudget:
    """Counts extracted characters against the file and page limits as a reader goes."""

    def __init__(self, source: str, limits: ParseLimits) -> None:
        self.source = source
        self.limits = limits
        self.total = 0

    def add(self, count: int, page: int | None = None) -> None:
        if page is not None and count > self.limits.max_page_chars:
            detail = f"page {page} has {count:,} characters"
            raise LimitExceeded(self.source, self.limits, "max_page_chars", detail)
        self.total += count
        if self.total > self.limits.max_chars:
            detail = f"{self.total:,} characters so far"
            raise LimitExceeded(self.source, self.limits, "max_chars", detail)
