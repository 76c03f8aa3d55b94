"""The eval harness's metrics on tiny cases checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fakes import ScriptedGenerator, make_kb

from kbqa.evaluation import (
    evaluate_answers,
    evaluate_retrieval,
    exact_match,
    f1_score,
    load_beir,
    normalize_answer,
    summarize_answers,
)


def test_normalisation_removes_language_articles_and_punctuation() -> None:
    assert normalize_answer("The Eiffel Tower!", "en") == "eiffel tower"
    assert normalize_answer("¿La Torre Eiffel?", "es") == "torre eiffel"
    assert normalize_answer("Los Ángeles", "en") == "los ángeles"  # not an English article


def test_exact_match_and_f1() -> None:
    assert exact_match("the 175 billion", ["175 billion"], "en") == 1.0
    assert exact_match("175", ["175 billion"], "en") == 0.0
    # precision 1/1, recall 1/2 -> F1 = 2/3
    assert f1_score("175", ["175 billion"], "en") == pytest.approx(2 / 3)
    assert f1_score("unos 175 mil", ["175 mil", "otro"], "es") == 1.0
    assert f1_score("", ["x"], "en") == 0.0
    assert exact_match("", [], "en") == 1.0  # unanswerable, and nothing was answered


def test_refusal_precision_and_recall() -> None:
    rows: list[dict[str, object]] = [
        {"impossible": True, "refused": True},
        {"impossible": True, "refused": False},
        {"impossible": False, "refused": True},
        {"impossible": False, "refused": False},
    ]
    for row in rows:
        row.update(exact_match=0.0, f1=0.0, gold_rank=None, gold_in_prompt=False, total_s=1.0)
    summary = summarize_answers(rows, 5)
    assert summary["refusal_precision"] == 0.5  # 1 of 2 refusals was right
    assert summary["refusal_recall"] == 0.5  # 1 of 2 unanswerable refused
    assert summary["wrong_refusals"] == 0.5  # 1 of 2 answerable refused


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": "apple banana cherry", "d2": "dog elephant fox", "d3": "apple grape"}
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
    )
    queries = {"q1": "banana cherry", "q2": "elephant fox"}
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td3\t1\nq2\td3\t1\n"
    )
    return folder


def test_retrieval_metrics_on_a_hand_checked_case(tmp_path: Path, tiny_beir: Path) -> None:
    kb = make_kb(tmp_path / "kb")
    result = evaluate_retrieval(kb, load_beir(tiny_beir, "test"), depth=3)
    run = result["per_query"]
    assert list(run["q1"])[0] == "d1" and list(run["q2"])[0] == "d2"
    rank_q1_d3 = list(run["q1"]).index("d3") + 1
    rank_q2_d3 = list(run["q2"]).index("d3") + 1
    dcg_q1 = 1 + 1 / math.log2(rank_q1_d3 + 1)
    ideal_q1 = 1 + 1 / math.log2(3)
    ndcg_q2 = (1 / math.log2(rank_q2_d3 + 1)) / 1
    expected = (dcg_q1 / ideal_q1 + ndcg_q2) / 2
    assert result["metrics"]["ndcg@10"] == pytest.approx(expected, abs=1e-4)
    assert result["metrics"]["mrr@10"] == pytest.approx((1 + 1 / rank_q2_d3) / 2, abs=1e-4)
    assert result["metrics"]["recall@10"] == 1.0
    again = evaluate_retrieval(kb, load_beir(tiny_beir, "test"), depth=3)
    assert again["chunks_embedded"] == 0  # the corpus is reused, not re-embedded


def test_answer_evaluation_end_to_end_with_a_scripted_model(tmp_path: Path) -> None:
    squad = {
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": "GPT-3 from OpenAI has 175 billion parameters.",
                        "qas": [
                            {"id": "a", "question": "How many parameters does GPT-3 have?",
                             "answers": [{"text": "175 billion", "answer_start": 22}]},
                            {"id": "b", "question": "Who won the 2010 World Cup?",
                             "answers": [], "is_impossible": True},
                        ],
                    },
                    {"context": "Boil pasta for nine minutes.", "qas": []},
                ],
            }
        ]
    }  # fmt: skip
    path = tmp_path / "dev-v2.0.json"
    path.write_text(json.dumps(squad))
    # The short style: the model copies "175 billion parameters" from the evidence; what
    # is scored is the text shown, without its [1] marker.
    replies = ScriptedGenerator(["175 billion parameters"])
    result = evaluate_answers(make_kb(tmp_path / "kb", replies), path, style="short")
    by_id = {r["id"]: r for r in result["per_question"]}
    assert by_id["a"]["prediction"] == "175 billion parameters"
    assert by_id["a"]["f1"] == pytest.approx(0.8)  # "175 billion parameters" vs "175 billion"
    assert by_id["a"]["gold_rank"] == 1 and not by_id["a"]["refused"]
    assert by_id["a"]["style"] == "short" and by_id["a"]["shown"] == "draft"
    # Refused before any model ran: "World Cup" is named by no passage.
    assert by_id["b"]["refused"] and by_id["b"]["exact_match"] == 1.0
    assert by_id["b"]["prediction"] == "" and by_id["b"]["answerability"]["check"] == "names"
    assert len(replies.calls) == 1
    assert result["summary"]["refusal_precision"] == 1.0
    assert result["summary"]["refusal_recall"] == 1.0


def test_the_evidence_style_is_scored_on_the_evidence_shown(tmp_path: Path) -> None:
    squad = {"data": [{"title": "T", "paragraphs": [{
        "context": "GPT-3 from OpenAI has 175 billion parameters.",
        "qas": [{"id": "a", "question": "How many parameters does GPT-3 have?",
                 "answers": [{"text": "175 billion", "answer_start": 22}]}],
    }]}]}  # fmt: skip
    path = tmp_path / "dev-v2.0.json"
    path.write_text(json.dumps(squad))
    generator = ScriptedGenerator(["never asked"])
    result = evaluate_answers(make_kb(tmp_path / "kb", generator), path, style="evidence")
    (row,) = result["per_question"]
    assert row["prediction"] == "GPT-3 from OpenAI has 175 billion parameters."  # no [1]
    assert row["gold_contained"] == 1.0 and row["shown"] == "evidence" and row["reply"] == ""
    assert generator.calls == []


def test_eval_knowledge_bases_are_keyed_by_the_content_of_the_data(tmp_path: Path) -> None:
    """Two different files named xquad.es.json never share a knowledge base; the same
    content reuses its own, whatever its folder. A BEIR folder is keyed by its corpus."""
    from kbqa.errors import KbqaError
    from kbqa.evaluation import knowledge_base_name

    first, second, copy = (tmp_path / d / "xquad.es.json" for d in ("a", "b", "c"))
    for path, text in (
        (first, '{"data": [1]}'),
        (second, '{"data": [2]}'),
        (copy, '{"data": [1]}'),
    ):
        path.parent.mkdir()
        path.write_text(text)
    names = [
        knowledge_base_name(p, "intfloat/multilingual-e5-small", 200) for p in (first, second, copy)
    ]
    assert names[0] != names[1] and names[0] == names[2]
    assert names[0].startswith("xquad.es-") and names[0].endswith(
        "-intfloat_multilingual-e5-small-200"
    )
    assert knowledge_base_name(first, "all-MiniLM-L6-v2", 200) != names[0]
    beir = tmp_path / "scifact"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    before = knowledge_base_name(beir, "m", 200)
    (beir / "corpus.jsonl").write_text('{"_id": "1", "text": "y"}\n')
    assert knowledge_base_name(beir, "m", 200) != before
    with pytest.raises(KbqaError, match="cannot read"):
        knowledge_base_name(tmp_path / "missing.json", "m", 200)
