"""The knowledge bases a server offers, by name, and the JSON shapes of what it returns.

Names: ``default`` is the knowledge base ``--kb`` names (else the settings'
default, ``$KBQA_HOME/default``); every other knowledge-base folder directly
under the root (``--kb-root``, else ``$KBQA_HOME``, where the web app creates
them) is offered under its folder name. A name from a request is only ever
looked up among these, never joined onto a path.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import KbqaError
from ...index.store import Hit, KnowledgeBaseStore
from ...ingest.types import DocumentRecord, FileOutcome, display_name
from ...qa.answer import Answer, Citation
from ...qa.knowledge_base import KnowledgeBase
from ...settings import Settings

DEFAULT = "default"
# Folder names offered as knowledge bases (as the web app names those it creates).
KB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,47}")

Opener = Callable[[Path], KnowledgeBase]


class UnknownKnowledgeBase(KbqaError):
    """No knowledge base is offered under this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no knowledge base named {name!r}")
        self.name = name


class Catalog:
    """Knowledge bases by name; each opened once, all sharing one embedder and LLM.

    Each knowledge base has two instances: one that reads (search, answers) and
    one that writes (uploads, removals), so a long upload never holds up a
    search; the reader sees what the writer committed (the store's generation).
    Writes to one knowledge base take turns (``writer`` returns its lock).
    """

    def __init__(self, default: Path, root: Path | None, opener: Opener) -> None:
        self.default = Path(default).expanduser().resolve()
        self.root = Path(root).expanduser().resolve() if root else None
        self._opener = opener
        self._readers: dict[Path, KnowledgeBase] = {}
        self._writers: dict[Path, tuple[KnowledgeBase, threading.Lock]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, kb: Path | None = None, root: Path | None = None
    ) -> Catalog:
        """The models the settings name (loaded on first use), shared by every knowledge base."""
        from ...qa.knowledge_base import load_models

        embedder, generator = load_models(settings)

        def opener(folder: Path) -> KnowledgeBase:
            return KnowledgeBase.open(
                folder, settings=settings, embedder=embedder, generator=generator
            )

        return cls(kb or settings.default_kb, root or settings.home, opener)

    def names(self) -> list[str]:
        return [DEFAULT, *sorted(self._others(), key=str.lower)]

    def folder(self, name: str) -> Path:
        if name == DEFAULT:
            return self.default
        folder = self._others().get(name)
        if folder is None:
            raise UnknownKnowledgeBase(name)
        return folder

    def reader(self, name: str) -> KnowledgeBase:
        folder = self.folder(name)
        with self._lock:
            kb = self._readers.get(folder)
            if kb is None:
                kb = self._opener(folder)
                # An empty default is opened again next time, so it sees the store an
                # upload creates (an instance opened without a store never looks again).
                if KnowledgeBaseStore.exists(folder):
                    self._readers[folder] = kb
            return kb

    def writer(self, name: str) -> tuple[KnowledgeBase, threading.Lock]:
        folder = self.folder(name)
        with self._lock:
            if folder not in self._writers:
                self._writers[folder] = (self._opener(folder), threading.Lock())
            return self._writers[folder]

    def close(self) -> None:
        with self._lock:
            for kb in [*self._readers.values(), *(w for w, _ in self._writers.values())]:
                kb.close()
            self._readers.clear()
            self._writers.clear()

    def _others(self) -> dict[str, Path]:
        if self.root is None or not self.root.is_dir():
            return {}
        return {
            path.name: path.resolve()
            for path in self.root.iterdir()
            if path.name != DEFAULT
            and KB_NAME.fullmatch(path.name)
            and path.resolve() != self.default
            and KnowledgeBaseStore.exists(path)
        }


# -- JSON shapes (the HTTP API and the MCP tools return the same ones) -----


def citation_json(citation: Citation, answer: Answer | None = None) -> dict[str, Any]:
    """A cited passage: where it is, its score, and the exact words the answer quotes.

    ``start``/``end`` locate the passage in its page (or document) text; each quote's
    ``start``/``end`` index the passage text, ``doc_start``/``doc_end`` the page text.
    """
    quotes = [q for q in answer.quotes if q.number == citation.number] if answer else []
    return {
        "number": citation.number,
        "document": citation.name,
        "document_id": citation.doc_id,
        "page": citation.page,
        "heading": citation.heading,
        "chunk_id": citation.chunk_id,
        "start": citation.start,
        "end": citation.end,
        "score": citation.score,
        "text": citation.text,
        "quotes": [
            {
                "text": q.text,
                "start": q.start,
                "end": q.end,
                "doc_start": q.doc_start,
                "doc_end": q.doc_end,
            }
            for q in quotes
        ],
    }


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.text,
        "refused": answer.refused,
        "question": answer.question,
        "language": answer.language,
        **shown_json(answer),
        "citations": [citation_json(c, answer) for c in answer.citations],
    }


def shown_json(answer: Answer) -> dict[str, Any]:
    """How the answer came about: its style, what is shown, and the answerability verdict.

    ``shown``: ``evidence`` (the evidence sentences verbatim) or ``draft`` (the model's
    short answer or sentence, checked against the evidence); ``not_shown_because`` says
    why a draft was set aside. ``standalone``: the question as searched (a follow-up
    rewritten in its conversation).
    """
    return {
        "style": answer.style,
        "shown": answer.shown,
        "not_shown_because": answer.not_shown_because,
        "standalone": answer.standalone or answer.question,
        "answerability": verdict_json(answer),
    }


def verdict_json(answer: Answer) -> dict[str, Any] | None:
    """The answerability verdict (``qa/answerability.py``): answerable or not, which check
    refused (``floor``, ``names``, ``elsewhere``, ``score``...) and why, in words."""
    verdict = answer.answerability
    if verdict is None:
        return None
    return {
        "answerable": verdict.answerable,
        "check": verdict.check,
        "reason": verdict.reason,
        "key_terms": list(verdict.key_terms),
        "missing_terms": list(verdict.missing_terms),
        "score": verdict.score,
    }


def hit_json(rank: int, hit: Hit) -> dict[str, Any]:
    chunk = hit.chunk
    return {
        "rank": rank,
        "score": round(hit.score, 4),
        "document": display_name(chunk.source),
        "document_id": chunk.doc_id,
        "page": chunk.page,
        "heading": chunk.heading,
        "chunk_id": chunk.id,
        "start": chunk.start,
        "end": chunk.end,
        "text": chunk.text,
    }


def document_json(record: DocumentRecord) -> dict[str, Any]:
    return {
        "id": record.doc_id,
        "name": record.name,
        "title": record.title,
        "format": record.format,
        "pages": record.pages,
        "chunks": record.chunks,
        "size_bytes": record.size_bytes,
        "added_at": record.added_at,
        "tags": list(record.tags),
    }


def outcome_json(filename: str, outcome: FileOutcome) -> dict[str, Any]:
    return {
        "filename": filename,
        "document": display_name(outcome.source),
        "status": outcome.status,
        "reason": outcome.reason,
        "document_id": outcome.doc_id,
        "pages": outcome.pages,
        "chunks": outcome.chunks,
        "warnings": list(outcome.warnings),
    }
