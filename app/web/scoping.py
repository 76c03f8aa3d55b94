"""Which documents the next answer may use: documents and tags ticked in the sidebar.

The ticked documents go to the engine as their ids (``Scope`` matches an id
prefix exactly; names can repeat and may hold glob characters), the tags as
tags; nothing ticked is the whole knowledge base. The engine resolves the scope
before retrieval, so only those documents' passages are searched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from ...index.scope import MAX_ENTRIES, Scope, ScopeError
from ...ingest.types import DocumentRecord
from ...qa.knowledge_base import KnowledgeBase
from .chat import md_escape as _md

NAMED = 4  # documents named in the header; more are counted


@dataclass(frozen=True)
class Chosen:
    """The sidebar's choice: the scope to ask in (None: everything), in words, or why not."""

    scope: Scope | None
    label: str
    error: str | None = None


def _keys(kb: KnowledgeBase) -> tuple[str, str]:
    return f"scope_documents::{kb.folder}", f"scope_tags::{kb.folder}"


def picker(kb: KnowledgeBase, records: Sequence[DocumentRecord]) -> Chosen:
    """The "Ask within" panel: documents by name, and tags when there are any."""
    documents_key, tags_key = _keys(kb)
    by_id = {r.doc_id: r for r in records}
    tags = list(kb.tags())
    # Documents deleted or tags gone since they were ticked are dropped, not an error.
    for key, valid in ((documents_key, by_id), (tags_key, set(tags))):
        if key in st.session_state:
            st.session_state[key] = [v for v in st.session_state[key] if v in valid]
    names = _labels(records)
    chosen_ids = st.multiselect(
        "Ask within",
        list(by_id),
        key=documents_key,
        format_func=names.__getitem__,
        placeholder="All documents",
        max_selections=MAX_ENTRIES,
        help="Tick documents to answer from them only; leave empty to use all of them.",
    )
    chosen_tags: list[str] = []
    if tags:
        chosen_tags = st.multiselect(
            "Tags",
            tags,
            key=tags_key,
            placeholder="Any tag",
            max_selections=MAX_ENTRIES,
            help="Answer from the documents carrying these tags (with the documents ticked).",
        )
    if not chosen_ids and not chosen_tags:
        return Chosen(None, f"all {len(records)} documents" if len(records) != 1 else "1 document")
    try:
        scope = Scope(documents=tuple(chosen_ids), tags=tuple(chosen_tags))
    except ScopeError as error:
        return Chosen(None, "", str(error))
    return Chosen(scope, describe([by_id[i] for i in chosen_ids], chosen_tags))


def describe(documents: Sequence[DocumentRecord], tags: Sequence[str]) -> str:
    """``document a.pdf``, ``3 documents: a.pdf, b.md, c.txt``, ``…; tags legal, 2024``."""
    parts = []
    names = [d.name for d in documents]
    if len(names) == 1:
        parts.append(f"document {names[0]}")
    elif names:
        shown = ", ".join(names[:NAMED]) + (
            f" and {len(names) - NAMED} more" if len(names) > NAMED else ""
        )
        parts.append(f"{len(names)} documents: {shown}")
    if tags:
        parts.append(("tag " if len(tags) == 1 else "tags ") + ", ".join(tags))
    return "; ".join(parts)


def restore(kb: KnowledgeBase, documents: Sequence[str], tags: Sequence[str]) -> None:
    """Tick again what a reopened conversation last asked within (what still exists)."""
    records = kb.documents()
    ids = [r.doc_id for r in records if any(r.doc_id.startswith(d) for d in documents)]
    existing = set(kb.tags())
    documents_key, tags_key = _keys(kb)
    st.session_state[documents_key] = ids
    st.session_state[tags_key] = [t for t in tags if t in existing]


def _labels(records: Sequence[DocumentRecord]) -> dict[str, str]:
    """Each document's name; a name shared by several gets its id's first characters."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.name] = counts.get(record.name, 0) + 1
    return {
        r.doc_id: r.name if counts[r.name] == 1 else f"{r.name} ({r.doc_id[:8]})" for r in records
    }


def header(chosen: Chosen) -> str:
    """The chat header's line: what the next answer may use."""
    if chosen.error:
        return f":red[:material/error:] {_md(chosen.error)}"
    icon = ":material/filter_alt:" if chosen.scope else ":material/library_books:"
    return f"{icon} Answers may use: **{_md(chosen.label)}**"
