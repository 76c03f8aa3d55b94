"""``kbqa eval retrieval``: nDCG, recall and MRR on a BEIR folder, scored by ranx."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ingest.types import display_name

if TYPE_CHECKING:
    from ..qa.knowledge_base import KnowledgeBase

RETRIEVAL_METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10"]


@dataclass(frozen=True)
class BeirSet:
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: Path, split: str) -> BeirSet:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv (header row) of a BEIR folder."""
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            corpus[str(doc["_id"])] = f"{doc.get('title', '')}\n{doc['text']}".strip()
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            query = json.loads(line)
            queries[str(query["_id"])] = query["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            query_id, doc_id, score = line.rstrip("\n").split("\t")[:3]
            if int(score) > 0:
                qrels.setdefault(query_id, {})[doc_id] = int(score)
    return BeirSet(corpus, {q: queries[q] for q in qrels if q in queries}, qrels)


def evaluate_retrieval(
    kb: KnowledgeBase,
    data: BeirSet,
    depth: int = 100,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Index the corpus (incrementally), run the queries, score with ranx."""
    from ranx import Qrels, Run, evaluate
    from tqdm import tqdm

    started = time.perf_counter()
    report = kb.add_texts([(f"{doc_id}.txt", text) for doc_id, text in data.corpus.items()],
                          scheme="beir", progress=progress)  # fmt: skip
    ingest_s = time.perf_counter() - started

    query_ids = sorted(data.queries)
    if limit and limit < len(query_ids):
        query_ids = sorted(random.Random(seed).sample(query_ids, limit))
    run: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for query_id in tqdm(query_ids, desc="queries", disable=not progress):
        # Chunks are ranked; a document ranks where its best chunk does.
        hits = kb.search(data.queries[query_id], depth)
        ranked = list(dict.fromkeys(display_name(h.chunk.source)[:-4] for h in hits))
        run[query_id] = {doc: float(len(ranked) - rank) for rank, doc in enumerate(ranked)}
    search_s = time.perf_counter() - started
    qrels = Qrels({q: data.qrels[q] for q in query_ids})
    scores = evaluate(qrels, Run(run), RETRIEVAL_METRICS, make_comparable=True)
    return {
        "metrics": {name: round(float(value), 4) for name, value in scores.items()},
        "queries": len(query_ids),
        "documents": len(data.corpus),
        "chunks_embedded": report.chunks,
        "ingest_s": round(ingest_s, 1),
        "search_ms_per_query": round(1000 * search_s / max(1, len(query_ids)), 1),
        "per_query": run,
    }
