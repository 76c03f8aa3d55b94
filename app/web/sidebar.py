"""The sidebar: knowledge bases, uploads with per-file progress, documents, models."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import streamlit as st

from ...errors import KbqaError
from ...ingest.readers import PAGED_FORMATS, SUFFIX_FORMATS, format_of
from ...ingest.types import DocumentRecord
from ...qa.knowledge_base import KnowledgeBase
from ...settings import Settings
from . import originals, state
from .chat import md_escape as _md
from .jobs import FileTask

UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in SUFFIX_FORMATS)
SCROLL_AFTER = 6  # documents listed before the list scrolls
POLL_S = 0.7  # how often the upload panel refreshes while files are ingested

_ICONS = {
    "queued": ":gray[:material/schedule:]",
    "working": ":blue[:material/progress_activity:]",
    "added": ":green[:material/check_circle:]",
    "updated": ":green[:material/sync:]",
    "unchanged": ":gray[:material/check_circle:]",
    "failed": ":red[:material/error:]",
}


# -- knowledge bases -----------------------------------------------------


def choose_kb(config: Settings) -> Path:
    """The knowledge-base picker and the "new" form; the chosen folder."""
    current = Path(st.session_state.setdefault("kb", str(state.initial_kb(config))))
    options = [str(p) for p in state.list_kbs(config, current)]
    st.selectbox(
        "Knowledge base",
        options,
        index=options.index(str(current)),
        format_func=lambda p: state.kb_label(Path(p), config),
        key="kb_picker",
        on_change=_picked,
        help=f"Knowledge bases live in {config.home}",
    )
    with st.popover("New knowledge base", icon=":material/add:", width="stretch"):
        with st.form("new-kb", clear_on_submit=True, border=False):
            name = st.text_input("Name", placeholder="e.g. contracts-2024", max_chars=48)
            if st.form_submit_button("Create", type="primary", width="stretch"):
                try:
                    folder = state.create_kb(config, name)
                except ValueError as error:
                    st.error(_md(str(error)))
                else:
                    st.session_state.kb = str(folder)
                    st.session_state.pop("kb_picker", None)
                    st.session_state.flash = f"Created the knowledge base “{_md(folder.name)}”."
                    st.rerun()
    return Path(st.session_state.kb)


def _picked() -> None:
    st.session_state.kb = st.session_state.kb_picker


# -- uploads ---------------------------------------------------------------


def upload(kb_folder: Path, config: Settings, models: state.Models) -> None:
    """The uploader; files go to the background queue as soon as they are dropped."""
    limit_mb = config.max_file_mb
    counter = st.session_state.setdefault("uploader", 0)
    files = st.file_uploader(
        "Add documents",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key=f"uploader-{counter}",
        max_upload_size=max(1, math.ceil(limit_mb)),
        help=f"PDF, Word (.docx), HTML, Markdown, text, or images (PNG, JPEG, TIFF: read "
        f"by OCR, as are scanned PDF pages); up to {limit_mb:g} MB per file.",
    )
    if files:
        queue = state.ingest_queue()
        uploaded = [(f.name, f.getvalue()) for f in files]
        queue.submit(kb_folder, uploaded, _opener(config), max_mb=limit_mb)
        models.warm_up()  # the worker embeds with the shared embedder
        st.session_state.uploader = counter + 1  # a fresh, empty uploader
        st.rerun()
    if state.ingest_queue().busy(kb_folder):
        _live_progress(str(kb_folder), config)
    else:
        _progress(kb_folder, config, live=False)


def _opener(config: Settings):
    return lambda folder: state.new_kb(folder, config)


@st.fragment(run_every=POLL_S)
def _live_progress(kb: str, config: Settings) -> None:
    """Redrawn every ``POLL_S`` while files are ingested; the whole page reruns when done."""
    if not state.ingest_queue().busy(Path(kb)):
        st.rerun(scope="app")
    _progress(Path(kb), config, live=True)


def _progress(kb_folder: Path, config: Settings, live: bool) -> None:
    queue = state.ingest_queue()
    tasks = queue.tasks(kb_folder)
    if not tasks:
        return
    done = sum(t.done for t in tasks)
    if live:
        box = st.container(border=True)
        box.progress(done / len(tasks), text=f"Adding documents · {done} of {len(tasks)} done")
    else:
        problems = any(t.state == "failed" or t.warnings for t in tasks)
        box = st.expander(f"Last upload · {_summary(tasks)}", expanded=problems)
    for task in tasks:
        _task_line(box, task, kb_folder, config)
    if not live:
        if box.button("Dismiss", key="dismiss-uploads", type="tertiary", icon=":material/close:"):
            queue.clear_finished(kb_folder)
            st.rerun()


def _task_line(box, task: FileTask, kb_folder: Path, config: Settings) -> None:
    icon = _ICONS[task.state]
    if task.state == "working":
        detail = f"reading and embedding… {task.seconds:.0f} s"
    elif task.state == "queued":
        detail = "waiting"
    elif task.state in ("added", "updated"):
        paged = format_of(task.name) or ""
        detail = f"{task.state} · {_extent(paged, task.pages, task.chunks)}"
        detail += f" · {task.seconds:.1f} s"
    elif task.state == "unchanged":
        detail = "already in the knowledge base"
        if task.reason:
            detail += f" ({task.reason.replace('same content as ', 'same as ')})"
    else:
        detail = f"failed: {task.reason}"
    box.markdown(f"{icon} **{_md(task.name)}**  \n:small[{_md(detail)}]")
    for warning in task.warnings:
        box.caption(f":orange[:material/warning:] {_md(warning)}")
    if task.needs_password:
        with box.form(f"password-{task.id}", border=False):
            password = st.text_input(
                f"Password for {_md(task.name)}", type="password", key=f"pw-{task.id}"
            )
            if st.form_submit_button("Unlock and add", icon=":material/lock_open:"):
                if password:
                    state.ingest_queue().retry(task.id, password, _opener(config))
                    st.rerun()


def _summary(tasks: list[FileTask]) -> str:
    order = ("added", "updated", "unchanged", "failed", "working", "queued")
    counts = {state: sum(t.state == state for t in tasks) for state in order}
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n)


# -- documents ---------------------------------------------------------------


def documents(kb: KnowledgeBase, busy: bool) -> None:
    """The documents of the knowledge base, each with a delete button."""
    records = kb.documents()
    st.markdown(f"**Documents** · {len(records)}")
    if not records:
        st.caption("None yet: add files above.")
        return
    if len(records) > 12:
        query = st.text_input(
            "Filter documents", placeholder="Filter by name", label_visibility="collapsed"
        )
        if query:
            records = [r for r in records if query.lower() in r.name.lower()]
    area = st.container(height=380 if len(records) > SCROLL_AFTER else "content", border=False)
    for record in records:
        _document_row(area, kb, record, busy)


def _document_row(area, kb: KnowledgeBase, record: DocumentRecord, busy: bool) -> None:
    confirming = st.session_state.get("confirm_delete") == record.doc_id
    row = area.container(border=confirming)
    name_col, button_col = row.columns([0.84, 0.16], vertical_alignment="center")
    # Pages read by OCR, and how sure Tesseract was: a low confidence warns of misread text.
    ocr = f" · {_md(record.ocr_summary())}" if record.ocr_pages else ""
    name_col.markdown(
        f"{_format_icon(record.format)} **{_md(record.name)}**  \n"
        f":small[:gray[{_extent(record.format, record.pages, record.chunks)}{ocr} · "
        f"{when(record.added_at)}]]"
    )
    if not confirming:
        if button_col.button(
            "",
            key=f"delete-{record.doc_id}",
            icon=":material/delete:",
            help=f"Delete {_md(record.name)}" if not busy else "Wait until the upload finishes",
            type="tertiary",
            disabled=busy,
        ):
            st.session_state.confirm_delete = record.doc_id
            st.rerun()
        return
    row.caption("Delete this document and its passages? Answers will no longer use it.")
    yes, no = row.columns(2)
    if yes.button("Delete", key=f"really-delete-{record.doc_id}", type="primary", width="stretch"):
        st.session_state.confirm_delete = None
        try:
            removed = kb.remove(record.doc_id)
        except KbqaError as error:
            st.session_state.flash_error = _md(str(error))
        else:
            originals.prune(kb.folder, {r.doc_id for r in kb.documents()})
            st.session_state.flash = f"Deleted “{_md(removed.name)}”."
        st.rerun()
    if no.button("Cancel", key=f"cancel-delete-{record.doc_id}", width="stretch"):
        st.session_state.confirm_delete = None
        st.rerun()


# -- models and the last answer ------------------------------------------------

STYLE_LABELS = {
    "evidence": "Evidence sentences",
    "short": "Short answer",
    "sentence": "One sentence",
}


def answer_style(kb: KnowledgeBase) -> None:
    """How answers are given (the session's ``answer_style``; default: the settings')."""
    st.radio(
        "Answer style",
        STYLE_LABELS,
        index=list(STYLE_LABELS).index(
            st.session_state.get("answer_style", kb.answer_options.answer_style)
        ),
        format_func=STYLE_LABELS.__getitem__,
        key="answer_style",
        help="Evidence: the sentences of the documents that answer, verbatim (fastest, "
        "no LLM). Short: only the answering words. Sentence: one sentence phrased from "
        "them. A short answer or sentence the evidence does not state is replaced by the "
        "evidence (KBQA_ANSWER_STYLE).",
    )


def models_panel(config: Settings, kb: KnowledgeBase, models: state.Models) -> None:
    with st.expander("Models & retrieval", icon=":material/tune:"):
        status = "ready" if models.ready.is_set() and not models.error else "loading…"
        if models.error:
            status = "failed to load"
        st.markdown(
            f"**Embeddings** · `{config.embedding_model}`  \n"
            f"**LLM** · `{kb.generator.name}` ({status})  \n"
            f"**Device** · `{config.device}` ({config.precision}) · "
            f"**retrieval** `{config.retrieval}`  \n"
            f"**Refuse below** score {kb.answer_options.min_score:g}"
        )
        st.slider(
            "Passages per question",
            1,
            20,
            value=st.session_state.get("top_k", config.top_k),
            key="top_k",
            help="How many passages are retrieved for each question (KBQA_TOP_K).",
        )
        st.toggle(
            "Rewrite follow-up questions",
            value=st.session_state.get("rewrite", True),
            key="rewrite",
            help="Turn “and Jurassic-1?” into a standalone question using the conversation.",
        )
        st.caption(f"Knowledge base folder: `{kb.folder}`")


def last_answer_panel(answer) -> None:
    """Numbers a power user watches: passages, scores, tokens, timings."""
    if answer is None:
        return
    with st.expander("Last answer", icon=":material/monitoring:", expanded=False):
        t = answer.timings
        a, b = st.columns(2)
        a.metric("Total", f"{t.total_s:.1f} s")
        b.metric("First words", f"{t.first_token_s:.1f} s" if t.first_token_s else "—")
        c, d = st.columns(2)
        c.metric("Prompt tokens", t.prompt_tokens)  # 0: the evidence style asks no model
        d.metric("Retrieval", f"{t.retrieve_s * 1000:.0f} ms")
        st.caption(f"{answer.style} style · shown: {answer.shown}")
        scores = [p.score for p in answer.passages]
        if scores:
            st.caption(f"{len(scores)} passages · scores " + ", ".join(f"{s:.2f}" for s in scores))


# -- small formatting helpers --------------------------------------------------


def _extent(fmt: str, pages: int, chunks: int) -> str:
    """``3 pages · 12 passages`` for PDFs and images; other formats have no real pages."""
    passages = _count(chunks, "passage")
    return f"{_count(pages, 'page')} · {passages}" if fmt in PAGED_FORMATS else passages


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def when(iso: str) -> str:
    try:
        moment = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return iso
    now = datetime.now().astimezone()
    if moment.date() == now.date():
        return f"today {moment:%H:%M}"
    if moment.year == now.year:
        return f"{moment:%d %b %H:%M}"
    return f"{moment:%d %b %Y}"


def _format_icon(fmt: str) -> str:
    return {
        "pdf": ":material/picture_as_pdf:",
        "docx": ":material/description:",
        "html": ":material/language:",
        "markdown": ":material/article:",
        "image": ":material/image:",
    }.get(fmt, ":material/notes:")
