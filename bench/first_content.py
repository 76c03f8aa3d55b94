"""Time to first visible content: how long a chat app shows nothing after a question.

    python bench/first_content.py [--questions 12] [--styles evidence short]
                                  [--out bench/results/first_content.json]

Builds the default knowledge base from corpora/ (in a temporary folder, the default
models), starts a real ``kbqa api`` on a free loopback port, waits until its models
answer, then asks each question once per style with the official ``openai`` client,
streamed, one at a time, as a chat app does (a new server per style, so that what the
engine keeps in memory from one style's questions does not flatter the next). For
each it records the seconds until the first non-empty ``delta.content`` (what a
person first sees), until the last content piece, and whether it was refused.
Questions: the first ``--questions`` of ``tests/data/corpus-questions.json`` (es and
en, all answerable from the corpus).
``--smoke``: the small models, the corpora's Markdown files, two questions, the
evidence style only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import add_smoke_flag, use_smoke_models, write_result  # noqa: E402

QUESTIONS = ROOT / "tests" / "data" / "corpus-questions.json"
KBQA = str(Path(sys.executable).with_name("kbqa"))
TARGET_S = 1.0  # issue 23: evidence style, 2 cores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    url: str, server: subprocess.Popen[bytes], log: Path, timeout_s: float = 900
) -> float:
    """Seconds until the server answered a first question and logged its models loaded
    (loading the LLM in the background would slow the first answers measured)."""
    started = time.perf_counter()
    body = {"model": "default", "messages": [{"role": "user", "content": "warm up"}]}
    answered = False
    while time.perf_counter() - started < timeout_s:
        if server.poll() is not None:
            raise SystemExit(f"kbqa api exited with {server.returncode}")
        try:
            answered = (
                answered
                or httpx.post(f"{url}/v1/chat/completions", json=body, timeout=900).is_success
            )
        except httpx.TransportError:
            pass
        if answered and "models loaded" in log.read_text(errors="replace"):
            return time.perf_counter() - started
        time.sleep(0.3)
    raise SystemExit("kbqa api did not answer in time")


def ask(client: Any, question: str, style: str) -> dict[str, Any]:
    """One streamed question: seconds to the first and the last content piece."""
    started = time.perf_counter()
    first: float | None = None
    last = 0.0
    content = ""
    refused = None
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": question}],
        stream=True,
        extra_body={"kbqa": {"answer_style": style}},
    )
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            last = time.perf_counter() - started
            first = last if first is None else first
            content += delta.content
        if getattr(delta, "refused", None) is not None:
            refused = delta.refused
    return {
        "question": question,
        "style": style,
        "first_content_s": round(first, 3) if first is not None else None,
        "last_content_s": round(last, 3),
        "refused": refused,
        "sources_block": "**Sources**" in content or "**Fuentes**" in content,
        "first_words": content[:80],
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_style: dict[str, Any] = {}
    for style in dict.fromkeys(r["style"] for r in runs):
        mine = [r for r in runs if r["style"] == style]
        firsts = [r["first_content_s"] for r in mine if r["first_content_s"] is not None]
        lasts = [r["last_content_s"] for r in mine]
        by_style[style] = {
            "questions": len(mine),
            "refused": sum(bool(r["refused"]) for r in mine),
            "first_content_median_s": round(statistics.median(firsts), 3) if firsts else None,
            "first_content_max_s": round(max(firsts), 3) if firsts else None,
            "last_content_median_s": round(statistics.median(lasts), 3) if lasts else None,
            "with_sources_block": sum(r["sources_block"] for r in mine),
        }
    return by_style


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--styles", nargs="+", default=["evidence", "short"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/first_content.json")
    add_smoke_flag(parser)
    args = parser.parse_args()
    documents = [str(ROOT / "corpora")]
    if args.smoke:
        use_smoke_models()
        args.questions, args.styles = 2, ["evidence"]
        documents = [str(p) for p in sorted((ROOT / "corpora").glob("*.md"))]
    listed = json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    questions = [q["q"] for q in listed][: args.questions]

    from openai import OpenAI

    with tempfile.TemporaryDirectory(prefix="kbqa-first-content-") as temporary:
        env = {**os.environ, "KBQA_HOME": temporary}
        env.pop("KBQA_API_KEY", None)
        kb = Path(temporary) / "default"
        ingest = [KBQA, "ingest", *documents, "--kb", str(kb), "--no-progress"]
        subprocess.run(ingest, env=env, check=True, stdout=subprocess.DEVNULL)
        runs: list[dict[str, Any]] = []
        ready: dict[str, float] = {}
        for style in args.styles:
            # A new server per style: nothing the engine keeps in memory from one
            # style's questions (their vectors) makes the next style look faster.
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log = Path(temporary) / f"api-{style}.log"
            with log.open("wb") as sink:
                server = subprocess.Popen(
                    [KBQA, "api", "-v", "--kb", str(kb), "--port", str(port)],
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            try:
                ready[style] = round(wait_ready(url, server, log), 1)
                client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
                runs += [ask(client, question, style) for question in questions]
            finally:
                server.terminate()
                server.wait(30)

    result = {
        "what": "seconds from a streamed question to its first visible content (official "
        "openai client, loopback, one question at a time, each asked once)",
        "target_s": TARGET_S,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "ready_s": ready,
        "summary": summary(runs),
        "runs": runs,
    }
    write_result(args.out, result, args)
    print(json.dumps(result["summary"], indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
