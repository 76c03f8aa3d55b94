"""Batch answering on a Ray cluster: ``kbqa ask --batch --engine ray`` and
``kbqa eval qa --engine ray``.

Questions are answered in a Ray Data actor pool, each actor loading the models
once and opening the knowledge base itself, so the knowledge-base folder must be
readable at the same path on every node (a copy on each node: SQLite's WAL mode,
which the store uses, is not safe on a network filesystem). The cluster plumbing
(connecting, sizing, actor pools) is the Ray ingest's (``ingest/ray_cluster.py``).

``kbqa eval qa --engine ray`` answers its questions through the same pool
(``evaluate_answers_batch``): whole answers come back as JSON, are rebuilt into
``Answer`` objects and scored by ``kbqa.evaluation`` exactly as local ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import KbqaError
from .batch import BadLine, Question, answer_fields, error_row, output_row

if TYPE_CHECKING:
    from ..qa.answer import Answer
    from ..qa.knowledge_base import KnowledgeBase
    from ..qa.options import Style
    from ..settings import Settings

log = logging.getLogger(__name__)


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
    from ..ingest.ray_cluster import MAX_RETRIES, actor_stage, cluster_size, connect

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
        rows = [
            {"seq": seq, "question": q.text, "k": q.k or 0, "scope": _scope_json(q)}
            for seq, q in enumerate(questions)
        ]
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
                order.done(question, output_row(question, json.loads(row["result"])))
                yield from order.ready()
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - Ray's errors: retries ran out, node lost
            log.error("the Ray pipeline failed: %s", error)
            first = (str(error).strip().splitlines() or [""])[0][:300]
            reason = f"not answered: the Ray pipeline failed ({type(error).__name__}: {first})"
            for question in questions:
                order.done(question, error_row(question, reason), replace=False)
    yield from order.ready()


def _scope_json(question: Question) -> str:
    """A question's scope as JSON text (Ray rows carry plain values)."""
    scope = question.scope
    return json.dumps({"documents": scope.documents, "tags": scope.tags} if scope else None)


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
                yield error_row(item, item.reason)
            elif item.line in self._rows:
                self._handed_out.add(item.line)
                yield self._rows.pop(item.line)
            else:
                return
            self._position += 1


class AnswerQuestions:
    """Ray Data actor: opens the knowledge base and its models once, answers questions."""

    def __init__(self, folder: str, settings: dict[str, Any], full: bool = False) -> None:
        from ..ingest.ray_cluster import offline_environment
        from ..qa.knowledge_base import KnowledgeBase
        from ..settings import Settings

        offline_environment()
        self._full = full
        self._kb = KnowledgeBase.open(Path(folder), settings=Settings(**settings), create=False)
        self._kb.embedder.embed_queries(["warm up"])  # load both models now, once
        load = getattr(self._kb.generator, "load", None)
        if load is not None:
            load()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from ..index.scope import Scope

        k = int(row["k"]) or None
        scope = json.loads(row["scope"])
        within = Scope.of(scope["documents"], scope["tags"]) if scope else None
        result = answer_fields(self._kb, str(row["question"]), k, self._full, within)
        return {"seq": int(row["seq"]), "result": json.dumps(result, ensure_ascii=False)}


# -- kbqa eval qa --engine ray ---------------------------------------------------


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """The ``Answer`` that ``Answer.to_dict()`` described (after a JSON round trip).

    Plain fields pass through, so a new one needs nothing here; JSON lists become
    the tuples the frozen dataclasses hold.
    """
    from ..qa.answer import Answer, Citation, Quote, Timings
    from ..qa.answerability import Assessment

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

    def ask(self, question: str, k: int | None = None, *, style: Style | None = None) -> Answer:
        answer = self._answers.get(question) if k is None else None
        if answer is not None and style in (None, answer.style):
            return answer
        return self._kb.ask(question, k, style=style)  # not prefetched: asked here, as before

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
    from .. import evaluation

    prefetch = prefetch_on_ray(settings, address, progress) if engine == "ray" else None
    return evaluation.evaluate_answers(
        kb, questions_file, passages_file, limit, seed, progress=progress, prefetch=prefetch
    )
