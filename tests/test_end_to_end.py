"""The whole system with the real packaged models, through the CLI and the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPORA, ROOT, shared_data

pytestmark = pytest.mark.slow


def kbqa(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KBQA_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kbqa.app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KBQA_HOME whose default knowledge base is built from corpora/ by the CLI."""
    home = tmp_path_factory.mktemp("home")
    result = kbqa("ingest", "--sync", str(CORPORA), home=home)
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stdout
    return home


@pytest.fixture(scope="module")
def default_kb(home: Path, default_embedder, default_llm):
    from kbqa.qa.knowledge_base import KnowledgeBase

    return KnowledgeBase.open(home / "default", embedder=default_embedder, generator=default_llm)


def test_spanish_question_through_the_cli_answers_and_cites_the_primer(home: Path) -> None:
    result = kbqa("ask", "¿Cuántos parámetros tiene GPT-3?", "--json", "--answer-style",
                  "sentence", home=home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert not answer["refused"], answer
    assert answer["style"] == "sentence" and answer["answerability"]["check"] == ""
    # The model's sentence if the evidence states it, else the evidence: 175 000 millones.
    assert "175" in answer["text"] and "millones" in answer["text"], answer["text"]
    assert answer["shown"] in ("draft", "evidence") and answer["reply"]
    assert any(
        c["name"] == "introduccion-a-los-llm.pdf" and c["page"] and "175 000" in c["text"]
        for c in answer["citations"]
    ), answer["citations"]
    assert answer["timings"]["prompt_tokens"] > 0


@pytest.mark.parametrize("style", ["evidence", "short", "sentence"])
def test_english_question_answers_in_english_in_each_style(default_kb, style: str) -> None:
    answer = default_kb.ask("How many parameters does GPT-3 have?", style=style)
    assert not answer.refused, answer
    assert answer.style == style and answer.language == "en"
    assert "175" in answer.text, answer.text
    assert any("175" in c.text for c in answer.citations)
    assert any("175 billion" in q.text for q in answer.quotes), answer.quotes
    if style == "evidence":
        assert answer.shown == "evidence" and answer.reply == ""
        assert answer.timings.prompt_tokens == 0  # no model ran
    else:
        assert answer.reply and answer.timings.prompt_tokens > 0
    if answer.shown == "draft":  # what the model wrote, checked against the evidence
        assert answer.not_shown_because == ""
    else:
        assert "175 billion" in answer.text


@pytest.mark.parametrize(
    "question",
    ["¿Quién ganó el mundial de fútbol de 2010?", "What is the capital of Australia?"],
)
def test_questions_the_corpus_cannot_answer_are_refused(default_kb, question: str) -> None:
    answer = default_kb.ask(question, style="sentence")
    assert answer.refused, answer
    assert answer.citations == () and answer.reply == ""  # decided before any model ran
    assert answer.answerability is not None and answer.answerability.check, answer.answerability


@pytest.mark.parametrize(
    "question",
    ["How many parameters does Gemini Ultra have?", "¿Cuántos parámetros tiene Mistral Large?"],
)
def test_a_question_about_a_model_the_corpus_never_names_is_refused_unasked(
    default_kb, question: str
) -> None:
    answer = default_kb.ask(question, style="sentence")
    assert answer.refused and answer.citations == ()
    assert answer.answerability is not None and answer.answerability.missing_terms
    assert answer.answerability.check == "names"
    assert answer.timings.prompt_tokens == 0 and answer.reply == ""  # the LLM never ran


def test_a_figure_the_corpus_never_states_for_that_model_is_refused(default_kb) -> None:
    """Claude 2's size "has not been made public"; 175 000 millones is GPT-3's."""
    answer = default_kb.ask("¿Cuántos parámetros tiene Claude 2?", style="short")
    assert answer.refused or "175" not in answer.text, answer


def test_the_user_guide_answers_how_to_use_kbqa(default_kb) -> None:
    answer = default_kb.ask("How do I remove a document from the knowledge base?")
    assert not answer.refused, answer
    assert "remove" in answer.text
    assert any(c.name == "kbqa-user-guide.md" for c in answer.citations)


def test_answers_stream_and_are_reproducible(default_kb) -> None:
    stream = default_kb.stream("What is fine-tuning?", style="sentence")
    pieces = [piece for piece in stream if piece]
    assert pieces == [stream.answer.text]  # shown once checked, in one piece
    again = default_kb.ask("What is fine-tuning?", style="sentence")
    assert stream.answer.reply == again.reply and stream.answer.text == again.text  # greedy


def test_smollm_runs_the_same_pipeline(home: Path, default_embedder, small_llm) -> None:
    from kbqa.qa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase.open(home / "default", embedder=default_embedder, generator=small_llm)
    answer = kb.ask("How many parameters does GPT-3 have?", style="short")
    assert answer.timings.prompt_tokens > 0 and answer.reply
    assert not answer.refused and "175" in answer.text, answer


def test_ingest_of_the_pdf_collection_names_each_bad_file(tmp_path: Path) -> None:
    pdfs = str(shared_data("pdfs"))
    kb = str(tmp_path / "pdfs-kb")
    first = kbqa("ingest", pdfs, "--kb", kb, home=tmp_path)
    assert first.returncode == 3, first.stderr  # finished, some files failed
    failed = [line for line in first.stderr.splitlines() if line.startswith("failed: ")]
    reasons = "\n".join(failed)
    assert "truncated.pdf: broken or truncated PDF" in reasons
    assert "empty.pdf: empty file" in reasons
    assert "encrypted-file.pdf: encrypted: password needed" in reasons
    assert "linn.pdf" not in reasons  # a scan: read by OCR
    assert "linn.txt" not in reasons  # the reference text next to the scan is fine
    assert "crazyones.pdf" not in reasons
    assert f"{len(failed)} failed" in first.stdout

    second = kbqa("ingest", pdfs, "--kb", kb, home=tmp_path)
    assert "0 added, 0 updated" in second.stdout and "0 chunks embedded" in second.stdout

    docs = json.loads(kbqa("docs", "--json", "--kb", kb, home=tmp_path).stdout)
    names = {d["name"] for d in docs}
    assert {"crazyones.pdf", "GeoBase_NHNC1_Data_Model_UML_EN.pdf", "linn.txt"} <= names
    assert next(d for d in docs if d["name"] == "linn.pdf")["ocr_pages"][0]["page"] == 1
    removed = kbqa("remove", "crazyones.pdf", "--kb", kb, home=tmp_path)
    assert removed.returncode == 0 and "removed: crazyones.pdf" in removed.stdout
    hits = json.loads(
        kbqa("search", "crazy ones misfits rebels", "--json", "--kb", kb, home=tmp_path).stdout
    )
    assert all(not h["source"].endswith("/crazyones.pdf") for h in hits)


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    missing = kbqa("docs", "--kb", str(tmp_path / "nothing"), home=tmp_path)
    assert missing.returncode == 1
    assert "no knowledge base at" in missing.stderr
    usage = kbqa("ask", home=tmp_path)
    assert usage.returncode == 2
