"""Load on ``kbqa api``: many clients at once against one server process.

    python bench/api_load.py [--models small|default] [--clients 20] [--questions 5]
                             [--queue-size 8] [--out bench/results/api_load.json]

Builds a knowledge base from corpora/ (in a temporary folder), starts a real
``kbqa api`` process on a free loopback port, waits until its models answer, then
starts ``--clients`` clients at once, each asking ``--questions`` questions in a
row (Spanish and English, a few not in the documents; even clients stream, odd
ones do not). A client answered 429 waits ``Retry-After`` and asks again, as the
official clients do. Every question must end answered: anything else is counted
as lost. Latency is from a question's first attempt to its complete answer
(queueing and retries included). ``--smoke``: the small models, the corpora's
Markdown files only, two clients asking one question each, 16 new tokens. Not a test
(``make test`` runs only its smoke mode).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import add_smoke_flag, write_result  # noqa: E402

MODELS = {
    "small": {
        "KBQA_EMBEDDING_MODEL": "all-MiniLM-L6-v2",
        "KBQA_LLM_MODEL": "smollm2-135m-instruct",
    },
    "default": {},  # multilingual-e5-small and qwen2.5-coder-0.5b-instruct
}
QUESTIONS = [
    "How many parameters does GPT-3 have?",
    "¿Qué es el ajuste fino?",
    "What is retrieval-augmented generation?",
    "¿Cuántos parámetros tiene GPT-3?",
    "Who painted the Mona Lisa?",  # not in the documents
    "What is a transformer?",
    "¿Qué es un token?",
    "How does kbqa cite its answers?",
    "¿Quién ganó el mundial de 2010?",  # not in the documents
    "What is fine-tuning?",
]
MAX_ATTEMPTS = 200
KBQA = str(Path(sys.executable).with_name("kbqa"))


@dataclass
class Outcome:
    client: int
    question: str
    streamed: bool
    latency_s: float | None = None  # None: lost
    first_piece_s: float | None = None
    attempts: int = 0
    refused: bool | None = None
    error: str | None = None


@dataclass
class Tally:
    rejections: int = 0  # 429 responses
    outcomes: list[Outcome] = field(default_factory=list)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def ask(client: httpx.AsyncClient, url: str, outcome: Outcome, tally: Tally) -> None:
    body = {
        "model": "default",
        "messages": [{"role": "user", "content": outcome.question}],
        "stream": outcome.streamed,
    }
    started = time.perf_counter()
    while outcome.attempts < MAX_ATTEMPTS:
        outcome.attempts += 1
        try:
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as reply:
                if reply.status_code == 429:
                    tally.rejections += 1
                    await asyncio.sleep(float(reply.headers.get("retry-after", "1")))
                    continue
                if reply.status_code != 200:
                    outcome.error = f"HTTP {reply.status_code}: {(await reply.aread())[:200]!r}"
                    return
                if outcome.streamed:
                    done = False
                    async for line in reply.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            break
                        delta = json.loads(data)["choices"][0]["delta"]
                        if outcome.first_piece_s is None and (
                            delta.get("reasoning_content") or delta.get("content")
                        ):
                            outcome.first_piece_s = time.perf_counter() - started
                        if "refused" in delta:  # on the last piece (the evidence may come first)
                            outcome.refused = delta["refused"]
                    if not done or outcome.refused is None:
                        outcome.error = "stream ended without an answer"
                        return
                else:
                    message = json.loads(await reply.aread())["choices"][0]["message"]
                    if not message["content"]:
                        outcome.error = "empty answer"
                        return
                    outcome.refused = message["refused"]
                outcome.latency_s = time.perf_counter() - started
                return
        except httpx.HTTPError as error:
            outcome.error = f"{type(error).__name__}: {error}"
            return
    outcome.error = f"still turned away after {MAX_ATTEMPTS} attempts"


async def client_run(index: int, url: str, questions: int, tally: Tally) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
        for n in range(questions):
            question = QUESTIONS[(index * questions + n) % len(QUESTIONS)]
            outcome = Outcome(index, question, streamed=index % 2 == 0)
            tally.outcomes.append(outcome)
            await ask(client, url, outcome, tally)


async def load(url: str, clients: int, questions: int) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    await asyncio.gather(*(client_run(i, url, questions, tally) for i in range(clients)))
    return tally, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout_s: float = 900) -> float:
    """Seconds until the server answered a first (warm-up) question."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise SystemExit(f"kbqa api exited with {server.returncode}")
        try:
            body = {"model": "default", "messages": [{"role": "user", "content": QUESTIONS[0]}]}
            if httpx.post(f"{url}/v1/chat/completions", json=body, timeout=900).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("kbqa api did not answer in time")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", choices=sorted(MODELS), default="small")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--queue-size", type=int, default=8)
    parser.add_argument(
        "--max-new-tokens", type=int, help="KBQA_MAX_NEW_TOKENS for the server (default 256)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "api_load.json")
    add_smoke_flag(parser)
    args = parser.parse_args()
    documents = [str(ROOT / "corpora")]
    if args.smoke:
        args.models, args.clients, args.questions = "small", 2, 1
        args.max_new_tokens = args.max_new_tokens or 16
        documents = [str(path) for path in sorted((ROOT / "corpora").glob("*.md"))]

    with tempfile.TemporaryDirectory(prefix="kbqa-api-load-") as temporary:
        env = {
            **os.environ,
            **MODELS[args.models],
            "KBQA_HOME": temporary,
            "KBQA_API_QUEUE_SIZE": str(args.queue_size),
        }
        if args.max_new_tokens:
            env["KBQA_MAX_NEW_TOKENS"] = str(args.max_new_tokens)
        env.pop("KBQA_API_KEY", None)
        kb = Path(temporary) / "default"
        subprocess.run(
            [KBQA, "ingest", *documents, "--kb", str(kb), "--no-progress"],
            env=env,
            check=True,
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [KBQA, "api", "--kb", str(kb), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready_s = wait_ready(url, server)
            print(f"server ready after {ready_s:.1f} s; {args.clients} clients start", flush=True)
            tally, wall_s = asyncio.run(load(url, args.clients, args.questions))
        finally:
            server.terminate()
            server.wait(30)

    answered = [o for o in tally.outcomes if o.latency_s is not None]
    lost = [o for o in tally.outcomes if o.latency_s is None]
    latencies = [o.latency_s for o in answered if o.latency_s is not None]
    firsts = [o.first_piece_s for o in answered if o.first_piece_s is not None]
    summary = {
        "questions": len(tally.outcomes),
        "answered": len(answered),
        "refused": sum(bool(o.refused) for o in answered),
        "lost": len(lost),
        "responses_429": tally.rejections,
        "questions_turned_away_at_least_once": sum(o.attempts > 1 for o in tally.outcomes),
        "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p95_s": round(percentile(latencies, 0.95), 2) if latencies else None,
        "latency_max_s": round(max(latencies), 2) if latencies else None,
        "streamed_first_piece_p50_s": round(statistics.median(firsts), 2) if firsts else None,
        "wall_s": round(wall_s, 1),
        "answers_per_minute": round(60 * len(answered) / wall_s, 1),
        "mean_service_s": round(wall_s / max(1, len(answered)), 2),
    }
    result: dict[str, Any] = {
        "command": "python bench/api_load.py " + " ".join(sys.argv[1:]),
        "models": args.models,
        "model_names": MODELS[args.models]
        or {
            "KBQA_EMBEDDING_MODEL": "multilingual-e5-small",
            "KBQA_LLM_MODEL": "qwen2.5-coder-0.5b-instruct",
        },
        "clients": args.clients,
        "questions_per_client": args.questions,
        "queue_size": args.queue_size,
        "max_new_tokens": args.max_new_tokens or 256,
        "summary": summary,
        "errors": [f"client {o.client}: {o.question}: {o.error}" for o in lost],
    }
    write_result(args.out, result, args)
    print(json.dumps(summary, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
