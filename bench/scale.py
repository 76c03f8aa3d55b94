"""Sizing on paper: time, cost and index memory to ingest 1M / 10M / 100M chunks.

    python bench/scale.py [--smoke] [--out bench/results/scale.json] [--price-cpu2 0.10] ...

Pure arithmetic over figures measured elsewhere; it measures nothing itself and
runs in a second. The tables it prints are the ones in ``docs/scaling.md``
("Sizing on paper"). Which script measured what it reads:

- ``bench/ingest.py`` -> ``bench/results/ingest.json``: chunks/s of a local ingest
  on the 2-core machine (e5-small, bfloat16), per corpus;
- ``bench/ray_ingest.py`` -> ``bench/results/ray_ingest.json``: the local engine
  against the Ray engine on the same machine at the same moment (their ratio is
  Ray's efficiency here, start-up included);
- ``bench/gpu_check.sh`` -> ``bench/results/gpu.json``: passages/s embedded on one
  H100 and on its host's 16 CPU cores (MiniLM);
- ``bench/embedders.py`` -> ``bench/results/embedders.json``: e5-small against
  MiniLM on the same CPU (to carry the MiniLM figures over to e5);
- ``bench/search.py`` -> ``bench/results/search.json``: bytes and resident memory
  per vector for the exact and IVF-SQ8 indexes, search latency, and how fast the
  store writes chunks (the single writer's ceiling).

Prices are assumptions, not measurements: flags, recorded in the JSON. ``--smoke``:
the same arithmetic (it takes a second anyway), written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import add_smoke_flag, write_result  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_OUT = RESULTS / "scale.json"

SIZES = (1_000_000, 10_000_000, 100_000_000)
NODE_COUNTS = (1, 10, 100)
DIMENSION = 384  # multilingual-e5-small
PQ_BYTES = 48  # IVF-PQ48: 48 one-byte codes per vector (on paper: kbqa builds flat or IVF-SQ8)
ID_BYTES = 8  # int64 id per vector in every index
SQLITE_KB_PER_CHUNK = 4.3  # docs/performance.md §2: chunk text, float32 vector, FTS (SciFact)
MEMORY_SHARE = 0.5  # an index may take this share of a node's memory (models, page cache)
# Assumed on-demand prices, USD per node-hour (typical public-cloud list prices, 2025):
PRICES = {"cpu-2": 0.10, "cpu-16": 0.80, "gpu-1": 4.00}


@dataclass(frozen=True)
class Node:
    name: str
    what: str
    chunks_per_s: float  # through the Ray engine, per node
    derivation: str
    price_per_hour: float
    memory_gb: float  # RAM, or GPU memory for the GPU's own index copy


def load(name: str) -> dict[str, Any]:
    path = RESULTS / name
    if not path.is_file():
        raise SystemExit(f"needs {path} (run the script that measures it; see --help)")
    return json.loads(path.read_text(encoding="utf-8"))


def measured() -> dict[str, Any]:
    """The per-node figures, each with where it comes from."""
    ingest, ray, gpu = load("ingest.json"), load("ray_ingest.json"), load("gpu.json")
    embedders, search = load("embedders.json"), load("search.json")

    local_rates = {
        row["corpus"]: row["ours"]["chunks"] / row["ours"]["kbqa_reported_s"]
        for row in ingest["results"]
    }
    runs = ray["runs"]
    ray_efficiency = runs["ray-local"]["chunks_per_s"] / runs["local"]["chunks_per_s"]
    models = embedders["models"]

    def passages_per_s(model: str) -> float:
        return float(models[model]["passages_n"] / models[model]["passages_wall_s"])

    e5_over_minilm = passages_per_s("multilingual-e5-small bfloat16") / passages_per_s(
        "all-MiniLM-L6-v2 bfloat16"
    )
    by_kind = {(r["size"], r["kind"]): r for r in search["runs"]}
    store_row = next(r for r in search["runs"] if r["kind"] == "store.search")
    return {
        "local_chunks_per_s_2_cores": {k: round(v, 1) for k, v in local_rates.items()},
        "local_chunks_per_s_2_cores_slowest": round(min(local_rates.values()), 1),
        "ray_over_local": round(ray_efficiency, 3),
        "gpu_minilm_passages_per_s": round(gpu["embeddings"]["cuda_passages_per_s"], 1),
        "cpu16_minilm_passages_per_s": round(gpu["embeddings"]["cpu_passages_per_s"], 1),
        "gpu_name": gpu["gpu"],
        "e5_over_minilm_cpu": round(e5_over_minilm, 3),
        "memory_gb_2_core_node": ingest["machine"]["memory_gb"],
        "flat_bytes_per_vector": by_kind[(1_000_000, "flat")]["bytes_per_vector"],
        "flat_rss_mb_per_million": by_kind[(1_000_000, "flat")]["rss_mb_per_million"],
        "flat_p50_ms_at_1m": by_kind[(1_000_000, "flat")]["p50_ms"],
        "sq8_bytes_per_vector": by_kind[(1_000_000, "ivf-sq8")]["bytes_per_vector"],
        "sq8_rss_mb_per_million": by_kind[(1_000_000, "ivf-sq8")]["rss_mb_per_million"],
        "sq8_p50_ms_at_1m": by_kind[(1_000_000, "ivf-sq8")]["p50_ms"],
        "sq8_recall_at_1m": by_kind[(1_000_000, "ivf-sq8")]["recall@10"],
        "sq8_build_s_at_1m": by_kind[(1_000_000, "ivf-sq8")]["build_s"],
        "store_writes_per_s": round(store_row["size"] / store_row["ingest_s"]),
    }


def nodes(m: dict[str, Any], prices: dict[str, float], gpu_memory_gb: float) -> list[Node]:
    ray = m["ray_over_local"]
    cpu2 = m["local_chunks_per_s_2_cores_slowest"] * ray
    cpu16 = m["cpu16_minilm_passages_per_s"] * m["e5_over_minilm_cpu"] * ray
    gpu = m["gpu_minilm_passages_per_s"] * m["e5_over_minilm_cpu"] * ray
    return [
        Node("cpu-2", "2 cores (the development machine)", cpu2,
             f"{m['local_chunks_per_s_2_cores_slowest']} local (slowest corpus) × {ray} Ray",
             prices["cpu-2"], m["memory_gb_2_core_node"]),
        Node("cpu-16", "16 cores (the H100 machine's host CPU)", cpu16,
             f"{m['cpu16_minilm_passages_per_s']} MiniLM × {m['e5_over_minilm_cpu']} e5/MiniLM"
             f" × {ray} Ray", prices["cpu-16"], 128.0),
        Node("gpu-1", f"1 GPU ({m['gpu_name']}) + 16 cores", gpu,
             f"{m['gpu_minilm_passages_per_s']} MiniLM × {m['e5_over_minilm_cpu']} e5/MiniLM"
             f" × {ray} Ray", prices["gpu-1"], gpu_memory_gb),
    ]  # fmt: skip


def ingest_rows(all_nodes: list[Node], writer_per_s: float) -> list[dict[str, Any]]:
    """Hours and dollars per size, node type and node count; the driver's single
    writer caps the cluster's rate."""
    rows = []
    for size in SIZES:
        for node in all_nodes:
            for count in NODE_COUNTS:
                rate = min(count * node.chunks_per_s, writer_per_s)
                hours = size / rate / 3600
                rows.append({
                    "chunks": size, "node": node.name, "nodes": count,
                    "chunks_per_s": round(rate, 1), "hours": round(hours, 2),
                    "usd": round(hours * count * node.price_per_hour, 2),
                    "writer_bound": count * node.chunks_per_s >= writer_per_s,
                })  # fmt: skip
    return rows


def index_rows(m: dict[str, Any], all_nodes: list[Node]) -> list[dict[str, Any]]:
    """Memory, latency and the choice at each size; latency and build time beyond the
    measured 1M are scaled on paper (flat: linear; IVF with 2·√n lists: √n)."""
    rows = []
    for size in SIZES:
        millions = size / 1e6
        flat_gb = m["flat_rss_mb_per_million"] * millions / 1024
        sq8_gb = m["sq8_rss_mb_per_million"] * millions / 1024
        pq_gb = size * (PQ_BYTES + ID_BYTES) / 1024**3
        cpu_ram = min(n.memory_gb for n in all_nodes if n.name == "cpu-2") * MEMORY_SHARE
        gpu_mem = next(n.memory_gb for n in all_nodes if n.name == "gpu-1") * MEMORY_SHARE
        rows.append({
            "chunks": size,
            "raw_float32_gb": round(size * DIMENSION * 4 / 1024**3, 1),
            "flat_gb": round(flat_gb, 1),
            "flat_p50_ms_2_cores": round(m["flat_p50_ms_at_1m"] * millions, 1),
            "ivf_sq8_gb": round(sq8_gb, 1),
            "ivf_sq8_lists": round(2 * math.sqrt(size)),
            "ivf_sq8_p50_ms_2_cores": round(m["sq8_p50_ms_at_1m"] * math.sqrt(millions), 2),
            "ivf_sq8_build_min_2_cores": round(m["sq8_build_s_at_1m"] * millions**1.5 / 60, 1),
            "ivf_pq48_gb": round(pq_gb, 2),
            "sqlite_gb_on_disk": round(SQLITE_KB_PER_CHUNK * size / 1024**2, 0),
            "sq8_shards_2_core_nodes": math.ceil(sq8_gb / cpu_ram),
            "sq8_fits_one_gpu": sq8_gb <= gpu_mem,
            "flat_gpus_float32": math.ceil(flat_gb / gpu_mem),
        })  # fmt: skip
    return rows


def choice(row: dict[str, Any]) -> str:
    if row["chunks"] <= 1_000_000:
        return "IVF-SQ8 (kbqa's auto choice above 50,000); one node"
    if row["sq8_shards_2_core_nodes"] <= 1:
        return "IVF-SQ8; one node"
    return (
        f"IVF-SQ8 over {row['sq8_shards_2_core_nodes']} shards of a 2-core node, or one "
        "node with ≥ 2× its size in RAM; IVF-PQ48 on one node if recall allows"
    )


def markdown(all_nodes: list[Node], ingest: list[dict[str, Any]], index: list[dict[str, Any]],
             writer: float) -> str:  # fmt: skip
    lines = ["| node | chunks/s per node (Ray) | from | assumed $/hour |", "|---|---|---|---|"]
    for n in all_nodes:
        lines.append(f"| {n.name}: {n.what} | {n.chunks_per_s:.1f} | {n.derivation} | "
                     f"{n.price_per_hour:.2f} |")  # fmt: skip
    lines += ["", f"Single writer (driver): {writer:,.0f} chunks/s at most.", ""]
    lines += ["| chunks | node | 1 node | 10 nodes | 100 nodes | cost (any N) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for size in SIZES:
        for n in all_nodes:
            cells = [r for r in ingest if r["chunks"] == size and r["node"] == n.name]
            times = " | ".join(_duration(r["hours"]) + (" (writer)" if r["writer_bound"] else "")
                               for r in cells)  # fmt: skip
            costs = sorted({f"${r['usd']:,.0f}" for r in cells})
            lines.append(f"| {size / 1e6:,.0f}M | {n.name} | {times} | {' – '.join(costs)} |")
    lines += ["", "| chunks | float32 raw | exact (IDMap2,Flat) | exact p50, 2 cores | "
              "IVF-SQ8 | IVF-SQ8 p50, 2 cores | IVF-SQ8 build, 2 cores | IVF-PQ48 | "
              "SQLite on disk | exact on GPUs | choice |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in index:
        lines.append(
            f"| {r['chunks'] / 1e6:,.0f}M | {r['raw_float32_gb']} GB | {r['flat_gb']} GB | "
            f"{r['flat_p50_ms_2_cores']:,} ms | {r['ivf_sq8_gb']} GB | "
            f"{r['ivf_sq8_p50_ms_2_cores']} ms | {r['ivf_sq8_build_min_2_cores']:,} min | "
            f"{r['ivf_pq48_gb']} GB | {r['sqlite_gb_on_disk']:,.0f} GB | "
            f"{r['flat_gpus_float32']} | {choice(r)} |"
        )
    return "\n".join(lines)


def _duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:,.1f} d"
    if hours >= 1:
        return f"{hours:,.1f} h"
    return f"{hours * 60:,.0f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, price in PRICES.items():
        flag = "--price-" + name.replace("-", "")
        parser.add_argument(flag, type=float, default=price, help=f"USD per hour for {name}")
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0, help="one GPU's memory")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    add_smoke_flag(parser)
    args = parser.parse_args()
    prices = {name: getattr(args, "price_" + name.replace("-", "")) for name in PRICES}
    m = measured()
    all_nodes = nodes(m, prices, args.gpu_memory_gb)
    writer = float(m["store_writes_per_s"])
    ingest = ingest_rows(all_nodes, writer)
    index = index_rows(m, all_nodes)
    for row in index:
        row["choice"] = choice(row)
    table = markdown(all_nodes, ingest, index, writer)
    print(table)
    result = {
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        "measured": m,
        "assumptions": {
            "usd_per_node_hour": prices,
            "gpu_memory_gb": args.gpu_memory_gb,
            "index_share_of_node_memory": MEMORY_SHARE,
            "sqlite_kb_per_chunk": SQLITE_KB_PER_CHUNK,
            "ivf_pq_bytes_per_vector": PQ_BYTES + ID_BYTES,
            "scaling": "nodes add linearly up to the single writer's rate; start-up ignored",
            "median_local_chunks_per_s": round(
                statistics.median(m["local_chunks_per_s_2_cores"].values()), 1
            ),
        },
        "nodes": [asdict(n) for n in all_nodes],
        "ingest": ingest,
        "index": index,
        "markdown": table,
    }
    write_result(args.out, result, args)
    print(f"\nwritten to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
