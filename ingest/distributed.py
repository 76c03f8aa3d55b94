"""Ingest on a Ray cluster: reading, chunking and embedding as a Ray Data pipeline.

What runs where:

- the driver (this process) walks, hashes and deduplicates, exactly as the local
  engine does, so unchanged files are never shipped; it is also the single writer:
  each finished document is stored in its own transaction as it streams back;
- ``ReadAndChunk`` actors read each file in a bounded child process
  (``ingest.reader_process.ParseWorker``: a hostile file kills that child, not the actor)
  and chunk it with the embedder's tokenizer;
- ``EmbedChunks`` actors load the embedding model once each (on a GPU when the
  cluster has one) and embed the chunks of a batch of documents together.

Scheduling, placement, back-pressure and retries are Ray Data's: an actor that
dies is restarted and its batch retried (``max_restarts``/``max_task_retries``);
when the retries run out, the documents not yet stored are reported as failed.
Nothing is half-written: only the driver writes, one whole document at a time.

Only plain data crosses the cluster: file bytes, JSON text and float32 vector
bytes. The file bytes of a run travel in windows of ``window_bytes`` so that the
driver and the object store never hold a whole archive; each window is one Ray
Data execution (its actors load their models once).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import KbqaError
from ..models.embedder import Embedder, SentenceTransformerEmbedder
from .chunking import ChunkerSettings
from .limits import ParseLimits
from .local import (
    EMBED_BATCH,
    DocumentSink,
    FileOutcome,
    IngestOptions,
    IngestReport,
    InputFile,
    Prepared,
    ToRead,
    failed_outcome,
    finish_report,
    read_and_chunk,
    store_prepared,
    triage,
)
from .ray_cluster import (  # re-exported: the Ray engine's API
    MAX_RETRIES,
    actor_stage,
    cluster_size,
    connect,
    offline_environment,
)
from .reader_process import ParseWorker
from .types import Chunk, DocumentRecord, PageOcr

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedderSpec:
    """What an actor needs to load the embedder itself (plain data, sent to the cluster).

    ``cache_dir`` is the converted-model cache on the worker's node: packaged models
    are converted there from the installed model packages, never downloaded.
    """

    name: str
    cache_dir: str
    device: str = "auto"
    precision: str = "auto"

    def load(self) -> SentenceTransformerEmbedder:
        return SentenceTransformerEmbedder(
            self.name, Path(self.cache_dir), self.device, precision=self.precision
        )


@dataclass(frozen=True)
class RayOptions:
    """How to use the cluster; ``None`` sizes follow the cluster's CPUs and GPUs."""

    address: str | None = None  # None: start a local Ray instance for this run
    readers: int | None = None  # most ReadAndChunk actors
    embedders: int | None = None  # most EmbedChunks actors
    batch_documents: int = 16  # documents per embedding call
    window_bytes: int = 256 * 1024 * 1024  # file bytes shipped per Ray Data execution
    max_retries: int = MAX_RETRIES
    local_cpus: int | None = None  # CPUs of a local instance (default: this machine's, ≤ 8)


class RayIngest:
    """An ingest engine with ``ingest_files``'s signature, running on a Ray cluster."""

    def __init__(self, spec: EmbedderSpec, options: RayOptions | None = None) -> None:
        self.spec = spec
        self.options = options or RayOptions()
        self.execution_stats: list[str] = []  # Ray Data's report of each window's execution

    @classmethod
    def from_settings(cls, settings: Settings, address: str | None = None) -> RayIngest:
        """The engine for ``settings``: workers load the same embedder from the same
        cache path."""
        spec = EmbedderSpec(
            settings.embedding_model,
            str(settings.cache_dir),
            settings.device,
            settings.precision,
        )
        return cls(spec, RayOptions(address=address))

    def __call__(
        self,
        sink: DocumentSink,
        embedder: Embedder,
        files: Sequence[InputFile],
        options: IngestOptions,
        sync_roots: Sequence[Path] = (),
    ) -> IngestReport:
        """Add, update or skip each file; with ``sync_roots``, drop documents gone from them."""
        from tqdm import tqdm

        if embedder.name != self.spec.name:
            raise KbqaError(
                f"the Ray workers would embed with {self.spec.name!r} "
                f"but this knowledge base uses {embedder.name!r}"
            )
        dimension = _dimension(sink, embedder)
        started = time.perf_counter()
        outcomes: list[FileOutcome] = []
        bar = tqdm(total=len(files), unit="file", disable=not options.progress, desc="ingest")

        def report(outcome: FileOutcome) -> None:
            outcomes.append(outcome)
            if options.on_outcome:
                options.on_outcome(outcome)
            bar.update(1)

        try:
            with ExitStack() as cluster:
                connected = False
                for window in self._windows(sink, files, options, report):
                    if not connected:  # only files to read need the cluster
                        cluster.enter_context(
                            connect(self.options.address, self.options.local_cpus)
                        )
                        connected = True
                    self._run_window(sink, window, options, report, dimension)
        finally:
            bar.close()
        return finish_report(sink, files, options, sync_roots, outcomes, started)

    # -- the driver's side ----------------------------------------------------

    def _windows(
        self,
        sink: DocumentSink,
        files: Sequence[InputFile],
        options: IngestOptions,
        report: Any,
    ) -> Iterator[list[ToRead]]:
        """The files to read, triaged here (hash, dedup), in windows of bounded bytes."""
        queued: dict[str, str] = {}
        window: list[ToRead] = []
        size = 0
        for item in files:
            try:
                todo = triage(sink, item, options, queued)
            except Exception as error:  # noqa: BLE001 - one file fails, the batch goes on
                todo = failed_outcome(item.source, error)
            if isinstance(todo, FileOutcome):
                report(todo)
                continue
            queued[todo.doc_id] = item.source
            window.append(todo)
            size += len(todo.data)
            if size >= self.options.window_bytes:
                yield window
                window, size = [], 0
        if window:
            yield window

    def _run_window(
        self,
        sink: DocumentSink,
        window: list[ToRead],
        options: IngestOptions,
        report: Any,
        dimension: int,
    ) -> None:
        """Ship one window through the pipeline and store each document as it returns.

        Ray's failures (retries exhausted, a node lost) fail the documents not yet
        stored; a failure to store propagates, as with the local engine.
        """
        waiting = dict(enumerate(window))
        for row in self._rows(window, options):
            if isinstance(row, Exception):
                log.error("the Ray pipeline failed: %s", row)
                reason = f"not stored: the Ray pipeline failed ({_first_line(row)})"
                for todo in waiting.values():
                    report(FileOutcome(todo.item.source, "failed", reason, todo.doc_id))
                return
            index = int(row["index"])
            if index not in waiting:
                log.warning("a Ray worker returned document %s twice", index)
                continue
            report(_finish(sink, waiting.pop(index), row, dimension))
        for todo in waiting.values():  # never seen: Ray lost them without an error
            report(FileOutcome(todo.item.source, "failed", "not returned by the Ray pipeline"))

    def _rows(
        self, window: list[ToRead], options: IngestOptions
    ) -> Iterator[dict[str, Any] | Exception]:
        """The pipeline's rows, then its error if it fails (retries ran out, a node lost).

        Only the pipeline's own errors become a value: the caller's (storing a row)
        are raised where they happen, as with the local engine.
        """
        try:
            dataset = self._pipeline(window, options)
            yield from dataset.iter_rows()
        except Exception as error:  # noqa: BLE001 - whatever Ray raises fails the rest
            yield error
            return
        self.execution_stats.append(dataset.stats())  # where the time went, per stage
        log.info("Ray Data execution:\n%s", self.execution_stats[-1])

    def _pipeline(self, window: list[ToRead], options: IngestOptions) -> Any:
        import ray

        cpus, gpus = cluster_size()
        readers, embedders, cpus_each = self._pool_sizes(cpus, gpus, len(window))
        dataset = ray.data.from_items(input_rows(window), override_num_blocks=len(window))
        dataset = actor_stage(
            dataset.map,
            ReadAndChunk,
            actors=readers,
            cpus=cpus_each,
            gpus=0,
            retries=self.options.max_retries,
            fn_constructor_kwargs=self.reader_arguments(options),
        )
        dataset = actor_stage(
            dataset.map_batches,
            EmbedChunks,
            actors=embedders,
            cpus=cpus_each,
            gpus=1 if gpus >= 1 else 0,
            retries=self.options.max_retries,
            fn_constructor_kwargs={"spec": asdict(self.spec)},
            batch_size=self.options.batch_documents,
            batch_format="numpy",
        )
        return dataset

    def reader_arguments(self, options: IngestOptions) -> dict[str, Any]:
        """``ReadAndChunk``'s constructor arguments (plain data)."""
        return {
            "spec": asdict(self.spec),
            "chunker": asdict(options.chunker),
            "limits": options.limits.to_dict(),
            "password": options.password,
        }

    def _pool_sizes(self, cpus: float, gpus: float, documents: int) -> tuple[int, int, float]:
        """Most readers and embedders, and the CPUs each actor takes.

        Both pools together never ask for more CPUs than the cluster has, so neither
        can starve the other; with GPUs, one embedder per GPU.
        """
        cpus_each = 1.0 if cpus >= 2 else max(cpus, 0.2) / 2
        slots = max(2, int(cpus // cpus_each))
        if gpus >= 1:
            embedders = int(gpus)
            readers = max(1, slots - embedders)
        else:
            readers = max(1, slots // 2)
            embedders = max(1, slots - readers)
        readers = min(self.options.readers or readers, documents)
        embedders = min(self.options.embedders or embedders, documents)
        return max(1, readers), max(1, embedders), cpus_each


def input_rows(window: Sequence[ToRead]) -> list[dict[str, Any]]:
    """What the pipeline starts from: each file's bytes and what the driver knows of it."""
    return [
        {"index": index, "source": todo.item.source, "doc_id": todo.doc_id,
         "format": todo.format, "data": todo.data}
        for index, todo in enumerate(window)
    ]  # fmt: skip


def _dimension(sink: DocumentSink, embedder: Embedder) -> int:
    """The vectors' length: the store's manifest says it without loading the model here."""
    manifest = getattr(sink, "manifest", None)
    return int(manifest.embedding_dimension if manifest is not None else embedder.dimension)


def _finish(sink: DocumentSink, todo: ToRead, row: dict[str, Any], dimension: int) -> FileOutcome:
    """Store one returned document (a transaction), or its failure."""
    source = todo.item.source
    if row["reason"]:
        return FileOutcome(source, "failed", str(row["reason"]), todo.doc_id)
    try:
        document = json.loads(row["document"])
        chunks = [Chunk(**fields) for fields in document["chunks"]]
        vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(len(chunks), dimension)
        if any(chunk.doc_id != todo.doc_id or chunk.source != source for chunk in chunks):
            raise ValueError("chunks of another document")
    except (ValueError, KeyError, TypeError) as error:
        return FileOutcome(source, "failed", f"malformed result from a Ray worker ({error})")
    record = DocumentRecord(
        doc_id=todo.doc_id,
        source=source,
        name=todo.item.name,
        format=document["format"],
        pages=int(document["pages"]),
        chunks=len(chunks),
        size_bytes=len(todo.data),
        added_at=datetime.now(UTC).isoformat(timespec="seconds"),
        title=document["title"],
        ocr_pages=tuple(PageOcr(**page) for page in document["ocr_pages"]),
    )
    prepared = Prepared(record, chunks, todo.replaces, tuple(document["warnings"]))
    return store_prepared(sink, prepared, vectors)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}"


# -- the workers' side ------------------------------------------------------------


class ReadAndChunk:
    """Ray Data actor: one file's bytes in, its chunks as JSON out (or why not)."""

    def __init__(
        self,
        spec: dict[str, str],
        chunker: dict[str, Any],
        limits: dict[str, Any],
        password: str | None,
    ) -> None:
        offline_environment()
        self._tokens = EmbedderSpec(**spec).load()  # the tokenizer only: chunks count tokens
        self._options = IngestOptions(
            ChunkerSettings(**chunker), password=password, limits=ParseLimits.from_dict(limits)
        )
        self._worker = ParseWorker(self._options.limits)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        source = str(row["source"])
        data = bytes(row["data"])
        todo = ToRead(InputFile(source, data=data), data, str(row["format"]), str(row["doc_id"]),
                      None)  # fmt: skip
        out = {"index": int(row["index"]), "reason": "", "document": ""}
        try:
            prepared = read_and_chunk(self._worker, self._tokens.count_tokens, todo, self._options)
        except Exception as error:  # noqa: BLE001 - one file fails, the batch goes on
            out["reason"] = failed_outcome(source, error).reason or "could not be read"
            return out
        record = prepared.record
        out["document"] = json.dumps(
            {
                "format": record.format,
                "pages": record.pages,
                "title": record.title,
                "ocr_pages": [asdict(page) for page in record.ocr_pages],
                "warnings": list(prepared.warnings),
                "chunks": [asdict(chunk) for chunk in prepared.chunks],
            },
            ensure_ascii=False,
        )
        return out

    def __del__(self) -> None:
        self._worker.close()


class EmbedChunks:
    """Ray Data actor: embeds the chunks of a batch of documents with one model load."""

    def __init__(self, spec: dict[str, str]) -> None:
        offline_environment()
        self._embedder = EmbedderSpec(**spec).load()
        self._embedder.embed_passages(["warm up"])  # load now, not inside the first batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        documents = [json.loads(text) if text else None for text in batch["document"]]
        texts = [c["text"] for doc in documents if doc for c in doc["chunks"]]
        parts = [
            self._embedder.embed_passages(texts[start : start + EMBED_BATCH])
            for start in range(0, len(texts), EMBED_BATCH)
        ]
        vectors = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        out: list[bytes] = []
        offset = 0
        for doc in documents:
            count = len(doc["chunks"]) if doc else 0
            out.append(np.ascontiguousarray(vectors[offset : offset + count]).tobytes())
            offset += count
        return {
            "index": batch["index"],
            "reason": batch["reason"],
            "document": batch["document"],
            "vectors": np.array(out, dtype=object),
        }
