"""Verify: show the model's draft only when the evidence states it, else the evidence.

- ``short``: the draft must occur in the evidence, verbatim up to case, accents and
  spacing; what is shown is the evidence's own characters, and it must add
  something to the question (an answer that only repeats the question's words
  answers nothing).
- ``sentence``: every figure and name of the draft, and every content word it adds
  to the question (matched on five-letter stems: "entrenó"/"entrenamiento"), must be
  in the evidence.
- ``evidence``, or a draft that fails: the evidence sentences, verbatim.

Either way the answer's quotes are the evidence spans, so every shown word is
either quoted or checked against a quote; the unchecked draft is kept in
``Answer.reply`` for inspection and never shown as the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..text import WORD, content_words, fold_accents
from .answer import Quote
from .citations import strip_markers
from .compose import Draft
from .evidence import Evidence, Sentence

_EDGE = re.compile(r"^[\s\"'“”«»‘’`*(\[]+|[\s\"'“”«»‘’`*)\].,;:!?]+$")
_REFUSAL = re.compile(
    r"^(no (lo )?(encuentro|se|sé|hay|tengo)|los documentos no|the documents do not|"
    r"i (do not|don't) know|not (in|found|stated|mentioned))",
    re.IGNORECASE,
)

# What may follow a figure's digits and still be the figure: more digit groups
# ("175 000"), decimals, and a magnitude word or percent.
_FIGURE_REST = re.compile(
    r"(?:[\s\u00a0\u202f]\d{3}(?!\d))*(?:[.,]\d+)?"
    r"(?:[\s\u00a0\u202f]*(?:%|por ciento|percent)"
    r"|\s+(?:mil(?:es)?|mill[oó]n(?:es)?|millardos?|bill[oó]n(?:es)?|trill[oó]n(?:es)?"
    r"|thousand|million|billion|trillion)\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verified:
    """The text to show (with ``[n]`` markers), its quotes, and where it came from."""

    text: str
    quotes: tuple[Quote, ...]
    shown: str  # "draft" or "evidence"
    reason: str = ""  # why the draft was not shown


def _folded(text: str) -> tuple[str, list[int]]:
    """``text`` lower-cased, accents dropped, spaces collapsed; each character's origin."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char.isspace():
            if out and out[-1] != " ":
                out.append(" ")
                origin.append(index)
            continue
        for piece in fold_accents(char.lower()):
            out.append(piece)
            origin.append(index)
    return "".join(out), origin


def find_verbatim(needle: str, haystack: str) -> tuple[int, int] | None:
    """The span of ``haystack`` that reads as ``needle`` (case, accents, spacing aside)."""
    folded_needle, _ = _folded(_EDGE.sub("", needle))
    if not folded_needle.strip():
        return None
    folded, origin = _folded(haystack)
    at = folded.find(folded_needle.strip())
    while at >= 0:
        end = at + len(folded_needle.strip())
        # Whole words only: "9" must not match inside "1990".
        left_ok = at == 0 or not folded[at - 1].isalnum() or not folded[at].isalnum()
        right_ok = end == len(folded) or not folded[end].isalnum() or not folded[end - 1].isalnum()
        if left_ok and right_ok:
            return origin[at], origin[end - 1] + 1
        at = folded.find(folded_needle.strip(), at + 1)
    return None


def _stems(words: set[str]) -> set[str]:
    return {w if w.isdigit() else w[:5] for w in words}


def _names(text: str) -> set[str]:
    """Capitalised words after the first: the names a sentence states."""
    words = WORD.findall(text)
    return {fold_accents(w.lower()) for w in words[1:] if w[0].isupper() and len(w) > 1}


def _with_marks(text: str, numbers: Sequence[int]) -> str:
    marks = "".join(f"[{n}]" for n in sorted(set(numbers)))
    text = " ".join(text.split())
    end = text[-1] if text and text[-1] in ".!?" else ""
    return f"{text[: len(text) - len(end)].rstrip()} {marks}{end}"


def _groups(evidence: Evidence) -> list[list[Sentence]]:
    """Evidence spans in reading order, adjacent ones of one passage grouped."""
    groups: list[list[Sentence]] = []
    for span in evidence.in_reading_order():
        last = groups[-1][-1] if groups else None
        if last is not None and last.number == span.number and last.index + 1 == span.index:
            groups[-1].append(span)
        else:
            groups.append([span])
    return groups


def _quote(evidence: Evidence, span: Sentence, sentence: int, claim: str) -> Quote:
    chunk = evidence.hits[span.number - 1].chunk
    return Quote(
        span.number,
        chunk.id,
        chunk.text[span.start : span.end],
        span.start,
        span.end,
        chunk.start + span.start,
        chunk.start + span.end,
        sentence,
        claim,
    )


def evidence_answer(evidence: Evidence, reason: str = "") -> Verified:
    """The evidence sentences themselves, each group marked with its passage."""
    parts, quotes = [], []
    for index, group in enumerate(_groups(evidence)):
        claim = " ".join(" ".join(s.text.split()) for s in group)
        parts.append(_with_marks(claim, [group[0].number]))
        quotes += [_quote(evidence, s, index, claim) for s in group]
    return Verified(" ".join(parts), tuple(quotes), "evidence", reason)


def _all_quotes(evidence: Evidence, claim: str) -> tuple[Quote, ...]:
    return tuple(_quote(evidence, s, 0, claim) for s in evidence.in_reading_order())


def verify(draft: Draft, evidence: Evidence) -> Verified:
    """The answer to show for ``draft``: the draft when the evidence states it."""
    if draft.style == "evidence" or not evidence.spans:
        return evidence_answer(evidence)
    text = " ".join(strip_markers(draft.text).split())
    if not text or _REFUSAL.match(fold_accents(text.lower())):
        return evidence_answer(evidence, "the model gave no answer")
    if draft.style == "short":
        return _verify_short(text, evidence)
    return _verify_sentence(text, evidence)


def _verify_short(text: str, evidence: Evidence) -> Verified:
    asked = _stems(content_words(evidence.question))
    for span in evidence.in_reading_order():
        found = find_verbatim(text, span.text)
        if found is None:
            continue
        words = content_words(span.text[found[0] : found[1]])
        if words and _stems(words) <= asked:
            return evidence_answer(evidence, "the short answer only repeats the question")
        end = _whole_figure(span.text, found[1])
        shown = " ".join(span.text[found[0] : end].split())
        # The quote is the whole evidence sentence: the short answer in its context.
        return Verified(
            _with_marks(shown, [span.number]),
            tuple(_quote(evidence, s, 0, shown) for s in evidence.spans if s is span),
            "draft",
        )
    return evidence_answer(evidence, "the short answer is not in the evidence verbatim")


def _whole_figure(text: str, end: int) -> int:
    """``end`` moved past the rest of a figure the short answer cut: "175 000" in
    "175 000 millones" is another number, so its digit groups and magnitude word go too."""
    if end == 0 or not text[end - 1].isdigit():
        return end
    rest = _FIGURE_REST.match(text, end)
    return rest.end() if rest else end


def _verify_sentence(text: str, evidence: Evidence) -> Verified:
    stated = " ".join(s.text for s in evidence.spans)
    available = content_words(stated) | content_words(evidence.question)
    claimed = content_words(text)
    figures = {w for w in claimed if w.isdigit()}
    if not figures <= available:
        return evidence_answer(evidence, "the sentence states a figure the evidence does not")
    names = _names(text) - set(WORD.findall(fold_accents(f"{stated} {evidence.question}".lower())))
    if names:
        return evidence_answer(evidence, f"the sentence names {', '.join(sorted(names))}")
    extra = _stems(claimed) - _stems(available)
    if extra:
        return evidence_answer(evidence, "the sentence adds words the evidence does not hold")
    numbers = [s.number for s in evidence.spans]
    return Verified(_with_marks(text, numbers), _all_quotes(evidence, text), "draft")
