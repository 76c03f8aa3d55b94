"""A conversation as Markdown, with its sources; every stored string escaped.

Document words, titles, questions and answers are text, never markup: ``<``,
``>`` and ``&`` become entities, other Markdown characters get a backslash, and
``://``, ``www.`` and ``@`` lose their power, so nothing stored becomes a link,
an image, HTML, emphasis or a heading when the export is rendered. Read raw, the
export shows those backslashes; rendered, it shows the words as they were.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conversations import Conversation, ConversationTurn

MAX_EXPORT_CHARS = 2_000_000
EXCERPT_CHARS = 400  # of a passage, in the export, when the answer quoted none of it
REMOVED = "(document removed)"


def markdown_text(text: str) -> str:
    """``text`` escaped for Markdown: it renders as the same words and never as a link,
    image, HTML, emphasis or heading. ``<``, ``>`` and ``&`` become entities; other
    markup characters get a backslash; ``://``, ``www.`` and ``@`` lose their power."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = re.sub(r"([\\`*_{}\[\]()#+!|~$@:])", r"\\\1", escaped)
    escaped = re.sub(r"(?i)\b(www)\.", r"\1\\.", escaped)
    escaped = re.sub(r"(?m)^(\s*)(\d+)([.)])", r"\1\2\\\3", escaped)  # "1." starts a list
    return re.sub(r"(?m)^(\s*)([-=])", r"\1\\\2", escaped)  # so do "-", "---", "==="


def export_markdown(conversation: Conversation, max_chars: int = MAX_EXPORT_CHARS) -> str:
    """``ConversationStore.export_markdown`` for a conversation already read."""
    head = [
        f"# {markdown_text(conversation.title)}",
        "",
        f"Exported from kbqa · {len(conversation.turns)} "
        f"question{'' if len(conversation.turns) == 1 else 's'} · started "
        f"{_shown_time(conversation.created_at)} · last {_shown_time(conversation.updated_at)}",
    ]
    parts = ["\n".join(head)]
    size = len(parts[0])
    for number, turn in enumerate(conversation.turns, 1):
        block = _turn_markdown(number, turn)
        if size + len(block) + 2 > max_chars:
            left = len(conversation.turns) - number + 1
            parts.append(f"*The export stops here: {left} more question(s) would pass "
                         f"its limit of {max_chars:,} characters.*")  # fmt: skip
            break
        parts.append(block)
        size += len(block) + 2
    return "\n\n".join(parts) + "\n"


def _turn_markdown(number: int, turn: ConversationTurn) -> str:
    lines = [f"## {number}\\. {markdown_text(_one_line(turn.question))}", ""]
    about = [_shown_time(turn.asked_at), f"{markdown_text(turn.style)} style"]
    if turn.scope_label or turn.documents or turn.tags:
        scope = turn.scope_label or "; ".join((*turn.documents, *turn.tags))
        about.append(f"within: {markdown_text(_one_line(scope))}")
    if turn.standalone and turn.standalone != turn.question:
        about.append(f"read as: {markdown_text(_one_line(turn.standalone))}")
    lines += ["*" + " · ".join(about) + "*", "", _paragraphs(turn.answer)]
    if turn.citations:
        lines += ["", "**Sources**", ""]
    for citation in turn.citations:
        where = f", page {citation.page}" if citation.page is not None else ""
        gone = f" {REMOVED}" if citation.removed else ""
        lines.append(f"- \\[{citation.number}\\] **{markdown_text(_one_line(citation.name))}**"
                     f"{where}{gone}")  # fmt: skip
        words = citation.quote or _excerpt(citation.text)
        for line in words.splitlines() or [""]:
            lines.append(f"  > {markdown_text(line.strip())}")  # indented: a code block
    return "\n".join(lines)


def _paragraphs(text: str) -> str:
    """Lines kept as lines (a hard break), blank lines as paragraphs, all escaped."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(
        "  \n".join(markdown_text(line.strip()) for line in p.splitlines() if line.strip())
        for p in paragraphs
    )


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shown_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return markdown_text(iso[:40])
