"""Prompt building, context packing, citation parsing and refusal detection.

Prompts live in ``qa/prompts/*.txt``. Passages are numbered ``[1]..[n]``; the
reply's markers are parsed back into the cited chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ..index.store import Hit
from ..ingest.types import display_name
from ..text import fold_accents
from .answer import Citation
from .citations import cited_numbers
from .injection import clean_passage, defuse_special_tokens, is_instruction

Messages = list[dict[str, str]]

LANGUAGE_NAMES = {"es": "Spanish", "en": "English"}
REFUSALS = {
    "es": "No lo encuentro en los documentos.",
    "en": "The documents do not contain the answer.",
}
# Other ways small models say the same thing; matched on normalized text.
_REFUSAL_MARKERS = (
    "no lo encuentro en los documentos",
    "los documentos no contienen",
    "no se encuentra en los documentos",
    "no lo se",
    "no tengo informacion",
    "no hay informacion",
    "the documents do not contain",
    "not in the documents",
    "i don't know",
    "i do not know",
    "no information",
)

_SPANISH_HINTS = frozenset(
    "el la los las de del que y en un una es por para con cómo qué cuál cuáles cuántos "
    "cuántas quién dónde cuándo son tiene tienen se su sus al lo le más o".split()
)
_ENGLISH_HINTS = frozenset(
    "the a an of and in is are to for with how what which who where when does do "
    "has have many much it its on by or from".split()
)


def detect_language(text: str) -> str:
    """``es`` or ``en``: the two languages kbqa answers in.

    A stop-word count is enough to tell these two apart on one question, costs
    nothing, and is deterministic; a general detector would add a dependency
    and guess among a hundred languages we do not answer in.
    """
    if any(mark in text for mark in "¿¡ñÑ"):
        return "es"
    words = re.findall(r"[\wáéíóúü]+", text.lower())
    spanish = sum(word in _SPANISH_HINTS for word in words)
    english = sum(word in _ENGLISH_HINTS for word in words)
    return "es" if spanish > english else "en"


@cache
def _template(name: str) -> str:
    return resources.files("kbqa.qa").joinpath("prompts", name).read_text(encoding="utf-8")


def passage_label(hit: Hit) -> str:
    name = display_name(hit.chunk.source)
    # A file name is data too: "ignore previous instructions.pdf" is shown as "document".
    name = "document" if is_instruction(name) else defuse_special_tokens(name)
    page = f", page {hit.chunk.page}" if hit.chunk.page is not None else ""
    return f"{name}{page}"


# "sentence" answers a person; "short" gives only the answering words, the form
# SQuAD-style exact match and F1 score (``kbqa eval qa --answer-style short``).
ANSWER_STYLES = {"sentence": "user.txt", "short": "user_short.txt"}


def passage_text(hit: Hit) -> str:
    """What the model reads of a passage: its sentences addressed to the model taken out."""
    return clean_passage(hit.chunk.text).text.strip()


def build_messages(
    question: str, hits: Sequence[Hit], language: str, style: str = "sentence"
) -> Messages:
    passages = "\n".join(
        _template("passage.txt").format(number=n, label=passage_label(h), text=passage_text(h))
        for n, h in enumerate(hits, start=1)
    )
    fields = {
        "refusal": REFUSALS[language],
        "language": LANGUAGE_NAMES[language],
        "passages": passages.strip(),
        "question": question.strip(),
    }
    system = _template("system.txt").format(**fields)
    user = _template(ANSWER_STYLES[style]).format(**fields)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class PackedPrompt:
    messages: Messages
    hits: tuple[Hit, ...]
    prompt_tokens: int
    context_tokens: int
    dropped: int


def pack_prompt(
    question: str,
    hits: Sequence[Hit],
    language: str,
    count_tokens: Callable[[Messages], int],
    context_tokens: int,
    style: str = "sentence",
) -> PackedPrompt:
    """Add passages best first while the prompt fits the budget; never cut one.

    ``context_tokens`` bounds the tokens the passages add to the bare prompt,
    measured with the LLM's own tokenizer and chat template. A passage that
    does not fit is skipped whole and counted in ``dropped``, and so is one
    that holds nothing but instructions to the model (``qa/injection.py``).
    """
    bare = count_tokens(build_messages(question, [], language, style))
    kept: list[Hit] = []
    total = bare
    for hit in hits:
        if clean_passage(hit.chunk.text).only_instructions:
            continue
        candidate = count_tokens(build_messages(question, [*kept, hit], language, style))
        if candidate - bare <= context_tokens:
            kept.append(hit)
            total = candidate
    return PackedPrompt(
        build_messages(question, kept, language, style),
        tuple(kept),
        total,
        total - bare,
        len(hits) - len(kept),
    )


def parse_citations(text: str, hits: Sequence[Hit]) -> tuple[Citation, ...]:
    """The passages cited as ``[n]`` or ``[n, m]``, in order of first mention.

    Numbers outside ``1..len(hits)`` are ignored: they point at nothing.
    """
    seen: dict[int, Citation] = {}
    for n in cited_numbers(text):
        if 1 <= n <= len(hits) and n not in seen:
            seen[n] = Citation.from_hit(n, hits[n - 1])
    return tuple(seen.values())


def _normalize(text: str) -> str:
    return fold_accents(text.lower().replace("’", "'"))


def is_refusal(text: str, cites: bool) -> bool:
    """True when the reply says the documents do not hold the answer.

    A reply that opens with a refusal is one; a reply that cites passages and
    only mentions a gap later ("... [1]; the documents do not contain X") is not.
    """
    normalized = _normalize(text).strip()
    if not normalized:
        return True
    if normalized.startswith(_REFUSAL_MARKERS):
        return True
    return not cites and any(marker in normalized for marker in _REFUSAL_MARKERS)
