"""kbqa: ask questions of your own documents, offline, with cited answers.

The public API, re-exported from the packages that implement it.
"""

from index.store import Hit
from ingest.batch import FileOutcome, IngestReport
from ingest.errors import IngestError, KbqaError, KnowledgeBaseError, ModelError
from ingest.types import Chunk, DocumentRecord
from qa.answer import Answer, Citation, Timings
from qa.knowledge_base import AnswerStream, KnowledgeBase
from qa.settings import Settings, load_settings

__all__ = [
    "Answer", "AnswerStream", "Chunk", "Citation", "DocumentRecord", "FileOutcome", "Hit",
    "IngestError", "IngestReport", "KbqaError", "KnowledgeBase", "KnowledgeBaseError",
    "ModelError", "Settings", "Timings", "load_settings",
]  # fmt: skip
