"""How the engine answers: ``AnswerOptions``, the one place their defaults are declared.

Light on purpose (no model or index imports): ``kbqa.settings`` reads these defaults
for its ``KBQA_*`` fields, and ``Settings.answer_options()`` builds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Style = Literal["evidence", "short", "sentence"]
STYLES: tuple[Style, ...] = ("evidence", "short", "sentence")
Retrieval = Literal["hybrid", "dense", "keyword"]


@dataclass(frozen=True)
class AnswerOptions:
    top_k: int = 5  # passages retrieved per question
    max_new_tokens: int = 256  # longest draft (compose.py caps each style lower)
    min_score: float = 0.2  # refuse below this best cosine (Settings: the embedder's floor)
    retrieval: Retrieval = "hybrid"
    # evidence: the sentences that answer, verbatim, no LLM; short: the answering words,
    # copied from them by the LLM; sentence: one sentence the LLM phrases from them.
    answer_style: Style = "evidence"
    answerability: bool = True  # act on qa/answerability.py's verdict (False: only record it)
    instruction_filter: bool = True  # sentences addressed to a model are never evidence
