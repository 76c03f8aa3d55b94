"""A knowledge base as a LangChain retriever (``KnowledgeBase.as_retriever``).

Each retrieved passage becomes a ``langchain_core`` ``Document`` whose metadata
says where it comes from, so a chain can cite it: ``source`` (the path, or
``upload:<name>``), ``name``, ``page`` (``None`` for formats without pages),
``start``/``end`` (character offsets in that page's or document's text),
``score`` (the exact cosine similarity), ``document_id``, ``chunk_id`` and
``heading``. Retrieval is the knowledge base's own (hybrid by default); no LLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from ..ingest.types import display_name

if TYPE_CHECKING:
    from ..index.store import Hit


class KnowledgeBaseRetriever(BaseRetriever):
    """Retrieves the ``k`` passages of ``knowledge_base`` nearest to the query."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    knowledge_base: Any  # a kbqa KnowledgeBase (Any: pydantic need not know the class)
    k: int | None = Field(default=None, ge=1, le=100)  # None: the knowledge base's top_k
    scope: Any = None  # a kbqa Scope: only its documents are searched; None: all

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = self.knowledge_base.search(query, self.k, scope=self.scope)
        return [to_document(hit) for hit in hits]


def to_document(hit: Hit) -> Document:
    chunk = hit.chunk
    return Document(
        page_content=chunk.text,
        id=chunk.id,
        metadata={
            "source": chunk.source,
            "name": display_name(chunk.source),
            "page": chunk.page,
            "start": chunk.start,
            "end": chunk.end,
            "score": round(hit.score, 4),
            "document_id": chunk.doc_id,
            "chunk_id": chunk.id,
            "heading": chunk.heading,
        },
    )
