"""Exact quotes: the words of the passages that each sentence of the reply rests on.

For every sentence of the reply, the passages the model saw are searched for a
span that states it: whole passage sentences (one, or two adjacent ones), the
window that holds the most of the sentence's figures, then the most of its
informative content words (``grounding.content_words``, the question's words
discounted as in ``grounding.attribute``), then the shortest. Words the window
leaves out may be found in another window (a sentence built from two passages
quotes both), up to ``MAX_QUOTES_PER_SENTENCE``. Matching is on normalized words
(case, accents, digit grouping: "175 000", "175,000" and "175.000" are one
number), and every word keeps its place in the stored passage text, so a quote
is always the passage's own characters: ``chunk.text[start:end] == quote.text``.

Only what the model saw counts: a passage sentence that ``qa/injection.py``
takes out of the prompt (an instruction to the model) is never quoted.

Limit (future work): words are matched, not facts. A reply that gives one
entity's figure to another ("Jurassic-1 has 175 billion parameters" when 175
billion belongs to GPT-3) is quoted with the sentence that holds the figure,
which shows the reader the mismatch but does not refuse it.

Cost: one pass over each passage's characters, then a few set operations per
passage sentence and reply sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..index.store import Hit
from ..text import STOP_WORDS, fold_accents
from .answer import Quote
from .citations import strip_markers
from .grounding import DIGIT_GROUPS, MIN_SENTENCE_OVERLAP, content_words, sentences
from .injection import SENTENCE_PIECE, is_instruction

_WORD = re.compile(r"\w+", re.UNICODE)
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n\s*\n")

# Windows are whole passage sentences: one, or this many adjacent ones at most.
MAX_WINDOW_SENTENCES = 2
# A sentence drawing on several passages gets one quote per source, up to this many.
MAX_QUOTES_PER_SENTENCE = 3
# A further quote for a sentence must add a figure or at least this many of its words.
MIN_EXTRA_WORDS = 2
# A window longer than this is cut to the words it was chosen for (still verbatim).
MAX_QUOTE_CHARS = 400


@dataclass(frozen=True)
class Token:
    word: str  # as ``grounding.content_words`` spells it
    start: int  # span in the original text
    end: int


@dataclass(frozen=True)
class _Window:
    number: int  # the passage's [n]
    start: int
    end: int
    words: frozenset[str]
    tokens: tuple[Token, ...]


@dataclass(frozen=True)
class Quoting:
    """The quotes of one reply and how much of it they cover."""

    text: str  # the reply with ``[n]`` after each sentence: the passages of its quotes
    quotes: tuple[Quote, ...]
    support: float  # share of the reply's claimed words (beyond the question's) quoted

    @property
    def grounded(self) -> bool:
        """Shown as a fact: at least one quote, and every figure inside a quote.

        Words are not held to ``MIN_SUPPORT`` here: the grounding check before this
        one already asks that of the passages the model saw, and a paraphrase ("use
        the `kbqa remove` command") rarely repeats enough words of one sentence.
        """
        return bool(self.quotes) and self.support > 0


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences (ended by . ! ? or a blank line) as spans without surrounding space."""
    spans = []
    start = 0
    for boundary in [*_BOUNDARY.finditer(text), None]:
        end = boundary.start() if boundary else len(text)
        left, right = start, end
        while left < right and text[left].isspace():
            left += 1
        while right > left and text[right - 1].isspace():
            right -= 1
        if left < right:
            spans.append((left, right))
        start = boundary.end() if boundary else end
    return spans


def tokens(text: str) -> list[Token]:
    """The content words of ``text`` (exactly ``content_words``' set) with their spans."""
    grouping = {m.start() for m in DIGIT_GROUPS.finditer(text)}
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if index in grouping:
            continue
        for piece in fold_accents(char.lower()):
            folded.append(piece)
            origin.append(index)
    normalized = "".join(folded)
    found = []
    for match in _WORD.finditer(normalized):
        word = match.group()
        if word in STOP_WORDS or not (len(word) > 2 or word.isdigit()):
            continue
        found.append(Token(word, origin[match.start()], origin[match.end() - 1] + 1))
    return found


def _hidden(text: str) -> list[tuple[int, int]]:
    """Spans of the passage the model did not see (instructions taken out)."""
    return [
        (m.start(), m.end())
        for m in SENTENCE_PIECE.finditer(text)
        if m.group().strip() and is_instruction(m.group())
    ]


def _windows(number: int, text: str) -> list[_Window]:
    """Every window of one or two adjacent visible sentences of a passage."""
    hidden = _hidden(text)
    words = tokens(text)
    sentences_: list[tuple[int, int, tuple[Token, ...]] | None] = []
    position = 0
    for start, end in sentence_spans(text):
        while position < len(words) and words[position].start < start:
            position += 1
        inside = []
        while position < len(words) and words[position].end <= end:
            inside.append(words[position])
            position += 1
        visible = not any(s < end and start < e for s, e in hidden)
        sentences_.append((start, end, tuple(inside)) if visible else None)
    windows = []
    for first in range(len(sentences_)):
        for size in range(1, MAX_WINDOW_SENTENCES + 1):
            run = sentences_[first : first + size]
            if len(run) < size or any(s is None for s in run):
                break
            spans = [s for s in run if s is not None]
            held = tuple(t for s in spans for t in s[2])
            if held:
                windows.append(
                    _Window(
                        number, spans[0][0], spans[-1][1], frozenset(t.word for t in held), held
                    )
                )
    return windows


def _cut(text: str, window: _Window, wanted: set[str]) -> tuple[int, int]:
    """The window's span, or for a very long one the stretch from its first to its last
    wanted word."""
    if window.end - window.start <= MAX_QUOTE_CHARS:
        return window.start, window.end
    chosen = [t for t in window.tokens if t.word in wanted]
    return (chosen[0].start, chosen[-1].end) if chosen else (window.start, window.end)


def _pick(
    informative: set[str], windows: Sequence[_Window], minimum: float = MIN_SENTENCE_OVERLAP
) -> list[tuple[_Window, set[str]]]:
    """Windows covering the sentence: most figures, then most words, then shortest."""
    figures = {w for w in informative if w.isdigit()}
    remaining = set(informative)
    picked: list[tuple[_Window, set[str]]] = []
    while remaining and len(picked) < MAX_QUOTES_PER_SENTENCE:
        best: tuple[tuple[int, int, int, int], _Window, set[str]] | None = None
        for window in windows:
            got = remaining & window.words
            if not got:
                continue
            key = (len(got & figures), len(got), -(window.end - window.start), -window.number)
            if best is None or key > best[0]:
                best = (key, window, got)
        if best is None:
            break
        _, window, got = best
        if picked and not got & figures and len(got) < MIN_EXTRA_WORDS:
            break
        picked.append((window, got))
        remaining -= got
    covered = len(informative) - len(remaining)
    if not informative or not covered or covered / len(informative) < minimum:
        return []  # the sentence is not stated anywhere: no quote, no marker
    return picked


def quote_reply(reply: str, question: str, hits: Sequence[Hit]) -> Quoting:
    """Quote each sentence of ``reply`` from ``hits`` (numbered ``[1]..[n]`` in order).

    The reply's own markers, if any, are replaced by those of its quotes.
    """
    plain = strip_markers(reply)
    asked = content_words(question)
    windows = [w for n, hit in enumerate(hits, start=1) for w in _windows(n, hit.chunk.text)]
    quotes: list[Quote] = []
    parts: list[str] = []
    for minimum in (MIN_SENTENCE_OVERLAP, 0.0):
        # A reply no sentence of which meets the overlap (a paraphrase) is quoted from
        # the windows that state the most of its words, so it still shows its source.
        quotes, parts = _quote_sentences(plain, asked, hits, windows, minimum)
        if quotes:
            break
    return Quoting(" ".join(parts), tuple(quotes), _support(plain, asked, quotes))


def _quote_sentences(
    plain: str,
    asked: set[str],
    hits: Sequence[Hit],
    windows: Sequence[_Window],
    minimum: float,
) -> tuple[list[Quote], list[str]]:
    quotes: list[Quote] = []
    parts = []
    for index, sentence in enumerate(sentences(plain)):
        sentence = sentence.strip()
        words = content_words(sentence)
        informative = (words - asked) or words
        numbers = set()
        for window, got in _pick(informative, windows, minimum):
            hit = hits[window.number - 1]
            start, end = _cut(hit.chunk.text, window, got)
            quotes.append(
                Quote(
                    window.number,
                    hit.chunk.id,
                    hit.chunk.text[start:end],
                    start,
                    end,
                    hit.chunk.start + start,
                    hit.chunk.start + end,
                    index,
                    sentence,
                )
            )
            numbers.add(window.number)
        if numbers:
            marks = "".join(f"[{n}]" for n in sorted(numbers))
            end_mark = sentence[-1] if sentence[-1] in ".!?" else ""
            sentence = f"{sentence[: len(sentence) - len(end_mark)].rstrip()} {marks}{end_mark}"
        parts.append(sentence)
    return quotes, parts


def _support(reply: str, asked: set[str], quotes: Sequence[Quote]) -> float:
    """Share of the reply's claimed words that its quotes state; 0 if a figure is missing."""
    claimed = content_words(reply) - asked
    if not claimed:
        return 1.0
    quoted: set[str] = set().union(*(content_words(q.text) for q in quotes)) if quotes else set()
    if any(word.isdigit() and word not in quoted for word in claimed):
        return 0.0
    return len(claimed & quoted) / len(claimed)
