"""kbqa's web app: chat with your documents, offline, with the cited passages shown.

Run with ``kbqa serve`` (or ``streamlit run app/web/main.py``); ``KBQA_KB`` picks
the knowledge base to open first, ``KBQA_*`` settings pick the models.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import streamlit as st  # noqa: E402 - after the offline switches

from kbqa.app.web import chat, conversations, scoping, sidebar, state  # noqa: E402
from kbqa.app.web.style import CSS  # noqa: E402
from kbqa.errors import KbqaError  # noqa: E402


def main() -> None:
    st.set_page_config(page_title="kbqa", page_icon=":material/menu_book:", layout="wide")
    st.html(CSS)
    config = state.settings()
    models = state.models(config)
    queue = state.ingest_queue()

    with st.sidebar:
        st.markdown("### :blue[:material/menu_book:] kbqa")
        st.caption("Answers from your documents · offline · cited")
        folder = sidebar.choose_kb(config)
        try:
            kb = state.open_kb(folder, config)
        except KbqaError as error:
            kb = None
            st.error(chat.md_escape(str(error)))
        if kb is not None:
            sidebar.upload(folder, config, models)
            sidebar.documents(kb, busy=queue.busy(folder))
            st.divider()
            chosen = scoping.picker(kb, kb.documents())
            kept = st.container()  # filled after the chat: this run's answer is kept by then
            st.divider()
            sidebar.answer_style(kb)
            last_answer = st.container()  # filled once this run's answer is in
            sidebar.models_panel(config, kb, models)

    _flash()
    if kb is None:
        st.info("Pick another knowledge base in the sidebar, or create a new one.")
        return
    _chat_page(folder, kb, models, chosen)
    with kept:
        conversations.panel(kb)
    exchanges = chat.conversation(folder)
    answered = [e.answer for e in exchanges if e.answer is not None and not e.asked_at]
    with last_answer:
        sidebar.last_answer_panel(answered[-1] if answered else None)


def _chat_page(folder: Path, kb, models: state.Models, chosen: scoping.Chosen) -> None:
    records = kb.documents()
    if records:
        models.warm_up()  # questions are coming: load the models while the user types
    exchanges = chat.conversation(folder)
    question = st.chat_input(
        "Ask a question about your documents (English or Spanish)…",
        disabled=not records or chosen.error is not None,
        max_chars=1000,
        submit_mode="stop",  # while an answer streams, the send button stops it
    )
    if question and question.strip():
        label = chosen.label if chosen.scope else ""
        exchanges.append(
            chat.Exchange(question.strip(), str(folder), scope=chosen.scope, scope_label=label)
        )

    title, clear = st.columns([0.8, 0.2], vertical_alignment="bottom")
    chunks = sum(r.chunks for r in records)
    title.markdown(
        f'<div class="kbqa-title">{chat.plain_html(state.kb_label(folder, state.settings()))}'
        f'</div><div class="kbqa-subtitle">{_count(len(records), "document")} · '
        f"{_count(chunks, 'passage')}</div>",
        unsafe_allow_html=True,
    )
    if records:
        st.markdown(scoping.header(chosen))
    if exchanges and clear.button("New conversation", icon=":material/refresh:", width="stretch"):
        conversations.start_new(folder)
        st.rerun()

    if not exchanges:
        _welcome(bool(records))
    chat.show_conversation(
        exchanges,
        chat.Asker(
            kb,
            models,
            top_k=int(st.session_state.get("top_k", kb.answer_options.top_k)),
            rewrite_followups=bool(st.session_state.get("rewrite", True)),
            style=st.session_state.get("answer_style", kb.answer_options.answer_style),
            save=conversations.saver(kb),
        ),
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _welcome(has_documents: bool) -> None:
    if has_documents:
        st.markdown(
            '<div class="kbqa-welcome"><b>Ask anything the documents cover.</b><br>'
            "Each answer cites its passages [1] with the page, and a picture of the PDF "
            "page or image with the passage marked. When the documents do not hold the "
            "answer, kbqa says so instead of guessing. Follow-up questions (“and in "
            "2020?”) understand the conversation. <i>Ask within</i> in the sidebar picks "
            "the documents an answer may use; conversations are kept there too.</div>",
            unsafe_allow_html=True,
        )
    else:
        st.markdown(
            '<div class="kbqa-welcome"><b>This knowledge base is empty.</b><br>'
            "Add PDF, Word, HTML, Markdown or text files with <i>Add documents</i> in the "
            "sidebar, then ask questions about them here. Everything stays on this "
            "machine.</div>",
            unsafe_allow_html=True,
        )


def _flash() -> None:
    """One-off notices from the previous run (created, deleted, errors)."""
    message = st.session_state.pop("flash", None)
    if message:
        st.toast(message, icon=":material/check_circle:")
    error = st.session_state.pop("flash_error", None)
    if error:
        st.error(error)


main()
