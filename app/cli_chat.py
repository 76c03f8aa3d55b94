"""``kbqa chat``: an interactive conversation in the terminal, kept like the app's.

Every chat is stored in the knowledge base's conversations (``index/conversations.py``,
the same ones the web app lists), turn by turn as it goes, so a chat that is
interrupted is not lost. ``--resume`` reopens the latest one (or ``--resume ID``,
an id prefix): its turns are printed again and follow-ups are read in them; without
``--doc``/``--tag`` the resumed chat keeps the scope of its last question.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import KbqaError
from .terminal import EXIT_OK, quoted, say, snippet, stream_answer

if TYPE_CHECKING:
    from ..index.conversations import Conversation, ConversationStore
    from ..index.scope import Scope
    from ..ingest.types import DocumentRecord
    from ..qa.answer import Answer
    from ..qa.knowledge_base import KnowledgeBase
    from ..qa.options import Style

TITLE_CHARS = 80  # a new conversation is titled by its first question, cut here


def run_chat(
    kb: KnowledgeBase, style: Style | None, scope: Scope | None, resume: str | None
) -> int:
    from ..qa.conversation import kept_turn
    from ..qa.followup import Turn

    conversations = kb.conversations
    turns: list[Turn] = []  # the conversation so far: follow-ups are read in it
    conversation_id: str | None = None
    if resume is not None:
        conversation = _find(conversations, resume)
        conversation_id = conversation.id
        say(f"resuming “{conversation.title}” ({len(conversation.turns)} turns)")
        for turn in conversation.turns:
            say(f"\n> {turn.question}\n{turn.answer}")
            turns.append(Turn(turn.standalone or turn.question, turn.answer))
        if scope is None and conversation.turns:
            scope = _last_scope(kb, conversation)
    documents = kb.resolve_scope(scope)
    names = ", ".join(d.name for d in documents[:5]) + (", ..." if len(documents) > 5 else "")
    say(f"kbqa chat over {kb.folder} ({len(documents)} documents: {names})")
    say("Ask in Spanish or English. /sources shows the passages of the last answer; /quit leaves.")
    last_answer: Answer | None = None
    while True:
        try:
            question = input("\n> ").strip()
        except EOFError:
            say()
            return EXIT_OK
        if not question:
            continue
        if question in ("/quit", "/exit"):
            return EXIT_OK
        if question == "/sources":
            _print_sources(last_answer)
            continue
        last_answer = stream_answer(kb, question, None, style=style, history=turns, scope=scope)
        turns.append(Turn(last_answer.standalone or last_answer.question, last_answer.text))
        try:
            if conversation_id is None:
                conversation_id = conversations.create(question[:TITLE_CHARS]).id
            conversations.append_turn(conversation_id, kept_turn(question, last_answer, scope))
        except KbqaError as error:  # the answer stands; only keeping it failed
            say(f"(this turn was not kept: {error})")


def _last_scope(kb: KnowledgeBase, conversation: Conversation) -> Scope | None:
    """The scope of the last question, less the documents and tags that are gone since."""
    from ..index.scope import Scope

    last = conversation.turns[-1]
    records = kb.documents()
    documents = [d for d in last.documents if _still_matches(Scope.of([d]), records)]
    tags = [t for t in last.tags if _still_matches(Scope.of(tags=[t]), records)]
    if (last.documents or last.tags) and not (documents or tags):
        say("(the documents this conversation was scoped to are gone: asking all of them)")
    return Scope.of(documents, tags) if documents or tags else None


def _still_matches(scope: Scope, records: list[DocumentRecord]) -> bool:
    from ..index.scope import ScopeError, resolve

    try:
        return bool(resolve(scope, records))
    except ScopeError:
        return False


def _find(conversations: ConversationStore, wanted: str) -> Conversation:
    """The latest conversation (``wanted`` empty) or the one whose id starts with it."""
    listed = conversations.list()
    if not listed:
        raise KbqaError("no conversation to resume yet: start one with `kbqa chat`")
    if not wanted:
        return conversations.get(listed[0].id)
    matches = [c for c in listed if c.id.startswith(wanted.lower())]
    if len(matches) != 1:
        shown = "; ".join(f"{c.id[:8]} {c.title}" for c in (matches or listed)[:10])
        problem = "several conversations match" if matches else "no conversation matches"
        raise KbqaError(f"{problem} {wanted!r}: {shown}")
    return conversations.get(matches[0].id)


def _print_sources(answer: Answer | None) -> None:
    for passage in answer.passages if answer else []:
        say(f"{passage.label()} (score {passage.score:.2f})")
        say(f"    {snippet(passage.text, 300)}")
        quotes = quoted(answer, passage.number) if answer else ""
        if quotes:
            say(f"    quoted: {quotes}")
