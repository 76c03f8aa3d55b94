"""``replace_document`` checks the vectors before writing anything.

SQLite commits a document before the vector index is updated; a vector of the
wrong size used to be committed and only then fail the index update, leaving the
chunk table and the index disagreeing. Now nothing is written at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kbqa.errors import KnowledgeBaseError
from kbqa.index.manifest import Manifest
from kbqa.index.store import KnowledgeBaseStore
from kbqa.ingest.chunking import ChunkerSettings
from kbqa.ingest.types import Chunk, DocumentRecord

DIMENSION = 8


def _document(doc_id: str, chunks: int) -> tuple[DocumentRecord, list[Chunk]]:
    source = f"/docs/{doc_id}.txt"
    record = DocumentRecord(doc_id, source, f"{doc_id}.txt", "text", 1, chunks, 10, "now")
    return record, [
        Chunk(f"{doc_id}-{i}", doc_id, f"passage {i} of {doc_id}", source, 1, 0, 9, None, i)
        for i in range(chunks)
    ]


def _unit_vectors(count: int, dimension: int = DIMENSION, seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KnowledgeBaseStore]:
    manifest = Manifest("fake-8", DIMENSION, ChunkerSettings(60, 10))
    opened = KnowledgeBaseStore.create(tmp_path / "kb", manifest)
    record, chunks = _document("kept", 2)
    with opened.writing():
        opened.replace_document(record, chunks, _unit_vectors(2))
    yield opened
    opened.close()


def _state(store: KnowledgeBaseStore) -> tuple[list[str], int, list[int]]:
    chunk_rows = sorted(r[0] for r in store._db.execute("SELECT row_id FROM chunks"))
    return ([d.doc_id for d in store.documents()], store.generation(), chunk_rows)


@pytest.mark.parametrize(
    ("vectors", "reason"),
    [
        (_unit_vectors(3, DIMENSION + 1), "dimension 9, but this knowledge base holds fake-8"),
        (_unit_vectors(2), "3 chunks but vectors shaped (2, 8)"),
        (_unit_vectors(4), "3 chunks but vectors shaped (4, 8)"),
        (_unit_vectors(3).ravel(), "3 chunks but vectors shaped (24,)"),
        (np.full((3, DIMENSION), np.nan, np.float32), "NaN or infinite"),
        (np.array([["a"] * DIMENSION] * 3), "not numbers"),
    ],
)
def test_wrong_vectors_are_refused_before_anything_is_written(
    store: KnowledgeBaseStore, vectors: np.ndarray, reason: str
) -> None:
    before = _state(store)
    record, chunks = _document("bad", 3)
    with store.writing(), pytest.raises(KnowledgeBaseError) as raised:
        store.replace_document(record, chunks, vectors)
    assert "bad.txt (/docs/bad.txt)" in str(raised.value)  # names the document
    assert reason in str(raised.value)
    assert _state(store) == before
    assert sorted(store._vectors.ids().tolist()) == before[2]  # index agrees with the table


def test_an_update_with_wrong_vectors_keeps_the_old_version(store: KnowledgeBaseStore) -> None:
    record, chunks = _document("kept", 3)
    with store.writing(), pytest.raises(KnowledgeBaseError):
        store.replace_document(record, chunks, _unit_vectors(3, 4))
    assert [d.chunks for d in store.documents()] == [2]
    rows = _state(store)[2]
    assert len(rows) == 2 and sorted(store._vectors.ids().tolist()) == rows


def test_right_vectors_still_go_in_including_a_document_without_chunks(
    store: KnowledgeBaseStore,
) -> None:
    record, chunks = _document("fine", 3)
    empty, _ = _document("empty", 0)
    with store.writing():
        store.replace_document(record, chunks, _unit_vectors(3, seed=5).astype(np.float64))
        store.replace_document(empty, [], np.zeros((0,), np.float32))
    assert sorted(d.doc_id for d in store.documents()) == ["empty", "fine", "kept"]
    assert len(store._vectors.ids()) == 5
