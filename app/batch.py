"""Answer many questions: a JSON Lines file in, one JSON line per question out, in order.

Each input line is ``{"question": "...", "id": <any JSON scalar>, "k": <passages>,
"documents": [...], "tags": [...]}`` (all but ``question`` optional; ``documents`` and
``tags`` scope the question as ``--doc``/``--tag`` do) or a bare JSON string.
Each output line is either

    {"line": 3, "id": "q3", "question": "...", "answer": "... [1].", "refused": false,
     "language": "en", "style": "evidence", "shown": "evidence", "not_shown_because": "",
     "standalone": "...", "answerability": {"answerable": true, "check": "", "reason": "",
     ...}, "citations": [...], "quotes": [...]}

or, for a line that is not a question or could not be answered,
``{"line": 3, "id": "q3", "error": "why"}``; the other lines go on. ``line`` is
the 1-based line number in the input; blank lines are skipped.

Two engines: ``local`` answers one question after another with one model load;
``ray`` answers in a Ray Data actor pool (``app/batch_ray.py``, which builds on this
module; this one never imports it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import KbqaError, KnowledgeBaseError

if TYPE_CHECKING:
    from ..index.scope import Scope
    from ..qa.answer import Answer
    from ..qa.knowledge_base import KnowledgeBase
    from ..settings import Settings

log = logging.getLogger(__name__)

MAX_K = 100  # as Settings.top_k
MAX_QUESTION_CHARS = 10_000  # a question longer than a page is a mistake, not a question


@dataclass(frozen=True)
class Question:
    line: int
    text: str
    id: str | int | float | bool | None = None
    k: int | None = None
    scope: Scope | None = None


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str
    id: str | int | float | bool | None = None


@dataclass(frozen=True)
class BatchSummary:
    answered: int = 0
    refused: int = 0
    errors: int = 0

    def text(self) -> str:
        return (
            f"{self.answered} answered ({self.refused} not in the documents), {self.errors} errors"
        )


# Answers the questions of a knowledge-base folder elsewhere (``batch_ray.answer_on_ray``):
# rows in input order, as ``answer_locally`` yields them.
Answerer = Callable[[Path, "Settings", Sequence["Question | BadLine"]], Iterable[dict[str, Any]]]


def run_batch(
    questions: Path,
    out: Path,
    settings: Settings,
    *,
    kb_folder: Path | None = None,
    answerer: Answerer | None = None,
    default_k: int | None = None,
    default_scope: Scope | None = None,
    progress: bool = False,
) -> BatchSummary:
    """Answer every question of the ``questions`` file into ``out`` (``kbqa ask --batch``):
    here, one question after another, or by ``answerer`` (the CLI passes the Ray one)."""
    from tqdm import tqdm

    from ..index.store import KnowledgeBaseStore
    from ..qa.knowledge_base import KnowledgeBase

    folder = Path(kb_folder).expanduser() if kb_folder else settings.default_kb
    if not KnowledgeBaseStore.exists(folder):
        raise KnowledgeBaseError(
            f"no knowledge base at {folder}; create one with `kbqa ingest FILES --kb {folder}`"
        )
    items = read_questions(questions, default_k, default_scope)
    rows: Iterable[dict[str, Any]]
    if answerer is not None:
        rows = answerer(folder, settings, items)
    else:
        rows = answer_locally(KnowledgeBase.open(folder, settings=settings, create=False), items)
    with tqdm(rows, total=len(items), unit="question", disable=not progress) as bar:
        return write_answers(bar, out)


def read_questions(
    path: Path, default_k: int | None = None, default_scope: Scope | None = None
) -> list[Question | BadLine]:
    """Every non-blank line of ``path``, as a question or the reason it is not one;
    ``default_k`` / ``default_scope`` for questions that do not give their own.

    Raises:
        KbqaError: the file cannot be read at all.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise KbqaError(f"{path}: cannot read the questions ({error.strerror or error})") from None
    items: list[Question | BadLine] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if line.strip():
            item = parse_line(number, line)
            if isinstance(item, Question) and item.k is None and default_k is not None:
                item = replace(item, k=default_k)
            if isinstance(item, Question) and item.scope is None and default_scope is not None:
                item = replace(item, scope=default_scope)
            items.append(item)
    return items


def parse_line(number: int, line: bytes | str) -> Question | BadLine:
    """One input line: a question, or a ``BadLine`` saying what is wrong with it."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        value = json.loads(text)
    except UnicodeDecodeError:
        return BadLine(number, "not UTF-8 text")
    except ValueError as error:
        return BadLine(number, f"not JSON ({error})")
    if isinstance(value, str):
        value = {"question": value}
    if not isinstance(value, dict):
        return BadLine(number, 'expected {"question": "..."} or a JSON string')
    ident = value.get("id")
    if ident is not None and not isinstance(ident, str | int | float | bool):
        return BadLine(number, "id must be a string, number or boolean")
    question = value.get("question")
    if not isinstance(question, str) or not question.strip():
        return BadLine(number, 'no "question" text', ident)
    if len(question) > MAX_QUESTION_CHARS:
        return BadLine(number, f"question longer than {MAX_QUESTION_CHARS:,} characters", ident)
    k = value.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K):
        return BadLine(number, f"k must be a whole number from 1 to {MAX_K}", ident)
    scope = None
    documents, tags = value.get("documents"), value.get("tags")
    if documents is not None or tags is not None:
        from ..index.scope import Scope, ScopeError

        if not all(_strings(v) for v in (documents, tags)):
            return BadLine(number, '"documents" and "tags" must be lists of strings', ident)
        try:
            scope = Scope.of(documents, tags)
        except ScopeError as error:
            return BadLine(number, str(error), ident)
    return Question(number, question.strip(), ident, k, scope)


def _strings(value: object) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def answer_row(answer: Answer) -> dict[str, Any]:
    """What an output line says about one answer (without ``line`` and ``id``)."""
    from .api.catalog import shown_json  # the fields the API and MCP give too

    data = answer.to_dict()
    return {
        "question": answer.question,
        "answer": answer.text,
        "refused": answer.refused,
        "language": answer.language,
        **shown_json(answer),
        "citations": data["citations"],
        "quotes": data["quotes"],
    }


def output_row(item: Question | BadLine, row: dict[str, Any]) -> dict[str, Any]:
    return {"line": item.line, "id": item.id, **row}


def error_row(item: Question | BadLine, reason: str) -> dict[str, Any]:
    return output_row(item, {"error": reason})


def answer_fields(
    kb: KnowledgeBase, text: str, k: int | None, full: bool = False, scope: Scope | None = None
) -> dict[str, Any]:
    """An output row's answer fields, or ``{"answer": Answer.to_dict()}`` when ``full``."""
    try:
        answer = kb.ask(text, k, scope=scope)
        return {"answer": answer.to_dict()} if full else answer_row(answer)
    except KbqaError as error:
        return {"error": str(error)}
    except Exception as error:  # noqa: BLE001 - one question fails, the batch goes on
        log.exception("could not answer %r", text)
        return {"error": f"unexpected error ({type(error).__name__}: {error})"}


def answer_locally(
    kb: KnowledgeBase, items: Sequence[Question | BadLine]
) -> Iterator[dict[str, Any]]:
    """Output rows, in input order, answering one question after another."""
    for item in items:
        if isinstance(item, BadLine):
            yield error_row(item, item.reason)
        else:
            yield output_row(item, answer_fields(kb, item.text, item.k, scope=item.scope))


def write_answers(rows: Iterable[dict[str, Any]], out: Path) -> BatchSummary:
    """Write each row as one JSON line to ``out`` as it comes (flushed: an interrupted
    run leaves the complete lines of the questions answered so far)."""
    answered = refused = errors = 0
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            if "error" in row:
                errors += 1
            else:
                answered += 1
                refused += bool(row["refused"])
    return BatchSummary(answered, refused, errors)
