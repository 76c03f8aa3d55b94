"""Compose: turn the evidence into the answer's words, in one of three styles.

- ``evidence``: the evidence sentences themselves, verbatim. No model runs.
- ``short``: the model copies the few words of the evidence that answer (a name, a
  figure, a date). Its prompt is the evidence sentences and the question, nothing
  else: tens of tokens, not a page of passages.
- ``sentence``: the model phrases one sentence in the question's language from the
  evidence alone.

The model's reply is a *draft*: ``qa/verify.py`` decides whether it is shown or the
evidence is shown instead. The model never sees the rest of the passages, so a
sentence elsewhere in a document, an instruction included, cannot reach it unless
it is itself the best answer to the question.
"""

from __future__ import annotations

import time
from collections.abc import Generator as GeneratorType
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ..models.generator import Generator
from .evidence import Evidence
from .injection import defuse_special_tokens
from .options import Style

LANGUAGE_NAMES = {"es": "Spanish", "en": "English"}
# A short answer is a few words; a sentence a line. More is not an answer to show.
MAX_NEW_TOKENS = {"short": 24, "sentence": 80}


@dataclass(frozen=True)
class Draft:
    """What the model wrote from the evidence (empty for the ``evidence`` style)."""

    style: Style
    text: str
    prompt_tokens: int = 0
    first_token_s: float | None = None  # from the start of composing
    pieces: int = 0


@cache
def _template(name: str) -> str:
    return resources.files("kbqa.qa").joinpath("prompts", name).read_text(encoding="utf-8")


def evidence_block(evidence: Evidence) -> str:
    """The evidence sentences, in reading order, as the model reads them."""
    return "\n".join(defuse_special_tokens(s.text) for s in evidence.in_reading_order())


def messages(evidence: Evidence, style: Style, language: str) -> list[dict[str, str]]:
    user = _template(f"evidence_{style}.txt").format(
        evidence=evidence_block(evidence),
        question=evidence.question.strip(),
        language=LANGUAGE_NAMES.get(language, "English"),
    )
    return [
        {"role": "system", "content": _template("evidence_system.txt").strip()},
        {"role": "user", "content": user},
    ]


def draft_pieces(
    evidence: Evidence,
    style: Style,
    generator: Generator | None,
    language: str,
    max_new_tokens: int | None = None,
) -> GeneratorType[str, None, Draft]:
    """Yield the model's pieces as they come (not to be shown: the draft is unchecked);
    return the ``Draft``. Closing it early stops the model at its next token."""
    if style == "evidence" or generator is None or not evidence.spans:
        return Draft("evidence", "")
    prompt = messages(evidence, style, language)
    limit = min(max_new_tokens or MAX_NEW_TOKENS[style], MAX_NEW_TOKENS[style])
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    stream = generator.stream(prompt, limit)
    try:
        for piece in stream:
            if first is None:
                first = time.perf_counter() - started
            pieces.append(piece)
            yield piece
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return Draft(style, "".join(pieces).strip(), generator.count_tokens(prompt), first, len(pieces))


def compose(
    evidence: Evidence,
    style: Style,
    generator: Generator | None,
    language: str,
    max_new_tokens: int | None = None,
) -> Draft:
    """The draft of ``style`` from ``evidence`` (the model runs for short and sentence)."""
    drafting = draft_pieces(evidence, style, generator, language, max_new_tokens)
    while True:
        try:
            next(drafting)
        except StopIteration as done:
            draft: Draft = done.value
            return draft
