"""Conversations kept in a knowledge base's SQLite (index/conversations.py): stored,
listed, reopened, renamed, deleted, exported as Markdown; budgets and hostile input."""

from __future__ import annotations

import html
import json
import re
import sqlite3
import threading
from pathlib import Path

import pytest
from fakes import make_kb

from kbqa.errors import KnowledgeBaseError
from kbqa.index import conversations as module
from kbqa.index.conversation_markdown import REMOVED, export_markdown, markdown_text
from kbqa.index.conversations import (
    MAX_TITLE_CHARS,
    UNTITLED,
    CitedPassage,
    ConversationStore,
    ConversationTurn,
    clean_title,
)

DOC_A = "a" * 64
DOC_B = "b" * 64
HOSTILE = [
    "[click](javascript:alert(1))",
    "![pixel](http://evil.example/p.png)",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "# Not a heading",
    "**not bold** and _not emphasis_",
    "visit http://evil.example or www.evil.example or mail me@evil.example",
    "<http://evil.example>",
    "`code` | table | &amp; &#60;b&#62;",
    "'; DROP TABLE conversations; --",
]


def passage(doc_id: str = DOC_A, name: str = "contrato.pdf", number: int = 1) -> CitedPassage:
    text = "El plazo de preaviso es de treinta días. Las partes firman en Madrid."
    return CitedPassage(
        number=number,
        name=name,
        source=f"upload:{name}",
        doc_id=doc_id,
        page=3,
        chunk_id=f"{doc_id[:8]}-{number}",
        text=text,
        quotes=((0, 40),),
        start=120,
        end=120 + len(text),
        score=0.81,
    )


def turn(question: str = "¿Cuál es el plazo de preaviso?", **changes) -> ConversationTurn:
    fields = {
        "question": question,
        "answer": "El plazo de preaviso es de treinta días [1].",
        "citations": (passage(),),
        "documents": (DOC_A,),
        "tags": ("legal",),
        "scope_label": "document contrato.pdf; tag legal",
        "style": "evidence",
        "language": "es",
    }
    return ConversationTurn(**{**fields, **changes})


@pytest.fixture
def store(tmp_path: Path):
    opened = ConversationStore(tmp_path / "chunks.sqlite")
    yield opened
    opened.close()


# -- keeping conversations ---------------------------------------------------------


def test_a_conversation_round_trips_with_its_citations_scope_and_time(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "chunks.sqlite")
    first = store.create("Preaviso")
    kept = store.append_turn(first.id, turn())
    follow = turn("¿y en Barcelona?", standalone="¿Cuál es el plazo de preaviso en Barcelona?")
    store.append_turn(first.id, follow)
    store.close()

    reopened = ConversationStore(tmp_path / "chunks.sqlite")  # as after a restart
    conversation = reopened.get(first.id)
    assert conversation.title == "Preaviso" and len(conversation.turns) == 2
    assert conversation.turns[0] == kept and kept.asked_at.endswith("+00:00")
    assert conversation.turns[0].citations[0].quote == "El plazo de preaviso es de treinta días."
    assert conversation.turns[1].standalone == "¿Cuál es el plazo de preaviso en Barcelona?"
    (summary,) = reopened.list()
    assert summary.turn_count == 2 and summary.updated_at >= summary.created_at
    # Plain JSON, readable by anything: never pickle.
    with sqlite3.connect(tmp_path / "chunks.sqlite") as db:
        citations, scope = db.execute("SELECT citations, scope FROM turns LIMIT 1").fetchone()
    assert json.loads(citations)[0]["doc_id"] == DOC_A
    assert json.loads(scope) == {
        "documents": [DOC_A],
        "tags": ["legal"],
        "label": "document contrato.pdf; tag legal",
    }


def test_listed_newest_first_renamed_and_deleted(store: ConversationStore) -> None:
    old, middle, new = (store.create(t) for t in ("old", "middle", "new"))
    assert [c.title for c in store.list()] == ["new", "middle", "old"]
    store.append_turn(old.id, turn())  # used again: it comes first
    assert [c.title for c in store.list()] == ["old", "new", "middle"]
    assert [c.title for c in store.list(limit=1)] == ["old"]
    assert store.rename(middle.id, "  Plazos\n de preaviso ").title == "Plazos de preaviso"
    store.delete(old.id)
    assert [c.title for c in store.list()] == ["new", "Plazos de preaviso"]
    assert store.count() == 2
    for gone in (old.id, "nope", "' OR 1=1 --", "0" * 32):
        with pytest.raises(KnowledgeBaseError, match="no conversation"):
            store.get(gone)
    with pytest.raises(KnowledgeBaseError, match="no conversation"):
        store.append_turn(old.id, turn())
    with pytest.raises(KnowledgeBaseError, match="visible character"):
        store.rename(new.id, " \x00\u202e\n ")


def test_conversations_live_beside_the_chunks_without_touching_them(tmp_path: Path) -> None:
    kb = make_kb(tmp_path / "kb")
    kb.add_texts([("capital.txt", "La capital de Freedonia es Tarsia.")])
    store = ConversationStore(kb.folder / "chunks.sqlite")
    conversation = store.create("Freedonia")
    store.append_turn(conversation.id, turn())
    assert kb.search("capital de Freedonia", k=1)[0].chunk.text.startswith("La capital")
    kb.close()
    reopened = make_kb(tmp_path / "kb")
    assert [r.name for r in reopened.documents()] == ["capital.txt"]
    assert store.get(conversation.id).turns[0].question == turn().question
    store.close()


def test_one_store_is_shared_by_threads(store: ConversationStore) -> None:
    conversation = store.create("busy")
    errors: list[BaseException] = []

    def ask(n: int) -> None:
        try:
            store.append_turn(conversation.id, turn(f"question {n}?"))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    questions = {t.question for t in store.get(conversation.id).turns}
    assert questions == {f"question {n}?" for n in range(8)}


# -- documents removed ------------------------------------------------------------


def test_removing_a_document_marks_its_old_citations(store: ConversationStore) -> None:
    conversation = store.create("two documents")
    both = (passage(DOC_A), passage(DOC_B, "otro.pdf", 2))
    store.append_turn(conversation.id, turn(citations=both))
    store.append_turn(conversation.id, turn(citations=(passage(DOC_B, "otro.pdf"),)))
    other = store.create("elsewhere")
    store.append_turn(other.id, turn())
    assert store.mark_document_removed(DOC_A) == 2
    assert store.mark_document_removed(DOC_A) == 0  # already marked
    assert store.mark_document_removed("a" * 63) == 0  # a prefix of an id is not the id
    first, second = store.get(conversation.id).turns
    assert [c.removed for c in first.citations] == [True, False]
    assert not second.citations[0].removed
    assert store.get(other.id).turns[0].citations[0].removed
    export = store.export_markdown(conversation.id)
    assert f"**contrato.pdf**, page 3 {REMOVED}" in export
    assert "**otro.pdf**, page 3\n" in export
    with pytest.raises(KnowledgeBaseError, match="not a document id"):
        store.mark_document_removed("")


# -- budgets and hostile input --------------------------------------------------------


def test_titles_are_one_clean_line_of_bounded_length() -> None:
    assert clean_title("  Plazo\tde\r\npreaviso  ") == "Plazo de preaviso"
    # Control, bidi-override and zero-width characters go; line separators become spaces.
    assert clean_title("a\x00b\x1b[31mc\u202edcba\u200b\u2028e") == "ab[31mcdcba e"
    assert clean_title("\x00\x07 \u202e") == UNTITLED
    huge = clean_title("palabra " * 200_000)  # 1.6 MB
    assert len(huge) <= MAX_TITLE_CHARS and huge.endswith("palabra…")
    one_word = clean_title("x" * 10_000)
    assert len(one_word) == MAX_TITLE_CHARS and one_word.endswith("…")
    assert clean_title("x" * MAX_TITLE_CHARS) == "x" * MAX_TITLE_CHARS


def test_hostile_titles_and_texts_are_stored_verbatim_as_data(store: ConversationStore) -> None:
    for text in HOSTILE:
        conversation = store.create(text)
        assert conversation.title == text
        store.append_turn(conversation.id, turn(text, answer=text))
        assert store.get(conversation.id).turns[0].answer == text
    assert store.count() == len(HOSTILE)  # the DROP TABLE title dropped nothing


def test_every_field_has_a_budget(store: ConversationStore, monkeypatch) -> None:
    conversation = store.create("budgets")
    too_much = {
        "question": turn("?" * 4_001),
        "answer": turn(answer="a" * 50_001),
        "citations": turn(citations=tuple(passage(number=n) for n in range(51))),
        "passage": turn(citations=(CitedPassage(1, "x", "x", DOC_A, 1, "c", "p" * 20_001),)),
        "name": turn(citations=(CitedPassage(1, "n" * 1_001, "x", DOC_A, 1, "c", "p"),)),
        "scope": turn(documents=tuple(f"d{n}" for n in range(101))),
    }
    for field, bad in too_much.items():
        with pytest.raises(KnowledgeBaseError, match="at most"):
            store.append_turn(conversation.id, bad)
        assert store.get(conversation.id).turns == (), field
    monkeypatch.setattr(module, "MAX_TURNS", 2)
    store.append_turn(conversation.id, turn())
    store.append_turn(conversation.id, turn())
    with pytest.raises(KnowledgeBaseError, match="start a new conversation"):
        store.append_turn(conversation.id, turn())
    monkeypatch.setattr(module, "MAX_CONVERSATIONS", 1)
    with pytest.raises(KnowledgeBaseError, match="delete old ones"):
        store.create("one too many")


# -- export -------------------------------------------------------------------------


def test_export_is_markdown_with_its_sources(store: ConversationStore) -> None:
    conversation = store.create("Preaviso")
    store.append_turn(conversation.id, turn())
    export = store.export_markdown(conversation.id)
    assert export.startswith("# Preaviso\n\nExported from kbqa · 1 question · started ")
    assert "## 1\\. ¿Cuál es el plazo de preaviso?" in export
    assert "El plazo de preaviso es de treinta días \\[1\\]." in export
    assert "- \\[1\\] **contrato.pdf**, page 3\n  > El plazo de preaviso es de treinta días." in (
        export
    )
    assert "within: document contrato.pdf; tag legal" in export


def test_export_cannot_be_turned_into_links_or_html(store: ConversationStore) -> None:
    from markdown_it import MarkdownIt

    text = "\n".join(HOSTILE)
    conversation = store.create(HOSTILE[0] + " " + HOSTILE[2])
    cited = CitedPassage(1, HOSTILE[1], "upload:x", DOC_A, None, "c1", text, ((0, len(text)),))
    store.append_turn(conversation.id, turn(text, answer=text, citations=(cited,)))
    export = store.export_markdown(conversation.id)
    rendered = MarkdownIt("commonmark").render(export)
    for tag in ("<a ", "<img", "<script", "<h3", "<code", "<table", "<hr"):
        assert tag not in rendered, tag
    assert len(re.findall("<h1>", rendered)) == 1 and len(re.findall("<h2>", rendered)) == 1
    assert rendered.count("<strong>") == 2  # "Sources" and the document's name
    assert rendered.count("<em>") == 1  # the line under the question
    # GitHub-style autolinks need "://", "www." or an e-mail address: none is left unescaped.
    assert re.search(r"[^\\]://|www\.|\w@\w", export) is None
    # Rendered, the words are the words that were stored.
    words = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    for line in HOSTILE:
        assert line in words, line
    assert markdown_text("1. item") == "1\\. item" and markdown_text("---") == "\\---"


def test_export_size_is_bounded(store: ConversationStore) -> None:
    conversation = store.create("long")
    for n in range(30):
        store.append_turn(conversation.id, turn(f"question {n}?", answer="words " * 8_000))
    export = store.export_markdown(conversation.id, max_chars=200_000)
    assert len(export) <= 200_000
    assert "The export stops here: 26 more question(s)" in export
    full = export_markdown(store.get(conversation.id))
    assert "stops here" not in full and full.count("\n## ") == 30
