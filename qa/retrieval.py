"""Retrieval: which stored chunks answer a question, best first.

The store (``index/store.py``) offers primitives only: row ids ranked by FAISS
for a query vector, row ids ranked by FTS5 BM25 for a text, and chunks fetched
by row id with their exact cosine similarity to a query. How those are
combined (how deep each ranking goes, how rankings fuse, how hits are
re-ranked) is decided here, behind the ``Retriever`` protocol, so a reranker
or another fusion is added in this one module.

Every hit's ``score`` is its exact cosine similarity to the question, whatever
the mode; the order is the mode's (fusion order for ``hybrid`` and
``keyword``, cosine order for ``dense``). The refusal floor therefore looks at
the best score among the hits (``too_far``), not at the first hit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from ..index.store import Hit, KnowledgeBaseStore, ScopeRows
from ..models.embedder import Embedder

Mode = Literal["hybrid", "dense", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "keyword")
Fusion = Callable[[list[list[int]]], list[int]]

# Hybrid fuses this many candidates per answer slot (k) from each ranking.
HYBRID_CANDIDATES = 4
# Dense search on an IVF-SQ8 index fetches this many per slot and re-ranks them
# by exact cosine: that recovers what the 8-bit codes misorder.
APPROXIMATE_RERANK = 2
# Reciprocal rank fusion's constant (Cormack et al. use 60).
RRF_K = 60


class Retriever(Protocol):
    """Finds the ``k`` best chunks for each question, best first.

    ``within``: a resolved scope; only its chunks are searched (never the whole
    index filtered afterwards, which would return fewer than ``k``).
    """

    def retrieve(
        self, questions: Sequence[str], k: int, within: ScopeRows | None = None
    ) -> list[list[Hit]]: ...


def make_retriever(mode: str, store: KnowledgeBaseStore, embedder: Embedder) -> Retriever:
    """The retriever for a ``retrieval`` setting: ``hybrid``, ``dense`` or ``keyword``."""
    if mode == "hybrid":
        return HybridRetriever(store, embedder)
    if mode == "dense":
        return DenseRetriever(store, embedder)
    if mode == "keyword":
        return KeywordRetriever(store, embedder)
    raise ValueError(f"unknown retrieval mode {mode!r}; expected one of {MODES}")


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = RRF_K) -> list[int]:
    """Ids ordered by the sum of 1/(k + rank) over the rankings (Cormack et al., 2009)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda item: (-scores[item], item))


@dataclass(frozen=True)
class DenseRetriever:
    """Nearest vectors (FAISS), ordered by exact cosine."""

    store: KnowledgeBaseStore
    embedder: Embedder

    def retrieve(
        self, questions: Sequence[str], k: int, within: ScopeRows | None = None
    ) -> list[list[Hit]]:
        return dense_search(self.store, query_vectors(self.embedder, list(questions)), k, within)


@dataclass(frozen=True)
class KeywordRetriever:
    """FTS5 BM25 order; the embedder only gives the hits their cosine scores."""

    store: KnowledgeBaseStore
    embedder: Embedder

    def retrieve(
        self, questions: Sequence[str], k: int, within: ScopeRows | None = None
    ) -> list[list[Hit]]:
        questions = list(questions)
        vectors = query_vectors(self.embedder, questions)
        with self.store.reading():
            return [
                self.store.hits(self.store.keyword_ranking(question, k, within), vector)
                for question, vector in zip(questions, vectors, strict=True)
            ]


@dataclass(frozen=True)
class HybridRetriever:
    """Dense and keyword rankings of ``HYBRID_CANDIDATES · k`` each, fused (RRF by default)."""

    store: KnowledgeBaseStore
    embedder: Embedder
    fuse: Fusion = reciprocal_rank_fusion

    def retrieve(
        self, questions: Sequence[str], k: int, within: ScopeRows | None = None
    ) -> list[list[Hit]]:
        questions = list(questions)
        vectors = query_vectors(self.embedder, questions)
        depth = HYBRID_CANDIDATES * k
        with self.store.reading():
            dense = self.store.dense_ranking(vectors, depth, within)
            return [
                self.store.hits(
                    self.fuse([ranking, self.store.keyword_ranking(question, depth, within)])[:k],
                    vector,
                )
                for question, vector, ranking in zip(questions, vectors, dense, strict=True)
            ]


class _QueryVectors:
    """The last questions' vectors: retrieval and evidence selection embed each once."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, embedder: Embedder, questions: Sequence[str]) -> np.ndarray:
        if not questions:
            return embedder.embed_queries([])
        keys = [(embedder.name, q) for q in questions]
        with self._lock:
            known = [self._vectors.get(k) for k in keys]
        if any(v is None for v in known):
            fresh = embedder.embed_queries(list(questions))
            with self._lock:
                for key, vector in zip(keys, fresh, strict=True):
                    self._vectors[key] = vector
                    self._vectors.move_to_end(key)
                while len(self._vectors) > self._size:
                    self._vectors.popitem(last=False)
            return np.asarray(fresh)
        return np.stack([v for v in known if v is not None])


query_vectors = _QueryVectors()


def dense_search(
    store: KnowledgeBaseStore,
    query_vectors: np.ndarray,
    k: int,
    within: ScopeRows | None = None,
) -> list[list[Hit]]:
    """The ``k`` chunks nearest each query vector, by exact cosine, best first."""
    with store.reading():
        depth = k if store.vectors_are_exact() else APPROXIMATE_RERANK * k
        rankings = store.dense_ranking(query_vectors, depth, within)
        return [
            by_score(store.hits(ranking, vector))[:k]
            for ranking, vector in zip(rankings, query_vectors, strict=True)
        ]


def by_score(hits: Sequence[Hit]) -> list[Hit]:
    """Highest cosine first (stable: equal scores keep their order)."""
    return sorted(hits, key=lambda hit: -hit.score)


def best_score(hits: Sequence[Hit]) -> float | None:
    """The highest cosine among the hits, whatever their order; None without hits."""
    return max((hit.score for hit in hits), default=None)


def too_far(hits: Sequence[Hit], min_score: float) -> bool:
    """True when no hit is at least ``min_score`` close: refuse without asking the LLM."""
    best = best_score(hits)
    return best is None or best < min_score
