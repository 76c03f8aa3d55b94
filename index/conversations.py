"""Conversations kept in the knowledge base's SQLite: questions, answers, citations, scope.

``ConversationStore`` opens its own connection to ``chunks.sqlite`` and its own
tables, ``conversations`` and ``turns``; the chunks' tables are not touched, so
keeping a conversation never blocks nor changes retrieval. Stored data is plain
JSON built from plain fields (never pickle), and every input has a budget: a
conversation that is full, a title too long, a citation too big fail alone with
the reason. A document's removal marks, in old turns, the citations that pointed
to it (``mark_document_removed``); the turns keep the cited words, so an old
answer still reads as it did.

The Markdown export (``conversation_markdown.py``) treats every stored string as
text, never markup.
"""

from __future__ import annotations

import builtins
import json
import logging
import re
import sqlite3
import threading
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import KnowledgeBaseError
from .conversation_markdown import MAX_EXPORT_CHARS, export_markdown

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 200
MAX_CONVERSATIONS = 10_000  # per knowledge base; delete old ones to start more
MAX_TURNS = 200  # per conversation: the app shows them all on one page
MAX_QUESTION_CHARS = 4_000
MAX_ANSWER_CHARS = 50_000
MAX_CITATIONS = 50  # per turn
MAX_PASSAGE_CHARS = 20_000  # a cited passage's text as kept
MAX_SCOPE_ENTRIES = 100  # documents + tags (index/scope.py's budget)
MAX_FIELD_CHARS = 1_000  # names, sources, ids, scope entries and labels, style, language
UNTITLED = "Untitled conversation"

_SUMMARY = (
    "c.id, c.title, c.created_at, c.updated_at, "
    "(SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id)"
)
_ID = re.compile(r"[0-9a-f]{32}")
_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Cn"}  # control, format (bidi), private, unassigned
_BREAKS = {"Zl", "Zp"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (updated_at);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    doc_ids TEXT NOT NULL,   -- ' id1 id2 ': the cited documents, first so a scan skips the rest
    question TEXT NOT NULL,
    standalone TEXT NOT NULL,
    answer TEXT NOT NULL,
    refused INTEGER NOT NULL,
    citations TEXT NOT NULL, -- JSON list of plain objects (CitedPassage)
    scope TEXT NOT NULL,     -- JSON {"documents": [...], "tags": [...], "label": "..."}
    style TEXT NOT NULL,
    language TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    PRIMARY KEY (conversation_id, position)
);
"""


@dataclass(frozen=True)
class CitedPassage:
    """A passage an answer cited, as it was then: enough to show it again and export it.

    ``quotes`` are ``(start, end)`` spans of ``text`` the answer rests on;
    ``start``/``end`` place ``text`` in its document (or PDF page) text.
    """

    number: int
    name: str
    source: str
    doc_id: str
    page: int | None
    chunk_id: str
    text: str
    quotes: tuple[tuple[int, int], ...] = ()
    start: int = 0
    end: int = 0
    score: float = 0.0
    heading: str | None = None
    text_source: str = "text"
    removed: bool = False  # the document was deleted from the knowledge base since

    @property
    def quote(self) -> str:
        """The quoted words (`` … `` between spans), or "" when the answer quoted none."""
        return " … ".join(self.text[s:e].strip() for s, e in self.quotes if 0 <= s < e)


@dataclass(frozen=True)
class ConversationTurn:
    """One question and its answer, with the scope it was asked in."""

    question: str
    answer: str
    citations: tuple[CitedPassage, ...] = ()
    documents: tuple[str, ...] = ()  # the scope's document entries (names, globs, id prefixes)
    tags: tuple[str, ...] = ()
    scope_label: str = ""  # the scope in words when it was asked ("document a.pdf")
    style: str = "evidence"
    standalone: str = ""  # the question as searched, when a follow-up was rewritten
    refused: bool = False
    language: str = ""
    asked_at: str = ""  # ISO 8601, UTC; append_turn sets it when empty


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created_at: str
    updated_at: str
    turn_count: int


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: str
    updated_at: str
    turns: tuple[ConversationTurn, ...] = field(default=())


def clean_title(title: str) -> str:
    """``title`` on one line: control and format characters gone, spaces collapsed,
    at most ``MAX_TITLE_CHARS`` (cut at a word, with …); ``UNTITLED`` when nothing is left."""
    head = title[: 4 * MAX_TITLE_CHARS]  # the rest cannot reach the title: not even looked at
    kept = []
    for char in head:
        category = unicodedata.category(char)
        if char in "\t\n\r\v\f" or category in _BREAKS:
            kept.append(" ")
        elif category not in _INVISIBLE:
            kept.append(char)
    line = " ".join("".join(kept).split())
    if len(line) > MAX_TITLE_CHARS or len(title) > len(head):
        cut = line[: MAX_TITLE_CHARS - 1]
        word_end = cut.rfind(" ")
        line = (cut[:word_end] if word_end > MAX_TITLE_CHARS // 2 else cut).rstrip() + "…"
    return line or UNTITLED


class ConversationStore:
    """Conversations of one knowledge base, in its database (``<kb>/chunks.sqlite``).

    Safe to share between threads (one connection, one lock). Every method
    raises ``KnowledgeBaseError`` with the reason when it cannot do its work.
    """

    def __init__(self, database: Path) -> None:
        self.database = Path(database)
        try:
            self._db = sqlite3.connect(self.database, timeout=10.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise KnowledgeBaseError(f"cannot keep conversations in {database}: {error}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- conversations -----------------------------------------------------

    def create(self, title: str) -> ConversationSummary:
        """A new, empty conversation (``title`` cleaned as by ``clean_title``)."""
        now = _now()
        summary = ConversationSummary(uuid.uuid4().hex, clean_title(title), now, now, 0)
        with self._transaction() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM conversations").fetchone()
            if count >= MAX_CONVERSATIONS:
                raise KnowledgeBaseError(
                    f"{count:,} conversations are kept, the most a knowledge base keeps: "
                    "delete old ones to keep new ones"
                )
            db.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (summary.id, summary.title, now, now),
            )
        return summary

    def list(self, limit: int = MAX_CONVERSATIONS) -> builtins.list[ConversationSummary]:
        """The conversations, the most recently used first (at most ``limit``)."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_SUMMARY} FROM conversations c "
                "ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?",
                (max(0, limit),),
            ).fetchall()
        return [ConversationSummary(*row) for row in rows]

    def count(self) -> int:
        with self._transaction() as db:
            return int(db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0])

    def get(self, conversation_id: str) -> Conversation:
        """The conversation with all its turns, in order."""
        with self._transaction() as db:
            row = self._row(db, conversation_id)
            turns = db.execute(
                "SELECT question, standalone, answer, refused, citations, scope, style, "
                "language, asked_at FROM turns WHERE conversation_id = ? ORDER BY position",
                (conversation_id,),
            ).fetchall()
        try:
            return Conversation(*row, turns=tuple(_turn_from_row(t) for t in turns))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise KnowledgeBaseError(f"conversation {row[0]!r} is damaged: {error}") from None

    def append_turn(self, conversation_id: str, turn: ConversationTurn) -> ConversationTurn:
        """Add ``turn`` at the end of the conversation; the turn as stored (time set)."""
        turn = _checked(turn)
        if not turn.asked_at:
            turn = replace(turn, asked_at=_now())
        citations = json.dumps([_citation_json(c) for c in turn.citations], ensure_ascii=False)
        scope = json.dumps(
            {"documents": list(turn.documents), "tags": list(turn.tags), "label": turn.scope_label},
            ensure_ascii=False,
        )
        doc_ids = " " + " ".join(dict.fromkeys(c.doc_id for c in turn.citations)) + " "
        with self._transaction() as db:
            self._row(db, conversation_id)
            (count,) = db.execute(
                "SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
            if count >= MAX_TURNS:
                raise KnowledgeBaseError(
                    f"this conversation holds {MAX_TURNS} questions, the most one keeps: "
                    "start a new conversation"
                )
            db.execute(
                "INSERT INTO turns (conversation_id, position, doc_ids, question, standalone, "
                "answer, refused, citations, scope, style, language, asked_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, count, doc_ids, turn.question, turn.standalone, turn.answer,
                 int(turn.refused), citations, scope, turn.style, turn.language, turn.asked_at),
            )  # fmt: skip
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (_now(), conversation_id)
            )
        return turn

    def rename(self, conversation_id: str, title: str) -> ConversationSummary:
        cleaned = clean_title(title)
        if cleaned == UNTITLED and title.strip() != UNTITLED:
            raise KnowledgeBaseError("a conversation's title needs a visible character")
        with self._transaction() as db:
            self._row(db, conversation_id)
            db.execute(
                "UPDATE conversations SET title = ? WHERE id = ?", (cleaned, conversation_id)
            )
            return self._summary(db, conversation_id)

    def delete(self, conversation_id: str) -> None:
        with self._transaction() as db:
            self._row(db, conversation_id)
            db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- documents that went --------------------------------------------------

    def mark_document_removed(self, doc_id: str) -> int:
        """Mark the citations of ``doc_id`` in every turn as removed; how many were marked."""
        if not doc_id or len(doc_id) > MAX_FIELD_CHARS or " " in doc_id:
            raise KnowledgeBaseError(f"not a document id: {doc_id[:80]!r}")
        marked = 0
        with self._transaction() as db:
            rows = db.execute(
                "SELECT rowid, citations FROM turns WHERE instr(doc_ids, ?) > 0",
                (f" {doc_id} ",),
            ).fetchall()
            for rowid, stored in rows:
                try:
                    citations = json.loads(stored)
                except ValueError:
                    continue  # a damaged turn: get() reports it
                changed = 0
                for citation in citations:
                    if citation.get("doc_id") == doc_id and not citation.get("removed"):
                        citation["removed"] = True
                        changed += 1
                if changed:
                    db.execute(
                        "UPDATE turns SET citations = ? WHERE rowid = ?",
                        (json.dumps(citations, ensure_ascii=False), rowid),
                    )
                    marked += changed
        return marked

    # -- export ------------------------------------------------------------------

    def export_markdown(self, conversation_id: str, max_chars: int = MAX_EXPORT_CHARS) -> str:
        """The conversation as Markdown: each question, its answer and its sources
        (document, page, the quoted words). Every stored string is escaped
        (``markdown_text``); past ``max_chars`` the export stops at a turn and says so."""
        return export_markdown(self.get(conversation_id), max_chars)

    # -- inside --------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with self._db:  # commits, or rolls back on an exception
                    yield self._db
            except sqlite3.Error as error:
                log.warning("conversations in %s: %s", self.database, error)
                raise KnowledgeBaseError(
                    f"conversations could not be read or saved: {error}"
                ) from None

    @staticmethod
    def _summary(db: sqlite3.Connection, conversation_id: str) -> ConversationSummary:
        row = db.execute(
            f"SELECT {_SUMMARY} FROM conversations c WHERE c.id = ?", (conversation_id,)
        ).fetchone()
        return ConversationSummary(*row)

    @staticmethod
    def _row(db: sqlite3.Connection, conversation_id: str) -> tuple[str, str, str, str]:
        row = None
        if isinstance(conversation_id, str) and _ID.fullmatch(conversation_id):
            row = db.execute(
                "SELECT id, title, created_at, updated_at FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
        if row is None:
            raise KnowledgeBaseError(f"no conversation {str(conversation_id)[:40]!r}")
        return row


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- checking and (de)serialising turns ----------------------------------------------


def _checked(turn: ConversationTurn) -> ConversationTurn:
    """``turn`` if every field is within its budget; else KnowledgeBaseError naming it."""
    _limit("the question", turn.question, MAX_QUESTION_CHARS)
    _limit("the rewritten question", turn.standalone, MAX_QUESTION_CHARS)
    _limit("the answer", turn.answer, MAX_ANSWER_CHARS)
    for name, value in (("the scope label", turn.scope_label), ("the style", turn.style),
                        ("the language", turn.language), ("the time", turn.asked_at)):  # fmt: skip
        _limit(name, value, MAX_FIELD_CHARS)
    if len(turn.documents) + len(turn.tags) > MAX_SCOPE_ENTRIES:
        raise KnowledgeBaseError(f"a scope holds at most {MAX_SCOPE_ENTRIES} documents and tags")
    for entry in (*turn.documents, *turn.tags):
        _limit("a scope entry", entry, MAX_FIELD_CHARS)
    if len(turn.citations) > MAX_CITATIONS:
        raise KnowledgeBaseError(f"an answer keeps at most {MAX_CITATIONS} citations")
    for citation in turn.citations:
        _limit("a cited passage", citation.text, MAX_PASSAGE_CHARS)
        for name, value in (("a document name", citation.name), ("a source", citation.source),
                            ("a document id", citation.doc_id), ("a chunk id", citation.chunk_id),
                            ("a section heading", citation.heading or "")):  # fmt: skip
            _limit(name, value, MAX_FIELD_CHARS)
        if " " in citation.doc_id or len(citation.quotes) > MAX_CITATIONS:
            raise KnowledgeBaseError(f"a citation of {citation.name[:80]!r} is malformed")
    return turn


def _limit(name: str, value: str, most: int) -> None:
    if len(value) > most:
        raise KnowledgeBaseError(f"{name} is {len(value):,} characters; at most {most:,} are kept")


def _citation_json(citation: CitedPassage) -> dict[str, Any]:
    return {
        "number": int(citation.number),
        "name": citation.name,
        "source": citation.source,
        "doc_id": citation.doc_id,
        "page": None if citation.page is None else int(citation.page),
        "chunk_id": citation.chunk_id,
        "text": citation.text,
        "quotes": [[int(s), int(e)] for s, e in citation.quotes],
        "start": int(citation.start),
        "end": int(citation.end),
        "score": float(citation.score),
        "heading": citation.heading,
        "text_source": citation.text_source,
        "removed": bool(citation.removed),
    }


def _citation_from_json(data: dict[str, Any]) -> CitedPassage:
    page = data.get("page")
    heading = data.get("heading")
    return CitedPassage(
        number=int(data.get("number", 0)),
        name=str(data.get("name", "")),
        source=str(data.get("source", "")),
        doc_id=str(data.get("doc_id", "")),
        page=None if page is None else int(page),
        chunk_id=str(data.get("chunk_id", "")),
        text=str(data.get("text", "")),
        quotes=tuple((int(s), int(e)) for s, e in data.get("quotes", ())),
        start=int(data.get("start", 0)),
        end=int(data.get("end", 0)),
        score=float(data.get("score", 0.0)),
        heading=None if heading is None else str(heading),
        text_source=str(data.get("text_source", "text")),
        removed=bool(data.get("removed", False)),
    )


def _turn_from_row(row: Sequence[Any]) -> ConversationTurn:
    question, standalone, answer, refused, citations, scope, style, language, asked_at = row
    scope_data = json.loads(scope)
    return ConversationTurn(
        question=question,
        answer=answer,
        citations=tuple(_citation_from_json(c) for c in json.loads(citations)),
        documents=tuple(str(d) for d in scope_data.get("documents", ())),
        tags=tuple(str(t) for t in scope_data.get("tags", ())),
        scope_label=str(scope_data.get("label", "")),
        style=style,
        standalone=standalone,
        refused=bool(refused),
        language=language,
        asked_at=asked_at,
    )
