"""Dense search inside a scope: latency and exactness for 1, 10 and 1,000 documents.

    python bench/scoped_search.py [--chunks 1000000] [--per-document 100] [--smoke]

A knowledge base of synthetic clustered 384-d vectors (as bench/search.py makes them)
is built through ``KnowledgeBaseStore`` (SQLite + FAISS, the layout kbqa picks at that
size: IVF-SQ8 at 1M), in documents of ``--per-document`` chunks. Then, with the same
queries (perturbed copies of stored vectors, half of them from inside the scope):

- unscoped ``dense_search`` (the figure every scope is compared with);
- a scope of 1, 10 and 1,000 documents: ``rows_of`` (resolving the scope's chunks),
  the first search (cold: a small scope's vectors are read from SQLite) and the
  next ones (warm: a conversation keeps its scope), p50/p95;
- recall@10 of each scoped search against brute force over the scope's own vectors.

Not a test; run it on a quiet machine. ``--smoke``: 20,000 chunks, 10 queries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import add_smoke_flag, write_result  # noqa: E402
from bench.search import DIMENSION, VECTORS, K, build_store, vectors  # noqa: E402

SCOPES = (1, 10, 1_000)  # documents


def timed_ms(function, *args) -> tuple[object, float]:
    started = time.perf_counter()
    value = function(*args)
    return value, (time.perf_counter() - started) * 1000


def scope_queries(data: np.ndarray, rows: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Half the queries near the scope's own vectors, half near anything."""
    rng = np.random.default_rng(seed)
    picks = np.concatenate(
        [rng.choice(rows, count // 2), rng.choice(len(data), count - count // 2)]
    )
    noise = np.random.default_rng(seed + 1).standard_normal((count, DIMENSION), dtype=np.float32)
    queries = data[picks] + 0.05 * noise / np.sqrt(DIMENSION) * 10
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def measure(store, data: np.ndarray, documents: int, per_document: int, n: int) -> dict:
    from kbqa.qa.retrieval import dense_search

    total_documents = len(data) // per_document
    chosen = np.random.default_rng(documents).choice(total_documents, documents, replace=False)
    doc_ids = [f"d{number:07d}" for number in sorted(chosen)]
    within, resolve_ms = timed_ms(store.rows_of, doc_ids)
    positions = within.row_ids - 1  # a fresh store numbers rows from 1, in insertion order
    queries = scope_queries(data, positions, n, seed=documents)
    truth = positions[np.argsort(-(queries @ data[positions].T), axis=1)[:, :K]]
    cold, cold_ms = timed_ms(dense_search, store, queries[:1], K, within)
    times, found = [], []
    for query in queries:
        hits, ms = timed_ms(dense_search, store, query[None, :], K, within)
        times.append(ms)
        found.append(hits[0])

    def position(chunk_id: str) -> int:  # "d0000042-7" -> row 42 * per_document + 7
        document, ordinal = chunk_id.split("-")
        return int(document[1:]) * per_document + int(ordinal)

    recall = statistics.mean(
        len({position(h.chunk.id) for h in row} & set(t.tolist())) / K
        for row, t in zip(found, truth, strict=True)
    )
    outside = sum(h.chunk.doc_id not in set(doc_ids) for row in found for h in row)
    return {
        "documents": documents,
        "chunks": int(len(within.row_ids)),
        "resolve_ms": round(resolve_ms, 2),
        "cold_ms": round(cold_ms, 2),
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "recall@10": round(recall, 4),
        "hits_outside_scope": outside,
        "queries": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--per-document", type=int, default=100)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "scoped_search.json"
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    import faiss

    from kbqa.index.store import EXACT_SCOPE_ROWS
    from kbqa.qa.retrieval import dense_search

    chunks, n, flat_limit = args.chunks, args.queries, None
    scopes = SCOPES
    if args.smoke:  # IVF-SQ8 forced by a low flat limit, so both scoped paths run
        chunks, n, flat_limit, scopes = 20_000, 10, 5_000, (1, 10, 150)
    data = vectors(chunks, seed=0, topics=max(100, chunks // 200))
    print(f"{chunks:,} chunks in documents of {args.per_document}; {n} queries each", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        store = build_store(Path(folder), data, args.per_document, flat_limit)
        build_s = time.perf_counter() - started
        layout = str(store._vectors.layout)
        print(f"built in {build_s:.0f} s: {layout}", flush=True)
        queries = scope_queries(data, np.arange(len(data)), n, seed=7)
        dense_search(store, queries[:1], K)
        times = [timed_ms(dense_search, store, q[None, :], K)[1] for q in queries]
        unscoped = {
            "documents": "all",
            "chunks": chunks,
            "p50_ms": round(statistics.median(times), 3),
            "p95_ms": round(float(np.percentile(times, 95)), 3),
        }
        rows = [unscoped]
        for documents in scopes:
            row = measure(store, data, documents, args.per_document, n)
            rows.append(row)
            print(row, flush=True)
        store.close()
    result = {
        "vectors": VECTORS,
        "faiss": faiss.__version__,
        "omp_threads": faiss.omp_get_max_threads(),
        "chunks": chunks,
        "per_document": args.per_document,
        "index": layout,
        "build_s": round(build_s, 1),
        "exact_scope_rows": EXACT_SCOPE_ROWS,
        "k": K,
        "rows": rows,
    }
    print(f"{'documents':>10} {'chunks':>9} {'resolve ms':>11} {'cold ms':>9} {'p50 ms':>8} "
          f"{'p95 ms':>8} {'recall@10':>9}")  # fmt: skip
    for row in rows:
        print(f"{row['documents']:>10} {row['chunks']:>9,} {row.get('resolve_ms', ''):>11} "
              f"{row.get('cold_ms', ''):>9} {row['p50_ms']:>8} {row['p95_ms']:>8} "
              f"{row.get('recall@10', ''):>9}")  # fmt: skip
    write_result(args.out, result, args)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
