"""qa/retrieval.py: the modes, their depths and orders, fusion, and the refusal-floor rule."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import stored_vector
from fakes import FakeEmbedder, make_kb

from kbqa.index.store import Hit, KnowledgeBaseStore
from kbqa.ingest.types import Chunk
from kbqa.qa.retrieval import (
    APPROXIMATE_RERANK,
    HYBRID_CANDIDATES,
    DenseRetriever,
    HybridRetriever,
    KeywordRetriever,
    Retriever,
    best_score,
    dense_search,
    make_retriever,
    reciprocal_rank_fusion,
    too_far,
)

DOCS = {
    "zebra.txt": "Zebra herds graze on open grassland.",
    "filler.txt": "It is what it is, and that is that.",
    "pasta.txt": "Boil the pasta for nine minutes in salted water.",
    "okapi.txt": "The okapi is a relative of the giraffe, not of the zebra.",
}
# Its content word ("zebra") is in two passages; its function words fill another.
QUESTION = "What is it that the zebra is?"


@pytest.fixture
def kb(tmp_path: Path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    kb = make_kb(tmp_path / "kb")
    kb.add([folder])
    yield kb
    kb.close()


def _names(hits: list[Hit]) -> list[str]:
    return [Path(hit.chunk.source).name for hit in hits]


def _cosine(hit: Hit, question: str) -> float:
    (query,) = FakeEmbedder().embed_queries([question])
    (passage,) = FakeEmbedder().embed_passages([hit.chunk.text])
    return float(passage @ query)


def test_reciprocal_rank_fusion_sums_reciprocal_ranks_and_breaks_ties_by_id() -> None:
    assert reciprocal_rank_fusion([[1, 2, 3], [2, 3]]) == [2, 3, 1]
    assert reciprocal_rank_fusion([[5], [4]]) == [4, 5]  # equal scores: lower id first
    assert reciprocal_rank_fusion([[], []]) == []


def test_factory_maps_each_mode_and_refuses_others(kb) -> None:
    store, embedder = kb._store, kb.embedder
    assert isinstance(make_retriever("hybrid", store, embedder), HybridRetriever)
    assert isinstance(make_retriever("dense", store, embedder), DenseRetriever)
    assert isinstance(make_retriever("keyword", store, embedder), KeywordRetriever)
    with pytest.raises(ValueError, match="unknown retrieval mode 'bm25'"):
        make_retriever("bm25", store, embedder)


def test_every_mode_scores_hits_by_exact_cosine_in_its_own_order(kb) -> None:
    results = {
        mode: make_retriever(mode, kb._store, kb.embedder).retrieve([QUESTION], 10)[0]
        for mode in ("hybrid", "dense", "keyword")
    }
    for hits in results.values():
        for hit in hits:
            assert hit.score == pytest.approx(_cosine(hit, QUESTION), abs=1e-6)
    dense, keyword, hybrid = results["dense"], results["keyword"], results["hybrid"]
    assert [h.score for h in dense] == sorted((h.score for h in dense), reverse=True)
    assert _names(dense)[0] == "filler.txt"  # function words dominate the fake embedding
    assert set(_names(keyword)) == {"zebra.txt", "okapi.txt"}  # BM25 skips function words
    assert "filler.txt" not in _names(hybrid)[:1]  # in both rankings beats first in one
    assert hybrid[0].score < max(h.score for h in hybrid)  # fusion order, not cosine order


def test_batches_answer_each_question_like_alone(kb) -> None:
    questions = [QUESTION, "How long to boil pasta?", "okapi giraffe"]
    for mode in ("hybrid", "dense", "keyword"):
        retriever = make_retriever(mode, kb._store, kb.embedder)
        together = retriever.retrieve(questions, 3)
        alone = [retriever.retrieve([q], 3)[0] for q in questions]
        assert together == alone
        assert retriever.retrieve([], 3) == []


def test_depths_hybrid_fuses_4k_of_each_and_approximate_dense_fetches_2k(
    kb, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: KnowledgeBaseStore = kb._store
    asked: list[tuple[str, int]] = []
    dense_ranking, keyword_ranking = store.dense_ranking, store.keyword_ranking

    def dense(vectors: Any, depth: int, within: Any = None) -> Any:
        asked.append(("dense", depth))
        return dense_ranking(vectors, depth, within)

    def keyword(texts: Any, depth: int, within: Any = None) -> Any:
        asked.append(("keyword", depth))
        return keyword_ranking(texts, depth, within)

    monkeypatch.setattr(store, "dense_ranking", dense)
    monkeypatch.setattr(store, "keyword_ranking", keyword)
    make_retriever("hybrid", store, kb.embedder).retrieve([QUESTION], 2)
    assert asked == [("dense", HYBRID_CANDIDATES * 2), ("keyword", HYBRID_CANDIDATES * 2)]
    asked.clear()
    make_retriever("keyword", store, kb.embedder).retrieve([QUESTION], 2)
    assert asked == [("keyword", 2)]
    asked.clear()
    make_retriever("dense", store, kb.embedder).retrieve([QUESTION], 2)
    assert asked == [("dense", 2)]  # exact index: k is enough
    asked.clear()
    monkeypatch.setattr(store, "vectors_are_exact", lambda: False)
    hits = make_retriever("dense", store, kb.embedder).retrieve([QUESTION], 2)[0]
    assert asked == [("dense", APPROXIMATE_RERANK * 2)] and len(hits) == 2


def test_hybrid_takes_another_fusion(kb) -> None:
    def keyword_first(rankings: list[list[int]]) -> list[int]:
        dense, keyword = rankings
        return keyword + [i for i in dense if i not in keyword]

    hits = HybridRetriever(kb._store, kb.embedder, keyword_first).retrieve([QUESTION], 4)[0]
    assert set(_names(hits)[:2]) == {"zebra.txt", "okapi.txt"}


def test_any_object_with_retrieve_is_a_retriever(kb) -> None:
    class Reranked:
        def __init__(self, inner: Retriever) -> None:
            self.inner = inner

        def retrieve(self, questions, k, within=None):
            return [
                sorted(hits, key=lambda h: -h.score)
                for hits in self.inner.retrieve(questions, k, within)
            ]

    retriever: Retriever = Reranked(make_retriever("hybrid", kb._store, kb.embedder))
    hits = retriever.retrieve([QUESTION], 4)[0]
    assert _names(hits)[0] == "filler.txt"


def test_dense_search_takes_vectors_and_an_empty_store_finds_nothing(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb")
    kb.add_texts([("one.txt", "alpha beta gamma")])
    store = kb._require_store()
    vectors = kb.embedder.embed_queries(["alpha beta gamma", "delta"])
    found = dense_search(store, vectors, 3)
    assert [len(hits) for hits in found] == [1, 1]
    assert found[0][0].score == pytest.approx(1.0, abs=1e-6)
    with store.writing():
        store.remove_document(kb.documents()[0].doc_id)
    assert dense_search(store, vectors, 3) == [[], []]
    assert make_retriever("hybrid", store, kb.embedder).retrieve(["alpha"], 3) == [[]]
    kb.close()


def test_a_retrieval_sees_one_generation_a_writer_waits_for_it(kb) -> None:
    store: KnowledgeBaseStore = kb._store
    removed = threading.Event()

    def writer() -> None:
        with store.writing():
            store.remove_document(kb.find_document("zebra.txt").doc_id)
        removed.set()

    with store.reading():
        thread = threading.Thread(target=writer)
        thread.start()
        assert not removed.wait(0.3)  # the writer waits for the read to end
        hits = make_retriever("hybrid", store, kb.embedder).retrieve([QUESTION], 4)[0]
        assert "zebra.txt" in _names(hits)
    thread.join(10)
    assert removed.is_set()
    hits = make_retriever("hybrid", store, kb.embedder).retrieve([QUESTION], 4)[0]
    assert "zebra.txt" not in _names(hits)


def _hit(score: float) -> Hit:
    return Hit(Chunk(f"c{score}", "d", "text", "s", None, 0, 4, None, 0), score)


def test_the_refusal_floor_looks_at_the_best_cosine_not_the_first_hit() -> None:
    hits = [_hit(0.1), _hit(0.8), _hit(0.3)]  # fusion order
    assert best_score(hits) == 0.8 and best_score([]) is None
    assert not too_far(hits, 0.5)
    assert too_far(hits, 0.81)
    assert too_far([], 0.0)
    assert not too_far([_hit(0.5)], 0.5)  # at the floor is close enough


def test_vectors_are_scored_from_sqlite_not_faiss(kb) -> None:
    store: KnowledgeBaseStore = kb._store
    (query,) = kb.embedder.embed_queries([QUESTION])
    ranking = store.dense_ranking(query[None, :], 10)[0]
    hits = store.hits(list(reversed(ranking)) + [10**9], query)  # order kept, unknown ids skipped
    assert [h.chunk.id for h in hits] == [h.chunk.id for h in reversed(store.hits(ranking, query))]
    for hit in hits:
        assert hit.score == pytest.approx(
            float(stored_vector(store, hit.chunk.id) @ query), abs=1e-7
        )
