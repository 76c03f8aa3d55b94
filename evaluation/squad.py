"""``kbqa eval qa``: exact match, F1 and refusals on SQuAD-format sets.

Exact match and F1 follow the official SQuAD script's normalisation, with
Spanish articles for Spanish data. Every question goes through the full
pipeline (``KnowledgeBase.ask``) over every paragraph of the file.
"""

from __future__ import annotations

import json
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ingest.types import display_name
from ..qa.citations import strip_markers
from .statistics import answer_intervals, summarize_answers

if TYPE_CHECKING:
    from ..qa.knowledge_base import KnowledgeBase
    from ..qa.options import Style

_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(el|la|los|las|lo|un|una|unos|unas)\b",
}


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
    style: Style | None = None,
) -> dict[str, Any]:
    """Ask each (sampled) question through the full pipeline over every paragraph.

    What is scored is what a user is shown: ``Answer.text`` without its ``[n]``
    markers (the evidence sentences, or the model's checked short answer or sentence),
    "" when refused; never the model's unverified draft. ``style`` is passed to
    ``kb.ask`` (default: the knowledge base's ``answer_style``).

    ``prefetch(kb, questions)``, when given, answers all the questions at once
    (``app/batch_ray.py``: a Ray actor pool) and returns what the loop asks instead of
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
        answer = kb.ask(question.text, style=style)
        prediction = "" if answer.refused else strip_markers(answer.text)
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
            "style": answer.style,
            "shown": answer.shown,  # evidence verbatim, or the model's checked draft
            "exact_match": exact_match(prediction, question.answers, language),
            "f1": f1_score(prediction, question.answers, language),
            "gold_contained": gold_contained(prediction, question.answers, language),
            "gold_rank": ranked.index(gold_key) + 1 if gold_key in ranked else None,
            "gold_in_prompt": gold_key in found,
            "first_token_s": answer.timings.first_token_s,
            "total_s": answer.timings.total_s,
            # The model's draft (shown or not; "" for the evidence style), why it was set
            # aside, and the answerability signals: enough to replay a calibration
            # offline (bench/fit_evidence.py calibrate).
            "reply": answer.reply,
            "not_shown_because": answer.not_shown_because,
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


def _language_of(path: Path) -> str:
    name = path.name.lower()
    return "es" if re.search(r"(^|[.\-_])es([.\-_]|$)", name) else "en"
