"""Does the reply stand on the passages? Which passages does each sentence use?

A 0.5B model cites unreliably: asked for ``[n]`` markers it often writes only
markers, so the prompt asks for a plain answer and citations are attributed
here by word overlap, sentence by sentence. The same overlap tells when a
reply adds facts no passage holds (the model answered from its own memory),
which is then treated as "not in the documents".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..text import STOP_WORDS, fold_accents
from .citations import has_markers, strip_markers

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

# A sentence cites a passage holding at least this share of its content words.
MIN_SENTENCE_OVERLAP = 0.5
# The reply is supported when this share of its new content words is in the passages.
MIN_SUPPORT = 0.6


# "175 000", "175,000" and "175.000" are one number, not two words.
DIGIT_GROUPS = re.compile(r"(?<=\d)[ ,.\u00a0\u202f](?=\d{3}\b)")


def content_words(text: str) -> set[str]:
    """Lower-cased, accent-folded words that carry meaning (numbers included)."""
    folded = fold_accents(DIGIT_GROUPS.sub("", text.lower()))
    return {w for w in _WORD.findall(folded) if w not in STOP_WORDS and (len(w) > 2 or w.isdigit())}


def support(reply: str, question: str, passages: Sequence[str]) -> float:
    """Share of the reply's content words (beyond the question's) found in the passages."""
    claimed = content_words(strip_markers(reply, " ")) - content_words(question)
    if not claimed:
        return 1.0
    available: set[str] = set().union(*(content_words(p) for p in passages)) if passages else set()
    if any(word.isdigit() and word not in available for word in claimed):
        return 0.0  # a number no passage states is invented, whatever else matches
    return len(claimed & available) / len(claimed)


def sentences(reply: str) -> list[str]:
    """The reply's sentences (ended by . ! ? and white space, or a line break), as written."""
    return [s for s in _SENTENCE_END.split(reply) if s.strip()]


def attribute(reply: str, question: str, passages: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Each sentence of the reply with the 1-based numbers of the passages it draws on."""
    passage_words = [content_words(p) for p in passages]
    asked = content_words(question)
    result = []
    for sentence in sentences(reply):
        words = content_words(strip_markers(sentence, " "))
        # Words repeated from the question say nothing about where the answer came from,
        # unless the sentence consists of nothing else.
        informative = (words - asked) or words
        figures = {w for w in informative if w.isdigit()}
        numbers = []
        if informative:
            for number, available in enumerate(passage_words, start=1):
                # A passage is the source of a figure only if it states that figure.
                if figures <= available and (
                    len(informative & available) / len(informative) >= MIN_SENTENCE_OVERLAP
                ):
                    numbers.append(number)
        best = sorted(numbers, key=lambda n: -len(informative & passage_words[n - 1]))[:2]
        result.append((sentence, sorted(best)))
    return result


def with_markers(reply: str, question: str, passages: Sequence[str]) -> str:
    """The reply with ``[n]`` after each sentence that draws on passage ``n``.

    A reply that already carries markers is returned unchanged.
    """
    if has_markers(reply):
        return reply
    parts = []
    for sentence, numbers in attribute(reply, question, passages):
        sentence = sentence.strip()
        if numbers:
            marks = "".join(f"[{n}]" for n in numbers)
            end = sentence[-1] if sentence[-1] in ".!?" else ""
            sentence = f"{sentence[: len(sentence) - len(end)].rstrip()} {marks}{end}"
        parts.append(sentence)
    return " ".join(parts)
