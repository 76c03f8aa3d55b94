"""`kbqa ask --batch`: JSON Lines in, one line per question out, in order (fakes only).

The Ray engine's batch answering runs on a real cluster in tests/test_ray.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeEmbedder, ScriptedGenerator, make_kb

from kbqa.app import batch, batch_ray, cli
from kbqa.app.batch import BadLine, Question, parse_line
from kbqa.qa import knowledge_base as knowledge_base_module

FACT = "GPT-3 from OpenAI has 175 billion parameters."
REPLY = "GPT-3 has 175 billion parameters."


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"question": " How big is GPT-3? ", "id": "q1", "k": 3}',
         Question(1, "How big is GPT-3?", "q1", 3)),
        ('"How big is GPT-3?"', Question(1, "How big is GPT-3?")),
        ('{"question": "Why?", "id": 7}', Question(1, "Why?", 7)),
    ],
)  # fmt: skip
def test_a_question_line_is_parsed(line: str, expected: Question) -> None:
    assert parse_line(1, line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'{"question": "caf\xe9"}', "not UTF-8"),
        (b"[1, 2]", "expected"),
        (b'{"id": "q9"}', 'no "question"'),
        (b'{"question": "   "}', 'no "question"'),
        (b'{"question": "ok", "k": 0}', "k must be"),
        (b'{"question": "ok", "k": true}', "k must be"),
        (b'{"question": "ok", "id": {"a": 1}}', "id must be"),
        (b'{"question": "' + b"x" * 10_001 + b'"}', "longer than"),
    ],
)
def test_a_bad_line_says_why(line: bytes, reason: str) -> None:
    parsed = parse_line(4, line)
    assert isinstance(parsed, BadLine) and parsed.line == 4
    assert reason in parsed.reason


def _questions(folder: Path) -> Path:
    path = folder / "questions.jsonl"
    lines = [
        json.dumps({"question": "How many parameters does GPT-3 have?", "id": "first"}),
        "",  # blank lines are skipped, not answered
        "this is not json",
        json.dumps({"question": "¿Cuántos parámetros tiene GPT-3?", "id": 2, "k": 1}),
        json.dumps({"id": "no-question"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_local_batch_answers_in_input_order_and_bad_lines_get_error_lines(
    tmp_path: Path,
) -> None:
    generator = ScriptedGenerator([REPLY])
    kb = make_kb(tmp_path / "kb", generator, answer_style="sentence")
    kb.add_texts([("models.md", FACT), ("cooking.txt", "Boil the pasta for nine minutes.")])
    rows = list(batch.answer_locally(kb, batch.read_questions(_questions(tmp_path))))

    assert [row["line"] for row in rows] == [1, 3, 4, 5]
    first, bad, second, missing = rows
    assert first["id"] == "first" and not first["refused"] and "error" not in first
    assert first["answer"] == "GPT-3 has 175 billion parameters [1]."
    assert first["style"] == "sentence" and first["shown"] == "draft"
    assert first["answerability"]["answerable"] and first["answerability"]["check"] == ""
    assert first["citations"][0]["name"] == "models.md"
    assert first["quotes"] and first["quotes"][0]["text"] in FACT
    assert bad == {"line": 3, "id": None, "error": bad["error"]} and "not JSON" in bad["error"]
    assert second["id"] == 2 and second["language"] == "es"
    assert missing["id"] == "no-question" and 'no "question"' in missing["error"]
    assert len(generator.calls) == 2  # one model, asked once per question


def test_one_failing_question_gets_an_error_line_and_the_rest_go_on(tmp_path: Path) -> None:
    class Flaky(ScriptedGenerator):
        def stream(self, messages, max_new_tokens):
            if len(self.calls) == 0:
                self.calls.append(messages)
                raise RuntimeError("CUDA out of memory")
            return super().stream(messages, max_new_tokens)

    kb = make_kb(tmp_path / "kb", Flaky([REPLY]), answer_style="short")
    kb.add_texts([("models.md", FACT)])
    items = [Question(1, "How many parameters does GPT-3 have?"), Question(2, "GPT-3 size?")]
    rows = list(batch.answer_locally(kb, items))
    assert "RuntimeError: CUDA out of memory" in rows[0]["error"]
    assert not rows[1]["refused"] and "175 billion" in rows[1]["answer"]


def test_ray_answers_are_handed_out_in_input_order() -> None:
    items: list[Question | BadLine] = [
        Question(1, "a"),
        BadLine(2, "not JSON"),
        Question(3, "b"),
        Question(4, "c"),
    ]
    order = batch_ray._InOrder(items)
    order.done(items[3], {"line": 4})  # type: ignore[arg-type]
    assert list(order.ready()) == []  # line 1 is not answered yet
    order.done(items[0], {"line": 1})  # type: ignore[arg-type]
    assert [row["line"] for row in order.ready()] == [1, 2]
    order.done(items[2], {"line": 3})  # type: ignore[arg-type]
    order.done(items[2], {"line": 3, "error": "late"}, replace=False)  # type: ignore[arg-type]
    assert list(order.ready()) == [{"line": 3}, {"line": 4}]


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> ScriptedGenerator:
    """``KnowledgeBase.open`` (what the CLI calls) gets the fakes instead of real models."""
    generator = ScriptedGenerator([REPLY])
    monkeypatch.setattr(knowledge_base_module, "load_models", lambda s: (FakeEmbedder(), generator))
    return generator


def test_cli_batch_writes_one_json_line_per_question(
    tmp_path: Path, fake_models: ScriptedGenerator, capsys: pytest.CaptureFixture[str]
) -> None:
    kb = make_kb(tmp_path / "kb")
    kb.add_texts([("models.md", FACT)])
    kb.close()
    out = tmp_path / "out" / "answers.jsonl"
    code = cli.main(["ask", "--kb", str(tmp_path / "kb"), "--batch", str(_questions(tmp_path)),
                     "--out", str(out), "-k", "2", "--answer-style", "sentence"])  # fmt: skip
    assert code == cli.EXIT_PARTIAL  # two lines were not questions
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [("error" in row) for row in rows] == [False, True, False, True]
    assert rows[0]["citations"][0]["source"] == "text:models.md"
    assert rows[0]["answer"] == "GPT-3 has 175 billion parameters [1]."
    assert [rows[0]["style"], rows[0]["shown"]] == ["sentence", "draft"]
    assert "2 answered (0 not in the documents), 2 errors" in capsys.readouterr().err
    assert len(fake_models.calls) == 2


def test_cli_batch_in_the_evidence_style_asks_no_model(
    tmp_path: Path, fake_models: ScriptedGenerator
) -> None:
    kb = make_kb(tmp_path / "kb")
    kb.add_texts([("models.md", FACT)])
    kb.close()
    out = tmp_path / "answers.jsonl"
    code = cli.main(["ask", "--kb", str(tmp_path / "kb"), "--batch", str(_questions(tmp_path)),
                     "--out", str(out), "--answer-style", "evidence"])  # fmt: skip
    assert code == cli.EXIT_PARTIAL
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["answer"] == "GPT-3 from OpenAI has 175 billion parameters [1]."
    assert [first["style"], first["shown"]] == ["evidence", "evidence"]
    assert fake_models.calls == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["ask"], "give a question or --batch"),
        (["ask", "why?", "--batch", "q.jsonl", "--out", "a.jsonl"], "not both"),
        (["ask", "--batch", "q.jsonl"], "--batch needs --out"),
        (["ask", "--batch", "q.jsonl", "--out", "q.jsonl"], "must not be the --batch file"),
        (["ask", "why?", "--engine", "ray"], "--engine ray answers a --batch"),
        (["ask", "--batch", "q.jsonl", "--out", "a.jsonl", "--ray-address", "h:1"],
         "--ray-address needs --engine ray"),
        (["ingest", "docs", "--ray-address", "h:1"], "--ray-address needs --engine ray"),
    ],
)  # fmt: skip
def test_batch_and_engine_usage_errors(
    arguments: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(arguments) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_batch_over_a_missing_knowledge_base_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = _questions(tmp_path)
    code = cli.main(["ask", "--kb", str(tmp_path / "none"), "--batch", str(questions),
                     "--out", str(tmp_path / "a.jsonl")])  # fmt: skip
    assert code == cli.EXIT_ERROR
    assert "no knowledge base at" in capsys.readouterr().err
    assert not (tmp_path / "a.jsonl").exists()


# -- kbqa eval qa --engine ray (the Ray pool replaced by a fake that answers the same way) --

SQUAD = {
    "data": [
        {
            "title": "T",
            "paragraphs": [
                {
                    "context": FACT,
                    "qas": [
                        {"id": "a", "question": "How many parameters does GPT-3 have?",
                         "answers": [{"text": "175 billion", "answer_start": 22}]},
                        {"id": "b", "question": "Who won the 2010 World Cup?", "answers": [],
                         "is_impossible": True},
                        {"id": "c", "question": "How many parameters does GPT-3 have?",
                         "answers": [{"text": "175 billion", "answer_start": 22}]},
                    ],
                },
                {"context": "Boil the pasta for nine minutes.", "qas": []},
            ],
        }
    ]
}  # fmt: skip


class KeyedGenerator(ScriptedGenerator):
    """Replies by what the question asks, whatever the order of the questions."""

    def stream(self, messages, max_new_tokens):
        self.calls.append(messages)
        asked = messages[-1]["content"]  # the evidence, then the question
        reply = REPLY if "How many parameters" in asked else "The documents do not say."
        yield from (w if i == 0 else " " + w for i, w in enumerate(reply.split(" ")))


class FakeRay:
    """Stands in for ``answer_on_ray``: one "actor" opens the folder with its own models
    and answers as AnswerQuestions does; rows cross as JSON, as from a cluster."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[dict[str, object]] = []
        self.generator = KeyedGenerator()
        self.fail = fail

    def __call__(self, folder, settings, items, address=None, full_answers=False):
        self.calls.append({"folder": folder, "address": address, "full": full_answers,
                           "questions": [item.text for item in items]})  # fmt: skip
        actor = make_kb(Path(folder), self.generator, answer_style=settings.answer_style)
        for item in items:
            if item.text == self.fail:
                result = {"error": "the actor died"}
            else:
                result = batch.answer_fields(actor, item.text, item.k, full_answers)
            yield json.loads(json.dumps(batch.output_row(item, result)))


def _squad_file(folder: Path) -> Path:
    path = folder / "dev-v2.0.json"
    path.write_text(json.dumps(SQUAD), encoding="utf-8")
    return path


def test_an_answer_survives_its_json_round_trip(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb", KeyedGenerator(), answer_style="sentence")
    kb.add_texts([("models.md", FACT)])
    questions = ("How many parameters does GPT-3 have?", "Who won the 2010 World Cup?")
    answers = [kb.ask(q) for q in questions]
    assert not answers[0].refused and answers[0].quotes and answers[0].shown == "draft"
    assert answers[1].refused and answers[1].answerability is not None
    assert answers[1].answerability.check == "names"
    for answer in answers:
        assert answer.answerability is not None and answer.passages
        again = batch_ray.answer_from_dict(json.loads(json.dumps(answer.to_dict())))
        assert again == answer


def _without_timings(results: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k not in ("first_token_s", "total_s")} for r in results]


def test_eval_on_ray_scores_the_same_answers_as_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbqa.evaluation import evaluate_answers
    from kbqa.settings import load_settings

    path = _squad_file(tmp_path)
    local = evaluate_answers(make_kb(tmp_path / "local", KeyedGenerator()), path, style="sentence")
    fake = FakeRay()
    monkeypatch.setattr(batch_ray, "answer_on_ray", fake)
    driver = KeyedGenerator()
    kb = make_kb(tmp_path / "ray", driver, answer_style="sentence")
    result = batch_ray.evaluate_answers_batch(
        kb, path, settings=load_settings(answer_style="sentence"), engine="ray",
        address="head:6379",
    )  # fmt: skip

    assert _without_timings(result["per_question"]) == _without_timings(local["per_question"])
    assert result["summary"]["f1"] == local["summary"]["f1"] and result["questions"] == 3
    assert local["summary"]["gold_contained"] == 100.0  # answered, not refused
    assert [r["shown"] for r in local["per_question"]] == ["draft", "evidence", "draft"]
    assert result["per_question"][0]["total_s"] > 0  # the actors' timings are kept
    (call,) = fake.calls
    assert call["folder"] == kb.folder and call["address"] == "head:6379" and call["full"]
    assert call["questions"] == [
        "How many parameters does GPT-3 have?",
        "Who won the 2010 World Cup?",
    ]
    assert driver.calls == []  # nothing answered on the driver
    # The repeated question was answered once; the World Cup one was refused unasked.
    assert len(fake.generator.calls) == 1


def test_eval_on_ray_stops_with_the_question_that_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbqa.errors import KbqaError
    from kbqa.settings import load_settings

    monkeypatch.setattr(batch_ray, "answer_on_ray", FakeRay(fail="Who won the 2010 World Cup?"))
    kb = make_kb(tmp_path / "kb", KeyedGenerator())
    with pytest.raises(KbqaError, match=r"1 of 2 questions .* 'Who won the 2010 World Cup\?'"):
        batch_ray.evaluate_answers_batch(kb, _squad_file(tmp_path), settings=load_settings())


def test_cli_eval_qa_with_the_ray_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        knowledge_base_module, "load_models", lambda s: (FakeEmbedder(), KeyedGenerator())
    )
    fake = FakeRay()
    monkeypatch.setattr(batch_ray, "answer_on_ray", fake)
    out = tmp_path / "eval.json"
    code = cli.main(["eval", "qa", "--squad", str(_squad_file(tmp_path)), "--kb",
                     str(tmp_path / "kb"), "--engine", "ray", "--out", str(out),
                     "--answer-style", "short"])  # fmt: skip
    assert code == cli.EXIT_OK
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["questions"] == 3 and result["summary"]["refusal_recall"] == 1.0
    assert result["configuration"]["answer_style"] == "short"
    assert {r["style"] for r in result["per_question"]} == {"short"}
    assert len(fake.calls) == 1 and "f1" in capsys.readouterr().out


def test_cli_eval_qa_ray_address_needs_the_ray_engine(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["eval", "qa", "--squad", "x.json", "--ray-address", "head:6379"])
    assert code == cli.EXIT_USAGE
    assert "--ray-address needs --engine ray" in capsys.readouterr().err
