"""Answer latency of kbqa's default LLM against the plain transformers pipeline.

    python bench/answer.py [--quick] [--questions 50] [--baseline-questions 10]
                           [--max-new-tokens 256] [--profile] [--out bench/results/answer.json]

Samples XQuAD questions (seeded, half Spanish, half English), builds a
knowledge base from every paragraph of the articles those questions come from
(in the question's language), and asks each question through kbqa's real
pipeline (``KnowledgeBase.ask``: retrieval, prompt packing, streamed
generation, grounding). The baseline is the same converted model folder driven
the way LangChain's ``HuggingFacePipeline`` drives it:
``transformers.pipeline("text-generation", model=folder, tokenizer=folder)``
with its default dtype, given the very messages kbqa built for each question,
the same ``max_new_tokens``, greedy, first token seen through a
``TextIteratorStreamer``. Each side runs in its own fresh subprocess (ours
first) so peak RSS is its own. The baseline runs only the first
``--baseline-questions`` of ours (its float32 prefill is what makes a full run
long); ratios compare p50s over those shared questions. Prints a table and
writes JSON with the machine.

``--profile`` also writes a pyinstrument profile of a few of our answers to
bench/results/answer-profile.txt: the asking thread and, separately, the
thread that runs ``model.generate`` (pyinstrument samples one thread only).
Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine import machine  # noqa: E402

XQUAD = ROOT.parent / "shared" / "data" / "xquad"
LANGUAGES = ("es", "en")
PROFILE_OUT = ROOT / "bench" / "results" / "answer-profile.txt"
PROFILED_QUESTIONS = 3
WARM_UP_TOKENS = 4
BASELINE_QUESTIONS = 10
TARGET_TTFT_P50_S = 2.5
TARGET_DECODE_TOKENS_PER_S = 15.0

Messages = list[dict[str, str]]


# -- the plan both sides share ----------------------------------------------------


@dataclass(frozen=True)
class SampledQuestion:
    id: str
    language: str
    text: str
    article: int  # index of its article in the question's own XQuAD file


def sample_questions(count: int, seed: int) -> list[SampledQuestion]:
    """``count`` distinct questions, half from each language, interleaved es, en, es, ...

    XQuAD's two files are translations sharing question ids, so an id drawn in
    one language is not drawn again in the other: the questions stay distinct.
    """
    from kbqa.qa.evaluation import load_squad

    rng = random.Random(seed)
    chosen: dict[str, list[SampledQuestion]] = {}
    taken: set[str] = set()
    for position, language in enumerate(LANGUAGES):
        wanted = count // 2 + (count % 2 if position == 0 else 0)
        _, paragraph_of, questions = load_squad(XQUAD / f"xquad.{language}.json")
        pool = [q for q in questions if q.id not in taken]
        picked = rng.sample(pool, wanted)
        taken.update(q.id for q in picked)
        chosen[language] = [
            SampledQuestion(q.id, language, q.text, int(paragraph_of[q.id].split("-")[0]))
            for q in picked
        ]
    mixed = [q for pair in zip(*chosen.values(), strict=False) for q in pair]
    longest = max(chosen.values(), key=len)
    return mixed + longest[len(mixed) // 2 :]


def article_paragraphs(questions: Sequence[SampledQuestion]) -> list[tuple[str, str]]:
    """``(name, text)`` for every paragraph of each article a question comes from."""
    from kbqa.qa.evaluation import load_squad

    texts = []
    for language in LANGUAGES:
        articles = {q.article for q in questions if q.language == language}
        paragraphs, _, _ = load_squad(XQUAD / f"xquad.{language}.json")
        for key, text in paragraphs.items():
            if int(key.split("-")[0]) in articles:
                texts.append((f"xquad.{language}/{key}.txt", text))
    return texts


# -- our side: kbqa's own pipeline --------------------------------------------------


@dataclass
class GenerationRecord:
    """One ``stream`` call as the pipeline made it: prompt and piece arrival times."""

    messages: Messages
    started: float
    piece_times: list[float] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)


class RecordingGenerator:
    """kbqa's generator, passed through unchanged, noting each prompt and when each
    streamed piece arrives, so the baseline gets the exact same messages and the
    decode rate is measured at the generator, not after grounding."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[GenerationRecord] = []

    def count_tokens(self, messages: Messages) -> int:
        return int(self.inner.count_tokens(messages))

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        record = GenerationRecord(messages, time.perf_counter())
        self.calls.append(record)
        for piece in self.inner.stream(messages, max_new_tokens):
            record.piece_times.append(time.perf_counter())
            record.pieces.append(piece)
            yield piece

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def decode_rate(tokenizer: Any, pieces: Sequence[str], times: Sequence[float]) -> float | None:
    """New tokens after the first piece ÷ time from the first piece to the last.

    A ``TextIteratorStreamer`` releases text a word at a time, so the first
    piece may already hold a few tokens: those are not counted as decoded after it.
    """
    if len(pieces) < 2 or times[-1] <= times[0]:
        return None
    after_first = token_count(tokenizer, "".join(pieces)) - token_count(tokenizer, pieces[0])
    return after_first / (times[-1] - times[0]) if after_first > 0 else None


def loaded_model(generator: Any) -> Any:
    """kbqa's torch model inside its generator, if reachable (a private attribute today)."""
    return getattr(generator, "_model", None) or getattr(generator, "model", None)


def model_dtype(generator: Any) -> str:
    """The dtype kbqa's LLM actually holds, read from the loaded model if reachable."""
    return str(getattr(loaded_model(generator), "dtype", "unknown")).removeprefix("torch.")


def run_ours(plan: dict[str, Any], profile: bool) -> dict[str, Any]:
    from kbqa.qa.knowledge_base import KnowledgeBase
    from kbqa.qa.settings import load_settings

    settings = load_settings(max_new_tokens=plan["max_new_tokens"])
    questions = [SampledQuestion(**q) for q in plan["questions"]]
    warm_up = SampledQuestion(**plan["warm_up"])
    with tempfile.TemporaryDirectory() as folder:
        kb = KnowledgeBase.open(Path(folder) / "kb", settings=settings)
        recorder = RecordingGenerator(kb.generator)
        kb.generator = recorder
        started = time.perf_counter()
        report = kb.add_texts(article_paragraphs([*questions, warm_up]), scheme="xquad")
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        getattr(recorder.inner, "load", lambda: None)()
        load_s = time.perf_counter() - started
        # The first generate call pays one-time costs (kernels, allocator): not timed,
        # and a few tokens are enough to pay them.
        options = kb.answer_options
        kb.answer_options = dataclasses.replace(options, max_new_tokens=WARM_UP_TOKENS)
        kb.ask(warm_up.text)
        kb.answer_options = options
        warm_up_messages = recorder.calls[-1].messages if recorder.calls else None
        tokenizer = recorder.inner.tokenizer

        rows = []
        for question in questions:
            calls_before = len(recorder.calls)
            answer = kb.ask(question.text)
            record = recorder.calls[-1] if len(recorder.calls) > calls_before else None
            rows.append(our_row(question, answer, record, tokenizer))
        profile_text = profile_answers(kb, questions[:PROFILED_QUESTIONS]) if profile else None
        dtype = model_dtype(recorder.inner)
        kb.close()
    return {
        "ingest": {
            "paragraphs": report.count("added"),
            "chunks": report.chunks,
            "seconds": round(ingest_s, 1),
        },
        "llm_load_s": round(load_s, 2),
        "llm_dtype": dtype,
        "top_k": settings.top_k,
        "embedding_model": settings.embedding_model,
        "warm_up_messages": warm_up_messages,
        "rows": rows,
        "profile": profile_text,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_end_mb": round(current_rss_mb(), 1),
    }


def our_row(
    question: SampledQuestion, answer: Any, record: GenerationRecord | None, tokenizer: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": question.id,
        "language": question.language,
        "question": question.text,
        "refused": answer.refused,
        "asked_llm": record is not None,
        "retrieve_s": answer.timings.retrieve_s,
        "prompt_tokens": answer.timings.prompt_tokens,
        "first_token_s": answer.timings.first_token_s,
        "total_s": answer.timings.total_s,
    }
    if record is not None:
        reply = "".join(record.pieces)
        row.update(
            messages=record.messages,
            reply=reply,
            new_tokens=token_count(tokenizer, reply),
            # From the generator call, as the baseline measures: leaves out
            # retrieval and prompt packing, which the baseline does not do.
            generation_first_token_s=(
                record.piece_times[0] - record.started if record.piece_times else None
            ),
            generation_s=(record.piece_times[-1] - record.started) if record.piece_times else None,
            decode_tokens_per_s=decode_rate(tokenizer, record.pieces, record.piece_times),
        )
    return row


def profile_answers(kb: Any, questions: Sequence[SampledQuestion]) -> str:
    """Profiles of the asking thread and of the thread inside ``model.generate``.

    kbqa generates in a worker thread, and pyinstrument samples only the
    thread that started it, so ``generate`` is wrapped (on this model object,
    for this profile only) to profile itself in its own thread.
    """
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    model = loaded_model(kb.generator.inner)
    original_generate = model.generate
    generate_sessions: list[Session] = []

    def profiled_generate(*args: Any, **kwargs: Any) -> Any:
        profiler = Profiler(interval=0.001)
        profiler.start()
        try:
            return original_generate(*args, **kwargs)
        finally:
            profiler.stop()
            if profiler.last_session is not None:
                generate_sessions.append(profiler.last_session)

    model.generate = profiled_generate
    asking = Profiler(interval=0.001)
    asking.start()
    try:
        for question in questions:
            kb.ask(question.text)
    finally:
        asking.stop()
        del model.generate  # back to the class's method
    # The asking thread's tree keeps library frames folded (the question is which
    # stage); inside generate the time is all library code, so there the frames are
    # shown (show_regex) and ranked flat by their own time, over 0.1% of the total.
    stages = ConsoleRenderer(
        unicode=True, color=False, processor_options={"filter_threshold": 0.01}
    ).render
    library_tree = ConsoleRenderer(
        unicode=True, color=False, processor_options={"filter_threshold": 0.03, "show_regex": ".*"}
    ).render
    own_time = ConsoleRenderer(unicode=True, color=False, flat=True).render
    parts = [
        f"# kbqa answer profile: {len(questions)} XQuAD questions, pyinstrument\n",
        "## asking thread (KnowledgeBase.ask: retrieval, packing, waiting on tokens, grounding)\n",
    ]
    if asking.last_session is not None:
        parts.append(stages(asking.last_session))
    if generate_sessions:
        combined = generate_sessions[0]
        for session in generate_sessions[1:]:
            combined = Session.combine(combined, session)
        parts += [
            "## generation thread (model.generate: prefill and decode), own time per function\n",
            own_time(combined),
            "## generation thread, call tree (frames over 3%)\n",
            library_tree(combined),
        ]
    return "\n".join(parts)


# -- the baseline: transformers.pipeline as LangChain's HuggingFacePipeline uses it -------


def run_baseline(plan: dict[str, Any]) -> dict[str, Any]:
    from transformers import TextIteratorStreamer, pipeline

    started = time.perf_counter()
    # No dtype given: whatever the pipeline picks by default is the baseline.
    generate = pipeline(
        "text-generation", model=plan["model_folder"], tokenizer=plan["model_folder"]
    )
    load_s = time.perf_counter() - started
    tokenizer = generate.tokenizer

    def ask(
        messages: Messages, max_new_tokens: int = plan["max_new_tokens"]
    ) -> tuple[list[str], list[float], float, float]:
        streamer = TextIteratorStreamer(
            tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        failure: list[BaseException] = []

        def work() -> None:
            try:
                generate(
                    messages,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    streamer=streamer,
                    return_full_text=False,
                )
            except BaseException as error:  # noqa: BLE001 - re-raised below
                failure.append(error)
                streamer.end()

        started = time.perf_counter()
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        pieces, times = [], []
        for piece in streamer:
            if piece:
                times.append(time.perf_counter())
                pieces.append(piece)
        worker.join()
        total = time.perf_counter() - started
        if failure:
            raise failure[0]
        return pieces, times, started, total

    if plan.get("warm_up_messages"):
        ask(plan["warm_up_messages"], WARM_UP_TOKENS)
    rows = []
    for item in plan["asked"]:
        pieces, times, started, total = ask(item["messages"])
        reply = "".join(pieces)
        prompt = tokenizer.apply_chat_template(item["messages"], add_generation_prompt=True)
        rows.append(
            {
                "id": item["id"],
                "prompt_tokens": len(prompt["input_ids"] if hasattr(prompt, "keys") else prompt),
                "first_token_s": times[0] - started if times else None,
                "total_s": total,
                "reply": reply,
                "new_tokens": token_count(tokenizer, reply),
                "decode_tokens_per_s": decode_rate(tokenizer, pieces, times),
            }
        )
    return {
        "load_s": round(load_s, 2),
        "dtype": str(generate.model.dtype).removeprefix("torch."),
        "rows": rows,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_end_mb": round(current_rss_mb(), 1),
    }


# -- orchestration -----------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory now: with the model loaded, after load-time copies are freed."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_side(side: str, plan: dict[str, Any], profile: bool) -> dict[str, Any]:
    """One side in a fresh interpreter, so its peak RSS and warm caches are its own."""
    with tempfile.TemporaryDirectory() as folder:
        plan_file, result_file = Path(folder) / "plan.json", Path(folder) / "result.json"
        plan_file.write_text(json.dumps(plan, ensure_ascii=False))
        command = [sys.executable, __file__, "--side", side, "--plan", str(plan_file)]
        command += ["--result", str(result_file)] + (["--profile"] if profile else [])
        started = time.perf_counter()
        subprocess.run(command, check=True)
        result: dict[str, Any] = json.loads(result_file.read_text())
        result["process_s"] = round(time.perf_counter() - started, 1)
        return result


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile: an observed value, no interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def spread(values: Sequence[float | None], digits: int = 2) -> dict[str, Any]:
    present = [v for v in values if v is not None]
    p50 = statistics.median(present) if present else None
    p95 = percentile(present, 0.95)
    return {
        "p50": round(p50, digits) if p50 is not None else None,
        "p95": round(p95, digits) if p95 is not None else None,
        "n": len(present),
    }


def ratio(ours: float | None, baseline: float | None) -> float | None:
    return round(ours / baseline, 2) if ours and baseline else None


# metric name -> (key in our rows, key in baseline rows)
METRICS = {
    "first_token_s": ("first_token_s", "first_token_s"),
    "generation_first_token_s": ("generation_first_token_s", "first_token_s"),
    "decode_tokens_per_s": ("decode_tokens_per_s", "decode_tokens_per_s"),
    "total_s": ("total_s", "total_s"),
    "prompt_tokens": ("prompt_tokens", "prompt_tokens"),
    "new_tokens": ("new_tokens", "new_tokens"),
}


def summarize(ours: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """p50/p95 per metric over every question that reached our LLM; the ratio
    ours/baseline compares p50s over the questions the baseline also ran."""
    asked = [r for r in ours["rows"] if r["asked_llm"]]
    paired_ids = {r["id"] for r in baseline["rows"]}
    paired = [r for r in asked if r["id"] in paired_ids]
    summary: dict[str, Any] = {}
    for name, (our_key, base_key) in METRICS.items():
        ours_paired = spread([r[our_key] for r in paired])
        base_spread = spread([r[base_key] for r in baseline["rows"]])
        summary[name] = {
            "ours": spread([r[our_key] for r in asked]),
            "ours_paired": ours_paired,
            "baseline": base_spread,
            "ratio_p50": ratio(ours_paired["p50"], base_spread["p50"]),
        }
    summary["peak_rss_mb"] = {
        "ours": ours["peak_rss_mb"],
        "baseline": baseline["peak_rss_mb"],
        "ratio_p50": ratio(ours["peak_rss_mb"], baseline["peak_rss_mb"]),
    }
    summary["rss_end_mb"] = {
        "ours": ours["rss_end_mb"],
        "baseline": baseline["rss_end_mb"],
        "ratio_p50": ratio(ours["rss_end_mb"], baseline["rss_end_mb"]),
    }
    ttft = summary["first_token_s"]["ours"]["p50"]
    decode = summary["decode_tokens_per_s"]["ours"]["p50"]
    summary["targets"] = {
        "first_token_p50_s": TARGET_TTFT_P50_S,
        "decode_tokens_per_s": TARGET_DECODE_TOKENS_PER_S,
        "first_token_met": ttft is not None and ttft <= TARGET_TTFT_P50_S,
        "decode_met": decode is not None and decode >= TARGET_DECODE_TOKENS_PER_S,
    }
    return summary


def table(summary: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return "—" if value is None else f"{value:g}"

    lines = [
        f"{'metric':<28}{'ours p50':>10}{'ours p95':>10}{'base p50':>10}{'base p95':>10}"
        f"{'ours/base':>11}",
    ]
    labels = {
        "first_token_s": "first token s (end to end)",
        "generation_first_token_s": "first token s (generation)",
        "decode_tokens_per_s": "decode tokens/s",
        "total_s": "total s",
        "prompt_tokens": "prompt tokens",
        "new_tokens": "new tokens",
    }
    for key, label in labels.items():
        row = summary[key]
        lines.append(
            f"{label:<28}{cell(row['ours']['p50']):>10}{cell(row['ours']['p95']):>10}"
            f"{cell(row['baseline']['p50']):>10}{cell(row['baseline']['p95']):>10}"
            f"{cell(row['ratio_p50']):>11}"
        )
    for key, label in (("peak_rss_mb", "peak RSS MB"), ("rss_end_mb", "RSS at end MB")):
        rss = summary[key]
        lines.append(
            f"{label:<28}{cell(rss['ours']):>10}{'':>10}{cell(rss['baseline']):>10}{'':>10}"
            f"{cell(rss['ratio_p50']):>11}"
        )
    targets = summary["targets"]
    lines.append(
        f"targets: first token p50 ≤ {targets['first_token_p50_s']} s "
        f"({'met' if targets['first_token_met'] else 'NOT met'}), decode ≥ "
        f"{targets['decode_tokens_per_s']} tokens/s "
        f"({'met' if targets['decode_met'] else 'NOT met'})"
    )
    return "\n".join(lines)


def quiet_libraries() -> None:
    # Generation-config and tokenizer chatter would bury the table.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)


def child_main(args: argparse.Namespace) -> None:
    quiet_libraries()
    plan = json.loads(args.plan.read_text())
    result = run_ours(plan, args.profile) if args.side == "ours" else run_baseline(plan)
    args.result.write_text(json.dumps(result, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 questions instead of 50")
    parser.add_argument("--questions", type=int, help="how many questions (default 50, quick 10)")
    parser.add_argument("--max-new-tokens", type=int, help="default: kbqa's setting")
    parser.add_argument(
        "--baseline-questions",
        type=int,
        default=BASELINE_QUESTIONS,
        help="the baseline runs the first N of our questions (0: all); its fp32 prefill is "
        "what makes a full run long",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help=f"also write {PROFILE_OUT.name}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "answer.json")
    parser.add_argument("--side", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child_main(args)
        return
    quiet_libraries()

    from kbqa.models.registry import local_folder
    from kbqa.qa.settings import load_settings

    settings = load_settings()
    count = args.questions or (10 if args.quick else 50)
    max_new_tokens = args.max_new_tokens or settings.max_new_tokens
    sampled = sample_questions(count + 1, args.seed)
    warm_up, questions = sampled[-1], sampled[:-1]
    plan: dict[str, Any] = {
        "questions": [q.__dict__ for q in questions],
        "warm_up": warm_up.__dict__,
        "max_new_tokens": max_new_tokens,
        "model_folder": str(local_folder(settings.llm_model, "generator", settings.cache_dir)),
    }

    started = time.perf_counter()
    ours = run_side("ours", plan, args.profile)
    asked = [r for r in ours["rows"] if r["asked_llm"]]
    paired = asked[: args.baseline_questions] if args.baseline_questions else asked
    plan["asked"] = [{"id": r["id"], "messages": r["messages"]} for r in paired]
    plan["warm_up_messages"] = ours.pop("warm_up_messages")
    baseline = run_side("baseline", plan, False)
    elapsed = time.perf_counter() - started

    summary = summarize(ours, baseline)
    same_reply = sum(
        o["reply"].strip() == b["reply"].strip()
        for o, b in zip(paired, baseline["rows"], strict=True)
    )
    profile_text = ours.pop("profile")
    if profile_text:
        PROFILE_OUT.write_text(profile_text)
    results = {
        "machine": machine(),
        "setup": {
            "llm_model": settings.llm_model,
            "model_folder": plan["model_folder"],
            "embedding_model": ours["embedding_model"],
            "top_k": ours["top_k"],
            "max_new_tokens": max_new_tokens,
            "questions": len(questions),
            "languages": {lang: sum(q.language == lang for q in questions) for lang in LANGUAGES},
            "asked_llm": len(asked),
            "baseline_questions": len(paired),
            "refused": sum(r["refused"] for r in ours["rows"]),
            "seed": args.seed,
            "knowledge_base": "every paragraph of each sampled question's article, "
            "in the question's language",
            "ingest": ours["ingest"],
            "torch_threads": torch_threads(),
        },
        "ours": {
            "dtype": ours["llm_dtype"],
            "llm_load_s": ours["llm_load_s"],
            "process_s": ours["process_s"],
        },
        "baseline": {
            "how": 'transformers.pipeline("text-generation", model=folder, tokenizer=folder), '
            "default dtype, greedy, TextIteratorStreamer",
            "dtype": baseline["dtype"],
            "load_s": baseline["load_s"],
            "process_s": baseline["process_s"],
        },
        "same_reply": same_reply,
        "summary": summary,
        "seconds": round(elapsed, 1),
        # The prompts themselves are left out: a few kB each, rebuilt by rerunning.
        "per_question": {
            "ours": [{k: v for k, v in r.items() if k != "messages"} for r in ours["rows"]],
            "baseline": baseline["rows"],
        },
    }
    print(table(summary))
    print(
        f"{len(questions)} questions ({len(asked)} reached the LLM), max_new_tokens "
        f"{max_new_tokens}, top_k {ours['top_k']}; dtype ours {ours['llm_dtype']}, "
        f"baseline {baseline['dtype']} on the first {len(paired)}; same reply "
        f"{same_reply}/{len(paired)}; "
        f"ours {ours['process_s']} s, baseline {baseline['process_s']} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


if __name__ == "__main__":
    main()
