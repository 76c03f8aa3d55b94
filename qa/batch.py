"""Answer many questions: a JSON Lines file in, one JSON line per question out, in order.

Each input line is ``{"question": "...", "id": <any JSON scalar>, "k": <passages>}``
(``id`` and ``k`` optional) or a bare JSON string. Each output line is either

    {"line": 3, "id": "q3", "question": "...", "answer": "... [1].", "refused": false,
     "language": "en", "citations": [...], "quotes": [...]}

or, for a line that is not a question or could not be answered,
``{"line": 3, "id": "q3", "error": "why"}``; the other lines go on. ``line`` is
the 1-based line number in the input; blank lines are skipped.

Two engines: ``local`` answers one question after another with one model load;
``ray`` answers in a Ray Data actor pool, each actor loading the models once and
opening the knowledge base itself, so the knowledge-base folder must be readable
at the same path on every node (a copy on each node: SQLite's WAL mode, which
the store uses, is not safe on a network filesystem).

``kbqa eval qa --engine ray`` answers its questions through the same pool
(``evaluate_answers_batch``): whole answers come back as JSON, are rebuilt into
``Answer`` objects and scored by ``qa.evaluation`` exactly as local ones.
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
    from .answer import Answer
    from .knowledge_base import KnowledgeBase
    from .settings import Settings

log = logging.getLogger(__name__)

MAX_K = 100  # as Settings.top_k
MAX_QUESTION_CHARS = 10_000  # a question longer than a page is a mistake, not a question


@dataclass(frozen=True)
class Question:
    line: int
    text: str
    id: str | int | float | bool | None = None
    k: int | None = None


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


def run_batch(
    questions: Path,
    out: Path,
    settings: Settings,
    *,
    kb_folder: Path | None = None,
    engine: str = "local",
    address: str | None = None,
    default_k: int | None = None,
    progress: bool = False,
) -> BatchSummary:
    """Answer every question of the ``questions`` file into ``out`` (``kbqa ask --batch``)."""
    from tqdm import tqdm

    from ..index.store import KnowledgeBaseStore
    from .knowledge_base import KnowledgeBase

    folder = Path(kb_folder).expanduser() if kb_folder else settings.default_kb
    if not KnowledgeBaseStore.exists(folder):
        raise KnowledgeBaseError(
            f"no knowledge base at {folder}; create one with `kbqa ingest FILES --kb {folder}`"
        )
    items = read_questions(questions, default_k)
    rows: Iterable[dict[str, Any]]
    if engine == "ray":
        rows = answer_on_ray(folder, settings, items, address)
    else:
        rows = answer_locally(KnowledgeBase.open(folder, settings=settings, create=False), items)
    with tqdm(rows, total=len(items), unit="question", disable=not progress) as bar:
        return write_answers(bar, out)


def read_questions(path: Path, default_k: int | None = None) -> list[Question | BadLine]:
    """Every non-blank line of ``path``, as a question or the reason it is not one;
    ``default_k`` for questions that do not say how many passages.

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
    return Question(number, question.strip(), ident, k)


def answer_row(answer: Answer) -> dict[str, Any]:
    """What an output line says about one answer (without ``line`` and ``id``)."""
    data = answer.to_dict()
    return {
        "question": answer.question,
        "answer": answer.text,
        "refused": answer.refused,
        "language": answer.language,
        "citations": data["citations"],
        "quotes": data["quotes"],
    }


def _line(item: Question | BadLine, row: dict[str, Any]) -> dict[str, Any]:
    return {"line": item.line, "id": item.id, **row}


def _error_row(item: Question | BadLine, reason: str) -> dict[str, Any]:
    return _line(item, {"error": reason})


def _answer_one(kb: KnowledgeBase, text: str, k: int | None, full: bool = False) -> dict[str, Any]:
    """An output row's answer fields, or ``{"answer": Answer.to_dict()}`` when ``full``."""
    try:
        answer = kb.ask(text, k)
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
            yield _error_row(item, item.reason)
        else:
            yield _line(item, _answer_one(kb, item.text, item.k))


def answer_on_ray(
    folder: Path,
    settings: Settings,
    items: Sequence[Question | BadLine],
    address: str | None = None,
    actors: int | None = None,
    max_retries: int | None = None,
    full_answers: bool = False,
) -> Iterator[dict[str, Any]]:
    """Output rows, in input order, answered by a pool of Ray actors.

    Each actor opens ``folder`` (an absolute path readable on its node) with the
    models ``settings`` names, once. A question whose actor died is retried on a
    restarted one; when Ray gives up, the questions still waiting get error rows.
    With ``full_answers`` a row carries the whole ``Answer.to_dict()`` as ``answer``.
    """
    from ..ingest.distributed import MAX_RETRIES, actor_stage, cluster_size, connect

    folder = Path(folder).expanduser().resolve()
    questions = [item for item in items if isinstance(item, Question)]
    order = _InOrder(items)
    if not questions:
        yield from order.ready()
        return
    with connect(address):
        import ray

        cpus, gpus = cluster_size()
        wanted = actors or (int(gpus) if gpus >= 1 else max(1, int(cpus)))
        rows = [{"seq": seq, "question": q.text, "k": q.k or 0} for seq, q in enumerate(questions)]
        dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), 1000))
        dataset = actor_stage(
            dataset.map,
            AnswerQuestions,
            actors=min(wanted, len(rows)),
            cpus=min(1.0, cpus),
            gpus=1 if gpus >= 1 else 0,
            retries=MAX_RETRIES if max_retries is None else max_retries,
            fn_constructor_kwargs={
                "folder": str(folder),
                "settings": settings.model_dump(mode="json"),
                "full": full_answers,
            },
        )
        try:
            for row in dataset.iter_rows():
                question = questions[int(row["seq"])]
                order.done(question, _line(question, json.loads(row["result"])))
                yield from order.ready()
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - Ray's errors: retries ran out, node lost
            log.error("the Ray pipeline failed: %s", error)
            first = (str(error).strip().splitlines() or [""])[0][:300]
            reason = f"not answered: the Ray pipeline failed ({type(error).__name__}: {first})"
            for question in questions:
                order.done(question, _error_row(question, reason), replace=False)
    yield from order.ready()


class _InOrder:
    """Rows finished in any order, handed out in input order as soon as they can be."""

    def __init__(self, items: Sequence[Question | BadLine]) -> None:
        self._items = items
        self._position = 0
        self._rows: dict[int, dict[str, Any]] = {}  # by input line, not yet handed out
        self._handed_out: set[int] = set()

    def done(self, question: Question, row: dict[str, Any], replace: bool = True) -> None:
        if question.line in self._handed_out:
            return
        if replace or question.line not in self._rows:
            self._rows[question.line] = row

    def ready(self) -> Iterator[dict[str, Any]]:
        while self._position < len(self._items):
            item = self._items[self._position]
            if isinstance(item, BadLine):
                yield _error_row(item, item.reason)
            elif item.line in self._rows:
                self._handed_out.add(item.line)
                yield self._rows.pop(item.line)
            else:
                return
            self._position += 1


class AnswerQuestions:
    """Ray Data actor: opens the knowledge base and its models once, answers questions."""

    def __init__(self, folder: str, settings: dict[str, Any], full: bool = False) -> None:
        from ..ingest.distributed import offline_environment
        from .knowledge_base import KnowledgeBase
        from .settings import Settings

        offline_environment()
        self._full = full
        self._kb = KnowledgeBase.open(Path(folder), settings=Settings(**settings), create=False)
        self._kb.embedder.embed_queries(["warm up"])  # load both models now, once
        load = getattr(self._kb.generator, "load", None)
        if load is not None:
            load()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        k = int(row["k"]) or None
        result = _answer_one(self._kb, str(row["question"]), k, self._full)
        return {"seq": int(row["seq"]), "result": json.dumps(result, ensure_ascii=False)}


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


# -- kbqa eval qa --engine ray ---------------------------------------------------


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """The ``Answer`` that ``Answer.to_dict()`` described (after a JSON round trip).

    Plain fields pass through, so a new one needs nothing here; JSON lists become
    the tuples the frozen dataclasses hold.
    """
    from .answer import Answer, Citation, Quote, Timings
    from .answerability import Assessment

    def plain(fields: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in fields.items()
            if key not in drop
        }

    def citations(rows: list[dict[str, Any]]) -> tuple[Citation, ...]:
        return tuple(Citation(**plain(row, drop=("name",))) for row in rows)  # name: derived

    assessment = data.get("answerability")
    return Answer(
        **{
            **data,
            "citations": citations(data["citations"]),
            "passages": citations(data.get("passages", [])),
            "quotes": tuple(Quote(**plain(row)) for row in data.get("quotes", [])),
            "timings": Timings(**data["timings"]),
            "answerability": None if assessment is None else Assessment(**plain(assessment)),
        }
    )


class PrefetchedAnswers:
    """A knowledge base whose ``ask`` returns answers computed beforehand, elsewhere;
    everything else (``search``, ``add_texts`` ...) is the real knowledge base's."""

    def __init__(self, kb: KnowledgeBase, answers: dict[str, Answer]) -> None:
        self._kb = kb
        self._answers = answers

    def ask(self, question: str, k: int | None = None) -> Answer:
        if k is None and question in self._answers:
            return self._answers[question]
        return self._kb.ask(question, k)  # not prefetched: asked here, as before

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kb, name)


def prefetch_on_ray(
    settings: Settings, address: str | None = None, progress: bool = False
) -> Callable[[KnowledgeBase, list[str]], PrefetchedAnswers]:
    """``evaluate_answers``' ``prefetch``: every question answered by the Ray actor pool.

    Raises:
        KbqaError: a question could not be answered (as a failing ``kb.ask`` stops a
            local evaluation), naming it and why.
    """
    from tqdm import tqdm

    def prefetch(kb: KnowledgeBase, texts: list[str]) -> PrefetchedAnswers:
        unique = list(dict.fromkeys(texts))  # the same question twice is answered once
        items: list[Question | BadLine] = [
            Question(line, text) for line, text in enumerate(unique, start=1)
        ]
        answers: dict[str, Answer] = {}
        failures: list[str] = []
        rows = answer_on_ray(kb.folder, settings, items, address, full_answers=True)
        for row in tqdm(rows, total=len(items), desc="questions (ray)", disable=not progress):
            text = unique[int(row["line"]) - 1]
            if "error" in row:
                failures.append(f"{text!r}: {row['error']}")
            else:
                answers[text] = answer_from_dict(row["answer"])
        if failures:
            raise KbqaError(
                f"{len(failures)} of {len(unique)} questions were not answered on Ray; "
                f"first: {failures[0]}"
            )
        return PrefetchedAnswers(kb, answers)

    return prefetch


def evaluate_answers_batch(
    kb: KnowledgeBase,
    questions_file: Path,
    passages_file: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    *,
    settings: Settings,
    engine: str = "ray",
    address: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``evaluation.evaluate_answers`` with the questions answered by ``engine``.

    ``local`` is ``evaluate_answers`` itself; ``ray`` answers every sampled question
    in the actor pool first (each actor opens ``kb.folder``, so it must be readable
    at that path on every node), then scores them the same way. ``settings`` are
    the ones ``kb`` was opened with: the actors load the same models and options.
    """
    from . import evaluation

    prefetch = prefetch_on_ray(settings, address, progress) if engine == "ray" else None
    return evaluation.evaluate_answers(
        kb, questions_file, passages_file, limit, seed, progress=progress, prefetch=prefetch
    )
