"""``kbqa eval``: retrieval quality on BEIR sets, answer quality on SQuAD-format sets.

Metrics come from maintained code: ranx for nDCG/recall/MRR; exact match and
F1 follow the official SQuAD script's normalisation, with Spanish articles
for Spanish data. Knowledge bases built here are cached by content (re-runs
embed nothing), so an ablation reruns only what changed.
"""

from __future__ import annotations

import json
import random
import re
import string
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..ingest.types import display_name
from .knowledge_base import KnowledgeBase

RETRIEVAL_METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10"]
_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(el|la|los|las|lo|un|una|unos|unas)\b",
}


# -- BEIR retrieval ---------------------------------------------------------------


@dataclass(frozen=True)
class BeirSet:
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(folder: Path, split: str) -> BeirSet:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv (header row) of a BEIR folder."""
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            corpus[str(doc["_id"])] = f"{doc.get('title', '')}\n{doc['text']}".strip()
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            query = json.loads(line)
            queries[str(query["_id"])] = query["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            query_id, doc_id, score = line.rstrip("\n").split("\t")[:3]
            if int(score) > 0:
                qrels.setdefault(query_id, {})[doc_id] = int(score)
    return BeirSet(corpus, {q: queries[q] for q in qrels if q in queries}, qrels)


def evaluate_retrieval(
    kb: KnowledgeBase,
    data: BeirSet,
    depth: int = 100,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Index the corpus (incrementally), run the queries, score with ranx."""
    from ranx import Qrels, Run, evaluate
    from tqdm import tqdm

    started = time.perf_counter()
    report = kb.add_texts([(f"{doc_id}.txt", text) for doc_id, text in data.corpus.items()],
                          scheme="beir", progress=progress)  # fmt: skip
    ingest_s = time.perf_counter() - started

    query_ids = sorted(data.queries)
    if limit and limit < len(query_ids):
        query_ids = sorted(random.Random(seed).sample(query_ids, limit))
    run: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for query_id in tqdm(query_ids, desc="queries", disable=not progress):
        # Chunks are ranked; a document ranks where its best chunk does.
        hits = kb.search(data.queries[query_id], depth)
        ranked = list(dict.fromkeys(display_name(h.chunk.source)[:-4] for h in hits))
        run[query_id] = {doc: float(len(ranked) - rank) for rank, doc in enumerate(ranked)}
    search_s = time.perf_counter() - started
    qrels = Qrels({q: data.qrels[q] for q in query_ids})
    scores = evaluate(qrels, Run(run), RETRIEVAL_METRICS, make_comparable=True)
    return {
        "metrics": {name: round(float(value), 4) for name, value in scores.items()},
        "queries": len(query_ids),
        "documents": len(data.corpus),
        "chunks_embedded": report.chunks,
        "ingest_s": round(ingest_s, 1),
        "search_ms_per_query": round(1000 * search_s / max(1, len(query_ids)), 1),
        "per_query": run,
    }


# -- SQuAD answers ---------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    impossible: bool


def load_squad(path: Path) -> tuple[dict[str, str], dict[str, str], list[Question]]:
    """Paragraph texts by key, the paragraph key of each question id, and the questions."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs: dict[str, str] = {}
    paragraph_of: dict[str, str] = {}
    questions: list[Question] = []
    for article_index, article in enumerate(data):
        for paragraph_index, paragraph in enumerate(article["paragraphs"]):
            key = f"{article_index}-{paragraph_index}"
            paragraphs[key] = paragraph["context"].lstrip("\ufeff")
            for qa in paragraph["qas"]:
                paragraph_of[qa["id"]] = key
                answers = tuple(a["text"] for a in qa.get("answers", []))
                impossible = bool(qa.get("is_impossible", False))
                questions.append(Question(qa["id"], qa["question"], answers, impossible))
    return paragraphs, paragraph_of, questions


def retrieval_pairs(path: Path) -> tuple[list[str], list[str], list[int]]:
    """A SQuAD file as paragraphs, questions, and each question's paragraph index."""
    paragraphs, paragraph_of, questions = load_squad(path)
    position = {key: index for index, key in enumerate(paragraphs)}
    return (
        list(paragraphs.values()),
        [q.text for q in questions],
        [position[paragraph_of[q.id]] for q in questions],
    )


def normalize_answer(text: str, language: str) -> str:
    """The official SQuAD normalisation, with the articles of ``language``."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation) | set("¿¡«»"))
    text = re.sub(_ARTICLES.get(language, _ARTICLES["en"]), " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: Sequence[str], language: str) -> float:
    if not gold:
        return float(not prediction.strip())
    pred = normalize_answer(prediction, language)
    return float(any(pred == normalize_answer(g, language) for g in gold))


def f1_score(prediction: str, gold: Sequence[str], language: str) -> float:
    if not gold:
        return float(not prediction.strip())
    best = 0.0
    predicted = normalize_answer(prediction, language).split()
    for answer in gold:
        expected = normalize_answer(answer, language).split()
        common = Counter(predicted) & Counter(expected)
        overlap = sum(common.values())
        if overlap:
            precision, recall = overlap / len(predicted), overlap / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def gold_contained(prediction: str, gold: Sequence[str], language: str) -> float:
    """1 when a normalised gold answer stands inside the normalised prediction.

    What a sentence answer is judged by: "GPT-3 has 175 billion parameters [1]."
    contains the gold "175 billion" although its F1 is low.
    """
    if not gold:
        return float(not prediction.strip())
    predicted = f" {normalize_answer(prediction, language)} "
    return float(any(f" {normalize_answer(g, language)} " in predicted for g in gold if g.strip()))


def bootstrap_ci(
    values: Sequence[float], resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (seeded: same data, same CI)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (float("nan"), float("nan"))
    draws = np.random.default_rng(seed).integers(0, len(data), (resamples, len(data)))
    means = data[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (round(float(low), 4), round(float(high), 4))


# Per-question values behind each mean in ``summarize_answers``: (metric, rows, value).
def _answer_metrics(results: Sequence[dict[str, Any]], recall_k: int) -> dict[str, list[float]]:
    answerable = [r for r in results if not r["impossible"]]
    impossible = [r for r in results if r["impossible"]]
    metrics = {
        "exact_match": [100 * r["exact_match"] for r in answerable],
        "f1": [100 * r["f1"] for r in answerable],
        "gold_contained": [100 * r.get("gold_contained", 0.0) for r in answerable],
        "recall@1": [float(r["gold_rank"] == 1) for r in answerable],
        f"recall@{recall_k}": [float(r["gold_rank"] is not None) for r in answerable],
        "gold_in_prompt": [float(r["gold_in_prompt"]) for r in answerable],
        "wrong_refusals": [float(r["refused"]) for r in answerable],
    }
    if impossible:
        metrics["refusal_recall"] = [float(r["refused"]) for r in impossible]
    return metrics


def compare_answers(
    first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]], recall_k: int = 5
) -> dict[str, Any]:
    """Paired comparison of two runs over the same questions: second minus first.

    Only questions present in both runs count; each metric's difference gets a
    paired bootstrap 95 % CI (questions resampled together), so a gap whose CI
    spans 0 is not a difference.
    """
    by_id = {r["id"]: r for r in second}
    pairs = [(r, by_id[r["id"]]) for r in first if r["id"] in by_id]
    left = _answer_metrics([a for a, _ in pairs], recall_k)
    right = _answer_metrics([b for _, b in pairs], recall_k)
    table: dict[str, Any] = {}
    for name, values in left.items():
        differences = [b - a for a, b in zip(values, right[name], strict=True)]
        if not differences:
            continue
        table[name] = {
            "first": round(sum(values) / len(values), 4),
            "second": round(sum(right[name]) / len(values), 4),
            "difference": round(sum(differences) / len(differences), 4),
            "ci95": bootstrap_ci(differences),
            "questions": len(differences),
        }
    return {"paired_questions": len(pairs), "metrics": table}


def evaluate_answers(
    kb: KnowledgeBase,
    questions_file: Path,
    passages_file: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    recall_k: int = 5,
    progress: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    prefetch: Callable[[KnowledgeBase, list[str]], Any] | None = None,
) -> dict[str, Any]:
    """Ask each (sampled) question through the full pipeline over every paragraph.

    ``prefetch(kb, questions)``, when given, answers all the questions at once
    (``qa/batch.py``: a Ray actor pool) and returns what the loop asks instead of
    ``kb``; the answers are scored exactly as the ones asked here.
    """
    from tqdm import tqdm

    passages_file = passages_file or questions_file
    paragraphs, paragraph_of, _ = load_squad(passages_file)
    _, own_paragraph_of, questions = load_squad(questions_file)
    language = _language_of(questions_file)
    started = time.perf_counter()
    kb.add_texts([(f"{passages_file.stem}/{key}.txt", text) for key, text in paragraphs.items()],
                 scheme="squad", progress=progress)  # fmt: skip
    ingest_s = time.perf_counter() - started
    if limit and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    if prefetch is not None:
        kb = prefetch(kb, [question.text for question in questions])

    results = []
    for question in tqdm(questions, desc="questions", disable=not progress):
        gold_key = paragraph_of.get(question.id, own_paragraph_of.get(question.id))
        answer = kb.ask(question.text)
        prediction = "" if answer.refused else answer.reply
        found = [display_name(p.source)[:-4] for p in answer.passages]
        hits = kb.search(question.text, recall_k)
        ranked = [display_name(h.chunk.source)[:-4] for h in hits]
        result = {
            "id": question.id,
            "question": question.text,
            "gold": list(question.answers),
            "impossible": question.impossible,
            "prediction": prediction,
            "refused": answer.refused,
            "exact_match": exact_match(prediction, question.answers, language),
            "f1": f1_score(prediction, question.answers, language),
            "gold_contained": gold_contained(prediction, question.answers, language),
            "gold_rank": ranked.index(gold_key) + 1 if gold_key in ranked else None,
            "gold_in_prompt": gold_key in found,
            "first_token_s": answer.timings.first_token_s,
            "total_s": answer.timings.total_s,
            # What the model said before any verdict, and the answerability signals:
            # enough to replay a calibration offline (bench/calibrate_answerability.py).
            "reply": answer.reply,
            "answerability": (
                None if answer.answerability is None else asdict(answer.answerability)
            ),
        }
        results.append(result)
        if on_result:
            on_result(result)
    return {
        "summary": summarize_answers(results, recall_k),
        "ci95": answer_intervals(results, recall_k),
        "questions": len(results),
        "paragraphs": len(paragraphs),
        "language": language,
        "ingest_s": round(ingest_s, 1),
        "per_question": results,
    }


def summarize_answers(results: Sequence[dict[str, Any]], recall_k: int) -> dict[str, float]:
    def mean(values: Sequence[float]) -> float:
        return round(sum(values) / len(values), 4) if values else float("nan")

    summary = {name: mean(values) for name, values in _answer_metrics(results, recall_k).items()}
    summary.pop("refusal_recall", None)
    summary["median_total_s"] = (
        sorted(r["total_s"] for r in results)[len(results) // 2] if results else float("nan")
    )
    impossible = [r for r in results if r["impossible"]]
    if impossible:
        refused = [r for r in results if r["refused"]]
        true_refusals = sum(r["impossible"] for r in refused)
        summary["refusal_precision"] = round(true_refusals / len(refused), 4) if refused else 0.0
        summary["refusal_recall"] = round(true_refusals / len(impossible), 4)
    return summary


def answer_intervals(
    results: Sequence[dict[str, Any]], recall_k: int
) -> dict[str, tuple[float, float]]:
    """95 % bootstrap CI of each mean in the summary (refusal precision excepted)."""
    return {
        name: bootstrap_ci(values)
        for name, values in _answer_metrics(results, recall_k).items()
        if values
    }


def _language_of(path: Path) -> str:
    name = path.name.lower()
    return "es" if re.search(r"(^|[.\-_])es([.\-_]|$)", name) else "en"


def run_configuration(kb: KnowledgeBase) -> dict[str, Any]:
    """What produced a result: models, chunking, retrieval, code version."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, cwd=Path(__file__).parent, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    store = kb._store
    return {
        "embedding_model": kb.embedder.name,
        "llm_model": kb.generator.name,
        "retrieval": kb.answer_options.retrieval,
        "answer_style": kb.answer_options.answer_style,
        "answerability": kb.answer_options.answerability,
        "top_k": kb.answer_options.top_k,
        "context_tokens": kb.answer_options.context_tokens,
        "min_score": kb.answer_options.min_score,
        "chunker": store.manifest.chunker.to_dict() if store else None,
        "knowledge_base": str(kb.folder),
        "commit": commit,
    }
