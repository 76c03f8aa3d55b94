"""A knowledge base on disk: manifest, chunks in SQLite, vectors in FAISS.

Longer than 450 lines on purpose: the table, the keyword index and the FAISS snapshot
are kept consistent by one lock and one transaction per document, which this class
owns; split, each half would have to reach into the other's transaction.

SQLite is the source of truth: each document's chunks and their vectors are
replaced in one transaction, so a kill at any moment leaves either the old or
the new state of that document. The FAISS file is a snapshot named after the
generation it reflects (``vectors.<generation>.faiss``); when it is missing or
older than the database, the index is rebuilt from the stored vectors, so the
index and the chunk table always agree.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import KnowledgeBaseError
from ..ingest.types import OCR, TEXT_LAYER, Chunk, DocumentRecord, PageOcr
from .lexical import FTS_SCHEMA, keyword_query
from .manifest import MANIFEST_NAME, Manifest
from .vectors import FLAT_LIMIT, VectorIndex

log = logging.getLogger(__name__)

DATABASE_NAME = "chunks.sqlite"
_VECTOR_BATCH = 8_192  # rows per read when (re)building the index: ~12 MB of 384-d vectors
LOCK_NAME = "write.lock"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    title TEXT,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id TEXT NOT NULL,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    page INTEGER,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    heading TEXT,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', '0');
-- Pages whose text came from OCR (the others from their text layer); created
-- empty when a knowledge base from before OCR is opened, which is just right.
CREATE TABLE IF NOT EXISTS ocr_pages (
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    confidence REAL NOT NULL,
    PRIMARY KEY (doc_id, page)
);
-- Tags belong to the source, not the content hash: a re-ingested (changed) file keeps them.
CREATE TABLE IF NOT EXISTS document_tags (
    source TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (source, tag)
);
"""
# A scope of at most this many chunks is searched exactly from the stored float32
# vectors (~30 MB at 384 dimensions) when the index is IVF-SQ8; larger ones through
# FAISS with an ID selector (index/vectors.py).
EXACT_SCOPE_ROWS = 20_000


@dataclass(frozen=True)
class ScopeRows:
    """The stored chunks of a scope's documents: what retrieval may return."""

    doc_ids: tuple[str, ...]
    row_ids: np.ndarray  # int64, ascending


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and its cosine similarity to the query."""

    chunk: Chunk
    score: float


class KnowledgeBaseStore:
    """Open with ``open`` or ``create``; write inside ``with store.writing():``."""

    def __init__(self, folder: Path, manifest: Manifest, flat_limit: int = FLAT_LIMIT) -> None:
        self.folder = folder
        self.flat_limit = flat_limit  # exact search up to this many chunks, then IVF-SQ8
        self.manifest = manifest
        self._db = sqlite3.connect(folder / DATABASE_NAME, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA + FTS_SCHEMA)
        self._mutex = threading.RLock()
        self._fill_keyword_index()
        self._writing = False
        self._vectors = self._empty_vectors()
        self._loaded_generation = -1
        self._scope_vectors: tuple[tuple[int, bytes], np.ndarray, np.ndarray] | None = None
        self._refresh()

    # -- opening ---------------------------------------------------------

    @classmethod
    def open(cls, folder: Path, flat_limit: int = FLAT_LIMIT) -> KnowledgeBaseStore:
        folder = Path(folder)
        if not (folder / MANIFEST_NAME).is_file():
            raise KnowledgeBaseError(
                f"no knowledge base at {folder}; create one with `kbqa ingest FILES --kb {folder}`"
            )
        return cls(folder, Manifest.read(folder), flat_limit)

    @classmethod
    def create(
        cls, folder: Path, manifest: Manifest, flat_limit: int = FLAT_LIMIT
    ) -> KnowledgeBaseStore:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / MANIFEST_NAME).exists():
            manifest.write(folder)
        return cls.open(folder, flat_limit)

    @staticmethod
    def exists(folder: Path) -> bool:
        return (Path(folder) / MANIFEST_NAME).is_file()

    def close(self) -> None:
        self._db.close()

    # -- reading ---------------------------------------------------------

    def generation(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def documents(self) -> list[DocumentRecord]:
        with self._mutex:
            rows = self._db.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY name, source"
            ).fetchall()
            ocr: dict[str, list[PageOcr]] = {}
            for doc_id, page, confidence in self._db.execute(
                "SELECT doc_id, page, confidence FROM ocr_pages ORDER BY doc_id, page"
            ):
                ocr.setdefault(doc_id, []).append(PageOcr(page, confidence))
            tags: dict[str, list[str]] = {}
            for source, tag in self._db.execute(
                "SELECT source, tag FROM document_tags ORDER BY source, tag"
            ):
                tags.setdefault(source, []).append(tag)
        return [_document(row, ocr.get(row[0], ()), tags.get(row[1], ())) for row in rows]

    def document_by_source(self, source: str) -> DocumentRecord | None:
        return self._one_document("source = ?", source)

    def document_by_id(self, doc_id: str) -> DocumentRecord | None:
        return self._one_document("doc_id = ?", doc_id)

    def chunk_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def vector_count(self) -> int:
        with self._mutex:
            self._refresh()
            return len(self._vectors)

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        with self._mutex:
            rows = self._db.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks JOIN documents USING (doc_id) "
                "WHERE doc_id = ? ORDER BY ordinal",
                (doc_id,),
            ).fetchall()
        return [_chunk(row) for row in rows]

    # -- retrieval primitives (qa/retrieval.py decides how to combine them) --

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One consistent view across several reads: a writer waits until the block ends.

        The primitives below each take this view themselves; a retriever that
        combines several of them holds it around all of them (the lock is
        re-entrant), so its rankings and scores come from one generation.
        """
        with self._mutex:
            self._refresh()
            yield

    def vectors_are_exact(self) -> bool:
        """True when dense search is exact (flat); False for IVF-SQ8 (8-bit codes)."""
        with self.reading():
            return self._vectors.exact

    def rows_of(self, doc_ids: Sequence[str]) -> ScopeRows:
        """The row ids of these documents' chunks (a resolved scope)."""
        with self.reading():
            rows = self._db.execute(
                "SELECT row_id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY row_id",
                (json.dumps(list(doc_ids)),),
            ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ScopeRows(tuple(doc_ids), ids)

    def dense_ranking(
        self, query_vectors: np.ndarray, depth: int, within: ScopeRows | None = None
    ) -> list[list[int]]:
        """Per query, the row ids of the ``depth`` nearest vectors, nearest first.

        ``within``: only that scope's chunks. A small scope on an approximate
        (IVF-SQ8) index is searched exactly from the stored vectors; otherwise FAISS
        searches with an ID selector (exact on a flat index).
        """
        with self.reading():
            if len(self._vectors) == 0 or (within is not None and len(within.row_ids) == 0):
                return [[] for _ in range(len(query_vectors))]
            if within is None:
                ids = self._vectors.search(query_vectors, depth)[1]
            elif self._vectors.exact or len(within.row_ids) > EXACT_SCOPE_ROWS:
                ids = self._vectors.search(query_vectors, depth, among=within.row_ids)[1]
            else:
                ids = self._exact_search(query_vectors, depth, within.row_ids)
        return [[int(i) for i in row if i >= 0] for row in ids]

    def keyword_ranking(self, text: str, limit: int, within: ScopeRows | None = None) -> list[int]:
        """The row ids of the ``limit`` chunks FTS5 ranks best (BM25) for ``text``'s words."""
        query = keyword_query(text)
        if query is None:
            return []
        restrict, params = "", [query]
        if within is not None:
            restrict = (
                " AND rowid IN (SELECT row_id FROM chunks "
                "WHERE doc_id IN (SELECT value FROM json_each(?)))"
            )
            params.append(json.dumps(list(within.doc_ids)))
        with self.reading():
            rows = self._db.execute(
                f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?{restrict} "
                "ORDER BY bm25(chunks_fts) LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [int(row[0]) for row in rows]

    def _exact_search(
        self, query_vectors: np.ndarray, depth: int, row_ids: np.ndarray
    ) -> np.ndarray:
        """Brute force over the scope's stored float32 vectors (kept for the next question)."""
        key = (self._loaded_generation, row_ids.tobytes())
        if self._scope_vectors is None or self._scope_vectors[0] != key:
            dimension = self.manifest.embedding_dimension
            rows = self._db.execute(
                "SELECT row_id, vector FROM chunks WHERE row_id IN "
                "(SELECT value FROM json_each(?)) ORDER BY row_id",
                (json.dumps(row_ids.tolist()),),
            ).fetchall()
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            self._scope_vectors = (key, ids, matrix.reshape(len(rows), dimension))
        _, ids, matrix = self._scope_vectors
        scores = np.asarray(query_vectors, dtype=np.float32) @ matrix.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        return ids[order]

    def hits(self, row_ids: Sequence[int], query_vector: np.ndarray) -> list[Hit]:
        """The chunks with these row ids, in that order, scored by exact cosine.

        Scores come from the float32 vectors in SQLite, never from FAISS: above
        ``FLAT_LIMIT`` FAISS holds 8-bit codes whose scores are off by ~1e-3,
        and the QA refusal threshold (``min_score``) must not move with the index
        type. Re-scoring ``k`` ≤ 100 rows is one indexed query. Ids no longer
        stored (a writer removed them) are left out.
        """
        if not row_ids:
            return []
        marks = ",".join("?" * len(row_ids))
        with self.reading():
            rows = self._db.execute(
                f"SELECT row_id, vector, {_CHUNK_COLUMNS} FROM chunks "
                f"JOIN documents USING (doc_id) WHERE row_id IN ({marks})",
                list(row_ids),
            ).fetchall()
        found = {int(r[0]): (np.frombuffer(r[1], dtype=np.float32), _chunk(r[2:])) for r in rows}
        return [
            Hit(found[i][1], float(np.dot(found[i][0], query_vector)))
            for i in row_ids
            if i in found  # a concurrent writer may have removed it
        ]

    # -- writing ---------------------------------------------------------

    @contextmanager
    def writing(self, timeout_s: float = 30.0) -> Iterator[None]:
        """Hold the folder's write lock; save the vector snapshot on the way out."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.folder / LOCK_NAME))
        try:
            lock.acquire(timeout=timeout_s)
        except Timeout as error:
            raise KnowledgeBaseError(
                f"{self.folder} is being written by another kbqa process; try again later"
            ) from error
        with self._mutex:
            self._writing = True
            try:
                self._refresh()
                yield
            finally:
                try:
                    self._save_vectors()
                finally:
                    self._writing = False
                    lock.release()

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        """Store a document and its chunks, replacing whatever had its source or id.

        Raises:
            KnowledgeBaseError: the vectors do not fit the chunks or this knowledge
                base's dimension (checked before anything is written).
        """
        self._require_writing()
        vectors = self._checked_vectors(record, len(chunks), vectors)
        with self._mutex, self._db:
            _, old_ids = self._delete_rows(
                "SELECT doc_id FROM documents WHERE source = ? OR doc_id = ?",
                (record.source, record.doc_id),
            )
            self._db.execute(
                f"INSERT INTO documents ({_DOC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.doc_id,
                    record.source,
                    record.name,
                    record.format,
                    record.title,
                    record.pages,
                    len(chunks),
                    record.size_bytes,
                    record.added_at,
                ),
            )
            self._db.executemany(
                "INSERT INTO ocr_pages (doc_id, page, confidence) VALUES (?, ?, ?)",
                [(record.doc_id, p.page, p.confidence) for p in record.ocr_pages],
            )
            new_ids = []
            for chunk, vector in zip(chunks, vectors, strict=True):
                cursor = self._db.execute(
                    "INSERT INTO chunks (chunk_id, doc_id, ordinal, text, page, start, end, "
                    "heading, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        chunk.id,
                        record.doc_id,
                        chunk.ordinal,
                        chunk.text,
                        chunk.page,
                        chunk.start,
                        chunk.end,
                        chunk.heading,
                        vector.tobytes(),
                    ),
                )
                new_ids.append(cursor.lastrowid)
                self._db.execute(
                    "INSERT INTO chunks_fts (rowid, heading, text) VALUES (?, ?, ?)",
                    (cursor.lastrowid, chunk.heading or "", chunk.text),
                )
            generation = self._bump_generation()
        # One update after the commit: a re-train it triggers streams this committed state.
        self._vectors.update(
            np.asarray(old_ids, dtype=np.int64), np.asarray(new_ids, dtype=np.int64), vectors
        )
        self._loaded_generation = generation

    def remove_document(self, doc_id: str) -> bool:
        """Delete a document and its chunks; False when it was not stored."""
        self._require_writing()
        with self._mutex, self._db:
            doc_ids, old_ids = self._delete_rows(
                "SELECT doc_id FROM documents WHERE doc_id = ?", (doc_id,)
            )
            if not doc_ids:
                return False
            self._db.execute(
                "DELETE FROM document_tags WHERE source NOT IN (SELECT source FROM documents)"
            )
            generation = self._bump_generation()
        self._vectors.remove(np.asarray(old_ids, dtype=np.int64))
        self._loaded_generation = generation
        return True

    def change_tags(self, source: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """Tag or untag the document stored from ``source`` (tags are checked by the caller)."""
        self._require_writing()
        with self._mutex, self._db:
            self._db.executemany(
                "DELETE FROM document_tags WHERE source = ? AND tag = ?",
                [(source, tag) for tag in remove],
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO document_tags (source, tag) VALUES (?, ?)",
                [(source, tag) for tag in add],
            )

    # -- internals -------------------------------------------------------

    def _delete_rows(
        self, select_docs: str, params: tuple[str, ...]
    ) -> tuple[list[str], list[int]]:
        doc_ids = [row[0] for row in self._db.execute(select_docs, params)]
        row_ids: list[int] = []
        for doc_id in doc_ids:
            row_ids += [
                r[0]
                for r in self._db.execute("SELECT row_id FROM chunks WHERE doc_id = ?", (doc_id,))
            ]
            self._db.execute(
                "DELETE FROM chunks_fts WHERE rowid IN "
                "(SELECT row_id FROM chunks WHERE doc_id = ?)",
                (doc_id,),
            )
            self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            self._db.execute("DELETE FROM ocr_pages WHERE doc_id = ?", (doc_id,))
            self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return doc_ids, row_ids

    def _fill_keyword_index(self) -> None:
        """Index chunks stored before the keyword index existed (one transaction)."""
        with self._db:
            (indexed,) = self._db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()
            if indexed == 0 and self.chunk_count() > 0:
                self._db.execute(
                    "INSERT INTO chunks_fts (rowid, heading, text) "
                    "SELECT row_id, COALESCE(heading, ''), text FROM chunks"
                )

    def _bump_generation(self) -> int:
        self._db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        return self.generation()

    def _require_writing(self) -> None:
        if not self._writing:
            raise RuntimeError("writes need `with store.writing():`")

    def _checked_vectors(
        self, record: DocumentRecord, count: int, vectors: np.ndarray
    ) -> np.ndarray:
        """``vectors`` as float32 rows, one per chunk, of the manifest's dimension.

        Checked before the transaction: SQLite commits a document before the vector
        index is updated, so a wrong-sized vector would otherwise be committed and
        only then fail the index update, leaving the two disagreeing.
        """
        dimension = self.manifest.embedding_dimension
        where = f"{record.name} ({record.source})"
        try:
            array = np.ascontiguousarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise KnowledgeBaseError(f"{where}: vectors are not numbers ({error})") from None
        if count == 0 and array.size == 0:
            return array.reshape(0, dimension)
        if array.ndim != 2 or array.shape[0] != count:
            raise KnowledgeBaseError(
                f"{where}: {count} chunks but vectors shaped {array.shape}; "
                f"expected ({count}, {dimension})"
            )
        if array.shape[1] != dimension:
            raise KnowledgeBaseError(
                f"{where}: vectors of dimension {array.shape[1]}, but this knowledge base "
                f"holds {self.manifest.embedding_model} vectors of dimension {dimension}"
            )
        if not np.isfinite(array).all():
            raise KnowledgeBaseError(f"{where}: vectors hold NaN or infinite values")
        return array

    def _one_document(self, where: str, value: str) -> DocumentRecord | None:
        with self._mutex:
            row = self._db.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE {where}", (value,)
            ).fetchone()
            if not row:
                return None
            ocr = [
                PageOcr(page, confidence)
                for page, confidence in self._db.execute(
                    "SELECT page, confidence FROM ocr_pages WHERE doc_id = ? ORDER BY page",
                    (row[0],),
                )
            ]
            tags = [
                tag
                for (tag,) in self._db.execute(
                    "SELECT tag FROM document_tags WHERE source = ? ORDER BY tag", (row[1],)
                )
            ]
        return _document(row, ocr, tags)

    def _refresh(self) -> None:
        """Bring the in-memory vectors up to the database's generation."""
        generation = self.generation()
        if generation == self._loaded_generation:
            return
        snapshot = self.folder / f"vectors.{generation}.faiss"
        count = self.chunk_count()
        if snapshot.is_file():
            try:
                vectors = VectorIndex.load(
                    snapshot,
                    self.manifest.embedding_dimension,
                    flat_limit=self.flat_limit,
                    source=self._stored_vectors,
                )
                if len(vectors) == count and not vectors.needs_new_layout():
                    self._vectors, self._loaded_generation = vectors, generation
                    return
                if len(vectors) == count:
                    log.info("%s has outgrown its index layout; rebuilding it", snapshot)
                else:
                    log.warning("%s disagrees with the chunk table; rebuilding it", snapshot)
            except (RuntimeError, ValueError) as error:
                log.warning("%s is unreadable (%s); rebuilding it", snapshot, error)
            # Only outside damage (snapshots are renamed into place whole) or a
            # changed layout rule (another kbqa version or flat_limit) gets here.
            snapshot.unlink(missing_ok=True)
        self._rebuild(generation)

    def _rebuild(self, generation: int) -> None:
        log.info("rebuilding the vector index of %s from its stored chunks", self.folder)
        self._db.execute("BEGIN")  # one read transaction: both passes see one snapshot
        try:
            generation = self.generation()
            vectors = VectorIndex.build(
                self.manifest.embedding_dimension,
                self.chunk_count(),
                self._stored_vectors,
                flat_limit=self.flat_limit,
                source=self._stored_vectors,
            )
        finally:
            self._db.execute("COMMIT")
        self._vectors, self._loaded_generation = vectors, generation
        if not self._writing:
            self._save_snapshot_if_idle()

    def _empty_vectors(self) -> VectorIndex:
        dimension = self.manifest.embedding_dimension
        return VectorIndex(dimension, flat_limit=self.flat_limit, source=self._stored_vectors)

    def _stored_vectors(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored (row ids, vectors) in batches, never the whole table at once."""
        dimension = self.manifest.embedding_dimension
        cursor = self._db.execute("SELECT row_id, vector FROM chunks ORDER BY row_id")
        try:
            while rows := cursor.fetchmany(_VECTOR_BATCH):
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
                yield ids, matrix.reshape(len(rows), dimension)
        finally:
            cursor.close()

    def _save_snapshot_if_idle(self) -> None:
        """After a rebuild (e.g. a writer was killed), keep it for the next open."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.folder / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return  # a writer is busy and will save its own snapshot
        try:
            if self.generation() == self._loaded_generation:
                self._save_vectors()
        except OSError as error:  # a read-only folder still answers questions
            log.info("could not save the vector snapshot: %s", error)
        finally:
            lock.release()

    def _save_vectors(self) -> None:
        generation = self.generation()
        if generation != self._loaded_generation:
            self._refresh()
        target = self.folder / f"vectors.{generation}.faiss"
        if not target.exists():
            self._vectors.save(target)
        for stale in self.folder.glob("vectors.*.faiss*"):
            if stale != target:
                stale.unlink(missing_ok=True)


_DOC_COLUMNS = "doc_id, source, name, format, title, pages, chunks, size_bytes, added_at"
# The last column says whether the chunk's page was OCR'd (1) or not (NULL).
_CHUNK_COLUMNS = (
    "chunk_id, doc_id, text, source, page, start, end, heading, ordinal, "
    "(SELECT 1 FROM ocr_pages o WHERE o.doc_id = chunks.doc_id AND o.page = chunks.page)"
)


def _document(
    row: tuple, ocr_pages: Sequence[PageOcr] = (), tags: Sequence[str] = ()
) -> DocumentRecord:
    doc_id, source, name, fmt, title, pages, chunks, size, added = row
    return DocumentRecord(
        doc_id, source, name, fmt, pages, chunks, size, added, title, tuple(ocr_pages), tuple(tags)
    )


def _chunk(row: tuple) -> Chunk:
    chunk_id, doc_id, text, source, page, start, end, heading, ordinal, ocr = row
    source_of_text = OCR if ocr else TEXT_LAYER
    return Chunk(chunk_id, doc_id, text, source, page, start, end, heading, ordinal, source_of_text)
