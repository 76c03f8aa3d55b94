"""Answers as a kept conversation stores them (``index/conversations.py``), and back.

One conversion for every front door that keeps conversations (the web app, ``kbqa
chat``): an ``Answer`` becomes a ``ConversationTurn`` with its cited passages and the
spans it quoted; a stored turn becomes an ``Answer`` again, shown and read by
follow-ups like one just asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..index.conversations import CitedPassage, ConversationTurn
from ..index.scope import Scope
from .answer import Answer, Citation, Quote, Timings

Spans = Callable[[Citation], Sequence[tuple[int, int]]]


def quoted_spans(answer: Answer) -> Spans:
    """The spans of each cited passage the answer quotes (its ``Quote``s)."""
    return lambda c: [(q.start, q.end) for q in answer.quotes if q.number == c.number]


def kept_turn(
    question: str,
    answer: Answer,
    scope: Scope | None = None,
    scope_label: str = "",
    spans: Spans | None = None,
) -> ConversationTurn:
    """``answer`` to ``question`` as kept; ``spans``: what to mark in each cited passage
    (default: the answer's quotes)."""
    marked = spans or quoted_spans(answer)
    cited = tuple(
        CitedPassage(
            number=c.number,
            name=c.name,
            source=c.source,
            doc_id=c.doc_id,
            page=c.page,
            chunk_id=c.chunk_id,
            text=c.text,
            quotes=tuple(marked(c)),
            start=c.start,
            end=c.end,
            score=c.score,
            heading=c.heading,
            text_source=c.text_source,
        )
        for c in answer.citations
    )
    return ConversationTurn(
        question=question,
        answer=answer.text,
        citations=cited,
        documents=scope.documents if scope else (),
        tags=scope.tags if scope else (),
        scope_label=scope_label or (scope.describe() if scope else ""),
        style=answer.style,
        standalone=answer.standalone,
        refused=answer.refused,
        language=answer.language,
    )


def answer_of(turn: ConversationTurn) -> Answer:
    """A stored turn's answer rebuilt: its text, citations and marked quotes."""
    citations = tuple(
        Citation(
            c.number,
            c.chunk_id,
            c.doc_id,
            c.source,
            c.page,
            c.start,
            c.end,
            c.text,
            c.score,
            c.heading,
            c.text_source,
        )  # fmt: skip
        for c in turn.citations
    )
    quotes = tuple(
        Quote(c.number, c.chunk_id, c.text[s:e], s, e, c.start + s, c.start + e, 0, "")
        for c in turn.citations
        for s, e in c.quotes
    )
    return Answer(
        question=turn.standalone or turn.question,
        text=turn.answer,
        citations=citations,
        refused=turn.refused,
        timings=Timings(0.0, 0, None, 0.0),
        language=turn.language,
        passages=citations,
        quotes=quotes,
        style=turn.style,
        standalone=turn.standalone,
    )
