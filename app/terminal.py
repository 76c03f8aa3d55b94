"""What the CLI prints: text made safe for a terminal, JSON, and a streamed answer."""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..index.scope import Scope
    from ..qa.answer import Answer
    from ..qa.followup import Turn
    from ..qa.knowledge_base import KnowledgeBase
    from ..qa.options import Style

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def say(*parts: object, file: TextIO | None = None, end: str = "\n", flush: bool = False) -> None:
    """``print`` for anything that may hold document text, names or model output.

    Control and format characters are shown escaped (``kbqa.text.printable``), so a
    file cannot send escape sequences to the terminal or forge listing lines.
    """
    from ..text import printable

    text = " ".join(printable(str(part), keep_newlines=True) for part in parts)
    print(text, file=file or sys.stdout, end=end, flush=flush)


def json_text(value: object) -> str:
    """JSON with non-ASCII kept readable but control/format characters as \\u escapes."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return "".join(
        f"\\u{ord(ch):04x}" if ch not in "\n " and unicodedata.category(ch) in _HIDDEN else ch
        for ch in text
    )


_HIDDEN = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def stream_answer(
    kb: KnowledgeBase,
    question: str,
    k: int | None,
    *,
    style: Style | None = None,
    history: Sequence[Turn] = (),
    scope: Scope | None = None,
) -> Answer:
    """Print the answer as soon as it is known, then its verdict and sources; return it.

    ``history``: the conversation so far, so that a follow-up is read in it (the engine
    rewrites it; the question searched is printed when it differs).
    """
    stream = kb.stream(question, k, style=style, history=history, scope=scope)
    for piece in stream:
        say(piece, end="", flush=True)
    say()
    answer = stream.answer
    if answer.standalone and answer.standalone != answer.question:
        say(f"\n(read as: {answer.standalone})")
    if answer.refused:
        why = answer.answerability.reason if answer.answerability else ""
        say(f"\n(not in the documents{': ' + why if why else ''}; closest passages found:)")
        for passage in answer.passages[:3]:
            say(f"  {passage.label()} (score {passage.score:.2f})")
        return answer
    if answer.shown == "evidence" and answer.not_shown_because:
        say(f"\n(the evidence is shown: the model's {answer.style} answer was set aside, "
            f"{answer.not_shown_because})")  # fmt: skip
    if answer.citations:
        say("\nSources:")
        for citation in answer.citations:
            say(f"  {citation.label()} (score {citation.score:.2f})")
            quotes = quoted(answer, citation.number)
            say(
                f"      {quotes}"
                if quotes
                else f"      {snippet(citation.text, focus=answer.text)}"
            )
    else:
        say("\n(no passage is quoted; check the answer against the sources: /sources)")
    return answer


def quoted(answer: Answer, number: int) -> str:
    """The answer's quotes from passage ``[number]``, each in “…”, on one line."""
    seen: list[str] = []
    for quote in answer.quotes:
        text = " ".join(quote.text.split())
        if quote.number == number and text not in seen:
            seen.append(text)
    return " ".join(f"“{text}”" for text in seen)


def snippet(text: str, limit: int = 160, focus: str = "") -> str:
    """The passage flattened to ``limit`` characters, around the first word of
    ``focus`` (the answer) that it contains, so the cited part shows."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    lowered = flat.lower()
    words = [w for w in re.findall(r"\w+", focus.lower()) if len(w) > 3 or w.isdigit()]
    found = [lowered.find(w) for w in words if w in lowered]
    start = max(0, min(found) - limit // 3) if found else 0
    piece = flat[start : start + limit - 2]
    return ("…" if start else "") + piece + "…"
