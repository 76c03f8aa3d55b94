"""Questions about the default knowledge base, answered from evidence with the real embedder.

``tests/data/corpus-questions.json`` holds "why", list, "how many", "what is", "who" and
"where" questions in Spanish and English, each with the words the shown evidence must
hold. The `evidence` style runs no LLM, so the whole set takes seconds once the
embedder is loaded; every question must be answered (none refused) and its evidence
must hold the expected words, but for at most ``ALLOWED_MISSES``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import CORPORA, FIXTURES

from kbqa.text import fold_accents

pytestmark = pytest.mark.slow

QUESTIONS = json.loads((FIXTURES / "corpus-questions.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def corpus_kb(tmp_path_factory: pytest.TempPathFactory, default_embedder: Any) -> Any:
    from fakes import ScriptedGenerator

    from kbqa.qa.knowledge_base import KnowledgeBase
    from kbqa.settings import Settings

    # The shipped defaults (chunking, refusal floor) and the real embedder; the
    # `evidence` style never calls a model, which the scripted one would show.
    kb = KnowledgeBase.open(
        tmp_path_factory.mktemp("corpus") / "kb",
        settings=Settings.defaults().model_copy(update={"answer_style": "evidence"}),
        embedder=default_embedder,
        generator=ScriptedGenerator(["(the evidence style must not ask a model)"]),
    )
    report = kb.add([CORPORA])
    assert not report.failed, report.summary()
    return kb


def folded(text: str) -> str:
    return " ".join(fold_accents(text.lower()).split())


# Two of the 24 miss today (a Spanish "why" whose reason sits in the runner-up passage,
# and "¿Qué es un LLM?", whose definition is outranked): docs/quality.md, "Evidence".
ALLOWED_MISSES = 2


def test_the_evidence_answers_the_questions(corpus_kb: Any) -> None:
    misses = []
    for item in QUESTIONS["questions"]:
        answer = corpus_kb.ask(item["q"])
        assert not answer.refused, (item["q"], answer.answerability)
        assert answer.quotes and answer.citations, item["q"]
        if not any(folded(e) in folded(answer.text) for e in item["expect"]):
            misses.append((item["q"], answer.text))
    assert corpus_kb.generator.calls == []  # the evidence style never asks a model
    assert len(misses) <= ALLOWED_MISSES, misses


def test_the_set_covers_both_languages_and_every_question_type() -> None:
    types = {item["type"] for item in QUESTIONS["questions"]}
    assert {"why", "list", "how many", "what is"} <= types
    assert len(QUESTIONS["questions"]) >= 20
    spanish = sum(any(c in item["q"] for c in "¿áéíóúñ") for item in QUESTIONS["questions"])
    assert 8 <= spanish <= len(QUESTIONS["questions"]) - 8
