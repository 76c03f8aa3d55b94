"""Follow-up questions: rewrite "¿y cuántos tiene Jurassic-1?" into a standalone question.

Retrieval sees one question at a time, so a follow-up that leans on the
conversation ("and how many does it have?") has to be made self-contained
first. The LLM does that from the last few turns, greedily and briefly; with
no history there is nothing to resolve and the LLM is not called. A small
model sometimes answers instead of rewriting, drops the follow-up's own
subject or switches language: such a rewrite is discarded and the question
is used as typed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ..models.generator import Generator
from ..text import content_words
from .citations import strip_markers
from .prompting import detect_language

log = logging.getLogger(__name__)

MAX_TURNS = 3  # earlier turns rarely hold what a follow-up points at
MAX_ANSWER_CHARS = 240  # per remembered answer, to keep the prompt short
MAX_NEW_TOKENS = 40
# The rewrite must keep at least this share of the follow-up's own content words.
MIN_KEPT_WORDS = 0.75
# ...and take at least this share of its own content words from the conversation.
MIN_FROM_CONVERSATION = 0.6

_WORDS = re.compile(r"\w+(?:[-.]\w+)*", re.UNICODE)
# "and X?", "what about X?", "¿y X?", "¿y cuántos tiene X?", "¿qué hay de X?"
_ELLIPSIS = re.compile(
    r"^\s*[¿¡]?\s*(?:and|what about|how about|y|e|y qué hay de|qué hay de|y en)\s+"
    r"(?P<rest>[^?]{1,60}?)\s*\??\s*$",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^\s*(?:rewritten|standalone question|question|pregunta(?: reescrita)?|reescrita)\s*:\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Turn:
    """One earlier exchange: what was asked (standalone) and what was answered."""

    question: str
    answer: str


@dataclass(frozen=True)
class Rewrite:
    """The question as typed and the standalone question retrieval should use."""

    question: str
    standalone: str

    @property
    def rewritten(self) -> bool:
        return self.standalone != self.question


@cache
def _template() -> str:
    prompt = resources.files("kbqa.qa").joinpath("prompts", "followup.txt")
    return prompt.read_text(encoding="utf-8")


def build_messages(question: str, history: Sequence[Turn]) -> list[dict[str, str]]:
    """The rewriting prompt: the last ``MAX_TURNS`` turns and the follow-up."""
    lines = []
    for turn in history[-MAX_TURNS:]:
        lines.append(f"User: {_one_line(turn.question)}")
        answer = _one_line(strip_markers(turn.answer))
        if len(answer) > MAX_ANSWER_CHARS:
            answer = answer[: MAX_ANSWER_CHARS - 1].rstrip() + "…"
        lines.append(f"Assistant: {answer}")
    prompt = _template().format(history="\n".join(lines), question=_one_line(question))
    return [{"role": "user", "content": prompt}]


def rewrite_followup(
    question: str,
    history: Sequence[Turn],
    generator: Generator,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> Rewrite:
    """A standalone version of ``question`` given the conversation so far.

    Without history the question is returned as is and the LLM is not called.
    """
    question = question.strip()
    if not history or not question:
        return Rewrite(question, question)
    swapped = substitute_subject(question, history[-1].question)
    if swapped:
        log.info("follow-up %r read as %r (subject swapped)", question, swapped)
        return Rewrite(question, swapped)
    reply = "".join(generator.stream(build_messages(question, history), max_new_tokens))
    candidate = clean_reply(reply)
    said = " ".join([question, *(f"{t.question} {t.answer}" for t in history[-MAX_TURNS:])])
    if acceptable(question, candidate, said) and _words_key(candidate) != _words_key(question):
        log.info("follow-up %r rewritten as %r", question, candidate)
        return Rewrite(question, candidate)
    log.info("follow-up rewrite %r not used for %r", candidate, question)
    return Rewrite(question, question)


def substitute_subject(question: str, previous: str) -> str | None:
    """ "and Jurassic-1?" after "How many parameters does GPT-3 have?": the previous
    question with its one name swapped for the follow-up's.

    Only for a follow-up that adds nothing but the new name (and words of the
    previous question), after a question naming exactly one thing: then the
    swap is certain, and better than what a 0.5B model writes. Anything
    else ("¿y quién creó Jurassic-1?") is left to the LLM.
    """
    match = _ELLIPSIS.match(question)
    if not match:
        return None
    rest = match.group("rest")
    new = _names(rest, skip_first=False)
    old = _names(previous, skip_first=True)
    if len(new) != 1 or len(old) != 1 or new[0].lower() == old[0].lower():
        return None
    if not content_words(rest) - content_words(new[0]) <= content_words(previous):
        return None  # the follow-up asks something else about the new name
    return re.sub(rf"(?<![\w-]){re.escape(old[0])}(?![\w-])", new[0], previous, count=1)


def clean_reply(reply: str) -> str:
    """The first non-empty line, without labels, quotes or markdown around it."""
    for line in reply.splitlines():
        line = _LABEL.sub("", line.strip()).strip().strip("*`\"'«»“”").strip()
        if line:
            return line
    return ""


def acceptable(question: str, candidate: str, conversation: str = "") -> bool:
    """Whether ``candidate`` can stand in for ``question`` in retrieval and answering.

    ``conversation`` is the text the rewrite may draw its words from (the
    question and the recent turns); by default only the question.
    """
    if not candidate or len(candidate) > max(200, 4 * len(question)):
        return False
    words = content_words(candidate)
    known = content_words(conversation or question)
    if words and len(words & known) / len(words) < MIN_FROM_CONVERSATION:
        return False  # words from nowhere: invented, not rewritten
    if detect_language(candidate) != detect_language(question):
        return False  # the answer would come back in the wrong language
    if not _key_terms(question) <= _key_terms(candidate) | set(_WORDS.findall(candidate.lower())):
        return False  # a name or figure of the follow-up ("Jurassic-1") got lost
    own = content_words(question)
    if own and len(own & content_words(candidate)) / len(own) < MIN_KEPT_WORDS:
        return False  # the follow-up's own subject got lost
    # An answer rather than a question: a statement with no question mark that
    # is much longer than what was asked.
    return "?" in candidate or len(candidate) <= 2 * len(question) + 40


def _key_terms(text: str) -> set[str]:
    """Names and figures, lower-cased."""
    return {w.lower() for w in _names(text, skip_first=True)}


def _names(text: str, skip_first: bool) -> list[str]:
    """Words with a digit, or with a capital letter (past the first word if ``skip_first``)."""
    words = _WORDS.findall(text)
    return [
        w
        for i, w in enumerate(words)
        if any(c.isdigit() for c in w) or (w[0].isupper() and (i or not skip_first))
    ]


def _words_key(text: str) -> str:
    """Lower-cased words only: "GPT-3?" and "gpt-3" compare equal."""
    return " ".join(_WORDS.findall(text.lower()))


def _one_line(text: str) -> str:
    return " ".join(text.split())
