"""Answerability: named terms, borrowed facts, the calibrated score (qa/answerability.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ScriptedGenerator, make_kb

from kbqa.qa import answerability
from kbqa.qa.answerability import (
    Assessment,
    Calibration,
    after_first_step,
    after_quoting,
    borrowed,
    key_terms,
    missing_terms,
    quote_neighbourhood,
)


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


def test_the_neighbourhood_of_a_quote_is_its_sentence_the_four_before_and_the_heading() -> None:
    passage = "A is 1. B is 2. C is 3. D is 4. E is 5. It has 178 billion. F follows."
    start = passage.index("It has")
    around = quote_neighbourhood(passage, start, "Models")
    assert "B is 2. C is 3. D is 4. E is 5. It has 178 billion." in around
    assert "A is 1" not in around and "F follows" not in around
    assert around.startswith("Models")


def test_borrowed_when_no_quote_neighbourhood_names_the_question_terms() -> None:
    assert borrowed(("jurassic 1",), ["GPT-3 from OpenAI has 175 billion parameters."])
    assert not borrowed(("jurassic 1",), ["Jurassic-1 has 178 billion parameters."])
    assert not borrowed((), ["anything"])  # a question without names borrows nothing


def test_calibrated_score_refuses_below_the_threshold_and_keeps_its_signals() -> None:
    calibration = Calibration({"best_cosine": 10.0}, -8.5, 0.5)
    start = Assessment(True, "", ("x",))
    low = after_first_step(start, calibration, {"best_cosine": 0.8})  # z = -0.5
    high = after_first_step(start, calibration, {"best_cosine": 0.9})  # z = 0.5
    assert not low.answerable and "score 0.38" in low.reason
    assert high.answerable and high.score == pytest.approx(0.6225, abs=1e-3)
    assert low.signals == {"best_cosine": 0.8}
    # A signal the generator cannot give: no score, no verdict.
    assert after_first_step(start, Calibration({"refusal_logit": 1.0}, 0, 0.5), {}).answerable


def test_after_quoting_records_the_borrowed_signal_either_way() -> None:
    start = Assessment(True, "", ("jurassic 1",))
    kept = after_quoting(start, ["Jurassic-1 has 178 billion parameters."])
    refused = after_quoting(start, ["GPT-3 has 175 billion parameters."])
    assert kept.answerable and kept.signals["borrowed"] == 0.0
    assert not refused.answerable and refused.signals["borrowed"] == 1.0


def test_the_stored_calibration_is_well_formed() -> None:
    entries = answerability._calibrations()["calibrations"]
    assert entries  # the default models are calibrated
    for entry in entries:
        calibration = answerability.calibration_for(entry["generator"], entry["embedder"])
        assert calibration is not None and 0 < calibration.threshold < 1
        assert set(calibration.weights) <= {"best_cosine", "question_overlap", "refusal_logit"}
    # Cosines of one embedder mean nothing for another: no calibration, no score check.
    assert answerability.calibration_for("qwen2.5-coder-0.5b-instruct", "all-MiniLM-L6-v2") is None


def test_checks_off_still_measure_but_never_refuse(tmp_path: Path) -> None:
    generator = ScriptedGenerator(["Spain won it in Johannesburg in 2010 [1]."])
    kb = make_kb(tmp_path / "kb", generator, answerability=False)
    kb.add_texts([("cup.md", "Spain won the World Cup in Johannesburg in 2010.")])
    answer = kb.ask("Who won the 2010 Euro Cup in Vienna?")
    assert generator.calls  # the model was asked although "vienna" is missing
    assert answer.answerability is not None
    assert answer.answerability.missing_terms == ("vienna",)
