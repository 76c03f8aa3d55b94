"""Answerability: one verdict before any model runs (qa/answerability.py ``decide``): the
floor, named terms, evidence about another entity, the calibrated score."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import ScriptedGenerator, make_kb

from kbqa.qa import answerability
from kbqa.qa.answerability import (
    Calibration,
    decide,
    evidence_neighbourhood,
    evidence_signals,
    key_terms,
    missing_terms,
)
from kbqa.qa.evidence import select_evidence


@pytest.mark.parametrize(
    ("question", "terms"),
    [
        ("¿Cuántos parámetros tiene GPT-3?", ("gpt 3",)),
        ("¿Qué propone Graham Twigg sobre la propagación?", ("graham twigg",)),
        ("How many Grammys has Lady Gaga won?", ("grammys", "lady gaga")),
        ("Según la AAA, ¿cuál es el porcentaje?", ("aaa",)),
        ("¿Qué es un modelo de lenguaje?", ()),  # no names: nothing to check
        ("What happened in 1066?", ()),  # figures alone are not names
        ("Denver won what?", ()),  # the opening word is capitalised anyway
    ],
)
def test_key_terms_are_the_names_of_the_question(question: str, terms: tuple[str, ...]) -> None:
    assert key_terms(question) == terms


@pytest.mark.parametrize(
    ("term", "passage", "found"),
    [
        ("denver", "The Denver Broncos won.", True),
        ("grammys", "She won a Grammy in 2010.", True),  # inflection
        ("ghandi", "Gandhi's work was called satyagraha.", True),  # a slip of spelling
        ("arpnet", "ARPANET and SITA became operational.", True),
        ("graham twigg", "Twigg suggested another cause.", True),  # a part of the name will do
        ("aaa", "the American Automobile Association reported", True),  # an acronym spelled out
        ("mistral large", "Large language models are large.", True),  # written as a name
        ("mistral large", "models grow large and larger", False),  # only a common word
        ("normans", "Normandy is a region.", False),
        ("austria", "Australia is large.", False),
        ("jurassic 1", "GPT-3 has 175 billion parameters.", False),
    ],
)
def test_a_name_is_found_in_its_forms_but_not_in_a_neighbour_word(
    term: str, passage: str, found: bool
) -> None:
    assert (missing_terms([term], [passage]) == ()) is found


def test_the_neighbourhood_of_evidence_is_its_sentence_the_four_before_and_the_heading() -> None:
    from kbqa.index.store import Hit
    from kbqa.ingest.types import Chunk
    from kbqa.qa.evidence import Evidence, Sentence

    passage = "A is 1. B is 2. C is 3. D is 4. E is 5. It has 178 billion. F follows."
    start = passage.index("It has")
    end = passage.index(" F follows")
    hit = Hit(Chunk("c1", "d1", passage, "/m.md", None, 0, len(passage), "Models"), 0.9)
    span = Sentence(1, 5, start, end, passage[start:end], {}, 0.9)
    (around,) = evidence_neighbourhood(Evidence("q?", (hit,), (span,), (span,)))
    assert "B is 2. C is 3. D is 4. E is 5. It has 178 billion." in around
    assert "A is 1" not in around and "F follows" not in around
    assert around.startswith("Models")


ABOUT_ANOTHER = [
    ("ai21.md", "# AI21\n\nJurassic-1 was announced in Tel Aviv."),
    ("gpt.md", "# OpenAI\n\nGPT-3 has 175 billion parameters, many parameters indeed."),
]


def test_evidence_about_another_entity_is_refused_before_the_model(tmp_path: Path) -> None:
    generator = ScriptedGenerator(["175 billion"])
    kb = make_kb(tmp_path / "kb", generator, answer_style="short")
    kb.add_texts(ABOUT_ANOTHER)
    # Jurassic-1 is named (in ai21.md), but the sentence that best answers "how many
    # parameters" is about GPT-3, and nothing around it names Jurassic-1.
    answer = kb.ask("How many parameters does Jurassic-1 have?")
    assert answer.refused and generator.calls == [] and answer.citations == ()
    verdict = answer.answerability
    assert verdict is not None and verdict.check == "elsewhere" and verdict.missing_terms == ()
    assert verdict.reason == "the best sentences are about something else, not jurassic 1"
    assert answer.text == "The documents do not contain the answer." and answer.reply == ""
    # Asked about the entity the evidence is about, the same passages answer.
    answered = kb.ask("How many parameters does GPT-3 have?")
    assert not answered.refused and answered.text == "175 billion [1]"
    assert answered.answerability is not None and answered.answerability.check == ""


def test_a_name_no_passage_mentions_is_refused_with_the_missing_terms(tmp_path: Path) -> None:
    generator = ScriptedGenerator(["x"])
    kb = make_kb(tmp_path / "kb", generator, answer_style="sentence")
    kb.add_texts(ABOUT_ANOTHER)
    answer = kb.ask("How many parameters does BLOOM have?")
    assert answer.refused and generator.calls == []
    assert answer.answerability is not None and answer.answerability.check == "names"
    assert answer.answerability.missing_terms == ("bloom",)
    assert answer.answerability.reason == "the passages never mention bloom"


def test_calibrated_score_refuses_below_the_threshold_and_keeps_its_signals(
    tmp_path: Path,
) -> None:
    kb = make_kb(tmp_path / "kb")
    kb.add_texts(ABOUT_ANOTHER)
    question = "How many parameters does GPT-3 have?"
    evidence = select_evidence(question, kb.search(question), kb.embedder)
    signals = evidence_signals(evidence, evidence_neighbourhood(evidence))
    cosine = signals["best_cosine"]
    # score = sigmoid(10 * (best_cosine - cosine) -/+ 0.5): 0.38 below the threshold, 0.62 above.
    low = decide(
        question, evidence, 0.0, Calibration({"best_cosine": 10.0}, -10 * cosine - 0.5, 0.5)
    )
    high = decide(
        question, evidence, 0.0, Calibration({"best_cosine": 10.0}, -10 * cosine + 0.5, 0.5)
    )
    assert not low.answerable and low.check == "score" and "score 0.38 < 0.50" in low.reason
    assert high.answerable and high.check == "" and high.score == pytest.approx(0.6225, abs=1e-3)
    assert low.signals["best_cosine"] == cosine and set(signals) <= set(low.signals)
    # A signal the evidence does not give: no score, no verdict from it.
    unknown = decide(question, evidence, 0.0, Calibration({"refusal_logit": 1.0}, 0, 0.5))
    assert unknown.answerable and unknown.score is None
    # The floor comes first: no passage as close as it asks.
    floor = decide(question, evidence, 0.99, None)
    assert not floor.answerable and floor.check == "floor" and "< 0.99" in floor.reason


def test_the_stored_calibration_is_well_formed() -> None:
    entries = answerability._calibrations()["calibrations"]
    assert entries  # the default embedder is calibrated
    signals = {"best_score", "margin", "context_overlap", "best_cosine", "passage_cosine"}
    for entry in entries:
        calibration = answerability.calibration_for(entry["embedder"])
        # 0: the fit found no threshold precise enough, and the score refuses nothing.
        assert calibration is not None and 0 <= calibration.threshold < 1
        assert set(calibration.weights) <= signals  # what evidence_signals measures
    assert answerability.calibration_for("multilingual-e5-small") is not None
    # Cosines of one embedder mean nothing for another: no calibration, no score check.
    assert answerability.calibration_for("all-MiniLM-L6-v2") is None


def test_checks_off_still_measure_but_never_refuse(tmp_path: Path) -> None:
    generator = ScriptedGenerator(["Spain won the World Cup in Johannesburg in 2010."])
    kb = make_kb(tmp_path / "kb", generator, answerability=False, answer_style="sentence")
    kb.add_texts([("cup.md", "Spain won the World Cup in Johannesburg in 2010.")])
    answer = kb.ask("Who won the 2010 Euro Cup in Vienna?")
    assert generator.calls  # the model was asked although "vienna" is missing
    assert not answer.refused and answer.shown == "draft"
    assert answer.answerability is not None and not answer.answerability.answerable
    assert answer.answerability.check == "names"
    assert answer.answerability.missing_terms == ("vienna",)
