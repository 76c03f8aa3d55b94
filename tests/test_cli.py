"""The terminal front end: usage errors, escaped output, eval comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_kb

from kbqa.qa import cli

HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\u202efdp.md"


@pytest.fixture
def kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
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


def test_names_and_text_reach_the_terminal_escaped(kb, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    for command in (["docs"], ["search", "okapis rainforest", "-k", "1"]):
        assert cli.main(command) == cli.EXIT_OK
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out
        assert "\\x1b]0;pwned\\x07" in out or "\\x1b[31m" in out


def test_json_output_stays_valid_json_with_hidden_characters_escaped(
    kb, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["docs", "--json"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert json.loads(out)[0]["name"] == HOSTILE  # the same name, once decoded


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
