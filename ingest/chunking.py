"""Split sections into overlapping chunks measured in the embedder's own tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from .types import Chunk, ParsedDocument

# Room for the [CLS]/[SEP]-style tokens the embedder adds around every input.
SPECIAL_TOKENS_MARGIN = 2


@dataclass(frozen=True)
class ChunkerSettings:
    """Stored in each knowledge base's manifest: a KB keeps the chunking it was built with."""

    chunk_tokens: int = 200
    overlap_tokens: int = 32
    splitter: str = "langchain RecursiveCharacterTextSplitter"

    def fitted_to(self, max_tokens: int) -> ChunkerSettings:
        """The same settings, shrunk so that no chunk exceeds the embedder's limit."""
        limit = max_tokens - SPECIAL_TOKENS_MARGIN
        if self.chunk_tokens <= limit:
            return self
        return ChunkerSettings(limit, min(self.overlap_tokens, limit // 4), self.splitter)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def chunk_document(
    doc_id: str,
    document: ParsedDocument,
    count_tokens: Callable[[str], int],
    settings: ChunkerSettings,
) -> list[Chunk]:
    """Chunks for every section, with page, heading and character span kept."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_tokens,
        chunk_overlap=settings.overlap_tokens,
        length_function=count_tokens,
    )
    chunks: list[Chunk] = []
    for section in document.sections:
        # Spans are found here, not by the splitter's add_start_index: that one
        # mixes token lengths with character offsets and loses chunks' positions.
        search_from, previous_start, previous_end = 0, 0, 0
        for text in splitter.split_text(section.text):
            found = section.text.find(text, search_from)
            # Each chunk reaches past the previous one: skip earlier copies of its text.
            while found >= 0 and found + len(text) <= previous_end:
                found = section.text.find(text, found + 1)
            if found < 0 and text in section.text[previous_start:previous_end]:
                # The splitter sometimes emits a piece of the overlap alone: it adds nothing.
                continue
            if found < 0:  # cannot happen for a splitter that only cuts and strips
                raise ValueError(f"{document.source}: chunk not found in its section")
            search_from, previous_start, previous_end = found + 1, found, found + len(text)
            start = section.offset + found
            ordinal = len(chunks)
            chunks.append(
                Chunk(
                    id=Chunk.make_id(doc_id, ordinal, text),
                    doc_id=doc_id,
                    text=text,
                    source=document.source,
                    page=section.page,
                    start=start,
                    end=start + len(text),
                    heading=section.heading,
                    ordinal=ordinal,
                )
            )
    return chunks
