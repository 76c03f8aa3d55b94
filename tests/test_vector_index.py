"""VectorIndex layouts: exact flat while small, IVF-SQ8 above a (here lowered) limit.

Sizes stay in the thousands: ``flat_limit`` is passed in so IVF is trained and
searched for real in well under a second. Results are checked against brute
force numpy on seeded, clustered vectors (real embeddings cluster too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import stored_vector

from kbqa.index.vectors import TRAINING_SEED, VectorIndex, _training_sample, plan_layout

DIMENSION = 32
LIMIT = 1_000  # flat up to here in these tests (kbqa's default is FLAT_LIMIT)


def _clustered(count: int, seed: int, topics: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((topics, DIMENSION), dtype=np.float32)
    data = centers[rng.integers(0, topics, count)] + 0.5 * rng.standard_normal(
        (count, DIMENSION), dtype=np.float32
    )
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def _recall_at_10(
    index: VectorIndex, ids: np.ndarray, data: np.ndarray, queries: np.ndarray
) -> float:
    truth = ids[np.argsort(-(queries @ data.T), axis=1)[:, :10]]
    found = index.search(queries, 10)[1]
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def test_plan_is_flat_up_to_the_limit_then_ivf_with_about_2_sqrt_n_lists() -> None:
    assert plan_layout(50_000).kind == "flat"
    assert plan_layout(50_001).kind == "ivf-sq8"
    big = plan_layout(1_000_000)
    assert (big.kind, big.nlist) == ("ivf-sq8", 2_000)
    assert 0 < big.nprobe < big.nlist
    assert plan_layout(10, kind="flat").kind == "flat"
    assert plan_layout(10, kind="ivf-sq8").kind == "ivf-sq8"
    with pytest.raises(ValueError, match="unknown index kind"):
        plan_layout(10, kind="hnsw")  # type: ignore[arg-type]


def test_auto_switches_to_ivf_above_the_limit_and_back_when_it_shrinks() -> None:
    data = _clustered(3_000, seed=1)
    ids = np.arange(len(data), dtype=np.int64) * 3 + 7
    index = VectorIndex(DIMENSION, flat_limit=LIMIT)
    index.add(ids[:LIMIT], data[:LIMIT])
    assert index.layout.kind == "flat" and index.exact
    index.add(ids[LIMIT:], data[LIMIT:])
    assert index.layout.kind == "ivf-sq8" and not index.exact
    assert index.nprobe == index.layout.nprobe > 0
    assert sorted(index.ids().tolist()) == ids.tolist()

    index.remove(ids[: 3_000 - LIMIT // 2 + 1])  # below half the limit: exact again
    assert index.layout.kind == "flat"
    assert sorted(index.ids().tolist()) == ids[3_000 - LIMIT // 2 + 1 :].tolist()


def test_ivf_retrains_once_twice_the_lists_are_wanted() -> None:
    # At scale nlist ≈ 2·sqrt(n), so twice the lists means 4× the trained size.
    data = _clustered(8_000, seed=2)
    ids = np.arange(len(data), dtype=np.int64)
    index = VectorIndex(DIMENSION, kind="ivf-sq8")
    index.add(ids[:2_000], data[:2_000])
    first = index.layout.nlist
    index.add(ids[2_000:3_000], data[2_000:3_000])
    assert plan_layout(3_000, "ivf-sq8").nlist < 2 * first
    assert index.layout.nlist == first  # the old lists still do
    index.add(ids[3_000:], data[3_000:])
    assert index.layout == plan_layout(8_000, "ivf-sq8") and index.layout.nlist >= 2 * first
    assert len(index) == 8_000 and sorted(index.ids().tolist()) == ids.tolist()


def test_ids_are_the_added_minus_the_removed_and_search_never_returns_removed() -> None:
    rng = np.random.default_rng(3)
    data = _clustered(4_000, seed=3)
    ids = rng.choice(10**9, size=len(data), replace=False).astype(np.int64)
    index = VectorIndex(DIMENSION, flat_limit=LIMIT)
    index.add(ids, data)
    removed = rng.choice(ids, size=700, replace=False)
    index.remove(removed)
    keep = ~np.isin(ids, removed)
    assert index.layout.kind == "ivf-sq8"
    assert len(index) == int(keep.sum())
    assert set(index.ids().tolist()) == set(ids[keep].tolist())
    found = index.search(data[~keep][:50], 10)[1]
    assert not np.isin(found, removed).any()


def test_ivf_recall_against_exact_search_is_high_on_clustered_vectors() -> None:
    data = _clustered(5_000, seed=4)
    ids = np.arange(len(data), dtype=np.int64) + 100
    queries = _clustered(100, seed=5)
    index = VectorIndex(DIMENSION, flat_limit=LIMIT)
    index.add(ids, data)
    assert index.layout.kind == "ivf-sq8"
    assert _recall_at_10(index, ids, data, queries) >= 0.95
    # Scores are approximate but close to the exact cosines.
    scores, found = index.search(queries, 1)
    exact = np.einsum("ij,ij->i", queries, data[found[:, 0] - 100])
    np.testing.assert_allclose(scores[:, 0], exact, atol=0.02)


def test_build_streams_batches_and_picks_the_layout_by_size() -> None:
    data = _clustered(3_000, seed=6)
    ids = np.arange(len(data), dtype=np.int64)
    calls = []

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        calls.append(1)
        for start in range(0, len(data), 500):
            yield ids[start : start + 500], data[start : start + 500]

    index = VectorIndex.build(DIMENSION, len(data), batches, flat_limit=LIMIT)
    assert index.layout == plan_layout(len(data), flat_limit=LIMIT)
    assert len(calls) == 2  # one pass for the training sample, one to add
    assert sorted(index.ids().tolist()) == ids.tolist()
    small = VectorIndex.build(DIMENSION, len(data), batches, flat_limit=len(data))
    assert small.layout.kind == "flat" and len(small) == len(data)


@pytest.mark.parametrize("kind", ["flat", "ivf-sq8"])
def test_save_and_load_keep_the_type_nprobe_and_results(tmp_path: Path, kind: str) -> None:
    data = _clustered(3_000, seed=7)
    ids = np.arange(len(data), dtype=np.int64) * 2
    queries = _clustered(20, seed=8)
    index = VectorIndex(DIMENSION, kind=kind)  # type: ignore[arg-type]
    index.add(ids, data)
    path = tmp_path / "v.faiss"
    index.save(path)
    loaded = VectorIndex.load(path, DIMENSION, kind=kind)  # type: ignore[arg-type]
    assert loaded.layout == index.layout and loaded.layout.kind == kind
    assert loaded.nprobe == index.nprobe
    assert sorted(loaded.ids().tolist()) == ids.tolist()
    for before, after in zip(index.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(before, after)
    with pytest.raises(ValueError, match="dimension"):
        VectorIndex.load(path, DIMENSION + 1)


def _old_constructor_index(kind: str, nlist: int) -> Any:
    """An empty index as kbqa built it before it used ``faiss.index_factory``."""
    import faiss

    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSION))
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(DIMENSION),
        DIMENSION,
        nlist,
        faiss.ScalarQuantizer.QT_8bit,
        faiss.METRIC_INNER_PRODUCT,
    )
    index.cp.seed = TRAINING_SEED
    return index


@pytest.mark.parametrize("kind", ["flat", "ivf-sq8"])
def test_factory_indexes_match_old_snapshots_byte_for_byte_and_both_load(
    tmp_path: Path, kind: str
) -> None:
    import faiss

    data = _clustered(3_000, seed=10)
    ids = np.arange(len(data), dtype=np.int64) + 5
    queries = _clustered(20, seed=11)
    new = VectorIndex.build(DIMENSION, len(data), lambda: [(ids, data)], kind=kind)  # type: ignore[arg-type]
    old = _old_constructor_index(kind, new.layout.nlist)
    if kind == "ivf-sq8":
        sample = next(iter(_training_sample(lambda: [(ids, data)], len(data), new.layout)))[1]
        old.train(sample)
        old.nprobe = new.layout.nprobe
    old.add_with_ids(data, ids)
    path = tmp_path / "old.faiss"
    faiss.write_index(old, str(path))
    new.save(tmp_path / "new.faiss")
    assert path.read_bytes() == (tmp_path / "new.faiss").read_bytes()

    loaded = VectorIndex.load(path, DIMENSION, kind=kind)  # type: ignore[arg-type]
    assert loaded.layout == new.layout and not loaded.needs_new_layout()
    for before, after in zip(new.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(before, after)


def test_indexes_kbqa_did_not_make_are_refused(tmp_path: Path) -> None:
    import faiss

    path = tmp_path / "l2.faiss"
    faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatL2(DIMENSION)), str(path))
    with pytest.raises(ValueError, match="unexpected faiss index"):
        VectorIndex.load(path, DIMENSION)


def _store_with_chunks(folder: Path, documents: int, per_document: int, flat_limit: int):
    from kbqa.index.manifest import Manifest
    from kbqa.index.store import KnowledgeBaseStore
    from kbqa.ingest.chunking import ChunkerSettings
    from kbqa.ingest.types import Chunk, DocumentRecord

    manifest = Manifest("fake-clustered-32", DIMENSION, ChunkerSettings(60, 10))
    store = KnowledgeBaseStore.create(folder, manifest, flat_limit=flat_limit)
    data = _clustered(documents * per_document, seed=9)
    with store.writing():
        for number in range(documents):
            doc_id, source = f"doc{number}", f"/docs/{number}.txt"
            record = DocumentRecord(
                doc_id, source, f"{number}.txt", "text", 1, per_document, 1, "now"
            )
            chunks = [
                Chunk(f"{doc_id}-{i}", doc_id, f"text {number} {i}", source, 1, 0, 1, None, i)
                for i in range(per_document)
            ]
            rows = slice(number * per_document, (number + 1) * per_document)
            store.replace_document(record, chunks, data[rows])
    return store


def _row_ids(store) -> list[int]:
    return sorted(r[0] for r in store._db.execute("SELECT row_id FROM chunks"))


def test_store_switches_to_ivf_as_documents_arrive_and_rebuilds_ivf_from_sqlite(
    tmp_path: Path,
) -> None:
    from kbqa.index.store import KnowledgeBaseStore

    folder = tmp_path / "kb"
    store = _store_with_chunks(folder, documents=5, per_document=300, flat_limit=LIMIT)
    try:
        assert store._vectors.layout.kind == "ivf-sq8"  # re-trained from SQLite mid-ingest
        assert sorted(store._vectors.ids().tolist()) == _row_ids(store)
    finally:
        store.close()
    (snapshot,) = folder.glob("vectors.*.faiss")
    snapshot.unlink()  # the next open rebuilds from SQLite, in batches

    store = KnowledgeBaseStore.open(folder, flat_limit=LIMIT)
    try:
        assert store._vectors.layout == plan_layout(1_500, flat_limit=LIMIT)
        assert sorted(store._vectors.ids().tolist()) == _row_ids(store)
        assert snapshot.is_file()  # the rebuild is kept for the next open
        with store.writing():
            for number in range(4):  # 300 left: below half the limit
                assert store.remove_document(f"doc{number}")
        assert store._vectors.layout.kind == "flat"
        assert sorted(store._vectors.ids().tolist()) == _row_ids(store)
    finally:
        store.close()


def test_store_scores_are_exact_cosines_whatever_the_index(tmp_path: Path) -> None:
    from kbqa.qa.retrieval import dense_search

    store = _store_with_chunks(tmp_path / "kb", documents=3, per_document=700, flat_limit=LIMIT)
    try:
        assert not store._vectors.exact
        rows = store._db.execute("SELECT vector FROM chunks ORDER BY row_id LIMIT 20").fetchall()
        queries = np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows])
        for query, hits in zip(queries, dense_search(store, queries, 5), strict=True):
            assert hits[0].score == pytest.approx(1.0, abs=1e-5)  # itself, exactly
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            for hit in hits:
                stored = stored_vector(store, hit.chunk.id)
                assert hit.score == pytest.approx(float(stored @ query), abs=1e-6)
    finally:
        store.close()
