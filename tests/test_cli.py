"""The terminal front end: usage errors, escaped output, eval comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import ScriptedGenerator, make_kb

from kbqa.app import cli

HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\u202efdp.md"


@pytest.fixture
def kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    kb = make_kb(tmp_path / "kb")
    kb.add_texts([(HOSTILE, "Okapis live in the rainforest.\x1b[31m red \x9b1m text")])
    monkeypatch.setattr(cli, "_open", lambda args, create=False: kb)
    return kb


@pytest.mark.parametrize("k", ["0", "-1", "101", "many"])
def test_a_bad_k_is_a_usage_error(k: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "okapi", "-k", k])
    assert exit_info.value.code == cli.EXIT_USAGE
    assert "-k" in capsys.readouterr().err


def test_names_and_text_reach_the_terminal_escaped(kb, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["docs"], ["search", "okapis rainforest", "-k", "1"]):
        assert cli.main(command) == cli.EXIT_OK
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out
        assert "\\x1b]0;pwned\\x07" in out or "\\x1b[31m" in out


def test_json_output_stays_valid_json_with_hidden_characters_escaped(
    kb, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["docs", "--json"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert json.loads(out)[0]["name"] == HOSTILE  # the same name, once decoded


MODELS = (
    "# Models\n\nGPT-3 from OpenAI has 175 billion parameters.\n\n"
    "# Other\n\nJurassic-1 from AI21 Labs has 178 billion parameters.\n"
)


@pytest.fixture
def models_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    kb = make_kb(tmp_path / "models-kb", ScriptedGenerator(["175 billion"]))
    kb.add_texts([("models.md", MODELS)])
    monkeypatch.setattr(cli, "_open", lambda args, create=False: kb)
    return kb


def test_ask_prints_the_answer_its_sources_and_quotes(
    models_kb, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["ask", "How many parameters does GPT-3 have?"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("GPT-3 from OpenAI has 175 billion parameters [1].\n")
    assert "Sources:\n  [1] models.md" in out
    assert "“GPT-3 from OpenAI has 175 billion parameters.”" in out
    assert models_kb.generator.calls == []  # the evidence style (the knowledge base's)


def test_ask_answer_style_and_json_carry_the_verdict(
    models_kb, capsys: pytest.CaptureFixture[str]
) -> None:
    question = "How many parameters does GPT-3 have?"
    assert cli.main(["ask", question, "--answer-style", "short"]) == cli.EXIT_OK
    assert capsys.readouterr().out.startswith("175 billion [1]\n")
    assert cli.main(["ask", question, "--answer-style", "short", "--json"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == "175 billion [1]" and data["style"] == "short"
    assert data["shown"] == "draft" and data["answerability"]["check"] == ""
    assert cli.main(["ask", "Who won the 2010 World Cup?", "--json"]) == cli.EXIT_OK
    refused = json.loads(capsys.readouterr().out)
    assert refused["refused"] and refused["answerability"]["check"] == "names"
    assert refused["answerability"]["missing_terms"] == ["world cup"]
    with pytest.raises(SystemExit):
        cli.main(["ask", question, "--answer-style", "long"])
    assert "invalid choice: 'long'" in capsys.readouterr().err


def test_ask_says_why_a_question_is_refused_and_why_a_draft_was_set_aside(
    models_kb, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["ask", "Who won the 2010 World Cup?"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("The documents do not contain the answer.\n")
    assert "(not in the documents: the passages never mention world cup;" in out
    models_kb.generator.replies = ["a trillion"]
    question = "How many parameters does GPT-3 have?"
    assert cli.main(["ask", question, "--answer-style", "short"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("GPT-3 from OpenAI has 175 billion parameters [1].\n")
    assert "the model's short answer was set aside, the short answer is not in the" in out


def test_chat_reads_a_follow_up_in_the_conversation(
    models_kb, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = iter(["How many parameters does GPT-3 have?", "and Jurassic-1?", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    assert cli.main(["chat", "--answer-style", "evidence"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "GPT-3 from OpenAI has 175 billion parameters [1]." in out
    # The follow-up is made standalone from the first turn and answered from Jurassic-1's line.
    assert "(read as: How many parameters does Jurassic-1 have?)" in out
    assert "Jurassic-1 from AI21 Labs has 178 billion parameters [1]." in out


def _run(path: Path, f1: list[float]) -> Path:
    rows = [
        {"id": str(i), "impossible": False, "exact_match": 0.0, "f1": v, "gold_contained": v,
         "gold_rank": 1, "gold_in_prompt": True, "refused": False, "total_s": 1.0}
        for i, v in enumerate(f1)
    ]  # fmt: skip
    path.write_text(json.dumps({"per_question": rows}))
    return path


def test_eval_compare_prints_the_paired_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(tmp_path / "a.json", [0.0] * 200)
    second = _run(tmp_path / "b.json", [1.0] * 120 + [0.0] * 80)
    assert cli.main(["eval", "compare", str(first), str(second)]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "200 questions in both runs" in out
    f1_line = next(line for line in out.splitlines() if line.strip().startswith("f1"))
    assert "+60.0000" in f1_line and "differs" in f1_line
    assert cli.main(["eval", "compare", str(first), str(tmp_path / "missing.json")]) == 1


def test_chat_is_kept_and_resumed_and_a_removed_document_is_marked(
    models_kb, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("builtins.input", _typing(["How many parameters does GPT-3 have?"]))
    assert cli.main(["chat"]) == cli.EXIT_OK
    (kept,) = models_kb.conversations.list()
    assert kept.title == "How many parameters does GPT-3 have?" and kept.turn_count == 1
    capsys.readouterr()
    monkeypatch.setattr("builtins.input", _typing(["and Jurassic-1?", "/quit"]))
    assert cli.main(["chat", "--resume", kept.id[:6]]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "> How many parameters does GPT-3 have?\nGPT-3 from OpenAI has 175 billion" in out
    assert "(read as: How many parameters does Jurassic-1 have?)" in out  # read in the old turn
    conversation = models_kb.conversations.get(kept.id)
    assert [t.question for t in conversation.turns][1] == "and Jurassic-1?"
    assert conversation.turns[1].citations[0].quote.startswith("Jurassic-1 from AI21 Labs")
    models_kb.remove("models.md")
    cited = models_kb.conversations.get(kept.id).turns[0].citations
    assert cited and all(c.removed for c in cited)
    assert cli.main(["chat", "--resume", "nope"]) == cli.EXIT_ERROR
    assert "no conversation matches 'nope'" in capsys.readouterr().err


def _typing(lines: list[str]):
    """``input`` that types ``lines``, then ends the input (EOF), as a closed terminal does."""
    typed = iter(lines)

    def type_next(prompt: str = "") -> str:
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    return type_next


TARSIA = "La capital de Freedonia es Tarsia. Tarsia tiene un puerto antiguo."
MOLVANIA = "La capital de Freedonia es Molvania. Molvania está junto a un lago."


def test_tags_and_scopes_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kb = make_kb(tmp_path / "kb")
    monkeypatch.setattr(cli, "_open", lambda args, create=False: kb)
    (tmp_path / "tarsia.txt").write_text(TARSIA)
    (tmp_path / "molvania.txt").write_text(MOLVANIA)
    assert cli.main(["ingest", str(tmp_path / "tarsia.txt"), "--tag", "atlas"]) == cli.EXIT_OK
    assert cli.main(["ingest", str(tmp_path / "molvania.txt")]) == cli.EXIT_OK
    assert cli.main(["tag", "molvania.txt", "mapas", "viejo"]) == cli.EXIT_OK
    assert cli.main(["tag", "molvania.txt", "viejo", "--remove"]) == cli.EXIT_OK
    capsys.readouterr()
    assert cli.main(["docs", "--tag", "mapas"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "molvania.txt  [mapas]" in out and "tarsia.txt" not in out
    question = "¿Cuál es la capital de Freedonia?"
    assert cli.main(["ask", question, "--tag", "atlas"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "Tarsia" in out and "Molvania" not in out
    assert cli.main(["search", "capital", "--doc", str(tmp_path / "molvania.txt")]) == 0
    out = capsys.readouterr().out
    assert "molvania.txt" in out and "tarsia.txt" not in out
    assert cli.main(["ask", question, "--doc", "nowhere*.pdf"]) == cli.EXIT_ERROR
    assert "no document matches 'nowhere*.pdf'" in capsys.readouterr().err
    assert cli.main(["tag", "molvania.txt", "bad/tag"]) == cli.EXIT_ERROR
    batch = tmp_path / "questions.jsonl"
    batch.write_text(
        json.dumps({"question": question, "documents": ["molvania.txt"]})
        + "\n"
        + json.dumps({"question": question, "tags": "atlas"})
        + "\n"
        + json.dumps(question)
        + "\n"
    )
    out_file = tmp_path / "answers.jsonl"
    monkeypatch.setattr("kbqa.qa.knowledge_base.KnowledgeBase.open", lambda *a, **k: kb)
    monkeypatch.setattr("kbqa.index.store.KnowledgeBaseStore.exists", lambda folder: True)
    code = cli.main(["ask", "--batch", str(batch), "--out", str(out_file), "--tag", "atlas"])
    assert code == cli.EXIT_PARTIAL  # the second line is not a list of tags
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert "Molvania" in rows[0]["answer"] and "Tarsia" not in rows[0]["answer"]
    assert "lists of strings" in rows[1]["error"]
    assert "Tarsia" in rows[2]["answer"] and "Molvania" not in rows[2]["answer"]  # --tag atlas


@pytest.mark.slow
def test_a_scoped_question_through_the_real_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tarsia.txt").write_text(TARSIA)
    (folder / "molvania.txt").write_text(MOLVANIA)
    kb = str(tmp_path / "kb")
    assert cli.main(["ingest", str(folder), "--kb", kb, "--no-progress"]) == cli.EXIT_OK
    question = "¿Cuál es la capital de Freedonia?"
    for chosen, other in (("tarsia.txt", "Tarsia"), ("molvania.txt", "Molvania")):
        capsys.readouterr()
        assert cli.main(["ask", question, "--kb", kb, "--doc", chosen, "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert not answer["refused"]
        assert {c["source"].rsplit("/", 1)[-1] for c in answer["citations"]} == {chosen}
        assert other in answer["text"]


def test_the_program_freezes_the_collector_after_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The installed `kbqa` runs the command, then skips the final collection (1.1 s
    # after a model load); main() itself, which tests call, leaves the collector alone.
    calls: list[str] = []

    def command() -> int:
        calls.append("main")
        return 3

    monkeypatch.setattr(cli, "main", command)
    monkeypatch.setattr(cli.gc, "freeze", lambda: calls.append("freeze"))
    assert cli.command_line() == 3
    assert calls == ["main", "freeze"]


def test_the_kbqa_program_is_the_quick_exit_entry() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "kbqa"]
    assert script.value == "kbqa.app.cli:command_line"
