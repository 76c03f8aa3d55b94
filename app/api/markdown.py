"""What a chat app shows of an answer: its ``content``, as Markdown.

Generic OpenAI-protocol clients (Open WebUI, LibreChat) render ``content`` as
Markdown and ignore every other field, so the answer's sources go there too:

    > GPT-3 from OpenAI has 175 billion parameters [1].      (short/sentence only)

    175 billion [1]

    **Sources**
    - [1] [models.md, p. 2](http://…/v1/sources/…) — "GPT-3 from OpenAI has …"

The quoted evidence comes first in the ``short`` and ``sentence`` styles because it
is known before the model writes (streamed at once, ``completions.py``); the checked
words follow it, or nothing does when the evidence had to be the answer. In the
``evidence`` style the answer is the evidence, unquoted.

Document text is data: in the answer it is made inert (no HTML, images, links or
link definitions of its own), in the sources block every Markdown character is
escaped. An earlier assistant turn sent back by the client is stripped of both
blocks (``plain_turn``) before the engine reads the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ...qa.answer import Answer, Citation

HEADINGS = {"es": "Fuentes", "en": "Sources"}
QUOTE_CHARS = 160  # of a quote shown in the sources block; the linked page has it all
# Mid-line, these are the characters that format, link or inject markup ($: math).
_ALL_MARKDOWN = re.compile(r"([\\`*_\[\]<!~$])")
# Constructs that would fetch, link or inject markup: an image, an inline link, a link
# definition, raw HTML or an autolink. Bold, italics and headings stay: they only style.
_ACTIVE = re.compile(r"!\[|\]\(|\]:|<")
_HEADING = "|".join(map(re.escape, HEADINGS.values()))
_FOOTER = re.compile(rf"\n*\*\*(?:{_HEADING})\*\*\n(?:- .*(?:\n|$))+\s*$")


def inert(text: str) -> str:
    """``text`` with the Markdown that could fetch, link or inject markup escaped."""
    return _ACTIVE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    token = match.group(0)  # "<", or two characters: "![" → "!\[", "](" → "]\(", "]:" → "]\:"
    return "\\<" if token == "<" else token[0] + "\\" + token[1]


def literal(text: str) -> str:
    """``text`` shown as it is, mid-line: every active Markdown character escaped."""
    return _ALL_MARKDOWN.sub(r"\\\1", " ".join(text.split()))


def evidence_quote(evidence: str) -> str:
    """The evidence as a Markdown block quote (each line quoted, made inert)."""
    lines = [line.strip() for line in inert(evidence).splitlines() if line.strip()]
    return "\n".join(f"> {line}" for line in lines)


def shortened(text: str, limit: int = QUOTE_CHARS) -> str:
    words = " ".join(text.split())
    if len(words) <= limit:
        return words
    return words[: limit - 1].rsplit(" ", 1)[0] + "…"


def sources_block(answer: Answer, link: Callable[[Citation], str]) -> str:
    """``**Sources**`` and one line per cited passage, each linking to its page."""
    if not answer.citations:
        return ""
    lines = [f"**{HEADINGS.get(answer.language, HEADINGS['en'])}**"]
    for citation in answer.citations:
        quotes = [q.text for q in answer.quotes if q.number == citation.number]
        quote = shortened(" … ".join(quotes) if quotes else citation.text)
        where = literal(citation.name) + (f", p. {citation.page}" if citation.page else "")
        lines.append(f"- [{citation.number}] [{where}]({link(citation)}) — “{literal(quote)}”")
    return "\n".join(lines)


def content(answer: Answer, evidence: str | None, footer: str) -> tuple[str, str]:
    """The content as (lead, rest): the lead is known before the model writes."""
    lead = lead_for(answer.style, evidence)
    # With the evidence quoted and the model's words set aside, the quote is the answer.
    quote_only = bool(lead) and answer.shown != "draft" and not answer.refused
    body = "" if quote_only else inert(answer.text)
    parts = [part for part in (body, footer) if part]
    rest = "\n\n".join(parts)
    return lead, ("\n\n" + rest if lead and rest else rest)


def lead_for(style: str, evidence: str | None) -> str:
    """What is shown before the model writes: the quoted evidence (short, sentence)."""
    if style == "evidence" or not evidence:
        return ""
    return evidence_quote(evidence)


def plain_turn(content: str) -> str:
    """An earlier answer as the engine reads it: no quoted evidence, no sources block."""
    paragraphs = [p for p in re.split(r"\n\s*\n", _FOOTER.sub("", content)) if p.strip()]
    if paragraphs and all(line.startswith(">") for line in paragraphs[0].splitlines()):
        if len(paragraphs) > 1:
            paragraphs = paragraphs[1:]
        else:
            paragraphs = [" ".join(line[1:].strip() for line in paragraphs[0].splitlines())]
    return "\n\n".join(paragraphs).strip()
