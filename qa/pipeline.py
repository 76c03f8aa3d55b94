"""One question, each stage once: retrieve → select evidence → decide → compose → verify.

Every front door (CLI, API, MCP, batch, the web app) asks through ``AnswerStream``;
each stage is a function with a typed result:

    hits      = retriever.retrieve(question)                    qa/retrieval.py
    evidence  = select_evidence(question, hits, embedder)       qa/evidence.py
    verdict   = decide(question, evidence, floor, calibration)  qa/answerability.py
    draft     = compose(evidence, style, generator, language)   qa/compose.py
    verified  = verify(draft, evidence)                          qa/verify.py

A refusal is decided in ``decide`` only, before any model runs; what is shown is
either the evidence verbatim or a draft the evidence states.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .answer import Answer, Citation, Timings
from .answerability import calibration_for, decide
from .compose import Draft, draft_pieces
from .evidence import select_evidence
from .followup import Turn, rewrite_followup
from .options import Style
from .prompting import REFUSALS, detect_language
from .verify import evidence_answer, verify

if TYPE_CHECKING:
    from ..index.scope import Scope
    from .knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)


class AnswerStream:
    """Yields the answer text as soon as it is known; ``answer`` is the finished ``Answer``.

    While a model drafts, empty pieces ("") mark its progress: nothing unchecked is
    shown, and closing the stream stops the model at its next token.

    With ``history`` (earlier turns of a conversation), a follow-up such as "¿y
    BLOOM?" is first rewritten into a standalone question (``qa/followup.py``);
    ``Answer.question`` is the question as asked, ``Answer.standalone`` what was
    searched.
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        question: str,
        k: int,
        style: Style | None = None,
        history: Sequence[Turn] = (),
        scope: Scope | None = None,
    ) -> None:
        self._kb = kb
        self.question = question
        self._k = k
        self._style: Style = style or kb.answer_options.answer_style
        self._history = tuple(history)
        self.scope = scope
        # The evidence, with its [n] markers, once it is chosen and judged answerable and
        # before any model runs: a front door may show it while the model drafts.
        self.evidence_text: str | None = None
        self._answer: Answer | None = None
        self._iterator = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._iterator

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            for _ in self._iterator:
                pass
        assert self._answer is not None
        return self._answer

    def _run(self) -> Iterator[str]:
        kb, options = self._kb, self._kb.answer_options
        started = time.perf_counter()
        standalone = self.question
        if self._history:
            standalone = rewrite_followup(self.question, self._history, kb.generator).standalone
        language = detect_language(self.question)
        hits = kb.search(standalone, self._k, scope=self.scope)
        retrieve_s = time.perf_counter() - started
        evidence = select_evidence(
            standalone, hits, kb.embedder, filter_instructions=options.instruction_filter
        )
        verdict = decide(standalone, evidence, options.min_score, calibration_for(kb.embedder.name))
        passages = tuple(Citation.from_hit(n, h) for n, h in enumerate(hits, start=1))
        if (not verdict.answerable and options.answerability) or not evidence.spans:
            log.info("refused: %s", verdict.reason or "no sentence can be quoted")
            text = REFUSALS[language]
            yield text
            total = time.perf_counter() - started
            self._answer = Answer(
                self.question, text, (), True, Timings(retrieve_s, 0, total, total), language,
                passages, reply="", answerability=verdict, style=self._style,
                standalone=standalone,
            )  # fmt: skip
            return
        self.evidence_text = evidence_answer(evidence).text
        yield ""  # a front door may show the evidence now, before the model's first token
        drafting = draft_pieces(
            evidence, self._style, kb.generator, language, options.max_new_tokens
        )
        try:
            while True:
                try:
                    next(drafting)
                except StopIteration as done:
                    draft: Draft = done.value
                    break
                # Nothing of the unchecked draft is shown; the empty piece lets a consumer
                # that leaves (a closed web request) stop the model at its next token.
                yield ""
        finally:
            drafting.close()
        checked = verify(draft, evidence)
        shown_s = time.perf_counter() - started
        yield checked.text
        cited = sorted({q.number for q in checked.quotes})
        self._answer = Answer(
            self.question,
            checked.text,
            tuple(passages[n - 1] for n in cited),
            not checked.quotes,
            Timings(retrieve_s, draft.prompt_tokens, shown_s, shown_s, draft.pieces),
            language,
            passages,
            reply=draft.text,
            quotes=checked.quotes,
            answerability=verdict,
            style=self._style,
            shown=checked.shown,
            standalone=standalone,
            not_shown_because=checked.reason,
        )
