"""GPU check: a 1M-vector index searched on the GPU, and a corpus embedded there.

    bench/gpu_check.sh [--vectors 1000000] [--queries 1000] [--model NAME_OR_FOLDER]

Run through ``bench/gpu_check.sh`` on a machine with an NVIDIA GPU; it installs
nothing. Steps:

1. Vectors: kbqa's own index (``index.vectors.VectorIndex``: at 1M it picks its
   approximate type) is built, moved to the GPU by faiss and searched there; its
   recall@10 is scored against exact search on the CPU. Where faiss has no GPU
   support (faiss-gpu needs the CUDA 12 runtime), exact search in torch on the
   GPU stands in, and the output says so.
2. Embeddings: the same passages are embedded on the GPU and on the CPU with
   kbqa's embedder; passages/s for both and the cosine between their vectors.

Vectors are synthetic clustered 384-d (``bench/search.py``'s generator). Writes
JSON to ``--out``. ``--smoke``: 5,000 vectors, 50 queries, 32 passages; where torch
sees no CUDA GPU it writes a JSON saying it skipped, and exits 0. Not a test: CI
has no GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
XQUAD = ROOT.parent / "shared" / "data" / "xquad"

from bench.common import add_smoke_flag, load_settings, skip, write_result  # noqa: E402
from bench.search import (  # noqa: E402 - after the sys.path line
    K,
    exact_neighbours,
    queries_for,
    recall_at_k,
)
from bench.search import vectors as clustered_vectors  # noqa: E402


def timed(function: Any, repeats: int) -> tuple[Any, list[float]]:
    result, seconds = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return result, seconds


def gpu_search_faiss(data: np.ndarray, queries: np.ndarray, k: int) -> dict[str, Any]:
    """kbqa's VectorIndex, as kbqa builds it, searched on the GPU."""
    from kbqa.index.vectors import VectorIndex

    start = time.perf_counter()
    index = VectorIndex(data.shape[1])
    index.add(np.arange(len(data), dtype=np.int64), data)
    build_s = time.perf_counter() - start
    index.search(queries[:1], k)  # moves the index to the GPU
    (_, found), batch_s = timed(lambda: index.search(queries, k), 3)
    single_s = [timed(lambda q=q: index.search(q[None], k), 1)[1][0] for q in queries[:200]]
    return {
        "engine": f"faiss GPU, kbqa VectorIndex ({getattr(index, 'kind', '?')})",
        "build_s": build_s,
        "batch_queries_per_s": len(queries) / statistics.median(batch_s),
        "single_query_p50_ms": 1000 * statistics.median(single_s),
        "found": found,
    }


def gpu_search_torch(data: np.ndarray, queries: np.ndarray, k: int) -> dict[str, Any]:
    """Exact search as one matrix product on the GPU: the stand-in without faiss-gpu."""
    import torch

    start = time.perf_counter()
    matrix = torch.from_numpy(data).cuda().half()
    torch.cuda.synchronize()
    build_s = time.perf_counter() - start

    def search(batch: np.ndarray) -> np.ndarray:
        scores = torch.from_numpy(batch).cuda().half() @ matrix.T
        return scores.topk(k, dim=1).indices.cpu().numpy()

    search(queries[:8])
    found, batch_s = timed(lambda: search(queries), 3)
    single_s = [timed(lambda q=q: search(q[None]), 1)[1][0] for q in queries[:200]]
    return {
        "engine": "torch exact search in float16 (faiss here has no GPU support)",
        "build_s": build_s,
        "batch_queries_per_s": len(queries) / statistics.median(batch_s),
        "single_query_p50_ms": 1000 * statistics.median(single_s),
        "found": found,
    }


def check_vectors(count: int, query_count: int) -> dict[str, Any]:
    data = clustered_vectors(count, seed=0, topics=max(100, count // 200))
    queries = queries_for(data, query_count)
    start = time.perf_counter()
    truth = exact_neighbours(data, queries)
    cpu_exact_s = time.perf_counter() - start
    try:
        import faiss

        faiss_gpus = faiss.get_num_gpus()
    except ImportError:
        faiss_gpus = 0
    result = (gpu_search_faiss if faiss_gpus else gpu_search_torch)(data, queries, K)
    result["recall_at_10"] = recall_at_k(result.pop("found"), truth)
    result.update(
        vectors=count, queries=query_count, cpu_exact_queries_per_s=query_count / cpu_exact_s
    )
    return result


def passages(count: int) -> list[str]:
    """XQuAD paragraphs where the shared data is present, else this repo's own docs."""
    if XQUAD.exists():
        from kbqa.evaluation import retrieval_pairs

        texts = retrieval_pairs(XQUAD / "xquad.es.json")[0]
    else:
        texts = [
            part.strip()
            for path in sorted((ROOT / "corpora").glob("*.md")) + sorted(ROOT.glob("docs/*.md"))
            for part in path.read_text().split("\n\n")
            if len(part.strip()) > 200
        ]
    return [texts[i % len(texts)] for i in range(count)]


def check_embeddings(model: str, count: int, cpu_count: int) -> dict[str, Any]:
    from kbqa.models.embedder import SentenceTransformerEmbedder

    texts = passages(count)
    result: dict[str, Any] = {"model": model, "passages": count}
    vectors = {}
    for device, batch in (("cuda", texts), ("cpu", texts[:cpu_count])):
        embedder = SentenceTransformerEmbedder(
            model, load_settings().cache_dir, device=device, batch_size=128
        )
        embedder.embed_passages(batch[:8])  # load and warm up
        vectors[device], seconds = timed(lambda e=embedder, b=batch: e.embed_passages(b), 1)
        result[f"{device}_passages_per_s"] = len(batch) / seconds[0]
    cosine = (vectors["cuda"][:cpu_count] * vectors["cpu"]).sum(axis=1)
    result["gpu_over_cpu_speed"] = result["cuda_passages_per_s"] / result["cpu_passages_per_s"]
    result["cosine_gpu_vs_cpu_min"] = float(cosine.min())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="name or model folder")
    parser.add_argument("--passages", type=int, default=4000, help="embedded on the GPU")
    parser.add_argument("--cpu-passages", type=int, default=400, help="embedded on the CPU")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu.json")
    add_smoke_flag(parser)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        if args.smoke:
            skip(args.out, "torch sees no CUDA GPU", args)
        sys.exit("gpu_check: torch sees no CUDA GPU")
    if args.smoke:
        args.vectors, args.queries = 5_000, 50
        args.passages, args.cpu_passages = 32, 8
    report: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    report["vectors"] = check_vectors(args.vectors, args.queries)
    print(json.dumps(report["vectors"], indent=2), flush=True)
    report["embeddings"] = check_embeddings(args.model, args.passages, args.cpu_passages)
    print(json.dumps(report["embeddings"], indent=2), flush=True)
    write_result(args.out, report, args)


if __name__ == "__main__":
    main()
