"""The data type that crosses the QA boundary: an ``Answer`` with its citations."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..index.store import Hit
from ..ingest.types import OCR, TEXT_LAYER, display_name
from .answerability import Assessment


@dataclass(frozen=True)
class Citation:
    """A passage the answer cites as ``[number]``."""

    number: int
    chunk_id: str
    doc_id: str
    source: str
    page: int | None
    start: int
    end: int
    text: str
    score: float
    heading: str | None = None
    text_source: str = TEXT_LAYER  # OCR: the page's text was recognized from its picture

    @property
    def name(self) -> str:
        return display_name(self.source)

    def label(self) -> str:
        """``[2] guide.pdf, p. 3`` (``p. 3 (OCR)`` for a scanned page) — as shown to people."""
        where = f", p. {self.page}" if self.page is not None else ""
        if self.text_source == OCR:
            where = f"{where} (OCR)" if where else " (OCR)"
        section = f" — {self.heading}" if self.heading else ""
        return f"[{self.number}] {self.name}{where}{section}"

    @classmethod
    def from_hit(cls, number: int, hit: Hit) -> Citation:
        c = hit.chunk
        return cls(
            number,
            c.id,
            c.doc_id,
            c.source,
            c.page,
            c.start,
            c.end,
            c.text,
            round(hit.score, 4),
            c.heading,
            c.text_source,
        )


@dataclass(frozen=True)
class Quote:
    """Words of a cited passage, verbatim, that one sentence of the answer rests on.

    ``start``/``end`` index the passage's stored text (``Citation.text``), so
    ``citation.text[start:end] == text``; ``doc_start``/``doc_end`` are the same
    span in the document (or PDF page) text, ``Citation.start`` + offset, which is
    what the page picture marks. ``sentence`` is the 0-based index of the answer
    sentence it supports (``claim``, without markers) among the reply's sentences.
    """

    number: int  # the citation's [n]
    chunk_id: str
    text: str
    start: int
    end: int
    doc_start: int
    doc_end: int
    sentence: int
    claim: str


@dataclass(frozen=True)
class Timings:
    retrieve_s: float
    prompt_tokens: int
    first_token_s: float | None  # until the first text was shown
    total_s: float
    generated_pieces: int = 0  # text pieces the generator streamed (not tokens)


@dataclass(frozen=True)
class Answer:
    """What ``ask`` returns.

    ``text`` is the answer with ``[n]`` markers; ``citations`` holds only the
    passages it cites; ``passages`` all those the model saw (or, when nothing
    was close enough, the closest found); ``quotes`` the exact words of the cited
    passages each sentence rests on (every answer not refused has at least one,
    and a sentence's markers name exactly the passages of its quotes).
    """

    question: str
    text: str
    citations: tuple[Citation, ...]
    refused: bool
    timings: Timings
    language: str
    passages: tuple[Citation, ...] = ()
    reply: str = ""  # the model's own words, before citation markers or a refusal verdict
    quotes: tuple[Quote, ...] = ()
    # Why it was (or was not) judged answerable, with the signals (qa/answerability.py).
    answerability: Assessment | None = None
    style: str = "evidence"  # evidence, short or sentence (qa/compose.py)
    shown: str = "evidence"  # what ``text`` is: the evidence verbatim, or the checked draft
    standalone: str = ""  # the question as searched (a follow-up rewritten), if it differs
    not_shown_because: str = ""  # why the model's draft was not shown (qa/verify.py)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["citations"] = [dict(asdict(c), name=c.name) for c in self.citations]
        data["passages"] = [dict(asdict(c), name=c.name) for c in self.passages]
        data["quotes"] = [asdict(q) for q in self.quotes]
        return data
