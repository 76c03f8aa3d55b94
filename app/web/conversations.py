"""Conversations kept in the knowledge base: saved as they are asked, listed in the
sidebar, reopened with the same answers and sources, renamed, deleted, exported.

The page's conversation is a list of ``chat.Exchange``; each answered exchange is
appended to the open conversation of ``index/conversations.py`` (one is created
with the first answer). Reopening turns the stored turns back into exchanges
with an ``Answer`` rebuilt from them, so they are shown, and read by follow-up
questions, exactly like the ones just asked.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import streamlit as st

from ...errors import KbqaError
from ...index.conversations import (
    MAX_TITLE_CHARS,
    ConversationStore,
    ConversationSummary,
    ConversationTurn,
)
from ...index.store import DATABASE_NAME
from ...qa.conversation import answer_of, kept_turn
from ...qa.knowledge_base import KnowledgeBase
from ...text import fold_accents
from . import chat, scoping
from .chat import Exchange
from .chat import md_escape as _md
from .highlight import highlight_spans

log = logging.getLogger(__name__)

LISTED = 30  # conversations listed before "show all"


# -- the store and the open conversation ------------------------------------------------


def store_of(kb: KnowledgeBase) -> ConversationStore | None:
    """The knowledge base's conversations; None while it has no database (nothing added)."""
    if not (kb.folder / DATABASE_NAME).is_file():
        return None
    try:
        return kb.conversations
    except KbqaError as error:  # a folder without a knowledge base in it (yet)
        log.info("no conversations for %s: %s", kb.folder, error)
        return None


def open_id(folder: Path) -> str | None:
    opened: dict[str, str | None] = st.session_state.setdefault("open_conversation", {})
    return opened.get(str(folder))


def _set_open(folder: Path, conversation_id: str | None) -> None:
    st.session_state.setdefault("open_conversation", {})[str(folder)] = conversation_id


def start_new(folder: Path) -> None:
    """An empty page; the next answer starts a new conversation."""
    chat.conversation(folder).clear()
    _set_open(folder, None)


# -- saving -----------------------------------------------------------------------------


def saver(kb: KnowledgeBase):
    """What ``chat.Asker.save`` calls with each answered exchange."""

    def save(exchange: Exchange) -> None:
        store = store_of(kb)
        if store is None or exchange.answer is None:
            return
        folder = kb.folder
        turn = turn_of(exchange)
        try:
            conversation_id = open_id(folder)
            if conversation_id is not None:
                try:
                    store.append_turn(conversation_id, turn)
                    return
                except KbqaError as error:
                    if "no conversation" not in str(error):
                        raise
                    # deleted meanwhile (another tab): this answer starts a new one
            created = store.create(exchange.question)
            store.append_turn(created.id, turn)
            _set_open(folder, created.id)
        except KbqaError as error:
            exchange.note = f"This answer was not saved: {error}"

    return save


def turn_of(exchange: Exchange) -> ConversationTurn:
    """An answered exchange as stored: the cited passages with the spans shown marked."""
    answer = exchange.answer
    assert answer is not None
    return kept_turn(
        exchange.question,
        answer,
        exchange.scope,
        exchange.scope_label,
        lambda c: highlight_spans(answer, c, exchange.searched),
    )


def exchange_of(turn: ConversationTurn, folder: Path) -> Exchange:
    """A stored turn as the page shows it: an exchange with its answer rebuilt."""
    return Exchange(
        turn.question,
        str(folder),
        answer=answer_of(turn),
        scope_label=turn.scope_label,
        asked_at=turn.asked_at,
        removed=frozenset(c.doc_id for c in turn.citations if c.removed),
    )


# -- the sidebar panel --------------------------------------------------------------------


def panel(kb: KnowledgeBase) -> None:
    """The kept conversations, newest first; the open one can be renamed, exported, deleted."""
    store = store_of(kb)
    try:
        listed = store.list() if store is not None else []
    except KbqaError as error:
        st.error(_md(str(error)))
        return
    st.markdown(f"**Conversations** · {len(listed)}")
    if store is None or not listed:
        st.caption("Each question you ask is kept here, with its answer and sources.")
        return
    current = open_id(kb.folder)
    shown = listed if st.session_state.get("all_conversations") else listed[:LISTED]
    area = st.container(height=300 if len(shown) > 6 else "content", border=False)
    for summary in shown:
        _row(area, kb, store, summary, summary.id == current)
    if len(shown) < len(listed) and st.button(
        f"Show all {len(listed)}", key="all-conversations", type="tertiary"
    ):
        st.session_state.all_conversations = True
        st.rerun()


def _row(area, kb: KnowledgeBase, store: ConversationStore, item: ConversationSummary,
         is_open: bool) -> None:  # fmt: skip
    row = area.container(border=is_open)
    questions = f"{item.turn_count} question" + ("" if item.turn_count == 1 else "s")
    row.button(
        _md(item.title),  # a label is Markdown: a title is text, never a link
        key=f"conversation-{item.id}",
        icon=":material/chat:" if is_open else ":material/chat_bubble_outline:",
        type="tertiary",
        help=f"{questions} · {_when(item.updated_at)}",
        on_click=_open,
        args=(kb, item.id),
        width="stretch",
    )
    if not is_open:
        return
    row.caption(f"{questions} · {_when(item.updated_at)}")
    rename, export, delete = row.columns(3)
    with rename.popover("", icon=":material/edit:", help="Rename"):
        with st.form(f"rename-{item.id}", border=False):
            title = st.text_input("Title", value=item.title, max_chars=MAX_TITLE_CHARS)
            if st.form_submit_button("Rename", type="primary"):
                try:
                    store.rename(item.id, title)
                except KbqaError as error:
                    st.error(_md(str(error)))
                else:
                    st.rerun()
    try:
        markdown = store.export_markdown(item.id)
    except KbqaError as error:
        markdown = f"{error}\n"
    export.download_button(
        "",
        markdown.encode(),
        file_name=f"{export_name(item.title)}.md",
        mime="text/markdown",
        key=f"export-{item.id}",
        icon=":material/download:",
        help="Export as Markdown, with the sources",
        on_click="ignore",
    )
    confirming = st.session_state.get("confirm_delete_conversation") == item.id
    if not confirming:
        if delete.button("", key=f"delete-conversation-{item.id}", icon=":material/delete:",
                         help="Delete this conversation"):  # fmt: skip
            st.session_state.confirm_delete_conversation = item.id
            st.rerun()
        return
    row.caption("Delete this conversation? Its questions and answers go for good.")
    yes, no = row.columns(2)
    yes.button("Delete", key=f"really-delete-conversation-{item.id}", type="primary",
               on_click=_delete, args=(kb, item.id), width="stretch")  # fmt: skip
    if no.button("Cancel", key=f"cancel-delete-conversation-{item.id}", width="stretch"):
        st.session_state.confirm_delete_conversation = None
        st.rerun()


def _open(kb: KnowledgeBase, conversation_id: str) -> None:
    """Show a kept conversation, and ask further questions within its last scope."""
    store = store_of(kb)
    if store is None:
        return
    try:
        conversation = store.get(conversation_id)
    except KbqaError as error:
        st.session_state.flash_error = _md(str(error))
        return
    exchanges = chat.conversation(kb.folder)
    exchanges[:] = [exchange_of(turn, kb.folder) for turn in conversation.turns]
    _set_open(kb.folder, conversation.id)
    if conversation.turns:
        last = conversation.turns[-1]
        scoping.restore(kb, last.documents, last.tags)


def _delete(kb: KnowledgeBase, conversation_id: str) -> None:
    st.session_state.confirm_delete_conversation = None
    store = store_of(kb)
    if store is None:
        return
    try:
        store.delete(conversation_id)
    except KbqaError as error:
        st.session_state.flash_error = _md(str(error))
        return
    if open_id(kb.folder) == conversation_id:
        start_new(kb.folder)
    st.session_state.flash = "Deleted the conversation."


def export_name(title: str) -> str:
    """A file name from the title: letters, digits and dashes only (never a path)."""
    name = re.sub(r"[^\w]+", "-", fold_accents(title), flags=re.ASCII).strip("-")[:60]
    return name.strip("-") or "conversation"


def _when(iso: str) -> str:
    from .sidebar import when

    return when(iso)
