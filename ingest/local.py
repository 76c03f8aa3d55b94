"""Ingest a batch of files into anything that stores documents.

Each file is hashed first: unchanged bytes mean no parsing and no embedding.
A bad file becomes one failed outcome with its reason; the batch goes on.
Files are read (sniffed and parsed) in a child process under ``ParseLimits``
(``ingest.reader_process``): one reading process per batch, replaced when a file
kills it or runs out of time, so no file can take the caller down.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import IngestError
from ..models.embedder import Embedder
from .chunking import ChunkerSettings, ChunkingTimeout, chunk_document
from .limits import ParseLimits
from .reader_process import ParseWorker
from .readers import format_of
from .types import (  # the engine's own types, re-exported: ingest.local.FileOutcome
    Chunk,
    DocumentRecord,
    DocumentSink,
    FileOutcome,
    IngestReport,
    InputFile,
    ParsedDocument,
    Status,
    display_name,
    document_id,
    is_path_source,
)

log = logging.getLogger(__name__)

EMBED_BATCH = 256


@dataclass
class IngestOptions:
    chunker: ChunkerSettings = field(default_factory=ChunkerSettings)
    max_file_bytes: int = 50 * 1024 * 1024
    password: str | None = None
    progress: bool = False
    on_outcome: Callable[[FileOutcome], None] | None = None
    limits: ParseLimits = field(default_factory=ParseLimits)


# What stores a batch of files: ``ingest_files`` here, ``distributed.RayIngest`` on a cluster.
IngestEngine = Callable[
    [DocumentSink, Embedder, Sequence[InputFile], IngestOptions, Sequence[Path]], IngestReport
]


def walk(paths: Iterable[str | Path]) -> tuple[list[InputFile], list[FileOutcome]]:
    """Files under the given paths, and a failed outcome for each entry that cannot be.

    Folders are walked recursively; hidden entries are skipped and links to
    folders are not followed. A symbolic link loop, a dangling link, an
    unreadable subfolder or a special file (FIFO, device) fails with its
    reason, and the rest of the folder is still walked.
    """
    files: list[InputFile] = []
    failed: list[FileOutcome] = []

    def add(entry: Path) -> None:
        resolved, reason = _resolve_file(entry)
        if resolved is None:
            failed.append(FileOutcome(str(entry.absolute()), "failed", reason))
        else:
            files.append(InputFile(str(resolved), resolved))

    def unlistable(error: OSError) -> None:
        where = str(Path(error.filename).absolute()) if error.filename else "?"
        failed.append(FileOutcome(where, "failed", f"cannot list folder ({_why(error)})"))

    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            for root, dirs, names in os.walk(path, onerror=unlistable):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        add(Path(root, name))
        elif path.is_file() or path.is_symlink():
            add(path)
        else:
            failed.append(FileOutcome(str(path), "failed", "no such file or directory"))
    return files, failed


def _resolve_file(entry: Path) -> tuple[Path | None, str]:
    """The real path of a regular file, or None and why it cannot be read."""
    try:
        resolved = entry.resolve(strict=True)
        mode = resolved.stat().st_mode
    except RuntimeError:  # Python 3.11's Path.resolve on a loop
        return None, "symbolic link loop"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, "symbolic link loop"
        if isinstance(error, FileNotFoundError) and entry.is_symlink():
            return None, "broken symbolic link (its target does not exist)"
        return None, f"cannot open ({_why(error)})"
    if not stat.S_ISREG(mode):
        return None, "not a regular file"
    return resolved, ""


def _why(error: OSError) -> str:
    return error.strerror or type(error).__name__


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
    pending: list[Prepared] = []
    bar = tqdm(total=len(files), unit="file", disable=not options.progress, desc="ingest")
    worker = ParseWorker(  # started on the first file that needs reading
        options.limits,
        on_progress=lambda source, done, total: bar.set_postfix_str(
            f"{display_name(source)[-30:]}: OCR {done}/{total} pages"
        ),
    )

    def report(outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if options.on_outcome:
            options.on_outcome(outcome)
        bar.update(1)

    def flush() -> None:
        for outcome in _embed_and_store(sink, embedder, pending, options.progress):
            report(outcome)
        pending.clear()

    def one(item: InputFile) -> None:
        bar.set_postfix_str(item.name[-40:], refresh=False)
        prepared: Prepared | FileOutcome
        try:
            queued = {p.record.doc_id: p.record.source for p in pending}
            todo = triage(sink, item, options, queued)
            if isinstance(todo, FileOutcome):
                prepared = todo
            else:
                prepared = read_and_chunk(worker, embedder.count_tokens, todo, options)
        except Exception as error:  # noqa: BLE001 - one file fails, the batch goes on
            prepared = failed_outcome(item.source, error)
        if isinstance(prepared, FileOutcome):
            report(prepared)
            return
        pending.append(prepared)
        if sum(len(p.chunks) for p in pending) >= EMBED_BATCH:
            flush()

    try:
        for item in files:
            one(item)
        flush()
    finally:
        worker.close()
        bar.close()
    return finish_report(sink, files, options, sync_roots, outcomes, started)


def finish_report(
    sink: DocumentSink,
    files: Sequence[InputFile],
    options: IngestOptions,
    sync_roots: Sequence[Path],
    outcomes: list[FileOutcome],
    started: float,
) -> IngestReport:
    """After the batch (either engine): with ``sync``, drop documents whose files are gone."""
    if sync_roots:
        seen = {item.source for item in files}
        for removed in remove_gone(sink, sync_roots, seen):
            outcomes.append(removed)
            if options.on_outcome:
                options.on_outcome(removed)
    return IngestReport(tuple(outcomes), time.perf_counter() - started)


def failed_outcome(source: str, error: Exception) -> FileOutcome:
    """The failed outcome for an error raised while reading one file, with its reason."""
    if isinstance(error, IngestError):
        return FileOutcome(source, "failed", error.reason)
    if isinstance(error, (OSError, MemoryError)):
        return FileOutcome(source, "failed", f"{type(error).__name__}: {error}")
    # A splitter's or reader's bug fails one file.
    log.error("unexpected error while reading %s", source, exc_info=error)
    reason = f"unexpected error ({type(error).__name__}: {error}); please report it"
    return FileOutcome(source, "failed", reason)


@dataclass(frozen=True)
class ToRead:
    """A file whose bytes the store does not hold yet: what reading and chunking need."""

    item: InputFile
    data: bytes
    format: str
    doc_id: str
    replaces: DocumentRecord | None  # the stored older version of the same source


@dataclass(frozen=True)
class Prepared:
    """A file parsed and chunked, waiting for its vectors."""

    record: DocumentRecord
    chunks: list[Chunk]
    replaces: DocumentRecord | None
    warnings: tuple[str, ...]


def triage(
    sink: DocumentSink, item: InputFile, options: IngestOptions, queued: Mapping[str, str]
) -> ToRead | FileOutcome:
    """Type, size and hash checks: the bytes to read, or why the file needs no reading.

    ``queued`` maps the ids of documents already on their way into the store (in this
    run) to their sources, so that a second copy is not read twice.

    Raises:
        IngestError: the type is not supported or the file is too large.
    """
    fmt = format_of(item.name)
    if fmt is None:
        suffix = Path(item.name).suffix or "(no extension)"
        raise IngestError(item.source, f"unsupported file type {suffix}")
    size = item.size()
    if size <= options.max_file_bytes:
        data = item.read(options.max_file_bytes)
        size = len(data)
    if size > options.max_file_bytes:
        limit = options.max_file_bytes / 1024 / 1024
        raise IngestError(
            item.source, f"file too large ({size / 1024 / 1024:.1f} MB > {round(limit, 2):g} MB)"
        )
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
    if doc_id in queued:
        return FileOutcome(item.source, "unchanged", f"same content as {queued[doc_id]}", doc_id)
    return ToRead(item, data, fmt, doc_id, previous)


def read_and_chunk(
    worker: ParseWorker,
    count_tokens: Callable[[str], int],
    todo: ToRead,
    options: IngestOptions,
) -> Prepared:
    """Read the file in ``worker``'s child process and chunk its text.

    Raises:
        IngestError: the file cannot be read, goes over a limit, or holds no text.
    """
    item = todo.item
    parsed = worker.read(item.source, todo.data, todo.format, options.password)
    try:
        chunks = chunk_document(
            todo.doc_id, parsed, count_tokens, options.chunker, options.limits.seconds
        )
    except ChunkingTimeout:
        raise IngestError(item.source, options.limits.over("seconds") + ": chunking") from None
    if not chunks:
        raise IngestError(item.source, "no text found in the file")
    return Prepared(_record(todo, parsed, len(chunks)), chunks, todo.replaces, parsed.warnings)


def _record(todo: ToRead, parsed: ParsedDocument, chunks: int) -> DocumentRecord:
    return DocumentRecord(
        doc_id=todo.doc_id,
        source=todo.item.source,
        name=todo.item.name,
        format=parsed.format,
        pages=parsed.pages,
        chunks=chunks,
        size_bytes=len(todo.data),
        added_at=datetime.now(UTC).isoformat(timespec="seconds"),
        title=parsed.title,
        ocr_pages=parsed.ocr_pages,
    )


def store_prepared(sink: DocumentSink, prepared: Prepared, vectors: np.ndarray) -> FileOutcome:
    """Write one document with its vectors (one transaction in the store)."""
    record, count = prepared.record, len(prepared.chunks)
    sink.replace_document(record, prepared.chunks, vectors)
    status: Status = "updated" if prepared.replaces is not None else "added"
    return FileOutcome(
        record.source, status, None, record.doc_id, record.pages, count, prepared.warnings
    )


def _embed_and_store(
    sink: DocumentSink, embedder: Embedder, batch: Sequence[Prepared], progress: bool
) -> list[FileOutcome]:
    if not batch:
        return []
    chunks = [chunk for prepared in batch for chunk in prepared.chunks]
    vectors = _embed(embedder, chunks, progress, batch[-1].record.name)
    outcomes = []
    offset = 0
    for prepared in batch:
        count = len(prepared.chunks)
        outcomes.append(store_prepared(sink, prepared, vectors[offset : offset + count]))
        offset += count
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


def remove_gone(sink: DocumentSink, roots: Sequence[Path], seen: set[str]) -> list[FileOutcome]:
    """Remove the documents under ``roots`` whose files are gone.

    Each stored path is checked on disk rather than trusting the walk's
    listing: hidden files, files in unreadable folders or behind a link loop,
    and files that failed to read are not in the listing but still exist.
    """
    prefixes = [str(Path(root).expanduser().resolve()) + os.sep for root in roots]
    removed = []
    for record in sink.documents():
        under_root = any(record.source.startswith(prefix) for prefix in prefixes)
        if (
            under_root
            and record.source not in seen
            and _gone(record.source)
            and sink.remove_document(record.doc_id)
        ):
            removed.append(FileOutcome(record.source, "removed", "file is gone", record.doc_id))
    return removed


def _gone(path: str) -> bool:
    """True only when the file surely no longer exists (a folder now in its place counts);
    a path that cannot be checked (permissions, a link loop) is not gone."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
