"""Which part of a cited passage the answer rests on, and the passage as HTML.

An answer carries exact quotes (``Answer.quotes``: the evidence spans, ``qa/verify.py``): the spans
highlighted in a cited passage are its quotes, nothing else. An answer without
quotes (one made before quotes existed) falls back to an estimate: the sentence
(or sentences) sharing the most content words with the answer's sentences that
cite the passage. Everything is escaped: passages are document text, never markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from ...qa.answer import Answer, Citation
from ...qa.citations import cited_numbers, strip_markers
from ...text import content_words, sentence_spans

_ANSWER_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
# A passage sentence is highlighted when it shares this many content words with
# the answer and at least this share of the best sentence's overlap.
MIN_SHARED_WORDS = 2
NEAR_BEST = 0.6


def highlight_spans(
    answer: Answer, citation: Citation, question: str = ""
) -> list[tuple[int, int]]:
    """Spans of ``citation.text`` to mark: the answer's quotes from it, merged.

    For an answer without quotes, the estimate of ``cited_spans``.
    """
    if answer.quotes:
        return _merge(
            citation.text,
            [
                (q.start, q.end)
                for q in answer.quotes
                if q.number == citation.number and q.chunk_id == citation.chunk_id
            ],
            overlapping_only=True,
        )
    return cited_spans(citation.text, sentences_citing(answer.text, citation.number), question)


def sentences_citing(answer_text: str, number: int) -> list[str]:
    """The answer's sentences that carry the marker ``[number]`` (alone or in a list)."""
    found = []
    for sentence in _ANSWER_SENTENCE.split(answer_text):
        if number in cited_numbers(sentence):
            found.append(strip_markers(sentence).strip())
    return found


def cited_spans(passage: str, claims: Sequence[str], question: str = "") -> list[tuple[int, int]]:
    """Character spans of ``passage`` that state what ``claims`` say.

    Words that only repeat the question count for little: they are in every
    retrieved passage. Returns the best sentence and those nearly as good.
    """
    wanted = set().union(*(content_words(c) for c in claims)) if claims else set()
    asked = content_words(question)
    informative = (wanted - asked) or wanted
    if not informative:
        return []
    scored = []
    for start, end in sentence_spans(passage):
        words = content_words(passage[start:end])
        score = len(words & informative) + 0.25 * len(words & (wanted & asked))
        if score:
            scored.append((score, start, end, len(words & informative)))
    if not scored:
        return []
    best = max(s[0] for s in scored)
    chosen = [
        (start, end)
        for score, start, end, shared in scored
        if score >= NEAR_BEST * best and (shared >= MIN_SHARED_WORDS or score == best)
    ]
    return _merge(passage, chosen)


def _merge(
    text: str, spans: list[tuple[int, int]], overlapping_only: bool = False
) -> list[tuple[int, int]]:
    """Overlapping spans become one, and (unless ``overlapping_only``) neighbouring spans
    separated by white space only."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and (
            start <= merged[-1][1]
            or (not overlapping_only and not text[merged[-1][1] : start].strip())
        ):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def passage_html(passage: str, spans: Sequence[tuple[int, int]]) -> str:
    """The passage, escaped, single line breaks joined, spans wrapped in ``<mark>``."""
    parts = []
    position = 0
    for start, end in sorted(spans):
        if start < position:
            continue
        parts.append(_escape(passage[position:start]))
        parts.append(f'<mark class="kbqa-cited">{_escape(passage[start:end])}</mark>')
        position = end
    parts.append(_escape(passage[position:]))
    return "".join(parts)


def _escape(text: str) -> str:
    """Escape for HTML; a blank line stays a paragraph break, a single newline is a space."""
    paragraphs = re.split(r"\n\s*\n", text)
    return "<br><br>".join(
        html.escape(re.sub(r"\s*\n\s*", " ", p)).replace("$", "&#36;") for p in paragraphs
    )
