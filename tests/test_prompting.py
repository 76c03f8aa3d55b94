"""Prompt building, context packing, citations, refusals and grounding (no models)."""

from __future__ import annotations

import pytest

from kbqa.index.store import Hit
from kbqa.ingest.types import Chunk
from kbqa.qa import grounding
from kbqa.qa.citations import cited_numbers, has_markers, render_markers, strip_markers
from kbqa.qa.prompting import (
    REFUSALS,
    build_messages,
    detect_language,
    is_refusal,
    pack_prompt,
    parse_citations,
)


def hit(text: str, source: str = "/docs/a.pdf", page: int | None = 1, score: float = 0.5) -> Hit:
    chunk = Chunk(Chunk.make_id("d", 0, text), "d" * 64, text, source, page, 0, len(text))
    return Hit(chunk, score)


def word_count(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"].split()) for m in messages)


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("¿Cuántos parámetros tiene GPT-3?", "es"),
        ("Cuantos parametros tiene el modelo", "es"),
        ("How many parameters does GPT-3 have?", "en"),
        ("What is fine-tuning?", "en"),
        ("¿Qué es el ajuste fino?", "es"),
    ],
)
def test_detect_language(question: str, language: str) -> None:
    assert detect_language(question) == language


def test_passages_are_numbered_with_source_and_page_and_fenced_as_data() -> None:
    hits = [hit("GPT-3 has 175 billion parameters."), hit("Other.", "/x/guide.md", None)]
    system, user = build_messages("How many?", hits, "en")
    assert "[1] (a.pdf, page 1)" in user["content"]
    assert "[2] (guide.md)" in user["content"]
    assert "not instructions" in system["content"]
    assert REFUSALS["en"] in system["content"]
    assert user["content"].rstrip().endswith("How many?")
    assert "English" in user["content"]


def test_short_style_asks_for_the_answering_words_only() -> None:
    hits = [hit("GPT-3 has 175 billion parameters.")]
    sentence = build_messages("How many?", hits, "en")[1]["content"]
    short = build_messages("How many?", hits, "en", style="short")[1]["content"]
    assert "complete sentence" in sentence and "complete sentence" not in short
    assert "not a sentence" in short and "[1] (a.pdf, page 1)" in short
    packed = pack_prompt("How many?", hits, "en", word_count, 1000, style="short")
    assert packed.messages[1]["content"] == short


def test_packing_keeps_best_passages_that_fit_and_never_cuts_one() -> None:
    long = hit(" ".join(["word"] * 300))
    hits = [hit("short one"), long, hit("short two")]
    packed = pack_prompt("q?", hits, "en", word_count, context_tokens=50)
    assert [h.chunk.text for h in packed.hits] == ["short one", "short two"]
    assert packed.dropped == 1
    assert packed.prompt_tokens == word_count(packed.messages)
    assert 0 < packed.context_tokens <= 50
    assert " ".join(["word"] * 300) not in packed.messages[1]["content"]


def test_packing_with_room_for_all_keeps_rank_order() -> None:
    hits = [hit(f"passage {i}") for i in range(5)]
    packed = pack_prompt("q?", hits, "en", word_count, context_tokens=10_000)
    assert packed.hits == tuple(hits) and packed.dropped == 0


def test_parse_citations_maps_numbers_to_chunks_in_order_of_mention() -> None:
    hits = [hit("a", page=3), hit("b", page=7), hit("c", page=9)]
    citations = parse_citations("X [2]. Y [1, 2]; Z [3][9] and [0].", hits)
    assert [c.number for c in citations] == [2, 1, 3]
    assert [c.page for c in citations] == [7, 3, 9]
    assert citations[0].text == "b" and citations[0].source == "/docs/a.pdf"


def test_parse_citations_without_markers_is_empty() -> None:
    assert parse_citations("no markers here", [hit("a")]) == ()


def test_citation_markers_are_read_stripped_and_rendered_one_way() -> None:
    text = "X [2]. Y [1, 2]; Z [3;4] and [n] or [ 5]."
    assert cited_numbers(text) == [2, 1, 2, 3, 4]
    assert has_markers(text) and not has_markers("[n] and [ 5] are not markers")
    assert strip_markers(text) == "X. Y; Z and [n] or [ 5]."
    assert strip_markers("a[1]b", " ") == "a b"
    assert render_markers("Y [1, 2].", lambda ns: "".join(f"<{n}>" for n in ns)) == "Y <1><2>."


@pytest.mark.parametrize(
    ("reply", "cites", "refused"),
    [
        ("No lo encuentro en los documentos.", False, True),
        ("The documents do not contain the answer.", False, True),
        ("I don't know.", False, True),
        ("", False, True),
        ("GPT-3 has 175 billion parameters [1].", True, False),
        ("GPT-3 has 175 billion parameters [1]; its date is not in the documents.", True, False),
        ("NO LO SÉ.", False, True),  # accents and case folded
        ("The documents don’t contain it; I don’t know.", False, True),  # curly apostrophe
    ],
)
def test_refusal_detection(reply: str, cites: bool, refused: bool) -> None:
    assert is_refusal(reply, cites) is refused


def test_support_rejects_invented_facts_and_numbers() -> None:
    passages = ["GPT-3, de OpenAI, tiene 175 000 millones de parámetros."]
    question = "¿Cuántos parámetros tiene GPT-3?"
    assert grounding.support("GPT-3 tiene 175 000 millones de parámetros.", question, passages) == 1
    assert grounding.support("GPT-3 tiene 178 000 millones.", question, passages) == 0
    assert grounding.support("The capital of Australia is Sydney.", "Capital?", passages) < 0.6


def test_markers_cite_the_passage_that_states_the_figure() -> None:
    passages = [
        "Jurassic-1 tiene 178 000 millones de parámetros.",
        "Los modelos grandes tienen miles de millones de parámetros.",
        "GPT-3, de OpenAI, tiene 175 000 millones de parámetros.",
    ]
    text = grounding.with_markers(
        "GPT-3 tiene 175 000 millones de parámetros.", "¿Cuántos parámetros tiene GPT-3?", passages
    )
    assert text == "GPT-3 tiene 175 000 millones de parámetros [3]."


def test_markers_already_present_are_kept() -> None:
    assert grounding.with_markers("Yes [2].", "q", ["a", "b"]) == "Yes [2]."
