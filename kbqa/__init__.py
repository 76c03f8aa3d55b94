"""kbqa: ask questions of your own documents, offline, with cited answers.

The public API, re-exported lazily from the packages that implement it, so that
``import kbqa.ingest`` (or the CLI's ``--help``) does not pull in torch or faiss.

The installed package maps the repository's top-level folders into this one
namespace: ``kbqa.models`` (models/), ``kbqa.ingest`` (ingest/), ``kbqa.index``
(index/), ``kbqa.qa`` (qa/), ``kbqa.app`` (app/) and ``kbqa.evaluation``
(evaluation/); imports only point down that list (docs/architecture.md). This
folder itself holds what every layer shares: errors, settings, text and files.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Answer": ".qa.answer",
    "AnswerStream": ".qa.knowledge_base",
    "Chunk": ".ingest.types",
    "Citation": ".qa.answer",
    "DocumentRecord": ".ingest.types",
    "FileOutcome": ".ingest.types",
    "Hit": ".index.store",
    "IngestError": ".errors",
    "IngestReport": ".ingest.types",
    "KbqaError": ".errors",
    "KnowledgeBase": ".qa.knowledge_base",
    "KnowledgeBaseError": ".errors",
    "ModelError": ".errors",
    "Scope": ".index.scope",
    "ScopeError": ".index.scope",
    "Settings": ".settings",
    "Timings": ".qa.answer",
    "load_settings": ".settings",
}
__all__ = [
    "Answer", "AnswerStream", "Chunk", "Citation", "DocumentRecord", "FileOutcome", "Hit",
    "IngestError", "IngestReport", "KbqaError", "KnowledgeBase", "KnowledgeBaseError",
    "ModelError", "Scope", "ScopeError", "Settings", "Timings", "load_settings",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kbqa' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .errors import IngestError, KbqaError, KnowledgeBaseError, ModelError
    from .index.scope import Scope, ScopeError
    from .index.store import Hit
    from .ingest.types import Chunk, DocumentRecord, FileOutcome, IngestReport
    from .qa.answer import Answer, Citation, Timings
    from .qa.knowledge_base import AnswerStream, KnowledgeBase
    from .settings import Settings, load_settings
