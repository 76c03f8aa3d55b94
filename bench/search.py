"""Search latency and recall at scale, for the FAISS index types kbqa can use.

    python bench/search.py [--quick] [--sizes 10000 100000 1000000] [--out FILE]

Vectors are synthetic, 384-dimensional like the default embedder's, clustered
around one topic per 200 vectors (real embeddings cluster; uniform noise is the
worst case for approximate search); queries are perturbed copies of stored
vectors. For each size and index type: build time, p50/p95 of
single-query search, recall@10 against exact search, bytes per vector of the
serialized index. Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.core import machine  # noqa: E402

DIMENSION = 384


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


def index_types(count: int) -> dict[str, str]:
    nlist = int(4 * np.sqrt(count))
    return {
        "Flat (exact, kbqa today)": "IDMap2,Flat",
        "HNSW32": "IDMap2,HNSW32,Flat",
        f"IVF{nlist},Flat": f"IDMap2,IVF{nlist},Flat",
        f"IVF{nlist},SQ8": f"IDMap2,IVF{nlist},SQ8",
    }


def measure(factory: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    import faiss

    index = faiss.index_factory(DIMENSION, factory, faiss.METRIC_INNER_PRODUCT)
    started = time.perf_counter()
    inner = faiss.downcast_index(index.index)
    if not inner.is_trained:
        sample = data[np.random.default_rng(1).choice(len(data), min(len(data), 50_000), False)]
        index.train(sample)
    index.add_with_ids(data, np.arange(len(data), dtype=np.int64))
    build_s = time.perf_counter() - started
    if hasattr(inner, "nprobe"):
        inner.nprobe = 16
    if hasattr(inner, "hnsw"):
        inner.hnsw.efSearch = 64
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        _, ids = index.search(query[None, :], 10)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append(ids[0])
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
    size = len(faiss.serialize_index(index))
    return {
        "build_s": round(build_s, 2),
        "p50_ms": round(statistics.median(latencies), 3),
        "p95_ms": round(sorted(latencies)[int(0.95 * len(latencies))], 3),
        "recall@10": round(recall, 4),
        "bytes_per_vector": round(size / len(data), 1),  # = MB per million vectors
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only, 100 queries")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "search.json")
    args = parser.parse_args()
    import faiss

    sizes = [s for s in args.sizes if s <= 100_000] if args.quick else args.sizes
    n_queries = 100 if args.quick else 300
    results: dict[str, object] = {
        "machine": machine(),
        "faiss": faiss.__version__,
        "omp_threads": faiss.omp_get_max_threads(),
        "vectors": "synthetic clustered (1 topic per 200), 384-d",
    }
    for size in sizes:
        data = vectors(size, seed=0, topics=max(100, size // 200))
        picks = np.random.default_rng(2).choice(size, n_queries, replace=False)
        queries = data[picks] + 0.05 * vectors(n_queries, seed=3)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        exact = faiss.IndexFlatIP(DIMENSION)
        exact.add(data)
        truth = exact.search(queries, 10)[1]
        for name, factory in index_types(size).items():
            row = measure(factory, data, queries, truth)
            results[f"{size} {name}"] = row
            print(f"{size:>9,}  {name:<26} {json.dumps(row)}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
