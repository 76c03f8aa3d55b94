"""Ingest a batch of files into anything that stores documents.

Each file is hashed first: unchanged bytes mean no parsing and no embedding.
A bad file becomes one failed outcome with its reason; the batch goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from ..errors import IngestError
from ..models.embedder import Embedder
from .chunking import ChunkerSettings, chunk_document
from .readers import format_of, read_document
from .types import Chunk, DocumentRecord, display_name, document_id, is_path_source

log = logging.getLogger(__name__)

Status = Literal["added", "updated", "unchanged", "removed", "failed"]
EMBED_BATCH = 256


class DocumentSink(Protocol):
    """What ingest needs from a store (``index.store.KnowledgeBaseStore`` is one)."""

    def documents(self) -> list[DocumentRecord]: ...

    def document_by_source(self, source: str) -> DocumentRecord | None: ...

    def document_by_id(self, doc_id: str) -> DocumentRecord | None: ...

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None: ...

    def remove_document(self, doc_id: str) -> bool: ...


@dataclass(frozen=True)
class InputFile:
    """A file to ingest: a path on disk, or bytes with a trusted display name.

    ``source`` identifies the document across runs (an absolute path, or
    ``scheme:<name>`` such as ``upload:report.pdf``); it is never used to open anything.
    """

    source: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def name(self) -> str:
        return display_name(self.source)

    def size(self) -> int:
        return len(self.data) if self.data is not None else os.stat(self.path or "").st_size

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


@dataclass(frozen=True)
class FileOutcome:
    source: str
    status: Status
    reason: str | None = None
    doc_id: str | None = None
    pages: int = 0
    chunks: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestReport:
    outcomes: tuple[FileOutcome, ...] = ()
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def pages(self) -> int:
        return sum(o.pages for o in self.outcomes if o.status in ("added", "updated"))

    @property
    def chunks(self) -> int:
        return sum(o.chunks for o in self.outcomes if o.status in ("added", "updated"))

    def summary(self) -> str:
        counts = ", ".join(
            f"{self.count(s)} {s}" for s in ("added", "updated", "unchanged", "removed", "failed")
        )
        return (
            f"{counts}; {self.pages} pages, {self.chunks} chunks embedded in {self.seconds:.1f} s"
        )


@dataclass
class IngestOptions:
    chunker: ChunkerSettings = field(default_factory=ChunkerSettings)
    max_file_bytes: int = 50 * 1024 * 1024
    password: str | None = None
    progress: bool = False
    on_outcome: Callable[[FileOutcome], None] | None = None


def walk(paths: Iterable[str | Path]) -> tuple[list[InputFile], list[FileOutcome]]:
    """Files under the given paths (folders recursively, hidden entries skipped)."""
    files: list[InputFile] = []
    missing: list[FileOutcome] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        full = Path(root, name).resolve()
                        files.append(InputFile(str(full), full))
        elif path.is_file():
            files.append(InputFile(str(path.resolve()), path.resolve()))
        else:
            missing.append(FileOutcome(str(path), "failed", "no such file or directory"))
    return files, missing


def ingest_files(
    sink: DocumentSink,
    embedder: Embedder,
    files: Sequence[InputFile],
    options: IngestOptions,
    sync_roots: Sequence[Path] = (),
) -> IngestReport:
    """Add, update or skip each file; with ``sync_roots``, drop documents gone from them.

    Small files are parsed ahead and embedded together in batches of about
    ``EMBED_BATCH`` chunks (one model call instead of one per file); each
    document is still written in its own transaction.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    outcomes: list[FileOutcome] = []
    pending: list[_Prepared] = []
    bar = tqdm(total=len(files), unit="file", disable=not options.progress, desc="ingest")

    def report(outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if options.on_outcome:
            options.on_outcome(outcome)
        bar.update(1)

    def flush() -> None:
        for outcome in _embed_and_store(sink, embedder, pending, options.progress):
            report(outcome)
        pending.clear()

    for item in files:
        bar.set_postfix_str(item.name[-40:], refresh=False)
        try:
            prepared = _prepare(sink, embedder, item, options, pending)
        except IngestError as error:
            prepared = FileOutcome(item.source, "failed", error.reason)
        except (OSError, MemoryError) as error:
            prepared = FileOutcome(item.source, "failed", f"{type(error).__name__}: {error}")
        except Exception as error:  # noqa: BLE001 - a reader's or splitter's bug fails one file
            log.exception("unexpected error while reading %s", item.source)
            reason = f"unexpected error ({type(error).__name__}: {error}); please report it"
            prepared = FileOutcome(item.source, "failed", reason)
        if isinstance(prepared, FileOutcome):
            report(prepared)
            continue
        pending.append(prepared)
        if sum(len(p.chunks) for p in pending) >= EMBED_BATCH:
            flush()
    flush()
    bar.close()
    if sync_roots:
        seen = {item.source for item in files}
        for removed in _sync(sink, sync_roots, seen):
            outcomes.append(removed)
            if options.on_outcome:
                options.on_outcome(removed)
    return IngestReport(tuple(outcomes), time.perf_counter() - started)


@dataclass(frozen=True)
class _Prepared:
    """A file parsed and chunked, waiting for its vectors."""

    record: DocumentRecord
    chunks: list[Chunk]
    replaces: DocumentRecord | None
    warnings: tuple[str, ...]


def _prepare(
    sink: DocumentSink,
    embedder: Embedder,
    item: InputFile,
    options: IngestOptions,
    pending: Sequence[_Prepared],
) -> _Prepared | FileOutcome:
    fmt = format_of(item.name)
    if fmt is None:
        suffix = Path(item.name).suffix or "(no extension)"
        raise IngestError(item.source, f"unsupported file type {suffix}")
    size = item.size()
    if size > options.max_file_bytes:
        limit = options.max_file_bytes / 1024 / 1024
        raise IngestError(
            item.source, f"file too large ({size / 1024 / 1024:.1f} MB > {round(limit, 2):g} MB)"
        )
    data = item.read()
    doc_id = document_id(data)
    previous = sink.document_by_source(item.source)
    if previous is not None and previous.doc_id == doc_id:
        return FileOutcome(item.source, "unchanged", None, doc_id)
    twin = sink.document_by_id(doc_id)
    if twin is not None and twin.source != item.source and _still_there(twin.source):
        # Stored once; this file's own older version (if any) no longer applies.
        if previous is not None:
            sink.remove_document(previous.doc_id)
        return FileOutcome(item.source, "unchanged", f"same content as {twin.source}", doc_id)
    # A twin whose file is gone was moved here: storing it below re-points it.
    queued = next((p for p in pending if p.record.doc_id == doc_id), None)
    if queued is not None:
        return FileOutcome(
            item.source, "unchanged", f"same content as {queued.record.source}", doc_id
        )

    parsed = read_document(item.source, data, fmt, options.password)
    chunks = chunk_document(doc_id, parsed, embedder.count_tokens, options.chunker)
    if not chunks:
        raise IngestError(item.source, "no text found in the file")
    record = DocumentRecord(
        doc_id=doc_id,
        source=item.source,
        name=item.name,
        format=parsed.format,
        pages=parsed.pages,
        chunks=len(chunks),
        size_bytes=size,
        added_at=datetime.now(UTC).isoformat(timespec="seconds"),
        title=parsed.title,
    )
    return _Prepared(record, chunks, previous, parsed.warnings)


def _embed_and_store(
    sink: DocumentSink, embedder: Embedder, batch: Sequence[_Prepared], progress: bool
) -> list[FileOutcome]:
    if not batch:
        return []
    chunks = [chunk for prepared in batch for chunk in prepared.chunks]
    vectors = _embed(embedder, chunks, progress, batch[-1].record.name)
    outcomes = []
    offset = 0
    for prepared in batch:
        record, count = prepared.record, len(prepared.chunks)
        sink.replace_document(record, prepared.chunks, vectors[offset : offset + count])
        offset += count
        status: Status = "updated" if prepared.replaces is not None else "added"
        outcomes.append(
            FileOutcome(record.source, status, None, record.doc_id, record.pages, count,
                        prepared.warnings)
        )  # fmt: skip
    return outcomes


def _still_there(source: str) -> bool:
    return not is_path_source(source) or Path(source).exists()


def _embed(embedder: Embedder, chunks: list[Chunk], progress: bool, name: str) -> np.ndarray:
    from tqdm import tqdm

    texts = [chunk.text for chunk in chunks]
    show = progress and len(texts) > EMBED_BATCH
    parts = []
    with tqdm(
        total=len(texts), unit="chunk", desc=name[-30:], leave=False, disable=not show
    ) as bar:
        for start in range(0, len(texts), EMBED_BATCH):
            parts.append(embedder.embed_passages(texts[start : start + EMBED_BATCH]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


def _sync(sink: DocumentSink, roots: Sequence[Path], seen: set[str]) -> list[FileOutcome]:
    prefixes = [str(Path(root).expanduser().resolve()) + os.sep for root in roots]
    removed = []
    for record in sink.documents():
        under_root = any(record.source.startswith(prefix) for prefix in prefixes)
        if under_root and record.source not in seen and sink.remove_document(record.doc_id):
            removed.append(FileOutcome(record.source, "removed", "file is gone", record.doc_id))
    return removed
