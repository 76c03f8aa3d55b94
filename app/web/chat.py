"""The conversation: asking (the engine reads follow-ups in it), streaming, answers and
sources."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from ...errors import KbqaError
from ...index.conversation_markdown import REMOVED
from ...index.scope import Scope
from ...qa.answer import Answer, Citation
from ...qa.citations import render_markers
from ...qa.followup import Turn
from ...qa.knowledge_base import KnowledgeBase
from ...qa.options import Style
from . import originals, state
from .highlight import highlight_spans, passage_html
from .pdfpage import Mark, render_page
from .state import Models

CURSOR = "▌"
USER_AVATAR = ":material/person:"
ASSISTANT_AVATAR = ":material/menu_book:"
CLOSEST_SHOWN = 3


@dataclass
class Exchange:
    """One question and what came of it."""

    question: str
    kb: str
    answer: Answer | None = None
    error: str | None = None
    started: bool = False  # an answer run began; pending and started means it was cut short
    scope: Scope | None = None  # the documents it may be answered from (None: all)
    scope_label: str = ""  # the scope in words, as the header said when it was asked
    asked_at: str = ""  # set for an exchange reopened from a kept conversation
    removed: frozenset[str] = frozenset()  # documents cited then, deleted since
    note: str | None = None  # e.g. why the answer could not be kept
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def pending(self) -> bool:
        return self.answer is None and self.error is None

    @property
    def interrupted(self) -> bool:
        return self.pending and self.started

    @property
    def searched(self) -> str:
        """The question as searched: a follow-up rewritten in its conversation."""
        return (self.answer.standalone if self.answer else "") or self.question

    @property
    def rewritten(self) -> bool:
        return self.searched != self.question


def conversation(kb: Path) -> list[Exchange]:
    """This session's conversation with the knowledge base ``kb`` (kept per KB)."""
    chats: dict[str, list[Exchange]] = st.session_state.setdefault("chats", {})
    return chats.setdefault(str(kb), [])


def history(exchanges: list[Exchange]) -> list[Turn]:
    """Earlier answered turns, as the engine reads a follow-up in them."""
    return [Turn(e.searched, e.answer.text) for e in exchanges if e.answer is not None]


@dataclass(frozen=True)
class Asker:
    """What answering needs: the knowledge base, the models and the user's knobs."""

    kb: KnowledgeBase
    models: Models
    top_k: int
    rewrite_followups: bool
    style: Style | None = None  # the sidebar's answer style (None: the settings')
    save: Callable[[Exchange], None] | None = None  # keeps each answered exchange


def show_conversation(exchanges: list[Exchange], asker: Asker) -> None:
    """Every exchange in order; new questions are answered in place, streaming.

    A question whose answer was cut short (Stop, or a click that reran the
    page) says so and offers to ask again, rather than starting over unasked.
    """
    for index, exchange in enumerate(exchanges):
        with st.chat_message("user", avatar=USER_AVATAR):
            st.markdown(
                f'<div class="kbqa-question">{plain_html(exchange.question)}</div>',
                unsafe_allow_html=True,
            )
        with st.chat_message("assistant", avatar=ASSISTANT_AVATAR):
            # One slot, filled the same way while streaming and afterwards, so a
            # rerun replaces elements in place instead of leaving stale ones.
            slot = st.empty()
            if exchange.interrupted:
                _interrupted(slot, exchange)
            elif exchange.pending:
                _answer(slot, exchange, exchanges[:index], asker)
            else:
                with slot.container():
                    _finished(exchange, latest=index == len(exchanges) - 1)


def _interrupted(slot, exchange: Exchange) -> None:
    with slot.container():
        st.caption(":material/stop_circle: Stopped before the answer was complete.")
        if st.button("Ask again", key=f"again-{exchange.id}", icon=":material/replay:"):
            exchange.started = False
            st.rerun()


def _answer(slot, exchange: Exchange, earlier: list[Exchange], asker: Asker) -> None:
    """Answer ``exchange``, streaming the reply into ``slot`` as it is generated."""
    exchange.started = True
    models = asker.models
    with slot.container():
        status = st.empty()
        body = st.empty()
    models.warm_up()
    if not models.ready.is_set():
        status.caption(":material/hourglass_top: Loading the models (first answer only)…")
        models.ready.wait()
    if models.error:
        exchange.error = f"The models could not be loaded: {models.error}"
    else:
        try:
            with models.llm_lock:
                turns = history(earlier) if asker.rewrite_followups else []
                status.caption(
                    ":material/forum: Reading the question in its conversation…"
                    if turns
                    else ":material/search: Searching the documents…"
                )
                stream = asker.kb.stream(
                    exchange.question,
                    asker.top_k,
                    style=asker.style,
                    history=turns,
                    scope=exchange.scope,
                )
                text = ""
                for piece in stream:
                    if not text:
                        status.caption(":material/edit_note: Writing the answer…")
                    text += piece
                    body.markdown(answer_html(text, cursor=True), unsafe_allow_html=True)
                exchange.answer = stream.answer
        except KbqaError as error:
            exchange.error = str(error)
    if exchange.answer is not None and asker.save is not None:
        asker.save(exchange)
    with slot.container():
        _finished(exchange, latest=True)


def _finished(exchange: Exchange, latest: bool) -> None:
    if exchange.error:
        st.error(md_escape(exchange.error))
    else:
        answer_body(exchange, latest)


def answer_body(exchange: Exchange, latest: bool) -> None:
    answer = exchange.answer
    assert answer is not None
    if answer.refused:
        st.markdown(
            f'<div class="kbqa-refusal">{plain_html(answer.text)}</div>',
            unsafe_allow_html=True,
        )
        shown = answer.passages[:CLOSEST_SHOWN]
        if shown:
            with st.expander(f"Closest passages found · {len(shown)}", expanded=False):
                why = answer.answerability.reason if answer.answerability else ""
                st.caption(
                    md_escape(f"Why not answered: {why}.")
                    if why
                    else "None of these was close enough to answer from; they are what "
                    "the search found nearest to the question."
                )
                for passage in shown:
                    source_card(passage, exchange, highlight=False, picture=False)
    else:
        st.markdown(answer_html(answer.text), unsafe_allow_html=True)
        cited = answer.citations
        if cited:
            with st.expander(f"Sources · {len(cited)}", expanded=latest):
                for number, citation in enumerate(cited):
                    if number:
                        st.divider()
                    source_card(citation, exchange, highlight=True, picture=True)
        else:
            st.caption(
                ":orange[:material/warning:] No passage supports a specific sentence; "
                "check the answer against the passages used."
            )
            with st.expander(f"Passages used · {len(answer.passages)}"):
                for passage in answer.passages:
                    source_card(passage, exchange, highlight=False, picture=False)
    details(exchange)


def source_card(citation: Citation, exchange: Exchange, highlight: bool, picture: bool) -> None:
    answer = exchange.answer
    assert answer is not None
    where = f" · page {citation.page}" if citation.page is not None else ""
    section = f" · {html.escape(citation.heading)}" if citation.heading else ""
    removed = citation.doc_id in exchange.removed
    gone = f' <span class="kbqa-removed">{REMOVED}</span>' if removed else ""
    st.markdown(
        f'<div class="kbqa-source-head"><span class="kbqa-ref">[{citation.number}]</span> '
        f"<b>{html.escape(citation.name)}</b>{where}{section}{gone}"
        f'<span class="kbqa-score" title="cosine similarity to the question">'
        f"score {citation.score:.2f}</span></div>",
        unsafe_allow_html=True,
    )
    question = exchange.searched
    # The answer's exact quotes from this passage (an estimate for answers without quotes).
    spans = highlight_spans(answer, citation, question) if highlight else []
    text = f'<div class="kbqa-passage">{passage_html(citation.text, spans)}</div>'
    png = page_picture(exchange.kb, citation, spans) if picture and not removed else None
    if png is None:
        st.markdown(text, unsafe_allow_html=True)
        return
    left, right = st.columns([1, 1], gap="medium")
    left.markdown(text, unsafe_allow_html=True)
    right.image(png, caption=f"{citation.name}, page {citation.page}", width="stretch")


def page_picture(kb: str, citation: Citation, spans: list[tuple[int, int]]) -> bytes | None:
    """The cited PDF page or image with the passage marked, or None (no page, file gone)."""
    if citation.page is None:
        return None
    pdf = originals.find_original(Path(kb), citation.source, citation.doc_id)
    if pdf is None:
        return None
    marks = (Mark(citation.start, citation.end),) + tuple(
        Mark(citation.start + s, citation.start + e, cited=True) for s, e in spans
    )
    return _page_png(str(pdf), pdf.stat().st_mtime_ns, citation.page, citation.text, marks)


@st.cache_data(show_spinner=False, max_entries=128)
def _page_png(
    pdf: str, mtime_ns: int, page: int, passage: str, marks: tuple[Mark, ...]
) -> bytes | None:
    try:
        limits = state.settings().parse_limits()  # KBQA_MAX_PAGE_PIXELS and the others
        return render_page(Path(pdf), page, passage, marks, crop=True, limits=limits).png
    except (ValueError, OSError):
        return None


def details(exchange: Exchange) -> None:
    """Timings in the header; the rewritten question and every retrieval score inside."""
    answer = exchange.answer
    assert answer is not None
    if exchange.note:
        st.caption(f":orange[:material/warning:] {md_escape(exchange.note)}")
    if exchange.asked_at:
        kept_details(exchange)
        return
    t = answer.timings
    parts = [f"{t.total_s:.1f} s"]
    if t.first_token_s is not None:
        parts.append(f"first words {t.first_token_s:.1f} s")
    parts.append(f"{len(answer.passages)} passages")
    if answer.passages:
        parts.append(f"best score {max(p.score for p in answer.passages):.2f}")
    parts.append(f"{answer.style} style")
    if exchange.scope is not None:
        parts.append("within the chosen documents")
    if exchange.rewritten:
        parts.append("follow-up rewritten")
    with st.expander(" · ".join(parts), icon=":material/timer:", expanded=False):
        if exchange.scope is not None:
            st.markdown(
                f"<div><b>Asked within:</b> {plain_html(exchange.scope_label)}</div>",
                unsafe_allow_html=True,
            )
        if exchange.rewritten:
            st.markdown(
                f"<div><b>Follow-up read as:</b> {plain_html(exchange.searched)}</div>",
                unsafe_allow_html=True,
            )
        if not answer.refused and answer.reply and answer.shown == "evidence":
            st.markdown(
                f"<div><b>The evidence is shown; the model's {answer.style} answer was set "
                f"aside</b> ({plain_html(why_set_aside(answer))}): "
                f"<i>{plain_html(answer.reply)}</i></div>",
                unsafe_allow_html=True,
            )
        cited = {c.chunk_id for c in answer.citations}
        rows = [
            {
                "#": p.number,
                "document": p.name,
                "page": p.page,
                "score": p.score,
                "cited": p.chunk_id in cited,
            }
            for p in answer.passages
        ]
        if rows:
            st.dataframe(
                rows,
                hide_index=True,
                width="stretch",
                column_config={
                    "score": st.column_config.ProgressColumn(
                        "score", min_value=0.0, max_value=1.0, format="%.2f"
                    ),
                    "cited": st.column_config.CheckboxColumn("cited"),
                },
            )
        st.caption(
            f"retrieval {t.retrieve_s * 1000:.0f} ms · prompt {t.prompt_tokens} tokens · "
            f"{t.generated_pieces} pieces generated · language {answer.language}"
        )


def kept_details(exchange: Exchange) -> None:
    """The line under a reopened answer: when it was asked, how, within what."""
    from .sidebar import when

    answer = exchange.answer
    assert answer is not None
    parts = [f"asked {when(exchange.asked_at)}", f"{answer.style} style"]
    if exchange.scope_label:
        parts.append(f"within {exchange.scope_label}")
    if exchange.rewritten:
        parts.append(f"read as “{exchange.searched}”")
    st.caption(":material/history: " + md_escape(" · ".join(parts)))


def md_escape(text: str) -> str:
    """Text for inside Markdown, its special characters (math's ``$`` too) escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-!|~<>$:])", r"\\\1", text)


# -- text to HTML -------------------------------------------------------------


def plain_html(text: str) -> str:
    """Escaped text for inside an HTML block (where Markdown and math do not apply)."""
    return html.escape(text.strip()).replace("$", "&#36;").replace("\n", "<br>")


def answer_html(text: str, cursor: bool = False) -> str:
    """The answer as an HTML block, ``[n]`` markers as small reference badges."""
    escaped = plain_html(text)
    marked = render_markers(
        escaped, lambda numbers: "".join(f'<sup class="kbqa-ref">[{n}]</sup>' for n in numbers)
    )
    tail = f'<span class="kbqa-cursor">{CURSOR}</span>' if cursor else ""
    return f'<div class="kbqa-answer">{marked}{tail}</div>'


def why_set_aside(answer: Answer) -> str:
    """Why the model's draft was not shown as the answer, in words."""
    return answer.not_shown_because or "its words are not in the evidence"
