"""Ingest throughput: the local engine against the Ray engine, on this machine.

    python bench/ray_ingest.py [--smoke] [--docs N] [--model M]
                               [--out bench/results/ray_ingest.json]

The same seeded sample of SciFact abstracts (one Markdown file each, as in
bench/ingest.py) is ingested into a fresh knowledge base three ways, each in a
fresh process (imports and model loads included, as a user waits for them):

- ``local``: ``kbqa ingest`` as it always ran (one process, plus its reading child);
- ``ray-local``: ``--engine ray`` with no address, so kbqa starts a one-node Ray
  instance on this machine (what a laptop user gets);
- ``ray-2-nodes``: ``--engine ray --ray-address`` against a two-node cluster started
  here with ``ray start`` (a head and a worker node, 1 CPU each).

With ``--gpu`` (a machine with an NVIDIA GPU; ``bench/gpu_check.sh`` runs it) the
two-node run is left out: ``local`` embeds on the GPU, and ``ray-local`` starts Ray
here with this machine's CPUs (at most 8) and its GPUs, so each embedding actor
takes one GPU; the GPUs Ray saw are recorded, and the run stops if it saw none.

Per run: wall time of the process, the ingest call alone, chunks per second over
the ingest call, and Ray Data's own per-stage account (actor start-up and model
loads, reading and chunking, embedding, time blocked on the driver). The knowledge
bases are compared (documents, chunk ids, worst cosine between the same chunk's
vectors). ``--smoke``: six documents (SciFact, else this repository's corpora),
all-MiniLM-L6-v2, ``local`` and ``ray-local`` only. Not a test: run it on a quiet
machine; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import SMOKE_EMBEDDER, add_smoke_flag, write_result  # noqa: E402
from bench.ingest import SCIFACT, scifact_corpus, smoke_corpus  # noqa: E402 - after sys.path

DEFAULT_OUT = ROOT / "bench" / "results" / "ray_ingest.json"
GPU_OUT = ROOT / "bench" / "results" / "ray_ingest_gpu.json"  # --gpu's default
MB = 1024 * 1024


# --- one ingest, in a fresh process -----------------------------------------------------


def child(spec: dict[str, Any]) -> None:
    """Runs in the fresh process: one ingest, then its measurements as one JSON line."""
    started = time.perf_counter()
    from kbqa import KnowledgeBase, load_settings
    from kbqa.ingest.distributed import RayIngest

    settings = load_settings()
    kb = KnowledgeBase.open(spec["kb"], settings=settings)
    engine = None
    resources: dict[str, float] = {}
    if spec["engine"] != "local":
        engine = RayIngest.from_settings(settings, spec.get("address"))
        if spec.get("gpu"):
            resources = start_ray_with_gpus()  # the engine uses this connection as it is
    before = time.perf_counter()
    report = kb.add([spec["folder"]], engine=engine)
    ingest_s = time.perf_counter() - before
    if resources:
        import ray

        ray.shutdown()
    print(json.dumps({
        "summary": report.summary(),
        "documents": report.count("added"),
        "failed": report.count("failed"),
        "chunks": report.chunks,
        "ingest_s": round(ingest_s, 2),
        "setup_s": round(before - started, 2),
        "ray_data_stats": engine.execution_stats if engine else [],
        "ray_resources": resources,
        "cuda": cuda_device(),
    }))  # fmt: skip


def start_ray_with_gpus() -> dict[str, float]:
    """A local Ray instance as ``connect`` starts one, GPUs included; what it saw."""
    import ray

    from kbqa.ingest.distributed import LOCAL_MAX_CPUS

    cpus = max(2, min(os.cpu_count() or 2, LOCAL_MAX_CPUS))
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    resources = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    if resources.get("GPU", 0.0) < 1:
        ray.shutdown()
        raise SystemExit(f"--gpu: Ray sees no GPU here ({resources})")
    return resources


def cuda_device() -> str | None:
    """The GPU torch embeds on in this process, if any (torch is loaded by then)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


def run(spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-P", __file__, "--child", json.dumps(spec)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{spec['engine']} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(wall, 2)
    result["chunks_per_s"] = round(result["chunks"] / result["ingest_s"], 2)
    result["stages"] = [stage_times(text) for text in result.pop("ray_data_stats")]
    return result


def stage_times(stats: str) -> dict[str, Any]:
    """The lines of Ray Data's report that say where time went, per operator."""
    keep = ("Operator", "Remote wall time", "UDF time", "Output rows per task",
            "Total time", "Dataset throughput", "Ray Data throughput",
            "Total time overall", "Total time in Ray Data", "Total time in the user",
            "blocked")  # fmt: skip
    lines = [line.strip() for line in stats.splitlines()]
    return {"lines": [line for line in lines if any(word in line for word in keep)]}


# --- a two-node cluster on this machine ------------------------------------------------


class TwoNodes:
    """``ray start --head`` and ``ray start --address``, 1 CPU each, stopped by process group."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.address = f"127.0.0.1:{self.port}"
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.token = root / "auth_token"
        self.token.write_text(secrets.token_hex(32))
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                        RAY_AUTH_TOKEN_PATH=str(self.token))  # fmt: skip
        self.nodes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> TwoNodes:
        ray = str(Path(sys.executable).parent / "ray")
        common = ["--num-cpus", "1", "--object-store-memory", str(500 * MB),
                  "--temp-dir", str(self.root), "--node-ip-address", "127.0.0.1",
                  "--disable-usage-stats", "--block"]  # fmt: skip
        self._start([ray, "start", "--head", "--port", str(self.port),
                     "--include-dashboard=false", *common])  # fmt: skip
        while not self._open():
            time.sleep(0.2)
        self._start([ray, "start", "--address", self.address, *common])
        probe = ("import ray,sys,time\nray.init(address=sys.argv[1], log_to_driver=False)\n"
                 "while sum(n['Alive'] for n in ray.nodes()) < 2: time.sleep(0.2)\n")  # fmt: skip
        subprocess.run([sys.executable, "-c", probe, self.address], env=self.env, check=True,
                       timeout=120, capture_output=True)  # fmt: skip
        return self

    def _start(self, command: list[str]) -> None:
        quiet = subprocess.DEVNULL
        self.nodes.append(
            subprocess.Popen(command, env=self.env, stdout=quiet, stderr=quiet,
                             start_new_session=True)
        )  # fmt: skip

    def _open(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            node.wait()


# --- comparing the knowledge bases -------------------------------------------------------


def vectors(kb: Path) -> dict[str, Any]:
    import numpy as np

    with sqlite3.connect(kb / "chunks.sqlite") as db:
        rows = db.execute("SELECT chunk_id, vector FROM chunks").fetchall()
    return {chunk_id: np.frombuffer(blob, dtype=np.float32) for chunk_id, blob in rows}


def compare(kb: Path, reference: Path) -> dict[str, Any]:
    import numpy as np

    ours, theirs = vectors(kb), vectors(reference)
    shared = ours.keys() & theirs.keys()
    worst = min((float(np.dot(ours[k], theirs[k])) for k in shared), default=0.0)
    return {"same_chunk_ids": ours.keys() == theirs.keys(), "chunks": len(ours),
            "worst_cosine": round(worst, 5)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=int, default=200, help="SciFact abstracts (default 200)")
    parser.add_argument("--model", default="multilingual-e5-small", help="embedding model")
    parser.add_argument("--precision", default="auto", help="KBQA_PRECISION for every run")
    parser.add_argument("--gpu", action="store_true", help="embed on this machine's GPU(s)")
    parser.add_argument("--out", type=Path, help=f"default {DEFAULT_OUT.name}, {GPU_OUT.name}")
    add_smoke_flag(parser)
    args = parser.parse_args()
    args.out = args.out or (GPU_OUT if args.gpu else DEFAULT_OUT)
    if args.child:
        child(json.loads(args.child))
        return
    if args.smoke:
        args.docs, args.model = 6, SMOKE_EMBEDDER
    elif not SCIFACT.exists():
        raise SystemExit(f"needs {SCIFACT} (the shared data sets)")
    env = dict(os.environ, KBQA_EMBEDDING_MODEL=args.model, KBQA_PRECISION=args.precision,
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               RAY_USAGE_STATS_ENABLED="0")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="kbqa-ray-bench-", dir="/tmp"))
    started = time.time()
    runs: dict[str, Any] = {}
    try:
        corpus = (
            scifact_corpus(work / "scifact", args.docs)
            if SCIFACT.exists()
            else smoke_corpus(work / "smoke")
        )
        folder = str(corpus.paths[0])
        load_before = os.getloadavg()
        runs["local"] = run({"engine": "local", "kb": str(work / "local"), "folder": folder}, env)
        print("local", runs["local"]["summary"], runs["local"]["wall_s"], flush=True)
        runs["ray-local"] = run(
            {"engine": "ray", "kb": str(work / "ray-local"), "folder": folder, "gpu": args.gpu},
            env,
        )
        print("ray-local", runs["ray-local"]["summary"], runs["ray-local"]["wall_s"], flush=True)
        compared = {"ray-local": "ray-local"}
        if not args.gpu and not args.smoke:  # two 1-CPU nodes: CPU scaling, not the GPU
            with TwoNodes(work / "cluster") as cluster:
                spec = {"engine": "ray", "kb": str(work / "ray-2"), "folder": folder,
                        "address": cluster.address}  # fmt: skip
                runs["ray-2-nodes"] = run(spec, cluster.env | env)
            print("ray-2-nodes", runs["ray-2-nodes"]["summary"], runs["ray-2-nodes"]["wall_s"])
            compared["ray-2-nodes"] = "ray-2"
        for name, kb in compared.items():
            runs[name]["against_local"] = compare(work / kb, work / "local")
        result = {
            "load_average_before": load_before,
            "seconds": round(time.time() - started, 1),
            "corpus": corpus.name,
            "model": args.model,
            "precision": args.precision,
            "gpu": args.gpu,
            "command": "python bench/ray_ingest.py " + " ".join(sys.argv[1:]),
            "runs": runs,
        }
        write_result(args.out, result, args)
        print(f"written to {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
