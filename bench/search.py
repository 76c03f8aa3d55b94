"""Search latency, recall and memory at scale, for the vector index types kbqa offers.

    python bench/search.py [--quick | --smoke] [--sizes 10000 100000 1000000] [--out FILE]

Vectors are synthetic, 384-dimensional like the default embedder's, clustered
around one topic per 200 vectors (real embeddings cluster; uniform noise is the
worst case for approximate search); queries are perturbed copies of stored
vectors. Each index is built through kbqa's own ``VectorIndex.build`` (batches
streamed, IVF trained on a seeded sample), for each type: ``flat`` (exact),
``ivf-sq8``, and ``auto`` (what kbqa picks at that size, the same build as one
of the two). Reported: build time (training included), p50/p95 of single-query
search (k=10), recall@10 against exact search, serialized bytes per vector, and
resident memory growth per million vectors. With 100k in the sizes, also the
latency of a dense ``KnowledgeBaseStore.search`` (FAISS plus exact re-scoring
from SQLite). ``--smoke``: 2,000 vectors, 20 queries, the store search at that size.
Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import add_smoke_flag, write_result  # noqa: E402

if TYPE_CHECKING:
    from kbqa.index.vectors import IndexKind, VectorIndex

DIMENSION = 384
K = 10
VECTORS = "synthetic clustered 384-d (1 topic per 200 vectors; queries: perturbed stored vectors)"
FLAT_QUERY_BUDGET_S = 8.0  # exact search at 1M takes ~0.1 s a query: fewer queries there


def vectors(count: int, seed: int, topics: int = 0) -> np.ndarray:
    """Normalized vectors; with ``topics``, clustered around that many directions,
    as real text embeddings are (uniform noise in 384-d is ANN's worst case)."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((count, DIMENSION), dtype=np.float32)
    if topics:
        centers = np.random.default_rng(99).standard_normal((topics, DIMENSION), dtype=np.float32)
        data = centers[rng.integers(0, topics, count)] + 0.6 * data
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    return data


def queries_for(data: np.ndarray, count: int) -> np.ndarray:
    picks = np.random.default_rng(2).choice(len(data), count, replace=False)
    queries = data[picks] + 0.05 * vectors(count, seed=3)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def exact_neighbours(data: np.ndarray, queries: np.ndarray, block: int = 100_000) -> np.ndarray:
    """Each query's ``K`` best rows by inner product, a block of ``data`` at a time."""
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    best_rows = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, len(data), block):
        block_scores = queries @ data[start : start + block].T
        block_rows = np.broadcast_to(
            np.arange(start, start + block_scores.shape[1]), block_scores.shape
        )
        scores = np.hstack([best_scores, block_scores])
        rows = np.hstack([best_rows, block_rows])
        keep = np.argsort(-scores, axis=1)[:, :K]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_rows = np.take_along_axis(rows, keep, axis=1)
    return best_rows


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true neighbours that were found."""
    hits = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def rss_bytes() -> int:
    """Resident memory, after handing freed heap back to the OS (glibc keeps it
    otherwise, and a later build reusing it would look free)."""
    import ctypes
    import ctypes.util

    import psutil

    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)
        if trim is not None:
            trim(0)
    return int(psutil.Process().memory_info().rss)


def build(kind: IndexKind, data: np.ndarray) -> tuple[VectorIndex, float, int]:
    """kbqa's index of ``data``: (index, build seconds, resident bytes it added)."""
    from kbqa.index.vectors import VectorIndex

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(data), 65_536):
            chunk = data[start : start + 65_536]
            yield np.arange(start, start + len(chunk), dtype=np.int64), chunk

    before = rss_bytes()
    started = time.perf_counter()
    index = VectorIndex.build(DIMENSION, len(data), batches, kind=kind)
    build_s = time.perf_counter() - started
    return index, build_s, rss_bytes() - before


def latencies_ms(search: Callable[[np.ndarray], object], queries: np.ndarray) -> list[float]:
    """Milliseconds of ``search`` on each query alone (single-query latency)."""
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query[None, :])
        times.append((time.perf_counter() - started) * 1000)
    return times


def serialized_bytes(index: VectorIndex) -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vectors.faiss"
        index.save(path)
        return path.stat().st_size


def measure(kind: IndexKind, data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    """One index type at one size."""
    index, build_s, grown = build(kind, data)
    recall = recall_at_k(index.search(queries, K)[1], truth)
    # Exact search at 1M is ~0.1 s a query: time as many queries as fit the budget.
    first = statistics.median(latencies_ms(lambda q: index.search(q, K), queries[:5]))
    timed = queries[: max(20, int(FLAT_QUERY_BUDGET_S * 1000 / max(first, 1e-3)))]
    times = latencies_ms(lambda q: index.search(q, K), timed)
    return {
        "size": len(data),
        "kind": kind,
        "index": str(index.layout),
        "build_s": round(build_s, 2),
        "queries": len(timed),
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "recall@10": round(recall, 4),
        "bytes_per_vector": round(serialized_bytes(index) / len(data), 1),
        "rss_mb_per_million": round(grown / len(data), 1),  # bytes/vector = MB per million
    }


def build_store(folder: Path, data: np.ndarray, per_document: int, flat_limit: int | None = None):
    """A ``KnowledgeBaseStore`` holding ``data`` in documents of ``per_document`` chunks."""
    from kbqa.index.manifest import Manifest
    from kbqa.index.store import KnowledgeBaseStore
    from kbqa.index.vectors import FLAT_LIMIT
    from kbqa.ingest.chunking import ChunkerSettings
    from kbqa.ingest.types import Chunk, DocumentRecord

    manifest = Manifest("synthetic", DIMENSION, ChunkerSettings(200, 32))
    store = KnowledgeBaseStore.create(folder, manifest, flat_limit=flat_limit or FLAT_LIMIT)
    with store.writing():
        for number, start in enumerate(range(0, len(data), per_document)):
            doc_id, source = f"d{number:07d}", f"/synthetic/{number}.txt"
            rows = data[start : start + per_document]
            record = DocumentRecord(doc_id, source, source, "text", 1, len(rows), 1, "-")
            chunks = [
                Chunk(f"{doc_id}-{i}", doc_id, f"passage {start + i}", source, 1, 0, 1, None, i)
                for i in range(len(rows))
            ]
            store.replace_document(record, chunks, rows)
            if number % 1000 == 999:
                print(f"  stored {start + len(rows):,} chunks", file=sys.stderr, flush=True)
    return store


def measure_store(data: np.ndarray, queries: np.ndarray) -> dict:
    """Dense search over a ``KnowledgeBaseStore`` (index + SQLite re-scoring), built by ingest."""
    from kbqa.qa.retrieval import dense_search

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        store = build_store(Path(folder), data, per_document=1_000)
        ingest_s = time.perf_counter() - started
        times = latencies_ms(lambda q: dense_search(store, q, K), queries)
        layout = store._vectors.layout
        store.close()
    return {
        "size": len(data),
        "kind": "store.search",  # qa.retrieval.dense_search: auto index, exact SQLite re-scoring
        "index": str(layout),
        "ingest_s": round(ingest_s, 1),
        "queries": len(queries),
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
    }


def print_row(row: dict) -> None:
    recall = row.get("recall@10", "")
    print(
        f"{row['size']:>9,}  {row['kind']:<17.17} {row['index']:<26} {row.get('build_s', ''):>8} "
        f"{row['p50_ms']:>8} {row['p95_ms']:>8} {recall:>7} {row.get('bytes_per_vector', ''):>7} "
        f"{row.get('rss_mb_per_million', ''):>7}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only, 100 queries")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=0, help="queries per size (default 200)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "search.json")
    add_smoke_flag(parser)
    args = parser.parse_args()
    import faiss

    from kbqa.index.vectors import FLAT_LIMIT, NPROBE, plan_layout

    sizes = [s for s in args.sizes if s <= 100_000] if args.quick else args.sizes
    n_queries = args.queries or (100 if args.quick else 200)
    store_size = 100_000
    if args.smoke:
        sizes, n_queries, store_size = [2_000], args.queries or 20, 2_000
    rule = f"flat up to {FLAT_LIMIT:,} vectors, else IVF-SQ8 with ~2*sqrt(n) lists, nprobe {NPROBE}"
    results: dict[str, object] = {
        "faiss": faiss.__version__,
        "omp_threads": faiss.omp_get_max_threads(),
        "vectors": VECTORS,
        "k": K,
        "auto_rule": rule,
        "rss_note": "resident growth kept after building (freed heap trimmed); rough below 100k",
        "runs": [],
    }
    print(f"vectors: {VECTORS}; k={K}; auto: {rule}")
    print(
        f"{'vectors':>9}  {'kind':<17} {'index':<26} {'build_s':>8} {'p50_ms':>8} {'p95_ms':>8} "
        f"{'rec@10':>7} {'B/vec':>7} {'MB/1M':>7}"
    )
    runs: list[dict] = results["runs"]  # type: ignore[assignment]
    for size in sizes:
        data = vectors(size, seed=0, topics=max(100, size // 200))
        queries = queries_for(data, n_queries)
        truth = exact_neighbours(data, queries)
        exact = measure("flat", data, queries, truth)
        ivf = measure("ivf-sq8", data, queries, truth)
        picked = exact if plan_layout(size).kind == "flat" else ivf
        auto = picked | {"kind": f"auto (={picked['kind']})"}
        for row in (exact, ivf, auto):
            runs.append(row)
            print_row(row)
        if size == store_size:
            row = measure_store(data, queries)
            runs.append(row)
            print_row(row)
        del data
    write_result(args.out, results, args)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
